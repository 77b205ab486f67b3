# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A command under a hard deadline: a detached supervisor that no process of the tree outlives.

The supervisor runs the command in a new session with a cookie in its
environment, reads its output into bounded buffers, sends the first signal
to the process group at the deadline and SIGKILL after kill_after, and
sweeps /proc for processes that carry the cookie but left the group
(setsid, double fork). It is detached (double fork, own session), so losing
the controller's connection does not stop it from cleaning up.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import subprocess
import time
import uuid

from ansible_collections.hangup.ssh.plugins.module_utils import _kill, _sshproc

COOKIE_VAR = "HANGUP_SSH_DEADLINE"
SIGNALS = ("TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "KILL")
RC_TIMED_OUT = 124
RC_KILLED = 137
# after SIGKILL, how long the tree may take to disappear
REAP_SECONDS = 3.0
# the module's wait beyond the deadline and kill_after: the reaping, and starting the supervisor
SLACK = REAP_SECONDS + 2.0
POLL = 0.05
# how long the tree must stay empty after the command ended before it counts as gone:
# a process is invisible to the scan only while it execs, far shorter than this
SETTLE = 0.03

ARGUMENT_SPEC = dict(
    cmd=dict(type="str"),
    argv=dict(type="list", elements="str"),
    shell=dict(type="bool", default=False),
    executable=dict(type="path"),
    chdir=dict(type="path"),
    stdin=dict(type="str"),
    stdin_add_newline=dict(type="bool", default=True),
    creates=dict(type="path"),
    removes=dict(type="path"),
    timeout=dict(type="float", required=True),
    kill_after=dict(type="float", default=5),
    signal=dict(type="str", default="TERM", choices=list(SIGNALS)),
    output_limit=dict(type="int", default=1048576),
    margin=dict(type="float", default=15),
)
MUTUALLY_EXCLUSIVE = [["cmd", "argv"]]
REQUIRED_ONE_OF = [["cmd", "argv"]]


def check_numbers(params):
    """What the argument spec cannot say, as an error naming the parameter, or None."""
    if params["timeout"] is None or not params["timeout"] > 0:
        return "timeout must be a number of seconds above 0, got %s" % params["timeout"]
    if params["kill_after"] < 0:
        return "kill_after must be 0 or more seconds, got %s" % params["kill_after"]
    if params["output_limit"] < 0:
        return "output_limit must be 0 or more bytes, got %s" % params["output_limit"]
    if params["margin"] < 5:
        return "margin must be at least 5 seconds, got %s" % params["margin"]
    if params["executable"] and not params["shell"]:
        return "executable is only used with shell=true"
    return None


def remote_wait(timeout, kill_after):
    """How long the module waits for its supervisor: the deadline, the grace, and the reaping."""
    return timeout + kill_after + SLACK


def controller_bound(params):
    """How long the controller waits for the whole task before it gives up on the host."""
    return remote_wait(params["timeout"], params["kill_after"]) + params["margin"]


def rc_for(timed_out, signal_sent, returncode):
    """The rc coreutils' timeout gives: 124 ended by the first signal, 137 needed SIGKILL."""
    if not timed_out:
        return returncode
    return RC_KILLED if signal_sent == "KILL" else RC_TIMED_OUT


class Buffer(object):
    """The first `limit` bytes of a stream, and whether more came."""

    def __init__(self, limit):
        self.limit, self.data, self.truncated = limit, bytearray(), False

    def add(self, chunk):
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
        if room > 0:
            self.data.extend(chunk[:room])

    def text(self):
        return bytes(self.data).decode("utf-8", "replace")


def members(cookie, pgid, root="/proc", escaped_only=False):
    """(pid, starttime) of every live process of the tree: in the command's process group, or
    carrying the cookie in its environment (those that left the group with setsid). Zombies
    are not counted: they are gone, only not yet reaped.
    """
    marker = ("%s=%s" % (COOKIE_VAR, cookie)).encode()
    found = []
    for name in os.listdir(root):
        if not name.isdigit():
            continue
        pid = int(name)
        stat = _sshproc.read_stat(root, pid)
        if stat is None or stat["state"] in ("Z", "X"):
            continue
        if stat["pgrp"] == pgid:
            if escaped_only:
                continue
        else:
            try:
                with open(os.path.join(root, name, "environ"), "rb") as f:
                    if marker not in f.read().split(b"\0"):
                        continue
            except (IOError, OSError):
                continue
        found.append((pid, stat["starttime"]))
    return found


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def supervise(argv, timeout, kill_after=5.0, first_signal="TERM", chdir=None, stdin=None, output_limit=1048576,
              root="/proc", clock=time.monotonic):
    """Run argv under the deadline; returns the result dict (see the module's RETURN)."""
    cookie = uuid.uuid4().hex
    env = dict(os.environ)
    env[COOKIE_VAR] = cookie
    started, wall_start = clock(), time.time()
    try:
        # run_command cannot give the command its own session, stream bounded output and signal the group
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,  # pylint: disable=ansible-bad-function
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=chdir, env=env,
                                start_new_session=True, close_fds=True)
    except OSError as exc:
        return {"rc": 127 if exc.errno == errno.ENOENT else 126, "stdout": "", "stderr": "", "timed_out": False,
                "signal_sent": None, "msg": "could not run %s: %s" % (argv[0], exc.strerror or exc),
                "start_time": wall_start, "end_time": time.time(), "elapsed": 0.0, "swept": [],
                "stdout_truncated": False, "stderr_truncated": False}
    if stdin is not None:
        try:
            proc.stdin.write(stdin.encode())
        except OSError:
            pass  # the command did not read it
        finally:
            proc.stdin.close()
    buffers = {proc.stdout.fileno(): Buffer(output_limit), proc.stderr.fileno(): Buffer(output_limit)}
    streams = {proc.stdout.fileno(): proc.stdout, proc.stderr.fileno(): proc.stderr}
    out, err = buffers[proc.stdout.fileno()], buffers[proc.stderr.fileno()]
    pgid, deadline = proc.pid, started + timeout
    timed_out, signal_sent, signal_times, swept = False, None, {}, set()
    phase, held_since, kill_at, reap_until = "running", None, None, None

    def gone():
        return not members(cookie, pgid, root)

    while True:
        if streams:
            _read_ready(streams, buffers, POLL)
        else:
            time.sleep(POLL)
        now = clock()
        main_exited = proc.poll() is not None
        if phase == "running":
            if main_exited:
                if not streams:
                    break
                # the command ended; something it left behind still holds its output
                held_since = held_since or now
                if now - held_since > 4 * POLL:
                    _signal_group(pgid, signal.SIGTERM)
                    swept.update(_sweep(cookie, pgid, signal.SIGTERM, root))
                    phase, kill_at = "cleanup", now + kill_after
            elif now >= deadline:
                timed_out, signal_sent, phase, kill_at = True, first_signal, "signalled", now + kill_after
                signal_times[first_signal] = round(now - started, 3)
                _signal_group(pgid, getattr(signal, "SIG" + first_signal))
                swept.update(_sweep(cookie, pgid, getattr(signal, "SIG" + first_signal), root))
        elif phase in ("signalled", "cleanup"):
            if main_exited and gone():
                break
            if now >= kill_at:
                if phase == "signalled":
                    signal_sent = "KILL"
                    signal_times["KILL"] = round(now - started, 3)
                _signal_group(pgid, signal.SIGKILL)
                swept.update(_sweep(cookie, pgid, signal.SIGKILL, root))
                phase, reap_until = "killed", now + REAP_SECONDS
        elif (main_exited and gone()) or now >= reap_until:
            break
    proc.wait()
    _drain_until(streams, buffers, clock() + 0.5, clock)
    # a daemon that closed its output and outlived a command that ended in time goes too
    swept.update(_final_sweep(cookie, pgid, kill_after, root, clock))
    for stream in (proc.stdout, proc.stderr):
        stream.close()
    return {
        "rc": rc_for(timed_out, signal_sent, proc.returncode),
        "stdout": out.text(), "stderr": err.text(),
        "stdout_truncated": out.truncated, "stderr_truncated": err.truncated,
        "timed_out": timed_out, "signal_sent": signal_sent, "signal_times": signal_times,
        "start_time": wall_start, "end_time": time.time(), "elapsed": round(clock() - started, 3),
        # signalled one by one: those that had left the process group
        "swept": sorted(pid for pid, _start in swept),
        "left_running": [pid for pid, _start in members(cookie, pgid, root)],
    }


