# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ending sessions without ever signalling a recycled PID.

Every signal goes to a (pid, starttime) pair: the start time is read again
just before the signal, through a pidfd where the kernel and Python offer one
(so the check and the signal refer to the same process), else right before
os.kill. That read is bounded (_procread): a user can make it block, and a
process whose start time cannot be read is not signalled.
"""

from __future__ import annotations

import errno
import os
import signal
import time

from ansible_collections.hangup.ssh.plugins.module_utils import _procread, _sshproc

# what send() found; DENIED and BLOCKED are also the reasons given for a process that could not be signalled
SENT = "sent"
GONE = "gone"
DENIED = "operation not permitted"
BLOCKED = "its start time could not be read (the read blocked), so it was not signalled"


def starttime_of(root, pid, reader=None):
    """The start time of a live (non-zombie) process, or None; raises _procread.Blocked."""
    status = _procread.read_status(root, pid)
    if status is None:
        return None
    stat = (reader or _procread.shared())(status["uid"], _sshproc.read_stat, root, pid)
    return None if stat is None or stat["state"] in ("Z", "X") else stat["starttime"]


def is_running(root, target, reader=None):
    """Whether (pid, starttime) still runs; one whose stat blocks counts as running (it cannot be vouched for)."""
    try:
        return starttime_of(root, target[0], reader) == target[1]
    except _procread.Blocked:
        return True


def send(root, target, sig, reader=None):
    """Signal (pid, starttime): SENT, GONE (ended, or the PID reused), DENIED or BLOCKED.

    Signal 0 asks only whether the process is there and may be signalled.
    """
    pid, start = target
    pidfd = None
    try:
        if hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal"):
            try:
                pidfd = os.pidfd_open(pid)
            except OSError as exc:
                if exc.errno == errno.ESRCH:
                    return GONE
                pidfd = None  # kernel without pidfd: fall back to kill
        try:
            if starttime_of(root, pid, reader) != start:
                return GONE
        except _procread.Blocked:
            return BLOCKED
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(pid, sig)
        return SENT
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return GONE
        if exc.errno == errno.EPERM:
            return DENIED
        raise
    finally:
        if pidfd is not None:
            os.close(pidfd)


def plan(entry):
    """Signals that end one entry: (first, wait_for, last, hangup) lists of (pid, starttime).

    first gets SIGTERM (the monitor: it forwards the signal and writes the
    logout record); what is still running after the grace period gets SIGKILL,
    child before monitor; commands left without their sshd get SIGHUP, as a
    real hangup would send them.
    """
    start = entry["_starts"]
    if entry["kind"] == "inbound":
        sshd = [(p, start[p]) for p in entry["sshd_pids"] if p in start]
        first = sshd[:1]
        last = list(reversed(sshd))
        hangup = [(c["pid"], start[c["pid"]]) for c in entry["commands"] if c["pid"] in start]
        return first, sshd, last, hangup
    procs = [(c["pid"], start[c["pid"]]) for c in entry["commands"] if c["pid"] in start]
    return procs, procs, procs, []


def end_all(entries, grace, root="/proc", clock=time.monotonic, sleep=time.sleep, poll=0.1, reader=None):
    """End every entry: SIGTERM, wait up to `grace` seconds, SIGKILL, then SIGHUP the commands.

    Returns (killed, failed): killed entries carry the signals sent; failed
    ones a reason. An entry that ended before any signal is in neither.
    """
    state = []
    for entry in entries:
        first, wait_for, last, hangup = plan(entry)
        record = {"entry": entry, "signals": [], "error": None, "wait_for": wait_for, "last": last, "hangup": hangup}
        for target in first:
            result = send(root, target, signal.SIGTERM, reader)
            if result == SENT:
                record["signals"].append("TERM")
            elif result != GONE and entry.get("user_pid") and target[0] != entry["user_pid"]:
                # not ours to signal (a non-root caller and root's monitor): the user's child forwards
                child = (entry["user_pid"], entry["_starts"].get(entry["user_pid"]))
                result = send(root, child, signal.SIGTERM, reader)
                if result == SENT:
                    record["signals"].append("TERM")
                elif result != GONE:
                    record["error"] = "SIGTERM to %d: %s" % (child[0], result)
            elif result != GONE:
                record["error"] = "SIGTERM to %d: %s" % (target[0], result)
        state.append(record)
    deadline = clock() + grace
    while clock() < deadline and any(is_running(root, t, reader) for r in state for t in r["wait_for"]):
        sleep(poll)
    for record in state:
        for target in record["last"]:
            if is_running(root, target, reader):
                result = send(root, target, signal.SIGKILL, reader)
                if result == SENT and "KILL" not in record["signals"]:
                    record["signals"].append("KILL")
                elif result not in (SENT, GONE):
                    record["error"] = "SIGKILL to %d: %s" % (target[0], result)
    deadline = clock() + 2.0
    while clock() < deadline and any(is_running(root, t, reader) for r in state for t in r["wait_for"]):
        sleep(poll)
    killed, failed = [], []
    for record in state:
        left = [t[0] for t in record["wait_for"] if is_running(root, t, reader)]
        if not left:
            for target in record["hangup"]:
                if send(root, target, signal.SIGHUP, reader) == SENT and "HUP" not in record["signals"]:
                    record["signals"].append("HUP")
        summary = dict(record["entry"], signals=record["signals"])
        if left:
            summary["reason"] = record["error"] or "still running after SIGKILL: %s" % left
            failed.append(summary)
        elif record["signals"]:
            killed.append(summary)
        elif record["error"]:
            summary["reason"] = record["error"]
            failed.append(summary)
    return killed, failed
