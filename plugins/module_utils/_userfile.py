# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A user's ~/.ssh/config, changed by that user: root never acts in a home.

Everything below the home runs in a child process that has become the user
(as_user), so a link there, swapped in at any moment, leads only where the
user could go anyway: a file of root's can be neither read, written nor
shown. Even so nothing is followed: ~/.ssh and ~/.ssh/config are opened with
O_NOFOLLOW relative to the directory already opened, and the new file is
written beside the old and renamed over it in that same directory.

merge_block is pure; update_config and as_user touch the system.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import stat
import time

from ansible_collections.hangup.ssh.plugins.module_utils import _run

# larger than any hand-written client configuration; bounds what is read
MAX_CONFIG = 1 << 20
VALIDATE_TIMEOUT = 5
# the whole of one user's change, acting as that user
AS_USER_TIMEOUT = 60
MAX_FD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536


class Refused(Exception):
    """The home holds something the role must not touch; the message says what, never what it holds."""


class NoHome(Exception):
    """The user has no usable home: missing, or unreadable even to them."""


def merge_block(text, block, marker):
    """text with the block between marker lines ('{mark}' -> BEGIN/END) replaced, or added at the end.

    Lines are split on newlines only and kept as they are (CR, form feeds and
    all); a file whose markers do not pair up is refused, not guessed at.
    """
    begin, end = marker.replace("{mark}", "BEGIN"), marker.replace("{mark}", "END")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    wanted = [begin] + block.rstrip("\n").split("\n") + [end]
    starts = [i for i, line in enumerate(lines) if line.rstrip("\r") == begin]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\r") == end]
    if len(starts) > 1 or len(ends) > 1 or len(starts) != len(ends) or (starts and ends[0] < starts[0]):
        raise Refused("its managed block's marker lines do not pair up (%d BEGIN, %d END): "
                      "fix them by hand" % (len(starts), len(ends)))
    if starts:
        lines[starts[0]:ends[0] + 1] = wanted
    else:
        lines += wanted
    return "\n".join(lines) + "\n"


def sources(text, label, keywords):
    """Lines of text that set one of keywords, as `grep -Hin` prints them: 'label:N:line'."""
    wanted = set(k.lower() for k in keywords)
    found = []
    for number, line in enumerate(text.split("\n"), 1):
        words = line.strip().replace("=", " ").split()
        if words and words[0].lower() in wanted:
            found.append("%s:%d:%s" % (label, number, line.strip()))
    return found


def printable(text):
    """text for a terminal: control characters and undecodable bytes escaped, newlines and tabs kept."""
    raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c in "\n\t" or (c.isprintable() and c not in "\u2028\u2029") else repr(c)[1:-1]
                   for c in raw)


def _what(dir_fd, name):
    """What a directory entry is, for a refusal: a link, a file, a directory..."""
    try:
        mode = os.lstat(name, dir_fd=dir_fd).st_mode
    except OSError:
        return "unreadable"
    for test, word in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISREG, "a regular file"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return word
    return "something else"


