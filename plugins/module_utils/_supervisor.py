# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A command under a hard deadline: a detached supervisor that no process of the tree outlives.

The supervisor forks the command's leader into a session of its own, with a
cookie in its environment, and tells the module the group id, the cookie and
the deadline before the leader may exec. It feeds stdin and reads output
without blocking, signals the process group at the deadline (the leader kept
unreaped, so the group id stays the command's), SIGKILL after kill_after, and
signals one by one the processes that carry the cookie but left the group.
If the supervisor vanishes or stops answering, the module, still waiting,
follows the same schedule itself, signalling each process by PID and start
time. Neither ever reads more of a process than `stat` before it knows the
process is not stuck in the kernel.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import os
import select
import signal
import time
import uuid

from ansible_collections.hangup.ssh.plugins.module_utils import _deadline, _kill, _sshproc

COOKIE_VAR = "HANGUP_SSH_DEADLINE"
POLL = 0.05
# the pause between passes over /proc while what a command left behind is ended
SETTLE = 0.03
# the longest one scan of /proc may take; the next one goes on where it stopped
SCAN_BUDGET = 0.1
# the most of a process's environment read to look for the cookie
ENVIRON_LIMIT = 1 << 20
MAX_FD = 4096


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


def reset_signals():
    """Default disposition for every signal and an empty mask, whatever the supervisor inherited or set."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # signals the C library keeps for itself
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


class Child(object):
    """The command's leader, forked into a session of its own and held before exec until release()."""

    def __init__(self, argv, env, chdir=None, feed_stdin=False):
        gate_r, self._gate = os.pipe()
        self._errors, err_w = os.pipe()
        in_r, self.stdin = os.pipe() if feed_stdin else (None, None)
        self.stdout, out_w = os.pipe()
        self.stderr, err_out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the leader's side, until exec
            step = "start"
            try:
                os.setsid()
                reset_signals()
                os.dup2(in_r if feed_stdin else os.open(os.devnull, os.O_RDONLY), 0)
                os.dup2(out_w, 1)
                os.dup2(err_out_w, 2)
                step = "chdir %s" % chdir
                if chdir:
                    os.chdir(chdir)
                if os.read(gate_r, 1) != b"g":
                    os._exit(127)  # the supervisor vanished before it said the command may start
                os.closerange(3, err_w)
                os.closerange(err_w + 1, MAX_FD)
                step = "run %s" % argv[0]
                os.execvpe(argv[0], argv, env)
            except BaseException as exc:  # pylint: disable=broad-except
                code = getattr(exc, "errno", None) or errno.ENOEXEC
                os.write(err_w, ("%d could not %s: %s" % (code, step, getattr(exc, "strerror", None) or exc)).encode())
            finally:
                os._exit(127)
        for fd in (gate_r, err_w, in_r, out_w, err_out_w):
            if fd is not None:
                os.close(fd)
        self.start = _kill.starttime_of("/proc", self.pid)
        # readable once the leader exits: the loop wakes then, not at its next poll
        self.exit_fd = None
        if hasattr(os, "pidfd_open"):
            try:
                self.exit_fd = os.pidfd_open(self.pid)
            except OSError:
                pass

    def release(self):
        """Let the leader exec; None, or (errno, reason) when it could not run the command."""
        try:
            os.write(self._gate, b"g")
        except OSError:
            pass  # it already failed (chdir) and said why
        os.close(self._gate)
        data = b""
        while True:
            chunk = os.read(self._errors, 4096)
            if not chunk:
                break
            data += chunk
        os.close(self._errors)
        if not data:
            return None
        code, _sep, reason = data.decode("utf-8", "replace").partition(" ")
        return int(code), reason

    def returncode(self):
        """The leader's exit code (negative: the signal that ended it), or None while it runs; never reaps it."""
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return -1
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def reap(self):
        """Reap the leader if it has ended; one that could not be ended is left to init."""
        if self.exit_fd is not None:
            os.close(self.exit_fd)
            self.exit_fd = None
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass


class Streams(object):
    """The command's stdin, fed without blocking, and its stdout and stderr, read into bounded buffers."""

    def __init__(self, child, stdin, limit):
        self._exit_fd = child.exit_fd
        self.out, self.err = Buffer(limit), Buffer(limit)
        self._readers = {child.stdout: self.out, child.stderr: self.err}
        self._stdin, self._pending = child.stdin, memoryview(stdin or b"")
        if self._stdin is not None:
            fcntl.fcntl(self._stdin, fcntl.F_SETFL, fcntl.fcntl(self._stdin, fcntl.F_GETFL) | os.O_NONBLOCK)
            if not self._pending:
                self.close_stdin()

    @property
    def open(self):
        return bool(self._readers)

    def pump(self, wait):
        """Wait up to `wait` seconds for the command to read or write, and move what it can."""
        writers = [self._stdin] if self._stdin is not None else []
        exit_fd = self._exit_fd
        readable, writable, _x = select.select(list(self._readers) + ([exit_fd] if exit_fd is not None else []),
                                               writers, [], wait)
        if exit_fd is not None and exit_fd in readable:
            self._exit_fd = None  # the leader exited: from now on only the streams wake the loop
            readable.remove(exit_fd)
        if writable:
            try:
                self._pending = self._pending[os.write(self._stdin, self._pending[:65536]):]
            except BlockingIOError:
                pass
            except OSError:
                self._pending = memoryview(b"")  # it closed its stdin: the rest is not wanted
            if not self._pending:
                self.close_stdin()
        for fd in readable:
            chunk = os.read(fd, 65536)
            if chunk:
                self._readers[fd].add(chunk)
            else:
                os.close(fd)
                del self._readers[fd]

    def drain(self, until, clock):
        self.close_stdin()
        while self._readers and clock() < until:
            self.pump(POLL)

    def close_stdin(self):
        if self._stdin is not None:
            os.close(self._stdin)
            self._stdin = None

    def close(self):
        self.close_stdin()
        for fd in list(self._readers):
            os.close(fd)
        self._readers.clear()


class Tree(object):
    """The command's processes: its process group, and those that left it carrying the cookie.

    With leader_start None the leader is this process's unreaped child, so the
    group id cannot be anyone else's and killpg is safe. Taking over from
    another process, each member is signalled by (pid, starttime), only those
    started after the leader count, and once a full scan finds the group empty
    its id is never trusted again.
    """

    def __init__(self, pgid, cookie, root="/proc", leader_start=None, clock=time.monotonic, budget=SCAN_BUDGET):
        self.pgid, self.root, self.clock, self.budget = pgid, root, clock, budget
        self.leader_start = leader_start
        self._marker = ("%s=%s" % (COOKIE_VAR, cookie)).encode()
        self.current = None  # the signal every member found gets, once
        self.swept, self.denied = set(), set()
        self._signalled, self._not_ours, self._empty_since = {}, set(), {}
        self._queue, self._pass_found, self._pass_group, self._pass_unsure = [], False, False, False
        self.group_gone = False

    def _classify(self, pid):
        """((pid, starttime), in_group) for a member of the tree, else None."""
        stat = _sshproc.read_stat(self.root, pid)
        if stat is None or stat["state"] in ("Z", "X") or pid == os.getpid():
            return None
        target = (pid, stat["starttime"])
        if stat["pgrp"] == self.pgid and not self.group_gone and \
                (self.leader_start is None or stat["starttime"] >= self.leader_start):
            return target, True
        # environ takes the process's memory lock: never for one stuck in the kernel
        if target in self._not_ours or stat["state"] == "D" or stat["ppid"] == 2 or pid == 2:
            return None
        try:
            with open(os.path.join(self.root, str(pid), "environ"), "rb") as f:
                environ = f.read(ENVIRON_LIMIT)
        except (IOError, OSError):
            self._not_ours.add(target)  # another user's: not ours to signal either
            return None
        if self._marker in environ.split(b"\0"):
            return target, False
        if environ:
            # it cannot gain the cookie later
            self._not_ours.add(target)
        elif self.clock() - self._empty_since.setdefault(target, self.clock()) < SETTLE:
            self._pass_unsure = True  # empty while it execs: it may be ours
        else:
            self._not_ours.add(target)  # empty for longer than an exec takes: an environment cleared for good
        return None

    def scan(self):
        """(members found, complete): part of one pass over /proc, at most `budget` seconds; each member found
        gets the current signal if it has not had it yet."""
        if not self._queue:
            self._queue = sorted((int(n) for n in os.listdir(self.root) if n.isdigit()), reverse=True)
            self._pass_found = self._pass_group = self._pass_unsure = False
        until, found = self.clock() + self.budget, []
        while self._queue and self.clock() < until:
            member = self._classify(self._queue.pop())
            if member:
                found.append(member)
                self._deliver(*member)
        self._pass_found = self._pass_found or bool(found)
        self._pass_group = self._pass_group or any(in_group for _t, in_group in found)
        complete = not self._queue
        if complete and not self._pass_group and self.leader_start is not None:
            self.group_gone = True
        return found, complete

    @property
    def unsure(self):
        """Whether the last pass met a process whose environment read empty (one that execs may be ours)."""
        return self._pass_unsure

    def alive(self):
        """Whether anything of the tree may still run: False only after a whole pass found nothing."""
        found, complete = self.scan()
        return bool(found) or not complete or self._pass_found

    def signal(self, sig):
        """Send sig to the whole tree: the group at once where that is safe, then each member found."""
        self.current = sig
        if self.leader_start is None:
            try:
                os.killpg(self.pgid, sig)
            except OSError as exc:
                if exc.errno not in (errno.ESRCH, errno.EPERM):
                    raise
                # EPERM: nothing of the group could be signalled; each is tried, and named, one by one
        self._queue = []
        self.scan()

    def signalled(self, target):
        """The last signal target was sent, or None."""
        return self._signalled.get(target)

    def _deliver(self, target, in_group):
        if self.current is None or self._signalled.get(target) == self.current:
            return
        self._signalled[target] = self.current
        if in_group and self.leader_start is None and target not in self.denied:
            return  # killpg reached it
        result = _kill.send(self.root, target, self.current)
        if result == _kill.DENIED:
            self.denied.add(target)
        elif result == _kill.SENT and not in_group:
            self.swept.add(target)

    def failures(self, budget=1.0):
        """[{pid, reason}] for what of the tree still runs: a whole pass, up to `budget` seconds."""
        saved, self.budget, self._queue, left = self.budget, budget, [], []
        try:
            found, _complete = self.scan()
        finally:
            self.budget = saved
        for target, _in_group in found:
            if _kill.send(self.root, target, 0) == _kill.DENIED:
                reason = _kill.DENIED
            else:
                stat = _sshproc.read_stat(self.root, target[0]) or {"state": "?"}
                reason = "still running after SIGKILL (state %s)" % stat["state"]
            left.append({"pid": target[0], "reason": reason})
        return left


def end_leftovers(tree, kill_after, clock=time.monotonic):
    """End what is left of a tree whose command ended, until two whole passes over /proc in a row find none of it.

    A child that daemonizes may still be forking or exec'ing when the command
    ends: one pass can miss a child forked by a process it read after that
    process exited, the next cannot; a process whose environment reads empty
    (while it execs) keeps the pass from counting as clean.
    """
    term_at, clean, pass_found = None, 0, False
    started = clock()
    while clock() - started < SETTLE + kill_after + _deadline.REAP_SECONDS:
        now = clock()
        found, complete = tree.scan()
        # what a SIGKILL already failed to end (another user's, stuck in the kernel) is for failures() to name
        found = [m for m in found if tree.signalled(m[0]) != signal.SIGKILL]
        if found:
            pass_found = True
            term_at = now if term_at is None else term_at
            tree.signal(signal.SIGKILL if now - term_at >= kill_after else signal.SIGTERM)
        if complete:
            clean = clean + 1 if not (pass_found or tree.unsure) else 0
            pass_found = False
            if clean >= 2:
                break
            time.sleep(SETTLE / 10)


def _not_run(error, wall_start):
    code, reason = error
    return {"rc": 127 if code == errno.ENOENT else 126, "stdout": b"", "stderr": b"", "timed_out": False,
            "signal_sent": None, "signal_times": {}, "msg": reason,
            "start_time": wall_start, "end_time": time.time(), "elapsed": 0.0, "swept": [], "failed_to_end": [],
            "stdout_truncated": False, "stderr_truncated": False}


def supervise(argv, timeout, kill_after=5.0, first_signal="TERM", chdir=None, stdin=None, output_limit=1048576,
              root="/proc", clock=time.monotonic, on_start=None):
    """Run argv under the deadline; returns the result (see the module's RETURN), output as bytes.

    on_start, when given, is called with what the module needs to take over
    (group id, leader start time, cookie, the schedule) before the leader may
    exec.
    """
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8", "surrogateescape")
    cookie = uuid.uuid4().hex
    env = dict(os.environ)
    env[COOKIE_VAR] = cookie
    wall_start = time.time()
    child = Child(argv, env, chdir, feed_stdin=stdin is not None)
    schedule = _deadline.Schedule(clock(), timeout, kill_after, first_signal)
    if on_start:
        on_start({"pgid": child.pid, "leader_start": child.start, "cookie": cookie, "started": schedule.started,
                  "wall_start": wall_start, "timeout": timeout, "supervisor": [os.getpid(), _kill.starttime_of("/proc", os.getpid())]})
    error = child.release()
    if error:
        child.reap()
        return _not_run(error, wall_start)
    streams = Streams(child, stdin, output_limit)
    tree = Tree(child.pid, cookie, root, clock=clock)
    try:
        while True:
            streams.pump(POLL)
            action = schedule.step(clock(), child.returncode() is not None, streams.open, tree.alive)
            if action == "done":
                break
            if action:
                streams.close_stdin()
                tree.signal(getattr(signal, "SIG" + action))
        streams.drain(clock() + 0.5, clock)
        # a daemon that closed its output and outlived a command that ended in time goes too
        end_leftovers(tree, kill_after, clock)
        failed = tree.failures()
    finally:
        streams.close()
        returncode = child.returncode()
        child.reap()  # only now may the group id go to someone else
    return {
        "rc": _deadline.rc_for(schedule.timed_out, schedule.signal_sent, returncode),
        "stdout": bytes(streams.out.data), "stderr": bytes(streams.err.data),
        "stdout_truncated": streams.out.truncated, "stderr_truncated": streams.err.truncated,
        "timed_out": schedule.timed_out, "signal_sent": schedule.signal_sent, "signal_times": schedule.signal_times,
        "start_time": wall_start, "end_time": time.time(), "elapsed": round(clock() - schedule.started, 3),
        # signalled one by one: those that had left the process group
        "swept": sorted(pid for pid, _start in tree.swept),
        "failed_to_end": failed,
    }


def take_over(started, kill_after, first_signal, why, root="/proc", clock=time.monotonic):
    """The module's part when its supervisor vanished or stopped answering: the same schedule, from what the
    supervisor said before the command started; the output is lost."""
    supervisor = tuple(started["supervisor"])
    if why == "silent":
        _kill.send(root, supervisor, signal.SIGKILL)
    tree = Tree(started["pgid"], started["cookie"], root, leader_start=started["leader_start"], clock=clock)
    leader = (started["pgid"], started["leader_start"])
    schedule = _deadline.Schedule(started["started"], started["timeout"], kill_after, first_signal)
    while True:
        action = schedule.step(clock(), not _kill.is_running(root, leader), False, tree.alive)
        if action == "done":
            break
        if action:
            tree.signal(getattr(signal, "SIG" + action))
        time.sleep(POLL)
    end_leftovers(tree, kill_after, clock)
    lost = "ended" if why == "ended" else "stopped answering and was killed"
    return {
        # without a deadline signal the leader's exit code was lost with the supervisor: no rc
        "rc": _deadline.rc_for(True, schedule.signal_sent, None) if schedule.timed_out else None,
        "stdout": b"", "stderr": b"", "stdout_truncated": False, "stderr_truncated": False,
        "timed_out": schedule.timed_out, "signal_sent": schedule.signal_sent, "signal_times": schedule.signal_times,
        "start_time": started["wall_start"], "end_time": time.time(), "elapsed": round(clock() - schedule.started, 3),
        "swept": sorted(pid for pid, _start in tree.swept), "failed_to_end": tree.failures(),
        "supervisor_lost": True,
        "msg": "the supervisor (pid %d) %s before the command's end; the module ended the tree itself, and the "
               "command's output is lost" % (supervisor[0], lost),
    }


def _encode(result):
    return dict(result, stdout=base64.b64encode(result["stdout"]).decode(),
                stderr=base64.b64encode(result["stderr"]).decode())


def _decode(result):
    return dict(result, stdout=base64.b64decode(result["stdout"]), stderr=base64.b64decode(result["stderr"]))


def _write_line(fd, message):
    data = json.dumps(message).encode() + b"\n"
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass  # nobody is listening any more; the supervisor goes on all the same


def start_supervisor(argv, **kwargs):
    """Fork supervise() into a double-forked process of its own session; the pipe it reports on, one JSON line
    before the command starts and one with the result.

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
            os.closerange(write_fd + 1, MAX_FD)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            result = supervise(argv, on_start=lambda started: _write_line(write_fd, {"started": started}), **kwargs)
            _write_line(write_fd, {"result": _encode(result)})
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    return read_fd


def await_reports(fd, wait, clock=time.monotonic):
    """(started, result, how) from the supervisor's pipe within `wait` seconds; how is 'result', 'ended' (the pipe
    closed with no result) or 'silent'."""
    started, pending, end = None, bytearray(), clock() + wait
    try:
        while True:
            left = end - clock()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return started, None, "silent"
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return started, None, "ended"
            # a result may hold megabytes of output: look for the end of a line only in what came
            searched = len(pending)
            pending += chunk
            while b"\n" in chunk:
                cut = pending.index(b"\n", searched)
                message = json.loads(bytes(pending[:cut]).decode())
                del pending[:cut + 1]
                chunk, searched = bytes(pending), 0
                if "result" in message:
                    return started, _decode(message["result"]), "result"
                started = message.get("started", started)
    finally:
        os.close(fd)


def run_detached(argv, wait, **kwargs):
    """The supervisor's result within `wait` seconds; else the module takes over, or says nothing ran."""
    started, result, how = await_reports(start_supervisor(argv, **kwargs), wait)
    if result is not None:
        return result
    if started is None:
        return None
    return take_over(started, kwargs.get("kill_after", 5.0), kwargs.get("first_signal", "TERM"), how,
                     root=kwargs.get("root", "/proc"))
