# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A command under a hard deadline: a detached supervisor that no process of the tree outlives.

The supervisor is a child subreaper: whatever the command forks, and every
orphan among them (setsid, double fork), stays its descendant, so the tree is
exactly its descendants, found through the kernel's own children lists. It
forks the command's leader into a session of its own and tells the module
the leader, its own pid and the deadline before the leader may exec; feeds
stdin and reads output without blocking; signals the process group at the
deadline (the leader kept unreaped, so the group id stays the command's) and
every descendant, SIGKILL at deadline + kill_after; and says it is alive
every second. The module is a subreaper too: if the supervisor vanishes or
falls silent, the tree comes back to the module, which follows the same
schedule. Neither reads a process's stat or environ, which can block for as
long as a user wants (an exec stuck on a FUSE file takes the lock they need);
each process is signalled through a pidfd opened while it is a child of the
process the walk came from.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import signal
import time

from ansible_collections.hangup.ssh.plugins.module_utils import _deadline, _kill

POLL = 0.05
# the supervisor's sign of life, and how long the module lets it be silent
TICK = 1.0
QUIET = 3.0
PR_SET_CHILD_SUBREAPER = 36
# what a command may send its supervisor and the module by name (pkill python3): both ignore it while it runs
STRAY = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
# the pause between passes over /proc while what a command left behind is ended
SETTLE = 0.03
# the longest one walk of the tree may take
SCAN_BUDGET = 0.5
MAX_FD = 4096
MAX_PIDFDS = 1 << 20
# pidfds one walk opens at a time for the children of one process
CHUNK = 256
# the reason failed_to_end gives for a process SIGKILL did not end (stuck in the kernel: a user's FUSE file)
STUCK = "still running after SIGKILL (state %s)"


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
        # readable once the leader exits: the loop wakes then, not at its next poll
        self.exit_fd = None
        if hasattr(os, "pidfd_open"):
            try:
                self.exit_fd = os.pidfd_open(self.pid)
            except OSError:
                pass

    def release(self):
        """Let the leader go on to exec; whether that worked is known only once it ended (exec_error): an exec
        may stay stuck for as long as a user likes (a binary or directory on their FUSE mount), and the deadline
        loop must run meanwhile."""
        try:
            os.write(self._gate, b"g")
        except OSError:
            pass  # it already failed (chdir) and said why
        os.close(self._gate)

    def exec_error(self):
        """(errno, reason) when the leader could not run the command, else None; ask once it has ended."""
        os.set_blocking(self._errors, False)
        data = b""
        try:
            while True:
                chunk = os.read(self._errors, 4096)
                if not chunk:
                    break
                data += chunk
        except BlockingIOError:
            data = b""  # still in exec: an unkillable leader, named by failed_to_end
        finally:
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


def become_subreaper():
    """Make orphans among this process's descendants its children, not init's; False where Linux cannot."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def room_for_pidfds():
    """Raise the soft limit on open files to the hard one (at most MAX_PIDFDS): a walk holds a pidfd for each
    process of a wide tree, and one it cannot open leaves the walk incomplete."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = MAX_PIDFDS if hard == resource.RLIM_INFINITY else min(hard, MAX_PIDFDS)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (OSError, ValueError):
        pass


def children_of(pid, root="/proc"):
    """pid's children, from the kernel's list of them: nothing of the children themselves is read."""
    found = []
    try:
        for tid in os.listdir("%s/%d/task" % (root, pid)):
            with open("%s/%d/task/%s/children" % (root, pid, tid)) as f:
                found.extend(int(child) for child in f.read().split())
    except (OSError, ValueError):
        pass
    return found


def _state(pid, root="/proc"):
    """The one-letter state from /proc/PID/status (which takes no lock of the process), or '?'."""
    try:
        with open("%s/%d/status" % (root, pid)) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1]
    except (OSError, IndexError):
        pass
    return "?"