def _final_sweep(cookie, pgid, kill_after, root, clock):
    """End what is left of the tree until none of it showed up for SETTLE seconds.

    A child that daemonizes may still be forking or exec'ing when the command
    ends (its environment reads empty during exec), so one scan is not enough.
    """
    swept, term_at = set(), None
    quiet_since = started = clock()
    while clock() - started < SETTLE + kill_after + REAP_SECONDS:
        now = clock()
        if members(cookie, pgid, root):
            quiet_since = now
            term_at = now if term_at is None else term_at
            sig = signal.SIGKILL if now - term_at >= kill_after else signal.SIGTERM
            _signal_group(pgid, sig)
            swept.update(_sweep(cookie, pgid, sig, root))
        elif now - quiet_since >= SETTLE:
            break
        time.sleep(SETTLE / 3)
    return swept


def _sweep(cookie, pgid, sig, root):
    """Signal every member of the tree that left the process group; returns the (pid, starttime) signalled."""
    sent = []
    for target in members(cookie, pgid, root, escaped_only=True):
        if target[0] == os.getpid():
            continue
        if _kill.send(root, target, sig) == "sent":
            sent.append(target)
    return sent


def _read_ready(streams, buffers, wait):
    ready, _w, _x = select.select(list(streams), [], [], wait)
    for fd in ready:
        chunk = os.read(fd, 65536)
        if chunk:
            buffers[fd].add(chunk)
        else:
            del streams[fd]


def _drain_until(streams, buffers, until, clock):
    while streams and clock() < until:
        _read_ready(streams, buffers, POLL)


def run_detached(argv, wait, **kwargs):
    """supervise() in a double-forked process of its own session; its result, or None after `wait` s.

    The supervisor outlives this process: if the connection that started it
    goes away, it still enforces the deadline and cleans up.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the supervisor's side
        try:
            os.close(read_fd)
            os.setsid()
            if os.fork():
                os._exit(0)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.closerange(3, write_fd)
            os.closerange(write_fd + 1, 4096)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            result = supervise(argv, **kwargs)
            data = json.dumps(result).encode()
            try:
                while data:
                    data = data[os.write(write_fd, data):]
            except OSError:
                pass  # nobody is listening any more; the work is done anyway
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    chunks, end = [], time.monotonic() + wait
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            ready, _w, _x = select.select([read_fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
    return json.loads(b"".join(chunks).decode()) if chunks else None
