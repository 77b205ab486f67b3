# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of hangup.ssh.hard_timeout: validate, run the module, and never wait past the bound."""

from __future__ import annotations

import os
import signal
import threading
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.hangup.ssh.plugins.module_utils import _deadline, _sshproc

display = Display()


def _ssh_children(pid):
    """PIDs of ssh processes started by this worker: the connection's exec that hangs on a frozen host."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _sshproc.read_stat("/proc", int(name))
        if stat and stat["ppid"] == pid and stat["comm"] in ("ssh", "sshpass"):
            found.append(stat["pid"])
    return found


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
        problem = _deadline.check_numbers(params)
        if problem:
            raise AnsibleActionFail(problem)
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
                              "the connection was reset; the command's supervisor on the host ends its tree by itself"
                              % (bound, params["timeout"], params["kill_after"], _deadline.SLACK,
                                 params["margin"]))
            return result
        if "error" in outcome:
            raise outcome["error"]
        result.update(outcome["result"])
        result.setdefault("timed_out", False)
        return result

    def _give_up_connection(self):
        """End the hung exec (the connection plugin's child ssh) and reset the connection."""
        for pid in _ssh_children(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self._connection.reset()
        except Exception as exc:  # pylint: disable=broad-except
            display.vvv("hard_timeout: resetting the connection failed: %s" % exc)

    def cleanup(self, force=False):
        if self._gave_up:
            # the host does not answer: leave the module's tmp dir there rather than hang removing it
            self._connection._shell.tmpdir = None
            return
        super(ActionModule, self).cleanup(force)
