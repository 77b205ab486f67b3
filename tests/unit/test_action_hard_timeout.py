"""The controller side of hard_timeout: finding the connection's hung exec on any POSIX controller."""

import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.hangup.ssh.plugins.action import hard_timeout


def test_parse_ps():
    text = "  1     0\n 4242  77\n 4243  77\n 4244 770\nnoise\n"
    assert hard_timeout.parse_ps(text, 77) == [4242, 4243]


def test_children_finds_a_real_child():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert proc.pid in hard_timeout.children(os.getpid())
        assert proc.pid in hard_timeout.parse_ps(subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid="],
                                                                capture_output=True, text=True, check=True).stdout,
                                                 os.getpid())
        assert hard_timeout.still_our_child(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert not hard_timeout.still_our_child(proc.pid)
    assert not hard_timeout.still_our_child(1)


def test_kill_child_kills_only_a_child_of_this_process():
    ours = subprocess.Popen(["sleep", "30"])
    other = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
    grandchild = int(other.stdout.readline())
    try:
        hard_timeout.kill_child(grandchild)  # not this process's child: left alone
        hard_timeout.kill_child(ours.pid)
        assert ours.wait(timeout=5) == -9
        os.kill(grandchild, 0)
    finally:
        for proc in (ours, other):
            proc.kill()
            proc.wait()
        os.kill(grandchild, 9)
    hard_timeout.kill_child(ours.pid)  # reaped: nothing, and no error


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"),
                    reason="needs root, unshare and setpriv")
def test_no_proc_is_no_error():
    # a controller with no /proc to read (macOS has none): listing it raises, the give-up path must still return
    code = ("import os, subprocess, sys; sys.path[:0] = %r; "
            "from ansible_collections.hangup.ssh.plugins.action import hard_timeout as h\n"
            "try:\n os.listdir('/proc'); print('readable')\nexcept OSError: pass\n"
            "p = subprocess.Popen(['sleep', '30']); print(h.children(os.getpid())); p.kill()" % sys.path)
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          'mount -t tmpfs -o mode=000 none /proc && '
                          'exec setpriv --bounding-set=-dac_override,-dac_read_search '
                          '"$0" -c "$1"', sys.executable, code],
                         capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "[]", (out.stdout, out.stderr)