class Handle(object):
    """A process held by a pidfd (where the kernel has them; else by pid, which a race can lose).

    A child is valid (Tree.scan decides) when, after its pidfd is open, its
    parent's list still names it and the parent, held the same way, has not
    exited: the parent's pid cannot have passed to another process then, so
    neither can the child's. `held` is False when a pidfd could not be opened
    for a process that exists (out of file descriptors): the walk is then
    incomplete.
    """

    def __init__(self, pid, owner=False):
        """Open the pidfd; the caller decides `valid` (see Tree.scan), which the owner, this process, is."""
        self.pid, self.fd, self.held, self.valid = pid, None, True, owner
        if owner:
            return
        if hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal"):
            try:
                self.fd = os.pidfd_open(pid)
            except OSError as exc:
                self.held = exc.errno == errno.ESRCH

    def exited(self):
        if self.fd is not None:
            # poll, not select: a wide tree holds pidfds numbered past select's 1024
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            return bool(poller.poll(0))
        if self.valid and self.pid == os.getpid():
            return False
        return _state(self.pid) in ("Z", "X", "?")

    def send(self, sig):
        """_kill.SENT, GONE or DENIED."""
        try:
            if self.fd is not None:
                signal.pidfd_send_signal(self.fd, sig)
            else:
                os.kill(self.pid, sig)
            return _kill.SENT
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                return _kill.GONE
            if exc.errno == errno.EPERM:
                return _kill.DENIED
            raise

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Tree(object):
    """The command's processes: every live descendant of `owner`, a subreaper, but those in `exclude`.

    With `group` set (the leader is the owner's unreaped child, so the group id
    cannot be anyone else's) a signal goes to the process group at once, then
    to each descendant; the owner's exited children other than `keep` are
    reaped as the walk meets them.
    """

    def __init__(self, owner, group=None, keep=(), exclude=(), root="/proc", clock=time.monotonic,
                 budget=SCAN_BUDGET):
        self.owner, self.group, self.keep, self.exclude = owner, group, set(keep), set(exclude)
        self.root, self.clock, self.budget = root, clock, budget
        self.current = None  # the signal every member found gets, once
        self.swept, self.denied, self.churned, self.unsettled = set(), set(), False, False
        self._signalled = {}

    def scan(self):
        """(members, complete): the pids of live descendants, each sent the current signal if it has not had
        it; complete unless the walk ran out of its budget or could not hold a process. `churned` says whether
        the walk met processes that had exited (a tree still forking and exiting)."""
        until, found, seen = self.clock() + self.budget, [], set()
        stack, complete, self.churned = [(Handle(self.owner, owner=True), None)], True, False
        while stack:
            parent, pids = stack.pop()
            if pids is None:
                pids = [pid for pid in children_of(parent.pid, self.root) if pid not in seen and pid not in self.exclude]
            if self.clock() >= until:
                complete = False
                parent.close()
                continue
            # depth first, a chunk of pidfds at a time, each kept only for a child with children of its own: a
            # wide tree must not run this process out of file descriptors
            chunk, rest = pids[:CHUNK], pids[CHUNK:]
            if rest:
                stack.append((parent, rest))
            try:
                complete = self._visit(parent, chunk, until, seen, found, stack) and complete
            finally:
                if not rest:
                    parent.close()
        if complete:
            # a pid seen again later is another process: it gets every signal anew
            self._signalled = {pid: sig for pid, sig in self._signalled.items() if pid in seen}
        return found, complete

    def _visit(self, parent, pids, until, seen, found, stack):
        """Hold, check and signal some of parent's children; whether none was out of reach."""
        kids = [Handle(pid) for pid in pids]
        # still listed once its pidfd is open, and the parent (held too) not exited: the pid was not reused in
        # between, as the parent's was not. Two reads of the list per chunk, not one per child.
        listed, parent_gone = set(children_of(parent.pid, self.root)), parent.exited()
        complete = True
        for index, child in enumerate(kids):
            if self.clock() >= until:
                for rest in kids[index:]:
                    rest.close()
                return False
            seen.add(child.pid)
            child.valid = child.pid in listed and not parent_gone
            complete = complete and child.held
            if not child.valid or child.exited():
                child.close()
                if child.valid and child.pid not in self.keep:
                    self.churned = True
                    if parent.pid == self.owner:
                        _reap(child.pid)
                continue
            found.append(child.pid)
            self._deliver(child)
            if children_of(child.pid, self.root):
                stack.append((child, None))
            else:
                child.close()  # a leaf; one that forks after this is met by the next walk
        return complete

    def alive(self):
        """Whether anything of the tree may still run: False only after a whole walk met nothing, not even a
        process that had just exited."""
        found, complete = self.scan()
        return bool(found) or not complete or self.churned

    def signal(self, sig):
        """Send sig to the whole tree: the group at once where that is safe, then each descendant."""
        self.current = sig
        if self.group is not None:
            try:
                os.killpg(self.group, sig)
            except OSError as exc:
                if exc.errno not in (errno.ESRCH, errno.EPERM):
                    raise
                # EPERM: nothing of the group could be signalled; each is tried, and named, one by one
        self.scan()

    def signalled(self, pid):
        """The last signal pid was sent, or None."""
        return self._signalled.get(pid)

    def _deliver(self, handle):
        if self.current is None or self._signalled.get(handle.pid) == self.current:
            return
        self._signalled[handle.pid] = self.current
        result = handle.send(self.current)
        if result == _kill.DENIED:
            self.denied.add(handle.pid)
        elif result == _kill.SENT:
            self.swept.add(handle.pid)

    def failures(self):
        """[{pid, reason}] for what of the tree still runs."""
        found, complete = self.scan()
        states = {pid: _state(pid, self.root) for pid in found}
        # one that died of the signal this last walk sent is no failure
        left = [{"pid": pid, "reason": _kill.DENIED if pid in self.denied else STUCK % states[pid]}
                for pid in found if states[pid] not in ("Z", "X", "?")]
        if not complete:
            left.append({"pid": None, "reason": "the tree was not walked to its end within %g s" % self.budget})
        if self.unsettled:
            left.append({"pid": None, "reason": "the tree kept forking and exiting faster than it could be walked; "
                                                "some of it may still run"})
        return left


