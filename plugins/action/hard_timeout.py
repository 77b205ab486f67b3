# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of hangup.ssh.hard_timeout: validate, run the module, and never wait past the bound."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.hangup.ssh.plugins.module_utils import _deadline

display = Display()


def parse_ps(text, parent):
    """PIDs whose parent is `parent`, from `ps -A -o pid= -o ppid=` output."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1] == str(parent):
            found.append(int(fields[0]))
    return found


def _linux_children(parent):
    """Direct children from the kernel's list of this process's own threads, or None where there is none: it
    reads nothing of other processes, which could hang on one stuck in the kernel."""
    found = []
    try:
        for tid in os.listdir("/proc/%d/task" % parent):
            with open("/proc/%d/task/%s/children" % (parent, tid)) as f:
                found.extend(int(pid) for pid in f.read().split())
    except (OSError, ValueError):
        return None
    return found


def children(parent):
    """This worker's child processes (the connection's exec that hangs on a frozen host), on any POSIX
    controller; none when neither the kernel nor ps can tell."""
    found = _linux_children(parent)
    if found is not None:
        return found
    try:
        out = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True, text=True, timeout=2,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_ps(out, parent)


def still_our_child(pid):
    """Whether pid is still this process's unreaped child, so that its number cannot be anyone else's."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except (ChildProcessError, OSError):
        return False
    return True


def kill_child(pid):
    """SIGKILL pid if it is still this process's child. Held by a pidfd (Linux) opened before the check, the
    signal reaches that process or none, even if a thread of this worker reaps it and its number is reused."""
    fd = None
    try:
        if hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal"):
            fd = os.pidfd_open(pid)
        if not still_our_child(pid):
            return
        if fd is not None:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass  # gone already
    finally:
        if fd is not None:
            os.close(fd)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True
    _gave_up = False

    def _task_args(self):
        args = dict(self._task.args)
        raw = args.pop("_raw_params", None)
        if raw:
            if args.get("cmd") or args.get("argv"):
                raise AnsibleActionFail("cmd: give the command either free form or as cmd/argv, not both")
            args["cmd"] = raw
        return args

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task_args()
        self._task.args = args
        _validation, params = self.validate_argument_spec(
            argument_spec=_deadline.ARGUMENT_SPEC, mutually_exclusive=_deadline.MUTUALLY_EXCLUSIVE,
            required_one_of=_deadline.REQUIRED_ONE_OF)
        problems = _deadline.input_problems(params)
        if problems:
            raise AnsibleActionFail("; ".join(problems))
        bound = _deadline.controller_bound(params)

        outcome = {}

        def call():
            try:
                outcome["result"] = self._execute_module(module_name="hangup.ssh.hard_timeout", module_args=args,
                                                         task_vars=task_vars)
            except Exception as exc:  # pylint: disable=broad-except
                outcome["error"] = exc

        started = time.monotonic()
        # the connection's exec may block forever on a frozen host: it gets a thread, the play gets the bound
        worker = threading.Thread(target=call, name="hard_timeout", daemon=True)
        worker.start()
        worker.join(bound)
        if worker.is_alive():
            self._gave_up = True
            self._give_up_connection()
            result.update(failed=True, timed_out=True, controller_timed_out=True, changed=False,
                          elapsed=round(time.monotonic() - started, 3),
                          msg="no answer from the host within %g s (timeout %g + kill_after %g + %g + margin %g); "
                              "the connection was reset; the command's supervisor on the host, or the module waiting "
                              "for it, ends its tree by itself, unless both were killed: then it may still run"
                              % (bound, params["timeout"], params["kill_after"], _deadline.SLACK,
                                 params["margin"]))
            return result
        if "error" in outcome:
            raise outcome["error"]
        result.update(outcome["result"])
        if result.get("failed") and "timed_out" not in result:
            # the module itself died (killed with its supervisor): nothing on the host watches the tree any more
            result["msg"] = "%s; the module ended without a result, so the command's tree may still run on the " \
                            "host" % result.get("msg", "module failure")
        result.setdefault("timed_out", False)
        return result

    def _give_up_connection(self):
        """End the hung exec (the connection plugin's child ssh) and reset the connection."""
        found = children(os.getpid())
        display.vvv("hard_timeout: giving up; the connection's processes: %s" % found)
        for pid in found:
            kill_child(pid)
        try:
            self._connection.reset()
        except Exception as exc:  # pylint: disable=broad-except
            display.vvv("hard_timeout: resetting the connection failed: %s" % exc)

    def cleanup(self, force=False):
        if self._gave_up:
            # the host does not answer: leave the module's tmp dir there (the module's command removes it when
            # the host comes back) rather than hang removing it
            return
        super(ActionModule, self).cleanup(force)
