"""Run ansible-playbook from a test against lab containers, with this checkout as hangup.ssh.

The collection is found through a link ansible_collections/hangup/ssh -> this
repository, so a test exercises the working tree, not an installed copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def role_play(role):
    """A playbook that applies `role` to all hosts; variables come as extra vars."""
    return f"""
- name: Apply {role}
  hosts: all
  gather_facts: true
  # what the role reads (distribution, service manager) is in the minimal subset; hardware is slow
  gather_subset: [min]
  roles:
    - role: {role}
"""


def collection_root():
    # one link per checkout: two clones on one machine must not re-point each other's
    tag = hashlib.sha256(REPO.encode()).hexdigest()[:10]
    root = os.path.join(tempfile.gettempdir(), f"hangup-ssh-{os.getuid()}-{tag}")
    link = os.path.join(root, "ansible_collections", "hangup", "ssh")
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.realpath(link) != REPO:
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(REPO, link)
    return root


def run_playbook(hosts, playbook, extra_vars=None, check=False, diff=False, timeout=600):
    """Run `playbook` (YAML text) on `hosts` over the podman connection.

    Returns (rc, output, stats): stats is {host: {"ok": n, "changed": n, "failed": n, ...}}
    read from the PLAY RECAP, output what ansible-playbook printed.
    """
    with tempfile.TemporaryDirectory() as tmp:
        inventory = os.path.join(tmp, "inventory.ini")
        with open(inventory, "w") as f:
            f.write("[all]\n" + "".join(f"{h} ansible_connection=containers.podman.podman\n" for h in hosts))
        path = os.path.join(tmp, "play.yml")
        with open(path, "w") as f:
            f.write(playbook)
        argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory, path]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collection_root(), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
                   ANSIBLE_NOCOLOR="1", ANSIBLE_PIPELINING="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_DEPRECATION_WARNINGS="0")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    return proc.returncode, proc.stdout + proc.stderr, parse_recap(proc.stdout)


def parse_recap(output):
    """{host: {counter: n}} from the default callback's PLAY RECAP lines."""
    stats = {}
    recap = output.split("PLAY RECAP", 1)[-1] if "PLAY RECAP" in output else ""
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", recap, re.M):
        stats[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return stats


if __name__ == "__main__":
    # `make lint` resolves hangup.ssh from this checkout through the same link
    print(collection_root())