def _reap(pid):
    """Reap pid if it has ended; whether it is gone."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def end_leftovers(tree, kill_after, clock=time.monotonic, tick=None):
    """End what is left of a tree whose command ended, until two whole walks in a row find none of it.

    A child that daemonizes may still be forking when the command ends: one
    walk can miss a child forked by a process it read after that process
    exited (the orphan moved to the owner, whose list was read before); the
    next cannot.
    """
    term_at, clean = None, 0
    started = clock()
    while clock() - started < SETTLE + kill_after + _deadline.REAP_SECONDS:
        now = clock()
        if tick:
            tick()
        found, complete = tree.scan()
        # what a SIGKILL already failed to end (another user's, stuck in the kernel) is for failures() to name
        found = [pid for pid in found if tree.signalled(pid) != signal.SIGKILL]
        if found or tree.churned:
            term_at = now if term_at is None else term_at
            tree.signal(signal.SIGKILL if now - term_at >= kill_after else signal.SIGTERM)
        clean = clean + 1 if complete and not found and not tree.churned else 0
        if clean >= 2:
            return
        time.sleep(SETTLE / 10)
    tree.unsettled = True


def _not_run(error, wall_start):
    code, reason = error
    return {"rc": 127 if code == errno.ENOENT else 126, "stdout": b"", "stderr": b"", "timed_out": False,
            "signal_sent": None, "signal_times": {}, "msg": reason,
            "start_time": wall_start, "end_time": time.time(), "elapsed": 0.0, "swept": [], "failed_to_end": [],
            "stdout_truncated": False, "stderr_truncated": False}


class Ticker(object):
    """Calls `say` at most every TICK seconds: the supervisor's sign of life to the module."""

    def __init__(self, say, clock=time.monotonic):
        self.say, self.clock, self.last = say, clock, None

    def __call__(self):
        now = self.clock()
        if self.say and (self.last is None or now - self.last >= TICK):
            self.last = now
            self.say()


def supervise(argv, timeout, kill_after=5.0, first_signal="TERM", chdir=None, stdin=None, output_limit=1048576,
              root="/proc", clock=time.monotonic, on_start=None, on_tick=None):
    """Run argv under the deadline; returns the result (see the module's RETURN), output as bytes.

    on_start, when given, is called with what the module needs to take over
    (the leader, this process, the schedule) before the leader may exec;
    on_tick about every second while the work goes on.
    """
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8", "surrogateescape")
    # an ignored SIGCHLD would have the kernel reap the leader, and free its group id, at once
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    become_subreaper()
    wall_start = time.time()
    child = Child(argv, dict(os.environ), chdir, feed_stdin=stdin is not None)
    room_for_pidfds()  # after the fork: the command keeps the limits it was given
    schedule = _deadline.Schedule(clock(), timeout, kill_after, first_signal)
    if on_start:
        on_start({"leader": child.pid, "supervisor": os.getpid(), "started": schedule.started,
                  "wall_start": wall_start, "timeout": timeout})
    child.release()
    tick = Ticker(on_tick, clock)
    streams = Streams(child, stdin, output_limit)
    tree = Tree(os.getpid(), group=child.pid, keep=[child.pid], root=root, clock=clock)
    try:
        while True:
            tick()
            streams.pump(POLL)
            action = schedule.step(clock(), child.returncode() is not None, streams.open, tree.alive)
            if action == "done":
                break
            if action:
                streams.close_stdin()
                tree.signal(getattr(signal, "SIG" + action))
        streams.drain(clock() + 0.5, clock)
        # a daemon that closed its output and outlived a command that ended in time goes too
        end_leftovers(tree, kill_after, clock, tick)
        failed = tree.failures()
    finally:
        streams.close()
        returncode = child.returncode()
        error = child.exec_error()
        child.reap()  # only now may the group id go to someone else
    if error and not schedule.timed_out:
        return _not_run(error, wall_start)
    return {
        "rc": _deadline.rc_for(schedule.timed_out, schedule.signal_sent, returncode),
        "stdout": bytes(streams.out.data), "stderr": bytes(streams.err.data),
        "stdout_truncated": streams.out.truncated, "stderr_truncated": streams.err.truncated,
        "timed_out": schedule.timed_out, "signal_sent": schedule.signal_sent, "signal_times": schedule.signal_times,
        "start_time": wall_start, "end_time": time.time(), "elapsed": round(clock() - schedule.started, 3),
        # signalled one by one: those the group signal may not have reached
        "swept": sorted(pid for pid in tree.swept if pid != child.pid),
        "failed_to_end": failed,
    }


