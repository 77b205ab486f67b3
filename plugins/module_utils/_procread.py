# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reads of another process's /proc files, each within a bound, all of a run within a budget.

A local user can make reading their own process's stat, environ, exe or fd
block for as long as they like, or take a fifth of a second each: an exec
stuck (or slow) closing a file on their FUSE mount holds the lock those
reads wait for, and the process shows state S, not D. Its status never
blocks. So every other read of a process is run on a worker thread, ahead
of the caller, and a read that makes no progress for `wait` seconds is left
behind (the wait it is in is killable: it ends with the module); the rest
go to a new worker. Time lost on a user's processes (a read that was left
behind, or one slower than SLOW) is charged to the uid that status gives at
that moment. Once a user has lost `per_uid` seconds, or all users together
`budget`, no more of their processes are read in this run. Root's are
always read: users cannot make them block, and sshd's are among them.
"""

from __future__ import annotations

import os
import threading
import time

WAIT = 0.5
# seconds of blocked or slow reads one user may cost a run, and all of them together
PER_UID = 1.0
BUDGET = 5.0
# a read that takes longer is charged as lost time (a normal one takes microseconds)
SLOW = 0.01


class Blocked(Exception):
    """A read that did not come back in time, or one not tried since that user's reads cost too much."""

    REASON = "reading it blocked (a process stuck in the kernel, e.g. on a user's FUSE file): only status was read"


def status_fields(text):
    """The fields of /proc/PID/status that never block and matter here: comm, state, ppid, uid (real)."""
    fields = {}
    for line in text.splitlines():
        key, _sep, value = line.partition(":\t")
        if key == "Name":
            # status escapes a backslash and a newline in the kernel's name
            fields["comm"] = value.replace("\\n", "\n").replace("\\\\", "\\")
        elif key == "State":
            fields["state"] = value[:1]
        elif key == "PPid":
            fields["ppid"] = int(value)
        elif key == "Uid":
            fields["uid"] = int(value.split()[0])
            break  # the last of them: the rest of status is long
    return fields if len(fields) == 4 else None


def read_status(root, pid):
    """status_fields of one process, or None when it is gone."""
    try:
        with open(os.path.join(root, str(pid), "status")) as f:
            return status_fields(f.read())
    except (IOError, OSError, ValueError):
        return None


class Reader(object):
    """Runs reads of /proc on a worker thread, each waited for at most `wait` seconds, within time budgets."""

    def __init__(self, wait=WAIT, per_uid=PER_UID, budget=BUDGET, clock=time.monotonic):
        self.wait, self.per_uid, self.budget, self.clock = wait, per_uid, budget, clock
        self.lost = {}  # uid: seconds lost on their processes' reads
        self.left_behind = {}  # uid: reads that never came back

    def spent(self, uid):
        """Whether reads of uid's processes are over: that user, or all users, cost the run too much already."""
        users = sum(seconds for who, seconds in self.lost.items() if who != 0)
        return uid != 0 and (self.lost.get(uid, 0) >= self.per_uid or users >= self.budget)

    def charge(self, uid, seconds):
        self.lost[uid] = self.lost.get(uid, 0) + seconds

    def each(self, func, items, owner_of=None):
        """(item, value) for each (uid, args) item in order: func(*args), or a Blocked instance.

        owner_of(item), when given, says whose process it is when time lost
        on it is charged (a pid may have passed to another user's process
        since `uid` was read); by default the item's uid.
        """
        items = list(items)
        owner_of = owner_of or (lambda item: item[0])
        while items:
            results, done, stop = [], threading.Event(), threading.Event()
            worker = threading.Thread(target=self._work, args=(func, items, owner_of, results, done, stop),
                                      name="hangup-procread")
            worker.daemon = True
            worker.start()
            seen = 0
            try:
                while seen < len(items):
                    finished = done.wait(self.wait)
                    before, got = seen, len(results)
                    for ok, value in results[seen:got]:
                        if not ok:
                            raise value
                        yield items[seen], value
                        seen += 1
                    if got == before and not finished:
                        stuck = items[seen]
                        who = owner_of(stuck)
                        self.charge(who, self.wait)
                        self.left_behind[who] = self.left_behind.get(who, 0) + 1
                        yield stuck, Blocked()
                        seen += 1
                        break
            finally:
                stop.set()  # the caller may stop early (a scan's budget): the worker must not go on
            items = items[seen:]

    def _work(self, func, items, owner_of, results, done, stop):
        try:
            for item in items:
                if stop.is_set():
                    return
                if self.spent(item[0]):
                    results.append((True, Blocked()))
                    continue
                started = self.clock()
                try:
                    results.append((True, func(*item[1])))
                except Exception as exc:  # pylint: disable=broad-except
                    results.append((False, exc))
                took = self.clock() - started
                if took > SLOW and not stop.is_set():
                    self.charge(owner_of(item), took)
        finally:
            done.set()

    def __call__(self, uid, func, *args):
        """func(*args) for a process of uid; raises Blocked when it does not return in time."""
        for _item, value in self.each(func, [(uid, args)]):
            if isinstance(value, Blocked):
                raise value
            return value
        return None  # pragma: no cover - each() yields once per item


_SHARED = []


def shared():
    """The Reader of this run (a module runs in a process of its own), made on first use."""
    if not _SHARED:
        _SHARED.append(Reader())
    return _SHARED[0]