def open_home(path, uid):
    """The home directory, opened: the passwd path, through links the admin made, a directory the user owns."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise NoHome("has no home directory (%s)" % path)
        if exc.errno == errno.ENOTDIR:
            raise Refused("Refusing the home %s: it is not a directory" % path)
        raise NoHome("cannot open the home directory %s: %s" % (path, os.strerror(exc.errno)))
    owner = os.fstat(fd).st_uid
    if owner != uid:
        os.close(fd)
        raise Refused("Refusing the home %s: it is owned by uid %d, not by the user" % (path, owner))
    return fd


def _open_dotssh(home_fd, label, create):
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(".ssh", flags, dir_fd=home_fd), False
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            if not create:
                return None, True
            os.mkdir(".ssh", 0o700, dir_fd=home_fd)
            return os.open(".ssh", flags, dir_fd=home_fd), True
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Refused("Refusing %s: it is %s, not a directory" % (label, _what(home_fd, ".ssh")))
        if exc.errno == errno.EACCES:
            raise Refused("Refusing %s: the user cannot open it" % label)
        raise


def _read_config(ssh_fd, label):
    """(text, mode) of ~/.ssh/config, ('', None) when there is none."""
    if ssh_fd is None:
        return "", None
    try:
        fd = os.open("config", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=ssh_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return "", None
        if exc.errno == errno.ELOOP:
            raise Refused("Refusing %s: it is a symbolic link, not a regular file" % label)
        if exc.errno == errno.EACCES:
            raise Refused("Refusing %s: the user cannot read it" % label)
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("Refusing %s: it is %s, not a regular file" % (label, _what(ssh_fd, "config")))
        if st.st_size > MAX_CONFIG:
            raise Refused("Refusing %s: larger than %d bytes" % (label, MAX_CONFIG))
        data = os.read(fd, MAX_CONFIG + 1)
    finally:
        os.close(fd)
    return data.decode("utf-8", "surrogateescape"), stat.S_IMODE(st.st_mode)


def _validate(fd, ssh_binary, label):
    """`ssh -G` on the new file, read from the descriptor it was written through, as the user.

    ssh closes every descriptor above 2 first, so the file is its standard input.
    """
    os.lseek(fd, 0, os.SEEK_SET)
    rc, out = _run.run_bounded([ssh_binary, "-G", "-F", "/dev/stdin", "hangup-validate.invalid"], VALIDATE_TIMEOUT,
                               merge_stderr=True, stdin=fd)
    if rc != 0:
        first = [line for line in (out or "").splitlines() if line.strip()][:1]
        raise Refused("%s with the block does not parse (ssh -G: %s)" % (label, printable(first[0]) if first else rc))


def _write(ssh_fd, text, ssh_binary, label):
    name = ".config.hangup-%s" % os.urandom(6).hex()
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=ssh_fd)
    try:
        try:
            data = text.encode("utf-8", "surrogateescape")
            while data:
                data = data[os.write(fd, data):]
            os.fchmod(fd, 0o600)
            os.fsync(fd)
            if ssh_binary:
                _validate(fd, ssh_binary, label)
        finally:
            os.close(fd)
        os.rename(name, "config", src_dir_fd=ssh_fd, dst_dir_fd=ssh_fd)
    except BaseException:
        try:
            os.unlink(name, dir_fd=ssh_fd)
        except OSError:
            pass
        raise


def effective(ssh_binary, keywords):
    """What `ssh -G` says of keywords for a host no configuration names, as the user; lines 'keyword value'."""
    rc, out = _run.run_bounded([ssh_binary, "-G", "hangup-verify.invalid"], VALIDATE_TIMEOUT)
    if rc != 0:
        raise Refused("ssh -G as the user gave no configuration (%s)" % (printable(out) if rc is None else "rc %s" % rc))
    wanted = set(k.lower() for k in keywords)
    return "\n".join(line for line in out.splitlines() if line.split(" ", 1)[0].lower() in wanted)


def update_config(home, uid, block, marker, check_mode, ssh_binary=None, verify=()):
    """Put the block in ~/.ssh/config below `home`; run as the user (see as_user).

    Returns changed, the before and after texts (as the user sees them), what
    else changed (modes, a new ~/.ssh), and for the `verify` keywords what
    `ssh -G` shows in effect and the file's lines that set them.
    """
    dotssh, config = home.rstrip("/") + "/.ssh", home.rstrip("/") + "/.ssh/config"
    home_fd = open_home(home, uid)
    ssh_fd = None
    try:
        ssh_fd, missing = _open_dotssh(home_fd, dotssh, create=not check_mode)
        before, mode = _read_config(ssh_fd, config)
        try:
            after = merge_block(before, block, marker)
        except Refused as exc:
            raise Refused("Refusing %s: %s" % (config, exc))
        notes = []
        if missing:
            notes.append("%s created (0700)" % dotssh)
        elif stat.S_IMODE(os.fstat(ssh_fd).st_mode) != 0o700:
            notes.append("%s mode set to 0700" % dotssh)
            if not check_mode:
                os.fchmod(ssh_fd, 0o700)
        if mode is not None and mode != 0o600:
            notes.append("%s mode set to 0600" % config)
        if not check_mode and (after != before or mode != 0o600):
            _write(ssh_fd, after, ssh_binary, config)
        result = {"changed": bool(after != before or notes), "before": before, "after": after, "path": config,
                  "notes": notes, "effective": None, "sources": sources(after, config, verify)}
        if verify and not check_mode:
            result["effective"] = effective(ssh_binary, verify)
        return result
    finally:
        if ssh_fd is not None:
            os.close(ssh_fd)
        os.close(home_fd)


def _become(pw, keep_fd):
    """In the child: nothing of root's left but the result pipe, then pw's ids and groups."""
    for signum in range(1, signal.NSIG):
        if signum not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(signum, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, MAX_FD)
    os.chdir("/")
    os.environ.clear()
    os.environ.update(_run.CLEAN_ENV)
    _run.become(pw)
    # the kernel makes a process that changed its ids undumpable unless fs.suid_dumpable says otherwise
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (ImportError, OSError, AttributeError):
        pass


def _child(pw, write_end, func, args):  # pragma: no cover - runs in the forked child, reports through the pipe
    try:
        try:
            _become(pw, write_end)
            out = {"ok": func(*args)}
        except (Refused, NoHome) as exc:
            out = {"error": type(exc).__name__, "msg": str(exc)}
        except BaseException as exc:  # pylint: disable=broad-exception-caught
            out = {"error": "RuntimeError", "msg": "%s: %s" % (type(exc).__name__, exc)}
        data = json.dumps(out).encode()
        while data:
            data = data[os.write(write_end, data):]
    finally:
        os._exit(0)


def _reap(pid, within):
    """Wait for a child at most `within` seconds: one stuck in the kernel (a dead network home) is left."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return True
        time.sleep(0.05)
    return False


