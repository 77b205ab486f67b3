"""module_utils._userfile: a user's ~/.ssh/config changed as that user, against a hostile home.

The file operations run for real on a temporary home. As root, the same
cases run through as_user as `nobody`, with a home nobody owns; as another
user those cases are skipped (only root can act as someone else).
"""

import os
import pathlib
import pwd
import shutil
import stat
import tempfile

import pytest

from ansible_collections.hangup.ssh.plugins.module_utils import _userfile

MARK = "# {mark} hangup.ssh.keepalive"
BLOCK = "Host *\n    ServerAliveInterval 15\n"
SSH = shutil.which("ssh")


@pytest.mark.parametrize("text,expected", [
    ("", "# BEGIN hangup.ssh.keepalive\nHost *\n    ServerAliveInterval 15\n# END hangup.ssh.keepalive\n"),
    ("Host git\n    User git", "Host git\n    User git\n# BEGIN hangup.ssh.keepalive\nHost *\n"
     "    ServerAliveInterval 15\n# END hangup.ssh.keepalive\n"),
    ("Host a\n# BEGIN hangup.ssh.keepalive\nold\n# END hangup.ssh.keepalive\nHost b\n",
     "Host a\n# BEGIN hangup.ssh.keepalive\nHost *\n    ServerAliveInterval 15\n# END hangup.ssh.keepalive\nHost b\n"),
])
def test_merge_block(text, expected):
    assert _userfile.merge_block(text, BLOCK, MARK) == expected
    assert _userfile.merge_block(expected, BLOCK, MARK) == expected


def test_merge_block_keeps_the_users_bytes_and_refuses_broken_markers():
    # a form feed or a CR is no line break of ssh's: a commented-out line stays commented out
    text = "# old: \x0cProxyCommand nc evil 22\r\nHost a\r\n"
    got = _userfile.merge_block(text, BLOCK, MARK)
    assert got.startswith(text) and "\nProxyCommand" not in got
    for broken in ("# BEGIN hangup.ssh.keepalive\nHost important\n",
                   "# END hangup.ssh.keepalive\nx\n# BEGIN hangup.ssh.keepalive\n",
                   "# BEGIN hangup.ssh.keepalive\n# END hangup.ssh.keepalive\n" * 2):
        with pytest.raises(_userfile.Refused, match="do not pair up"):
            _userfile.merge_block(broken, BLOCK, MARK)


def test_sources_and_printable():
    text = "Host *\n    ServerAliveInterval=5\n# ServerAliveInterval 9\nserveralivecountmax 2\n"
    assert _userfile.sources(text, "/h/.ssh/config", ["ServerAliveInterval", "ServerAliveCountMax"]) == [
        "/h/.ssh/config:2:ServerAliveInterval=5", "/h/.ssh/config:4:serveralivecountmax 2"]
    assert _userfile.printable("a\x1b]0;owned\x07b\n\tc\udcff") == "a\\x1b]0;owned\\x07b\n\tc\\xff"


