"""The hostile user's FUSE trap (hostile/stuckfs.py), as a fixture: processes that reading /proc blocks on."""

import os
import subprocess
import sys
import tempfile
import time

import pytest

# a process stuck in exec on a user's FUSE file: reading its stat or environ blocks for as long as the user wants
STUCK = ("import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CLOEXEC); "
         "os.execvp('sleep', ['sleep', '4180'])")


# the trap runs as a hostile user, who cannot run the test's Python (it may live under /root)
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def stat_blocks(pid):
    return subprocess.run(["timeout", "1", "cat", "/proc/%d/stat" % pid], capture_output=True,
                          check=False).returncode == 124


def wait_stuck(pid, seconds=5):
    """Whether reading pid's stat blocks within `seconds` (the trap caught it)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if stat_blocks(pid):
            return True
    return False


@pytest.fixture
def stuck_exec():
    """(mountpoint, start): a stuck-exec trap, and start(argv=None, uid=None) to start a process caught in it."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("needs root and /dev/fuse to mount the hostile user's file system")
    where = tempfile.mkdtemp(prefix="hk-fuse-")
    server = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "hostile", "stuckfs.py"),
                               where], stdout=subprocess.PIPE, text=True)
    if server.stdout.readline().strip() != "mounted":
        server.kill()
        pytest.skip("could not mount a FUSE file system here")
    started = []

    def start(argv=None, uid=None):
        proc = subprocess.Popen(argv or [PYTHON, "-c", STUCK, os.path.join(where, "f")], user=uid,
                                group=uid, extra_groups=[] if uid is not None else None)
        started.append(proc)
        return proc

    yield where, start
    server.kill()
    server.wait()
    subprocess.run(["umount", "-l", where], check=False)
    for proc in started:
        proc.kill()
        proc.wait()
    os.rmdir(where)
