# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reads of another process's /proc files, each within a bound.

A local user can make reading their own process's stat, environ, exe or fd
block for as long as they like: an exec stuck closing a file on their FUSE
mount holds the lock those reads wait for (and the process shows state S,
not D). Its status never blocks. So every other read of a process is run
on a worker thread and waited for at most `wait` seconds. A worker that
does not come back is left behind, and the next read gets a new one; the
wait it is in is killable, so it ends with the module. After `per_uid`
blocked reads of one user's processes, no more of that user's processes
are read in this run: a user with many such processes costs seconds, not
minutes.
"""

from __future__ import annotations

import os
import threading

WAIT = 0.5
PER_UID = 2


class Blocked(Exception):
    """A read that did not come back in time, or one not tried since that user's reads block."""

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
    """Runs reads of /proc on a worker thread, each waited for at most `wait` seconds."""

    def __init__(self, wait=WAIT, per_uid=PER_UID):
        self.wait, self.per_uid = wait, per_uid
        self.blocked = {}  # uid: how many reads of their processes blocked

    def each(self, func, items):
        """(item, value) for each (uid, args) item in order: func(*args), or a Blocked instance.

        One worker runs the reads one after another, ahead of the caller, who
        looks at its progress when it is done or every `wait` seconds; a read
        that made no progress in that time is left behind, and the rest go to
        a new worker.
        """
        items = list(items)
        while items:
            # never root's: a block is charged to the uid status gave before, and a pid reused in between by a
            # user's stuck process must not stop root's processes (sshd's) from being read
            capped = frozenset(uid for uid, count in self.blocked.items() if count >= self.per_uid and uid != 0)
            results, done, stop = [], threading.Event(), threading.Event()
            worker = threading.Thread(target=_work, args=(func, items, capped, results, done, stop),
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
                        self.blocked[stuck[0]] = self.blocked.get(stuck[0], 0) + 1
                        yield stuck, Blocked()
                        seen += 1
                        break
            finally:
                stop.set()  # the caller may stop early (a scan's budget): the worker must not go on
            items = items[seen:]

    def __call__(self, uid, func, *args):
        """func(*args) for a process of uid; raises Blocked when it does not return in time."""
        for _item, value in self.each(func, [(uid, args)]):
            if isinstance(value, Blocked):
                raise value
            return value
        return None  # pragma: no cover - each() yields once per item


def _work(func, items, capped, results, done, stop):
    try:
        for uid, args in items:
            if stop.is_set():
                return
            if uid in capped:
                results.append((True, Blocked()))
                continue
            try:
                results.append((True, func(*args)))
            except Exception as exc:  # pylint: disable=broad-except
                results.append((False, exc))
    finally:
        done.set()


_SHARED = []


def shared():
    """The Reader of this run (a module runs in a process of its own), made on first use."""
    if not _SHARED:
        _SHARED.append(Reader())
    return _SHARED[0]
