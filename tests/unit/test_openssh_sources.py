"""lab/openssh-sources.sh: the lab builds nothing from upstream sources it could not verify."""

import hashlib
import os
import subprocess

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "lab", "openssh-sources.sh")


def sources(tmp_path, files, listed=None):
    """A sources directory with these tarballs (name: bytes) and a SHA256SUMS of `listed` (default: the same);
    what is listed and not among them is missing."""
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    lines = ["%s  %s" % (hashlib.sha256(data).hexdigest(), name) for name, data in (listed or files).items()]
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return tmp_path


def run(where, *tags):
    return subprocess.run([SCRIPT, *tags], capture_output=True, text=True, check=False,
                          env=dict(os.environ, LAB_OPENSSH_SOURCES=str(where)))


TARS = {"openssh-portable-V_9_6_P1.tar.gz": b"nine six", "openssh-portable-V_10_5_P1.tar.gz": b"ten five"}


def test_verified_tarballs_are_listed_in_version_order(tmp_path):
    got = run(sources(tmp_path, TARS))
    assert got.returncode == 0 and got.stdout.split("\n")[:2] == [
        "V_9_6_P1 %s/openssh-portable-V_9_6_P1.tar.gz" % tmp_path,
        "V_10_5_P1 %s/openssh-portable-V_10_5_P1.tar.gz" % tmp_path]
    assert run(tmp_path, "V_10_5_P1").stdout == "V_10_5_P1 %s/openssh-portable-V_10_5_P1.tar.gz\n" % tmp_path


def test_no_sources_skip_the_upstream_images_with_one_line(tmp_path):
    got = run(tmp_path / "absent")
    assert got.returncode == 0 and got.stdout == "" and got.stderr.count("\n") == 1
    assert "upstream images are skipped" in got.stderr and "LAB_OPENSSH_SOURCES" in got.stderr


def test_a_tampered_tarball_is_refused(tmp_path):
    where = sources(tmp_path, TARS)
    (where / "openssh-portable-V_9_6_P1.tar.gz").write_bytes(b"nine six, and a backdoor")
    got = run(where)
    assert got.returncode == 1 and "V_9_6_P1.tar.gz: does not match its sum" in got.stderr
    assert "V_9_6_P1" not in got.stdout


@pytest.mark.parametrize("listed,tags,message", [
    ({"openssh-portable-V_9_6_P1.tar.gz": b"nine six"}, ["V_10_5_P1"], "V_10_5_P1: not listed"),
    ({"../evil.tar.gz": b"x"}, [], "not a release tarball name: ../evil.tar.gz"),
    (dict(TARS, **{"openssh-portable-V_9_9_P1.tar.gz": b"gone"}), ["V_9_9_P1"], "listed in SHA256SUMS but missing"),
])
def test_what_cannot_be_verified_is_an_error(tmp_path, listed, tags, message):
    got = run(sources(tmp_path, TARS, listed=listed), *tags)
    assert got.returncode == 1 and message in got.stderr, got.stderr


def test_a_clone_finds_the_sources_beside_the_repository_it_was_cloned_from(tmp_path):
    origin = tmp_path / "work" / "main"
    (origin / "lab").mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run(git + ["init", "-q", str(origin)], check=True)
    subprocess.run(git + ["-C", str(origin), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    shared = tmp_path / "work" / "shared" / "openssh"
    shared.mkdir(parents=True)
    sources(shared, TARS)
    clone = tmp_path / "elsewhere" / "x"
    subprocess.run(["git", "clone", "-q", str(origin) + "/.", str(clone)], check=True)
    (clone / "lab").mkdir()
    script = clone / "lab" / "openssh-sources.sh"
    script.write_bytes(open(SCRIPT, "rb").read())
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "LAB_OPENSSH_SOURCES"}
    got = subprocess.run([str(script)], capture_output=True, text=True, check=False, env=env)
    assert got.returncode == 0 and got.stdout.count("\n") == 2 and str(shared) in got.stdout, got.stderr
