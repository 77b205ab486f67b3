"""module_utils._kill against real processes this test starts (nothing is mocked)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.hangup.ssh.plugins.module_utils import _kill

IGNORES_TERM = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(1000)"]


@pytest.fixture
def spawn():
    started = []

    def start(argv=("sleep", "1000")):
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE)
        if argv is IGNORES_TERM:
            proc.stdout.readline()  # the handler is installed
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def target(proc):
    return proc.pid, _kill.starttime_of("/proc", proc.pid)


def entry(sshd, commands=(), kind="inbound"):
    pids = [p.pid for p in sshd] + [c.pid for c in commands]
    return {"kind": kind, "pid": pids[0], "user_pid": sshd[-1].pid if len(sshd) > 1 else None,
            "sshd_pids": [p.pid for p in sshd], "commands": [{"pid": c.pid, "cmdline": "x"} for c in commands],
            "_starts": {p: _kill.starttime_of("/proc", p) for p in pids}}


def test_send_refuses_a_recycled_pid(spawn):
    proc = spawn()
    pid, start = target(proc)
    # same PID, another start time: the process we meant is gone and this is someone else
    assert _kill.send("/proc", (pid, start - 1), signal.SIGKILL) == _kill.GONE
    time.sleep(0.2)
    assert proc.poll() is None
    assert _kill.send("/proc", (pid, start), signal.SIGTERM) == _kill.SENT
    assert proc.wait(5) == -signal.SIGTERM
    assert _kill.send("/proc", (pid, start), signal.SIGTERM) == _kill.GONE


def test_plan_inbound_term_monitor_kill_child_first_hup_commands(spawn):
    monitor, child, command = spawn(), spawn(), spawn()
    first, wait_for, last, hangup = _kill.plan(entry([monitor, child], [command]))
    assert [t[0] for t in first] == [monitor.pid]
    assert [t[0] for t in wait_for] == [monitor.pid, child.pid]
    assert [t[0] for t in last] == [child.pid, monitor.pid]
    assert [t[0] for t in hangup] == [command.pid]


def test_end_all_term_then_kill_then_hangup(spawn):
    # the "monitor" ends on SIGTERM, the "child" ignores it, the command ends on SIGHUP
    monitor, child, command = spawn(), spawn(IGNORES_TERM), spawn()
    gentle = spawn()
    started = time.monotonic()
    killed, failed = _kill.end_all([entry([monitor, child], [command]), entry([gentle])], grace=1.0)
    elapsed = time.monotonic() - started
    assert failed == []
    by_pid = {k["pid"]: k for k in killed}
    assert by_pid[monitor.pid]["signals"] == ["TERM", "KILL", "HUP"]
    assert by_pid[gentle.pid]["signals"] == ["TERM"]
    assert monitor.wait(5) == -signal.SIGTERM and child.wait(5) == -signal.SIGKILL
    assert command.wait(5) == -signal.SIGHUP and gentle.wait(5) == -signal.SIGTERM
    assert elapsed >= 1.0  # SIGKILL only after the grace period


def test_end_all_skips_what_ended_before(spawn):
    proc = spawn()
    done = entry([proc])
    proc.kill()
    proc.wait()
    assert _kill.end_all([done], grace=0.5) == ([], [])


def test_outbound_and_orphans_get_the_same_treatment(spawn):
    ssh = spawn(IGNORES_TERM)
    e = entry([], [ssh], kind="outbound")
    killed, failed = _kill.end_all([e], grace=0.3)
    assert failed == [] and killed[0]["signals"] == ["TERM", "KILL"]
    assert ssh.wait(5) == -signal.SIGKILL


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_not_permitted_is_reported(spawn):
    # root's process, signalled from a forked child that became nobody
    proc = spawn()
    e = entry([], [proc], kind="outbound")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            killed, failed = _kill.end_all([e], grace=0.2)
            os.write(write, (failed[0]["reason"] if failed else "killed").encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        reason = f.read()
    assert _kill.DENIED in reason and proc.poll() is None
