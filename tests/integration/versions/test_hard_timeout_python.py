"""Action hangup.ssh.hard_timeout on the Python of every lab image (the *_versions scenarios run it).

A deadline that ends a stubborn tree, and a command that finishes, over the
podman connection, with the interpreter Ansible discovers on each host.
"""

import json

import pytest

from playbook import run_playbook

PLAY = """
- name: hard_timeout on this host's Python
  hosts: all
  gather_facts: true
  tasks:
    - name: A tree that ignores TERM, past its deadline
      hangup.ssh.hard_timeout:
        cmd: sh -c 'trap "" TERM; sleep 30 & sleep 30; wait'
        timeout: 2
        kill_after: 1
      register: stubborn
      # a command that timed out fails the task, as timeout(1) does; here that is the point
      failed_when: not stubborn.timed_out

    - name: A command that ends in time
      hangup.ssh.hard_timeout:
        cmd: echo finished
        timeout: 10
      register: quick

    - name: Report
      ansible.builtin.debug:
        msg: "HK {{ {'python': ansible_facts['python_version'], 'stubborn': stubborn, 'quick': quick} | to_json }}"
"""


@pytest.mark.every_version
def test_hard_timeout_ends_the_tree_on_each_hosts_python(lab):
    rc, out, _stats = run_playbook(list(lab.hosts), PLAY)
    assert rc == 0, out[-3000:]
    reports = {}
    for line in out.splitlines():
        if '"msg": "HK ' in line:
            reports[len(reports)] = json.loads(json.loads("{" + line.strip().rstrip(",") + "}")["msg"][3:])
    assert len(reports) == len(lab.hosts), out[-3000:]
    for report in reports.values():
        stubborn, quick = report["stubborn"], report["quick"]
        print(f"\nPython {report['python']}: KILL at {stubborn['signal_times'].get('KILL')} s, "
              f"ended after {stubborn['elapsed']} s")
        assert stubborn["timed_out"] and stubborn["signal_sent"] == "KILL" and stubborn["failed_to_end"] == []
        # KILL at timeout + kill_after, within the 0.5 s the action promises
        assert 2.9 <= stubborn["signal_times"]["KILL"] <= 3.5 and stubborn["elapsed"] <= 4.0
        assert quick["rc"] == 0 and quick["stdout"] == "finished" and not quick["timed_out"]
