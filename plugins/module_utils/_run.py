# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a command that may run a user's code: bounded in time and output, its whole group killed after."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time


# all a command that may run a user's code gets of the module's environment
CLEAN_ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def become(pw):
    """Take pw's uid, gid and groups for good (root only), and check that they took."""
    os.setgroups(os.getgrouplist(pw.pw_name, pw.pw_gid))
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    if (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) != (pw.pw_uid, pw.pw_uid, pw.pw_gid, pw.pw_gid):
        raise RuntimeError("could not become %s" % pw.pw_name)


def _exited(pid):
    """Whether a child has exited, leaving it unreaped (its pid and group id stay taken)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def run_bounded(argv, timeout, limit=65536, env=None, preexec_fn=None, merge_stderr=False, stdin=None,
                clock=time.monotonic):
    """(rc, output) of a command run in a session of its own, or (None, reason).

    At most `limit` bytes of its output are kept and it gets `timeout`
    seconds; then, or once it has finished, whatever is left of its process
    group is killed. Lookups run user configurations (ssh's `Match exec`), so
    nothing they do may grow without bound. Standard error is discarded
    unless merge_stderr; stdin, a file descriptor, else /dev/null; env,
    CLEAN_ENV unless given.
    """
    try:
        # run_command can bound neither time nor output, nor give the command a process group to kill
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if stdin is None else stdin, stdout=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                                stderr=subprocess.STDOUT if merge_stderr else subprocess.DEVNULL,
                                env=dict(CLEAN_ENV) if env is None else env, close_fds=True, start_new_session=True,
                                preexec_fn=preexec_fn)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    out, finished = bytearray(), False
    deadline = clock() + timeout
    try:
        fd = proc.stdout.fileno()
        while not finished and clock() < deadline:
            if select.select([fd], [], [], 0.05)[0]:
                chunk = os.read(fd, 65536)
                finished = not chunk
                out += chunk[:max(0, limit - len(out))]
            elif _exited(proc.pid):
                # done, though a child it left may hold the pipe open
                finished = True
    finally:
        proc.stdout.close()
        # the unreaped leader keeps the group id from being reused until wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        rc = proc.wait()
    if not finished:
        return None, "no answer within %s s" % timeout
    return rc, out.decode("utf-8", "replace")
