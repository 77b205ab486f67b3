#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: user_ssh_config
short_description: Put a managed block in a user's ~/.ssh/config, acting as that user
version_added: 0.1.0
description:
  - Adds or replaces a block between marker lines at the end of O(user)'s C(~/.ssh/config), creating C(~/.ssh) (mode
    C(0700)) and the file (mode C(0600)) when missing, and tightening their modes.
  - Everything in the home is done by a child process that has become the user (uid, gid and groups), so a link a
    hostile user puts there at any moment, even while the module runs, leads only where that user could go anyway.
    Root never reads, writes, creates or shows a file in the home, and never lets C(ssh) evaluate the user's file.
  - Even as the user nothing is followed. C(~/.ssh) and C(config) are opened without following links, relative to
    the directory already opened; a link or anything but a directory and a regular file there is refused with a
    message that says what was found, never what it holds. The new file is written beside the old one, checked
    with C(ssh -G) as the user, and renamed over it.
  - The home is the passwd entry's path; a link to it that the system made (C(/home) on another disk) is followed,
    and what it leads to must be a directory the user owns.
  - The role C(hangup.ssh.keepalive) uses this for C(keepalive_users).
author:
  - hangup.ssh maintainers (@hangup-ssh)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the file as the user and reports what would change; nothing is created or written.
  diff_mode:
    support: full
    details: The diff shows the file as the user sees it.
  platform:
    support: full
    platforms: posix
    details: Linux; needs root to act as another user.
options:
  user:
    description: The user whose C(~/.ssh/config) gets the block.
    type: str
    required: true
  block:
    description: The lines to put between the markers.
    type: str
    required: true
  marker:
    description: The marker line; C({mark}) becomes C(BEGIN) and C(END).
    type: str
    default: "# {mark} hangup.ssh managed block"
  missing_home:
    description:
      - What to do for a user without a usable home (none, or one even the user cannot open, such as a network home
        that is not mounted). V(skip) reports the task as skipped with the reason.
      - A user that does not exist is treated the same way.
    type: str
    choices: [fail, skip]
    default: fail
  ssh:
    description: The C(ssh) binary that checks the block (as root, alone) and the new file (as the user).
    type: path
    default: ssh
  verify:
    description:
      - Keywords to read back, as the user, from C(ssh -G) for a host no configuration names, once the file is written
        (not in check mode); RV(effective) and RV(sources) hold what was found.
    type: list
    elements: str
    default: []
notes:
  - A root-squashed network home works, since the user, not root, opens it.
seealso:
  - module: hangup.ssh.hung_sessions
    description: Its outbound lookups run C(ssh -G) as the client's user in the same spirit.
"""

EXAMPLES = r"""
- name: Keepalives for alice's own ssh client
  hangup.ssh.user_ssh_config:
    user: alice
    marker: "# {mark} keepalives"
    block: |
      Host *
          ServerAliveInterval 15
          ServerAliveCountMax 3
  become: true
"""

RETURN = r"""
config_path:
  description: The file, as the passwd entry's home names it. Not named C(path), which Ansible would C(stat) as root.
  returned: when the user has a home
  type: str
  sample: /home/alice/.ssh/config
effective:
  description: The O(verify) keywords as C(ssh -G) run as the user shows them, one C(keyword value) a line.
  returned: when O(verify) is given, outside check mode
  type: str
  sample: "serveraliveinterval 6\nserveralivecountmax 3"
sources:
  description: The file's lines that set an O(verify) keyword, as C(grep -Hin) prints them.
  returned: when the user has a home
  type: list
  elements: str
  sample: ["/home/alice/.ssh/config:12:ServerAliveInterval 6"]
notes:
  description: What changed besides the content (a new C(~/.ssh), modes tightened).
  returned: when the user has a home
  type: list
  elements: str
  sample: ["/home/alice/.ssh mode set to 0700"]
"""

import os
import pwd
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hangup.ssh.plugins.module_utils import _checks, _run, _userfile

ARGUMENT_SPEC = dict(
    user=dict(type="str", required=True),
    block=dict(type="str", required=True),
    marker=dict(type="str", default="# {mark} hangup.ssh managed block"),
    missing_home=dict(type="str", choices=["fail", "skip"], default="fail"),
    ssh=dict(type="path", default="ssh"),
    verify=dict(type="list", elements="str", default=[]),
)


def check_block(module, ssh):
    """The block alone, as ssh reads it: root's own text, in a directory only root can enter."""
    tmp = tempfile.mkdtemp(prefix="hangup-block-")
    try:
        path = os.path.join(tmp, "block")
        with open(path, "w") as f:
            f.write(module.params["block"])
        rc, out = _run.run_bounded([ssh, "-G", "-F", path, "hangup-validate.invalid"], _userfile.VALIDATE_TIMEOUT,
                                   merge_stderr=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if rc != 0:
        module.fail_json(msg="block: ssh -G does not accept it: %s" % (out or "").strip()[:500])


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    problems = _userfile.input_problems(params)
    _checks.fail_on(module, problems)
    try:
        pw = pwd.getpwnam(params["user"])
    except KeyError:
        msg = "%s does not exist" % params["user"]
        if params["missing_home"] == "skip":
            module.exit_json(changed=False, skipped=True, msg=msg)
        module.fail_json(msg="user: %s; set missing_home=skip to pass over such users" % msg)
    ssh = params["ssh"] if os.path.isabs(params["ssh"]) else module.get_bin_path(params["ssh"], required=True)
    check_block(module, ssh)
    try:
        result = _userfile.as_user(pw, _userfile.update_config, pw.pw_dir, pw.pw_uid, params["block"],
                                   params["marker"], module.check_mode, ssh, params["verify"])
    except _userfile.NoHome as exc:
        msg = "%s %s" % (params["user"], exc)
        if params["missing_home"] == "skip":
            module.exit_json(changed=False, skipped=True, msg=msg)
        module.fail_json(msg=msg + "; set missing_home=skip to pass over such users")
    except _userfile.Refused as exc:
        module.fail_json(msg="%s (user %s)" % (exc, params["user"]))
    except (RuntimeError, OSError) as exc:
        module.fail_json(msg="%s: %s" % (params["user"], exc))
    out = dict(changed=result["changed"], config_path=result["path"], notes=result["notes"],
               sources=[_userfile.printable(line) for line in result["sources"]])
    if result["effective"] is not None:
        out["effective"] = _userfile.printable(result["effective"])
    if module._diff and result["changed"]:
        # the user wrote this text: nothing in it may steer the operator's terminal
        out["diff"] = {"before": _userfile.printable(result["before"]), "after": _userfile.printable(result["after"]),
                       "before_header": result["path"], "after_header": result["path"]}
    module.exit_json(**out)


if __name__ == "__main__":
    main()
