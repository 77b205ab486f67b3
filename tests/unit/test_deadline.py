"""module_utils._deadline against real processes this test starts (nothing is mocked)."""

import os
import subprocess
import time

import pytest

from ansible_collections.hangup.ssh.plugins.module_utils import _deadline

PARAMS = {"timeout": 10, "kill_after": 5, "output_limit": 100, "margin": 15, "executable": None, "shell": False}


@pytest.mark.parametrize("change,problem", [
    ({}, None),
    ({"timeout": 0}, "timeout"),
    ({"timeout": -3}, "timeout"),
    ({"timeout": None}, "timeout"),
    ({"kill_after": -1}, "kill_after"),
    ({"kill_after": 0}, None),
    ({"output_limit": -1}, "output_limit"),
    ({"margin": 1}, "margin"),
    ({"executable": "/bin/bash"}, "executable"),
    ({"executable": "/bin/bash", "shell": True}, None),
])
def test_check_numbers(change, problem):
    got = _deadline.check_numbers(dict(PARAMS, **change))
    assert (got is None) if problem is None else got.startswith(problem)


@pytest.mark.parametrize("timed_out,signal_sent,returncode,rc", [
    (False, None, 0, 0),
    (False, None, 3, 3),
    (False, None, -9, -9),  # a signal from elsewhere: as ansible.builtin.command reports it
    (True, "TERM", -15, 124),
    (True, "INT", 130, 124),
    (True, "KILL", -9, 137),
])
def test_rc_for(timed_out, signal_sent, returncode, rc):
    assert _deadline.rc_for(timed_out, signal_sent, returncode) == rc


def test_bounds_nest():
    # the module answers before the controller gives up on it
    params = dict(PARAMS, timeout=30, kill_after=5, margin=15)
    assert _deadline.remote_wait(30, 5) < _deadline.controller_bound(params) == _deadline.remote_wait(30, 5) + 15


def test_buffer_keeps_the_head():
    buf = _deadline.Buffer(5)
    buf.add(b"abc")
    assert not buf.truncated
    buf.add(b"defg")
    assert buf.text() == "abcde" and buf.truncated
    empty = _deadline.Buffer(0)
    empty.add(b"x")
    assert empty.text() == "" and empty.truncated


def alive(marker):
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False).stdout.split()
    return [int(p) for p in out if int(p) != os.getpid()]


SUPERVISED = [
    # argv, timeout, rc, signal_sent, stdout, leaves marker processes behind the group
    (["sh", "-c", "echo hi; exit 3"], 5, 3, None, "hi\n"),
    (["sh", "-c", "echo start; sleep 4101"], 0.5, 124, "TERM", "start\n"),
    (["sh", "-c", "trap '' TERM; echo stubborn; sleep 4102"], 0.5, 137, "KILL", "stubborn\n"),
    (["sh", "-c", "(setsid sh -c 'sleep 4103 & sleep 4103' >/dev/null 2>&1 &); echo forked; sleep 4103"], 0.5, 124,
     "TERM", "forked\n"),
    (["sh", "-c", "(setsid sleep 4104 </dev/null >/dev/null 2>&1 &); echo gone"], 5, 0, None, "gone\n"),
    (["sh", "-c", "sleep 4105 & echo holds output; exit 0"], 5, 0, None, "holds output\n"),
]


@pytest.mark.parametrize("argv,timeout,rc,signal_sent,stdout", SUPERVISED)
def test_supervise(argv, timeout, rc, signal_sent, stdout):
    marker = "sleep 410" + argv[-1].split("sleep 410", 1)[1][0] if "sleep 410" in argv[-1] else None
    started = time.monotonic()
    result = _deadline.supervise(argv, timeout, kill_after=0.5)
    took = time.monotonic() - started
    assert (result["rc"], result["signal_sent"], result["stdout"]) == (rc, signal_sent, stdout), result
    assert result["left_running"] == []
    if marker:
        assert alive(marker) == [], marker
    if signal_sent:
        assert timeout <= result["signal_times"]["TERM"] < timeout + 0.5
    assert took < timeout + 0.5 + _deadline.REAP_SECONDS + 1


def test_supervise_missing_command():
    result = _deadline.supervise(["/nonexistent/cmd"], 5)
    assert result["rc"] == 127 and "could not run" in result["msg"]


def test_supervise_stdin_and_chdir(tmp_path):
    result = _deadline.supervise(["sh", "-c", "pwd; cat"], 5, chdir=str(tmp_path), stdin="fed\n")
    assert result["stdout"] == "%s\nfed\n" % tmp_path and result["rc"] == 0


def test_run_detached_returns_the_result():
    result = _deadline.run_detached(["sh", "-c", "echo detached"], 10, timeout=5, kill_after=1)
    assert result["rc"] == 0 and result["stdout"] == "detached\n"


def test_detached_supervisor_outlives_its_caller():
    # the caller stops waiting (its connection is gone); the supervisor still ends the tree at the deadline
    started = time.monotonic()
    assert _deadline.run_detached(["sleep", "4120"], 0.3, timeout=1, kill_after=0.5) is None
    assert alive("sleep 4120"), "the command did not start"
    while alive("sleep 4120") and time.monotonic() - started < 10:
        time.sleep(0.1)
    assert alive("sleep 4120") == []
    assert 1 <= time.monotonic() - started < 3
