# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_table
type: aggregate
short_description: The fleet table of hung_sessions and hard_timeout at the end of the run, next to any output
version_added: 0.1.0
description:
  - Adds to whatever stdout callback is in use, at the end of the run, the table that P(hangup.ssh.fleet#callback)
    prints, one per M(hangup.ssh.hung_sessions) or M(hangup.ssh.hard_timeout) task, one row per host, what needs
    a person first; and writes it to O(fleet_file) when set.
  - Each host's one line is the result's C(msg), which the stdout callback shows with the rest of the result. For
    one line per host instead of the whole result, use P(hangup.ssh.fleet#callback) as the stdout callback.
extends_documentation_fragment:
  - hangup.ssh.fleet
requirements:
  - enabled in O(ignore:callbacks_enabled) (C(ansible.cfg)) or E(ANSIBLE_CALLBACKS_ENABLED); for ad-hoc C(ansible),
    also C(bin_ansible_callbacks=true) (or E(ANSIBLE_LOAD_CALLBACK_PLUGINS=1))
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# callbacks_enabled = hangup.ssh.fleet_table
#
# ANSIBLE_CALLBACKS_ENABLED=hangup.ssh.fleet_table HANGUP_FLEET_FILE=fleet.json \
#   ansible-playbook hangup.ssh.harden_ssh
"""

from ansible.plugins.callback import CallbackBase

from ansible_collections.hangup.ssh.plugins.plugin_utils import _fleet


class CallbackModule(_fleet.FleetCallback, CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "hangup.ssh.fleet_table"
    CALLBACK_NEEDS_ENABLED = True

    def v2_runner_on_ok(self, result):
        self.fleet_record(result, "changed" if result.result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.fleet_record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self.fleet_record(result, "unreachable")

    def v2_runner_on_skipped(self, result):
        self.fleet_record(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        self.fleet_report()
