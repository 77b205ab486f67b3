"""module_utils._deadline: the pure part of hard_timeout (input, bounds, schedule, output as text)."""

import base64

import pytest

from ansible_collections.hangup.ssh.plugins.module_utils import _deadline

PARAMS = {"timeout": 10, "kill_after": 5, "output_limit": 100, "margin": 15, "executable": None, "shell": False,
          "cmd": "sleep 1", "argv": None, "stdin": None}


@pytest.mark.parametrize("change,problems", [
    ({}, []),
    ({"timeout": 0}, ["timeout"]),
    ({"timeout": -3}, ["timeout"]),
    ({"timeout": None}, ["timeout"]),
    ({"timeout": float("inf")}, ["timeout"]),
    ({"timeout": float("nan")}, ["timeout"]),
    ({"timeout": 1e10}, ["timeout"]),
    ({"timeout": 604800}, []),
    ({"kill_after": -1}, ["kill_after"]),
    ({"kill_after": float("nan")}, ["kill_after"]),
    ({"kill_after": 0}, []),
    ({"output_limit": -1}, ["output_limit"]),
    ({"output_limit": 2 ** 40}, ["output_limit"]),
    ({"margin": 1}, ["margin"]),
    ({"margin": float("nan")}, ["margin"]),
    ({"margin": float("inf")}, ["margin"]),
    ({"executable": "/bin/bash"}, ["executable"]),
    ({"executable": "/bin/bash", "shell": True}, []),
    ({"cmd": None, "argv": []}, ["argv"]),
    ({"cmd": None, "argv": [""]}, ["argv"]),
    ({"cmd": None, "argv": ["true"], "shell": True}, ["argv"]),
    ({"cmd": ""}, ["cmd"]),
    ({"cmd": "   "}, ["cmd"]),
    ({"cmd": "echo 'unbalanced"}, ["cmd"]),
    ({"cmd": "echo a\0b"}, ["cmd"]),
    ({"cmd": None, "argv": ["echo", "a\0b"]}, ["argv"]),
    ({"stdin": "a\0b"}, ["stdin"]),
    ({"timeout": float("nan"), "kill_after": float("inf"), "argv": []}, ["timeout", "kill_after", "argv"]),
])
def test_input_problems_name_each_parameter(change, problems):
    got = _deadline.input_problems(dict(PARAMS, **change))
    assert [p.split()[0].rstrip(":") for p in got] == problems, got


def test_problems_state_the_bound():
    assert "at most 604800" in _deadline.input_problems(dict(PARAMS, timeout=1e10))[0]
    assert "from 0 to 3600" in _deadline.input_problems(dict(PARAMS, kill_after=float("nan")))[0]


@pytest.mark.parametrize("params,argv", [
    ({"cmd": "echo 'a b' c"}, ["echo", "a b", "c"]),
    ({"cmd": "echo $HOME | wc", "shell": True}, ["/bin/sh", "-c", "echo $HOME | wc"]),
    ({"cmd": "x", "shell": True, "executable": "/bin/bash"}, ["/bin/bash", "-c", "x"]),
    ({"cmd": None, "argv": ["a b", "c"]}, ["a b", "c"]),
])
def test_command_argv(params, argv):
    assert _deadline.command_argv(dict(PARAMS, **params)) == (argv, [])


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


def run_schedule(schedule, events, alive=True):
    """Feed (time, leader_exited, output_open) and collect what step() answered."""
    return [schedule.step(now, exited, output, lambda: alive) for now, exited, output in events]


def test_schedule_deadline_then_kill():
    s = _deadline.Schedule(100.0, 2, 3, "HUP")
    got = run_schedule(s, [(101, False, True), (102, False, True), (104, False, True), (105, False, True),
                           (106, False, True), (108.1, False, True)])
    assert got == [None, "HUP", None, "KILL", None, "done"]
    assert s.timed_out and s.signal_sent == "KILL" and s.signal_times == {"HUP": 2, "KILL": 5}


