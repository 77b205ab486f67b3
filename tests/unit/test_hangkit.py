"""The hang kit's pure helpers, over `ss` output recorded in the lab containers.

session_script is run for real with /bin/sh and stand-in commands in place of ssh.
"""

import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

import hangkit  # noqa: E402

# `ss -Htnp state established`, recorded: OpenSSH 8.4 server (one root process),
# 10.0 server (sshd-session monitor and child), a client, and an IPv6 peer.
SS_CASES = [
    (
        '0      0      10.88.0.2:22 10.88.0.3:44514 users:(("sshd",pid=34,fd=4))',
        [{"local": ("10.88.0.2", 22), "peer": ("10.88.0.3", 44514), "procs": [("sshd", 34)]}],
    ),
    (
        '0      0      10.88.0.4:22 10.88.0.5:40118 users:(("sshd-session",pid=61,fd=7),("sshd-session",pid=57,fd=7))',
        [{"local": ("10.88.0.4", 22), "peer": ("10.88.0.5", 40118),
          "procs": [("sshd-session", 61), ("sshd-session", 57)]}],
    ),
    (
        'ESTAB 0      0      10.88.0.3:44514 10.88.0.2:22 users:(("ssh",pid=36,fd=3))',
        [{"local": ("10.88.0.3", 44514), "peer": ("10.88.0.2", 22), "procs": [("ssh", 36)]}],
    ),
    (
        '0      0      [fd00::2]:22 [fd00::3]:51000 users:(("sshd",pid=9,fd=4))\n'
        '0      0      [::ffff:10.0.0.1]:22 [::ffff:10.0.0.9]:2222',
        [{"local": ("fd00::2", 22), "peer": ("fd00::3", 51000), "procs": [("sshd", 9)]},
         {"local": ("::ffff:10.0.0.1", 22), "peer": ("::ffff:10.0.0.9", 2222), "procs": []}],
    ),
    ("", []),
    ("garbage line\n", []),
]


@pytest.mark.parametrize("output,expected", SS_CASES)
def test_parse_ss(output, expected):
    assert hangkit.parse_ss(output) == expected


def test_pids_of():
    row = hangkit.parse_ss(SS_CASES[1][0])[0]
    assert hangkit.pids_of(row) == [61, 57]


@pytest.mark.parametrize("text,expected", [
    ("255 1795777510.123456789\n", (255, 1795777510.123456789)),
    ("0 1.5", (0, 1.5)),
])
def test_parse_end(text, expected):
    assert hangkit.parse_end(text) == expected


def test_ssh_argv_kinds():
    pty = hangkit.ssh_argv("pty", "root@10.0.0.2", hangkit.KEEPALIVE_3x2)
    notty = hangkit.ssh_argv("notty", "root@10.0.0.2")
    assert pty[-2:] == ["-tt", "root@10.0.0.2"] and "ServerAliveInterval=3" in pty
    assert notty[-4:] == ["-T", "-n", "root@10.0.0.2", "sleep 86400"]
    assert "BatchMode=yes" in notty and "-tt" not in notty
    with pytest.raises(ValueError, match="kind"):
        hangkit.ssh_argv("tty", "x")


def _run_script(tmp_path, argv):
    script = hangkit.session_script("t1", argv, state_dir=str(tmp_path))
    proc = subprocess.Popen(["sh", "-c", script])
    deadline = time.monotonic() + 10
    while not (tmp_path / "t1.end").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.wait(timeout=10)
    return tmp_path


@pytest.mark.parametrize("argv,rc,out", [
    (["sh", "-c", "echo hello; exit 3"], 3, "hello\n"),
    # a pty session: stdin is the FIFO the script holds open, so it never sees
    # EOF (timeout's 124), like an idle user; "-tt" marks the kind
    (["sh", "-c", "timeout 1 cat; echo read=$?; exit 4", "-tt"], 4, "read=124\n"),
    (["sh", "-c", "echo 'quote '\"'\"' ok'"], 0, "quote ' ok\n"),
])
def test_session_script_records_pid_output_and_end(tmp_path, argv, rc, out):
    before = time.time()
    d = _run_script(tmp_path, argv)
    got_rc, stamp = hangkit.parse_end((d / "t1.end").read_text())
    assert got_rc == rc
    assert before - 1 <= stamp <= time.time() + 1
    assert int((d / "t1.pid").read_text()) > 1
    assert (d / "t1.out").read_text() == out
