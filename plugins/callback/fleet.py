# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet
type: stdout
short_description: One line per host for hung_sessions and hard_timeout, and a fleet table at the end
version_added: 0.1.0
description:
  - The default output, except for the results of M(hangup.ssh.hung_sessions) and M(hangup.ssh.hard_timeout).
    Each host's result of those is one line, the module's own RV(hangup.ssh.hung_sessions#module:msg), instead
    of the whole result. With C(-vv) or more the whole result follows the line, as the default callback shows it.
  - At the end of the run, after the recap, one table per such task, one row per host, sorted so that what needs a
    person comes first (C(UNREACHABLE), then sessions or processes that could not be ended, failures, hung sessions
    left as they were, timed-out commands; then ended sessions and the rest), with a total row.
  - The columns of hung_sessions' table are the sessions found, the hung ones, the ended ones, those that could not
    be ended, and the hung ones by class (a session may be in more than one). Those of hard_timeout's table are
    the exit code, whether the deadline passed, the signals with their times, the seconds the command ran and the
    processes that could not be ended.
  - O(fleet_file) writes the same rows as JSON or CSV.
  - To add only the table and the file to another stdout callback, enable P(hangup.ssh.fleet_table#callback)
    instead.
  - Ad-hoc C(ansible) uses a stdout callback of the configuration only with C(bin_ansible_callbacks=true) (or
    E(ANSIBLE_LOAD_CALLBACK_PLUGINS=1)).
extends_documentation_fragment:
  - ansible.builtin.default_callback
  - ansible.builtin.result_format_callback
  - hangup.ssh.fleet
requirements:
  - set as the stdout callback (O(ignore:stdout_callback) in C(ansible.cfg), or E(ANSIBLE_STDOUT_CALLBACK))
notes:
  - Each host line comes from the result's C(msg), so the same line is there with any other callback.
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# stdout_callback = hangup.ssh.fleet
# bin_ansible_callbacks = true
#
# ANSIBLE_STDOUT_CALLBACK=hangup.ssh.fleet ANSIBLE_LOAD_CALLBACK_PLUGINS=1 \
#   HANGUP_FLEET_FILE=fleet.csv ansible all -m hangup.ssh.hung_sessions -a kill=true
"""

from ansible import constants as C
from ansible.plugins.callback.default import CallbackModule as DefaultCallback

from ansible_collections.hangup.ssh.plugins.plugin_utils import _fleet

COLORS = {"ok": C.COLOR_OK, "changed": C.COLOR_CHANGED, "failed": C.COLOR_ERROR, "unreachable": C.COLOR_UNREACHABLE}
PREFIXES = {"ok": "ok: [%s]", "changed": "changed: [%s]", "failed": "fatal: [%s]: FAILED!",
            "unreachable": "fatal: [%s]: UNREACHABLE!"}


class CallbackModule(_fleet.FleetCallback, DefaultCallback):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "hangup.ssh.fleet"

    def _line(self, result, status, ignoring=False):
        """Print this host's line for a task of ours; False for any other task (the default output then)."""
        row = self.fleet_record(result, status)
        if row is None:
            return False
        if self._last_task_banner != result.task._uuid:
            self._print_task_banner(result.task)
        if self._display.verbosity < 3:
            # the line says what failed; the error's own report repeats it (at -vvv, with its traceback)
            result.result.pop("exception", None)
        self._handle_warnings_and_exception(result)
        line = "%s %s" % (PREFIXES[status] % self.host_label(result), row["msg"])
        if self._run_is_verbose(result, verbosity=2):
            line += " => %s" % self._dump_results(result.result)
        stderr = status in ("failed", "unreachable") and self.get_option("display_failed_stderr")
        self._display.display(line, color=COLORS[status], stderr=stderr)
        if ignoring:
            self._display.display("...ignoring", color=C.COLOR_SKIP)
        return True

    def v2_runner_on_ok(self, result):
        if not self._line(result, "changed" if result.result.get("changed") else "ok"):
            super(CallbackModule, self).v2_runner_on_ok(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not self._line(result, "failed", ignore_errors):
            super(CallbackModule, self).v2_runner_on_failed(result, ignore_errors)

    def v2_runner_on_unreachable(self, result):
        if not self._line(result, "unreachable", result.task.ignore_unreachable):
            super(CallbackModule, self).v2_runner_on_unreachable(result)

    def v2_runner_on_skipped(self, result):
        self.fleet_record(result, "skipped")
        super(CallbackModule, self).v2_runner_on_skipped(result)

    def v2_playbook_on_stats(self, stats):
        super(CallbackModule, self).v2_playbook_on_stats(stats)
        self.fleet_report()
