"""Ad-hoc `ansible` over real SSH from the controller, with ControlPersist, as users run it.

    ah = AdHoc(tmpdir, {"hk-d11": "10.88.0.5"}, user="ops", become=True)
    ah.authorize(lab.host("hk-d11"))        # install the generated key for `user`
    ah.run("hangup.ssh.hung_sessions", "kill=true")  -> {host: result dict with '_status'}
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

from playbook import collection_root

_RESULT = re.compile(r"^(\S+) \| (SUCCESS|CHANGED|SKIPPED|FAILED!|UNREACHABLE!)(?: => |$)", re.M)


def parse_adhoc(output):
    """{host: result dict} from the minimal callback's 'host | STATUS => {json}' blocks.

    Each result gets '_status': SUCCESS, CHANGED, SKIPPED, FAILED or UNREACHABLE.
    """
    results, marks = {}, list(_RESULT.finditer(output))
    for mark, nxt in zip(marks, marks[1:] + [None]):
        text = output[mark.end():nxt.start() if nxt else len(output)].strip()
        # the minimal callback prints a skipped host without a result
        result = json.JSONDecoder().raw_decode(text)[0] if text.startswith("{") else {"skipped": True}
        # the callback prints the outcome before the JSON, not in it
        result["_status"] = mark.group(2).rstrip("!")
        results[mark.group(1)] = result
    return results


class AdHoc:
    """An inventory of lab hosts reached over SSH with a key made for it."""

    def __init__(self, tmp, hosts, user="root", become=False):
        self.tmp, self.hosts, self.user = tmp, dict(hosts), user
        self.key = os.path.join(tmp, "id_ed25519")
        if not os.path.exists(self.key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key], check=True)
        lines = ["[all]"] + [f"{name} ansible_host={ip}" for name, ip in self.hosts.items()]
        lines += ["[all:vars]", f"ansible_user={user}", f"ansible_become={str(become).lower()}",
                  f"ansible_ssh_private_key_file={self.key}", "ansible_python_interpreter=/usr/bin/python3"]
        self.inventory = os.path.join(tmp, "inventory.ini")
        with open(self.inventory, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.env = dict(
            os.environ, ANSIBLE_COLLECTIONS_PATH=collection_root(), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(tmp, "cp"),
            ANSIBLE_SSH_ARGS=f"-o ControlMaster=auto -o ControlPersist=300s -o UserKnownHostsFile={tmp}/known_hosts")

    @classmethod
    def for_lab(cls, lab, names, user="root", become=False):
        """Ad-hoc over the lab hosts `names`, with a fresh key authorized for `user` on each."""
        adhoc = cls(tempfile.mkdtemp(prefix="hk-adhoc-"), {n: lab.host(n).ip for n in names}, user=user, become=become)
        for name in names:
            adhoc.authorize(lab.host(name))
        return adhoc

    def authorize(self, host):
        """Let the generated key log in to a lab Host as `user`."""
        with open(self.key + ".pub") as f:
            pub = f.read().strip()
        host.sh(f"home=$(getent passwd {self.user} | cut -d: -f6) && mkdir -p -m 700 $home/.ssh && "
                f"echo {shlex.quote(pub)} > $home/.ssh/authorized_keys && chown -R {self.user}: $home/.ssh && "
                "chmod 600 $home/.ssh/authorized_keys")

    def argv(self, module, args="", check=False, pattern="all", extra=()):
        return ([os.path.join(os.path.dirname(sys.executable), "ansible"), pattern, "-i", self.inventory,
                 "-m", module, "-a", args] + (["--check"] if check else []) + list(extra))

    def run(self, module, args="", check=False, pattern="all", env=None, extra=()):
        """{host: result}; `env` adds to the environment (ANSIBLE_PIPELINING, say), `extra` to the argv."""
        proc = subprocess.run(self.argv(module, args, check, pattern, extra), capture_output=True, text=True,
                              env=dict(self.env, **(env or {})), timeout=300, check=False)
        results = parse_adhoc(proc.stdout)
        expected = set(self.hosts) if pattern == "all" else {pattern}
        assert set(results) == expected, proc.stdout[-3000:] + proc.stderr[-3000:]
        return results

    def close(self):
        """End the ControlPersist masters."""
        subprocess.run(["pkill", "-f", os.path.join(self.tmp, "cp")], check=False)