def _who():
    """(pw of the user the cases run as, a function running update_config as them)."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("nobody")
        return pw, lambda *a: _userfile.as_user(pw, _userfile.update_config, *a)
    pw = pwd.getpwuid(os.geteuid())
    return pw, _userfile.update_config


@pytest.fixture
def space():
    """A directory anyone may pass through (pytest's own is root's, 0700)."""
    path = tempfile.mkdtemp(prefix="hk-userfile-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


@pytest.fixture
def home(space):
    pw, _run = _who()
    h = space / "home"
    h.mkdir()
    _own(h, pw)
    return h


def _own(path, pw):
    if os.geteuid() == 0:
        os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def test_creates_then_keeps_and_tightens(home):
    pw, run = _who()
    got = run(str(home), pw.pw_uid, BLOCK, MARK, False, SSH, ["ServerAliveInterval"])
    assert got["changed"] and "created" in got["notes"][0]
    # ssh -G reads the passwd home's file, not this temporary one: only the shape is checked here
    assert got["effective"].startswith("serveraliveinterval ") and got["sources"] == [
        "%s/.ssh/config:3:ServerAliveInterval 15" % home]
    cfg = home / ".ssh" / "config"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600 and cfg.stat().st_uid == pw.pw_uid
    assert stat.S_IMODE((home / ".ssh").stat().st_mode) == 0o700
    assert run(str(home), pw.pw_uid, BLOCK, MARK, False, SSH)["changed"] is False
    cfg.chmod(0o644)
    (home / ".ssh").chmod(0o755)
    again = run(str(home), pw.pw_uid, BLOCK, MARK, False, SSH)
    assert again["changed"] and stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / ".ssh").stat().st_mode) == 0o700


def test_check_mode_writes_nothing(home):
    pw, run = _who()
    got = run(str(home), pw.pw_uid, BLOCK, MARK, True, SSH)
    assert got["changed"] and got["before"] == "" and "ServerAliveInterval" in got["after"]
    assert not (home / ".ssh").exists()


@pytest.mark.parametrize("trap,what", [
    ("ssh_link", "Refusing {home}/.ssh: it is a symbolic link"),
    ("ssh_file", "Refusing {home}/.ssh: it is a regular file"),
    ("config_link", "Refusing {home}/.ssh/config: it is a symbolic link"),
    ("config_dangling", "Refusing {home}/.ssh/config: it is a symbolic link"),
    ("config_fifo", "Refusing {home}/.ssh/config: it is a named pipe"),
])
def test_links_and_odd_files_are_refused_and_their_targets_untouched(home, space, trap, what):
    pw, run = _who()
    victim_dir = space / "victim"
    victim_dir.mkdir()
    victim = victim_dir / "config"
    victim.write_text("secret line\n")
    victim.chmod(0o600)
    missing = space / "missing"
    dotssh = home / ".ssh"
    if trap == "ssh_link":
        dotssh.symlink_to(victim_dir)
    elif trap == "ssh_file":
        dotssh.write_text("x")
    else:
        dotssh.mkdir(mode=0o700)
        cfg = dotssh / "config"
        if trap == "config_link":
            cfg.symlink_to(victim)
        elif trap == "config_dangling":
            cfg.symlink_to(missing)
        else:
            os.mkfifo(cfg)
    for p in (dotssh, dotssh / "config"):
        if os.path.lexists(p):
            _own(p, pw)
    with pytest.raises(_userfile.Refused) as err:
        run(str(home), pw.pw_uid, BLOCK, MARK, False, SSH)
    assert str(err.value).startswith(what.format(home=home)) and "secret" not in str(err.value)
    assert victim.read_text() == "secret line\n" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert not missing.exists()


def test_a_linked_home_is_a_home_and_a_home_of_someone_else_is_not(home, space):
    pw, run = _who()
    link = space / "linked"
    link.symlink_to(home)
    assert run(str(link), pw.pw_uid, BLOCK, MARK, False, SSH)["path"] == str(link) + "/.ssh/config"
    with pytest.raises(_userfile.Refused, match="owned by uid"):
        run(str(space), pw.pw_uid, BLOCK, MARK, False, SSH)
    with pytest.raises(_userfile.NoHome, match="has no home directory"):
        run(str(space / "nowhere"), pw.pw_uid, BLOCK, MARK, False, SSH)


def test_a_file_that_does_not_parse_is_left_as_it_was(home):
    pw, run = _who()
    dotssh = home / ".ssh"
    dotssh.mkdir(mode=0o700)
    cfg = dotssh / "config"
    cfg.write_text("NoSuchKeyword yes\n")
    _own(dotssh, pw)
    _own(cfg, pw)
    with pytest.raises(_userfile.Refused, match="does not parse"):
        run(str(home), pw.pw_uid, BLOCK, MARK, False, SSH)
    assert cfg.read_text() == "NoSuchKeyword yes\n" and sorted(os.listdir(dotssh)) == ["config"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can act as another user")
def test_as_user_runs_as_that_user_and_reports_errors():
    pw = pwd.getpwnam("nobody")
    assert _userfile.as_user(pw, os.getuid) == pw.pw_uid
    with pytest.raises(_userfile.NoHome, match="has no home"):
        _userfile.as_user(pw, _userfile.open_home, "/nonexistent-hangup", pw.pw_uid)
    # root's own directory, read as nobody: a permission error, never root's content
    with pytest.raises(_userfile.NoHome, match="Permission denied"):
        _userfile.as_user(pw, _userfile.open_home, "/root", pw.pw_uid)
