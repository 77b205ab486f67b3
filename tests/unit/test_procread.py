"""module_utils._procread: the reader that a user's blocking or slow /proc files cannot stall.

The reads here are stand-ins that block or take their time on purpose (the
real FUSE trap is in test_hostile.py and test_supervisor.py); the threads,
the waits and the budgets are the real ones.
"""

import threading
import time

from ansible_collections.hangup.ssh.plugins.module_utils import _procread

ALICE, BOB, ROOT = 1000, 1001, 0


def test_a_read_that_never_returns_is_left_behind_and_the_rest_still_read():
    forever = threading.Event()
    calls = []

    def read(name):
        calls.append(name)
        if name == "stuck":
            forever.wait()
        return name.upper()

    reader = _procread.Reader(wait=0.2)
    got = [(item[1][0], value) for item, value in
           reader.each(read, [(ALICE, ("a",)), (ALICE, ("stuck",)), (BOB, ("b",))])]
    forever.set()
    assert got[0] == ("a", "A") and got[2] == ("b", "B") and isinstance(got[1][1], _procread.Blocked)
    assert reader.left_behind == {ALICE: 1}


def test_time_lost_goes_to_whoever_owns_the_pid_when_it_is_charged():
    # status said alice; by the time the read is charged the pid is bob's (a pid reused under the scan)
    forever = threading.Event()
    reader = _procread.Reader(wait=0.1)
    list(reader.each(forever.wait, [(ALICE, ())], owner_of=lambda item: BOB))
    forever.set()
    assert reader.lost == {BOB: 0.1} and not reader.spent(ALICE)


def test_slow_reads_of_one_user_stop_at_their_budget():
    # each read takes a fifth of a second: never blocked, but a hundred of them would take 20 s
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)

    reader = _procread.Reader(wait=1, per_uid=0.5)
    values = [value for _item, value in reader.each(slow, [(ALICE, ())] * 100)]
    assert len(calls) == 3 and sum(isinstance(v, _procread.Blocked) for v in values) == 97


def test_many_users_stop_at_the_runs_budget_but_root_is_always_read():
    calls = []

    def slow(uid):
        calls.append(uid)
        time.sleep(0.1)

    reader = _procread.Reader(wait=1, per_uid=0.15, budget=0.5)
    items = [(uid, (uid,)) for uid in range(2000, 2020)] + [(ROOT, (ROOT,))] * 3
    list(reader.each(slow, items))
    assert len([u for u in calls if u != ROOT]) == 5 and calls.count(ROOT) == 3


def test_an_error_in_a_read_is_raised_to_the_caller():
    def broken():
        raise ValueError("bad")

    try:
        _procread.Reader()(ALICE, broken)
    except ValueError as exc:
        assert str(exc) == "bad"
    else:
        raise AssertionError("no error")
