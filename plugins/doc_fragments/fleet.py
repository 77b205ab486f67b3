# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):

    # the options both fleet callbacks share
    DOCUMENTATION = r"""
options:
  fleet_file:
    description:
      - Also write the fleet table's rows, every task's and every host's, to this file at the end of the run, as
        JSON (a list of objects) when the name ends in C(.json), as CSV when it ends in C(.csv).
      - The file is replaced on each run. Other names are refused with a warning, and nothing is written.
    type: path
    env:
      - name: HANGUP_FLEET_FILE
    ini:
      - section: hangup_fleet
        key: file
"""