def take_over(started, kill_after, first_signal, why, root="/proc", clock=time.monotonic):
    """The module's part when its supervisor vanished or fell silent: the tree came back to this process (a
    subreaper), which follows the same schedule from what the supervisor said before the command started; the
    output is lost."""
    supervisor, leader = started["supervisor"], started["leader"]
    room_for_pidfds()
    ours = supervisor in children_of(os.getpid(), root)
    if why == "silent" and ours:
        os.kill(supervisor, signal.SIGKILL)  # this process's child, not yet reaped: the pid is still its
    # reaped, it has handed its children over (the kernel does that before it can be waited for)
    until = clock() + _deadline.REAP_SECONDS
    while ours and clock() < until and not _reap(supervisor):
        time.sleep(0.01)
    # once reaped, its pid may be the tree's: only one not yet reaped is left out
    still = [supervisor] if ours and supervisor in children_of(os.getpid(), root) else []
    tree = Tree(os.getpid(), exclude=still, keep=[leader], root=root, clock=clock)
    schedule = _deadline.Schedule(started["started"], started["timeout"], kill_after, first_signal)

    def leader_gone():
        return leader not in children_of(os.getpid(), root) or _state(leader, root) in ("Z", "X", "?")

    while True:
        gone = leader_gone()
        if gone and clock() < schedule.deadline:
            break  # the command ended by itself: what it left is ended below, as the supervisor does
        # a leader gone after the deadline (its signal ended it) leaves the rest on the deadline's timeline: KILL
        # stays at deadline + kill_after, however late the take-over
        action = schedule.step(clock(), gone and not tree.alive(), False, tree.alive)
        if action == "done":
            break
        if action:
            tree.signal(getattr(signal, "SIG" + action))
        time.sleep(POLL)
    end_leftovers(tree, kill_after, clock)
    _reap(leader)
    lost = "ended" if why == "ended" else "fell silent and was killed"
    return {
        "rc": _deadline.rc_for(True, schedule.signal_sent, None) if schedule.timed_out else None,
        "stdout": b"", "stderr": b"", "stdout_truncated": False, "stderr_truncated": False,
        "timed_out": schedule.timed_out, "signal_sent": schedule.signal_sent, "signal_times": schedule.signal_times,
        "start_time": started["wall_start"], "end_time": time.time(), "elapsed": round(clock() - schedule.started, 3),
        "swept": sorted(tree.swept), "failed_to_end": tree.failures(), "supervisor_lost": True,
        "msg": "the supervisor (pid %d) %s before the command's end; the module ended the tree itself, and the "
               "command's output is lost" % (supervisor, lost),
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
    # the tree comes back to this process if the supervisor goes; an ignored SIGCHLD would lose it to the kernel
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # `pkill python3` from the command must not end the one that would take over (SIGHUP does: the connection is gone)
    for sig in STRAY:
        signal.signal(sig, signal.SIG_IGN)
    become_subreaper()
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
            for sig in (signal.SIGHUP, signal.SIGPIPE) + STRAY:
                signal.signal(sig, signal.SIG_IGN)
            result = supervise(argv, on_start=lambda started: _write_line(write_fd, {"started": started}),
                               on_tick=lambda: _write_line(write_fd, {"tick": True}), **kwargs)
            _write_line(write_fd, {"result": _encode(result)})
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    return read_fd


def await_reports(fd, wait, clock=time.monotonic, quiet=QUIET):
    """(started, result, how) from the supervisor's pipe within `wait` seconds; how is 'result', 'ended' (the pipe
    closed with no result) or 'silent' (nothing for `quiet` seconds once it started, or no result in time)."""
    started, pending, end = None, bytearray(), clock() + wait
    try:
        while True:
            left = end - clock()
            if started is not None:
                left = min(left, quiet)
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
    saved = {sig: signal.getsignal(sig) for sig in STRAY + (signal.SIGCHLD,)}
    try:
        started, result, how = await_reports(start_supervisor(argv, **kwargs), wait)
        if result is not None:
            return result
        if started is None:
            return None
        return take_over(started, kwargs.get("kill_after", 5.0), kwargs.get("first_signal", "TERM"), how,
                         root=kwargs.get("root", "/proc"))
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