def as_user(pw, func, *args):
    """func(*args) in a child process that is pw's user (uid, gid and groups), and its result.

    The child keeps nothing of root's but the pipe it answers through: no
    other descriptor, no environment, default signal handlers. Raises Refused
    or NoHome as the child raised them, RuntimeError for anything else (also
    when it does not answer within AS_USER_TIMEOUT). As that user already, no
    child is needed.
    """
    if os.geteuid() == pw.pw_uid:
        return func(*args)
    if os.geteuid() != 0:
        raise RuntimeError("only root can act as another user (%s)" % pw.pw_name)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(pw, write_end, func, args)
    os.close(write_end)
    chunks, deadline, answered = [], time.monotonic() + AS_USER_TIMEOUT, False
    try:
        # the child is the user's now: they may stop it, and root must not wait for ever
        while time.monotonic() < deadline:
            if not select.select([read_end], [], [], max(0, deadline - time.monotonic()))[0]:
                continue
            chunk = os.read(read_end, 65536)
            if not chunk:
                answered = True
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        if not answered:
            os.kill(pid, signal.SIGKILL)
        _reap(pid, 5)
    if not answered:
        raise RuntimeError("the process acting as %s did not answer within %d s" % (pw.pw_name, AS_USER_TIMEOUT))
    try:
        out = json.loads(b"".join(chunks).decode())
    except ValueError:
        raise RuntimeError("the process acting as %s ended without an answer" % pw.pw_name)
    if "ok" in out:
        return out["ok"]
    raise {"Refused": Refused, "NoHome": NoHome}.get(out["error"], RuntimeError)(out["msg"])


def input_problems(params):
    """What the argument spec cannot say, one message per problem, each naming the parameter."""
    problems = []
    if not params["user"] or "\0" in params["user"] or "/" in params["user"]:
        problems.append("user: not a user name: %r" % params["user"])
    if "{mark}" not in params["marker"] or "\n" in params["marker"]:
        problems.append("marker: one line holding {mark}")
    if any(line.strip() == params["marker"].replace("{mark}", m) for m in ("BEGIN", "END")
           for line in params["block"].splitlines()):
        problems.append("block: holds a marker line")
    bad = [k for k in params["verify"] if not k.isalnum()]
    if bad:
        problems.append("verify: not ssh keywords: %s" % ", ".join(map(repr, bad)))
    return problems