def test_schedule_ends_when_the_tree_is_gone():
    s = _deadline.Schedule(0.0, 1, 10)
    assert run_schedule(s, [(1, False, True)]) == ["TERM"]
    assert run_schedule(s, [(1.5, True, False)], alive=False) == ["done"]
    assert s.signal_sent == "TERM"


def test_schedule_cleans_up_what_holds_the_output_without_calling_it_a_timeout():
    s = _deadline.Schedule(0.0, 10, 1)
    got = run_schedule(s, [(1, True, True), (1.1, True, True), (1.3, True, True), (2.4, True, True)])
    assert got == [None, None, "TERM", "KILL"]
    assert not s.timed_out and s.signal_sent is None and s.signal_times == {}


def test_schedule_taken_over_late_keeps_the_deadline_timeline():
    # whoever follows the schedule 13 s after the start of a 2 s deadline sends KILL at once, not kill_after later
    s = _deadline.Schedule(0.0, 2, 5)
    assert run_schedule(s, [(13, False, True), (13.05, False, True)]) == ["TERM", "KILL"]
    assert s.signal_times == {"TERM": 13, "KILL": 13.05}


def test_schedule_first_signal_kill():
    s = _deadline.Schedule(0.0, 1, 10, "KILL")
    assert run_schedule(s, [(1, False, True), (2, False, True), (4.1, False, True)]) == ["KILL", None, "done"]


@pytest.mark.parametrize("data,text", [
    ("ééé".encode()[:5], "éé"),
    ("ééé".encode()[:6], "ééé"),
    ("a€".encode()[:3], "a"),
    ("a€".encode()[:2], "a"),
    ("😀".encode()[:3], ""),
    (b"abc", "abc"),
    (b"", ""),
])
def test_truncated_output_is_cut_at_a_character(data, text):
    assert _deadline.as_text(data, True) == (text, "utf-8")


def test_non_utf8_output_is_kept():
    raw = b"\xff\xfeok\x80"
    for asked in ("text", "base64"):
        encoded, how = _deadline.as_text(raw, False, asked)
        assert how == "base64" and base64.b64decode(encoded) == raw
    # truncated and not UTF-8: every byte kept, none dropped at the end
    assert _deadline.as_text(b"ab\xc3", True, "base64") == ("YWLD", "base64")
    assert _deadline.as_text("é".encode(), False, "base64") == ("w6k=", "base64")


TASK = {"timeout": 2, "kill_after": 1, "signal": "TERM"}


@pytest.mark.parametrize("result,line", [
    ({"failed_to_end": [], "timed_out": False, "rc": 0, "elapsed": 0.314}, "exited with rc 0 after 0.31 s"),
    ({"failed_to_end": [], "timed_out": False, "rc": 3, "elapsed": 1.5}, "exited with rc 3 after 1.50 s"),
    ({"failed_to_end": [], "timed_out": True, "rc": 124, "signal_sent": "TERM", "signal_times": {"TERM": 2.004}},
     "timed out after 2 s; the tree ended on SIGTERM (TERM at 2.00 s); rc 124"),
    ({"failed_to_end": [], "timed_out": True, "rc": 137, "signal_sent": "KILL",
      "signal_times": {"KILL": 3.012, "TERM": 2.001}},
     "timed out after 2 s; the tree needed SIGKILL after 1 s more (TERM at 2.00 s, KILL at 3.01 s); rc 137"),
    ({"failed_to_end": [{"pid": 7, "reason": "operation not permitted"},
                        {"pid": None, "reason": "the tree was not walked to its end within 0.5 s"}],
      "timed_out": True, "rc": 124, "signal_sent": "TERM"},
     "could not end 2 process(es) of the tree: 7 (operation not permitted), the tree was not walked to its end "
     "within 0.5 s"),
    ({"msg": "could not run x: No such file", "failed_to_end": [], "timed_out": False, "rc": 127},
     "could not run x: No such file"),
])
def test_describe(result, line):
    assert _deadline.describe(result, TASK) == line
