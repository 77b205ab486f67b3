"""hangup.ssh.hard_timeout against ansible.builtin.command, the task `timeout:` keyword and `async`.

One Debian 12 container, reached over SSH from the controller (ControlPersist).

1. Overhead: RUNS playbooks of LOOP tasks each, alternating ansible.builtin.command
   and hangup.ssh.hard_timeout on `true`; the time of an empty playbook is taken off
   both; ratio hard_timeout/command (goal: at most 1.15).
2. Deadline: a command that stamps its start, traps TERM to stamp it and keeps
   running, so only SIGKILL ends it; a watcher outside its tree stamps when it is
   gone. First signal and SIGKILL, in seconds after the deadline (goal: 0.5 each),
   measured on the host, not reported by the supervisor. The same command under
   the task `timeout:` keyword and under `async`, and whether anything (the
   command itself, or a child it daemonized with setsid) was left running.

    make setup && .venv/bin/python bench/hard_timeout.py [RUNS]   (default: 5)
"""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from adhoc import AdHoc  # noqa: E402
from hangkit import Lab, podman  # noqa: E402

HOST = "hk-bench-ht"
LOOP = 10
DEADLINE, KILL_AFTER = 2, 2
# stamps its start and the TERM it ignores; a setsid child tries to outlive it
STUBBORN = ("echo $$ > /tmp/b.pid; date +%s.%N > /tmp/b.start; trap 'date +%s.%N > /tmp/b.term' TERM; "
            "setsid sleep 3199 </dev/null >/dev/null 2>&1 & while :; do sleep 0.05; done")
WATCH = ("rm -f /tmp/b.*; while [ ! -s /tmp/b.pid ]; do sleep 0.01; done; p=$(cat /tmp/b.pid); "
         "while kill -0 $p 2>/dev/null; do sleep 0.01; done; date +%s.%N > /tmp/b.gone")


def playbook(tmp, name, task):
    """A play over all hosts with `task` (YAML of one task, or empty for no task)."""
    path = os.path.join(tmp, name + ".yml")
    body = "".join("    " + line + "\n" for line in task.strip().splitlines()) if task.strip() else "    []\n"
    with open(path, "w") as f:
        f.write("- hosts: all\n  gather_facts: false\n  tasks:\n" + body)
    return path


def run_playbook(adhoc, path):
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", adhoc.inventory, path]
    t = time.perf_counter()
    proc = subprocess.run(argv, env=dict(adhoc.env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default"),
                          capture_output=True, text=True, check=False)
    return time.perf_counter() - t, proc.stdout


def overhead(adhoc, tmp, runs):
    loop = f"loop: \"{{{{ range({LOOP}) | list }}}}\""
    empty = playbook(tmp, "empty", "")
    command = playbook(tmp, "command", f"- ansible.builtin.command: 'true'\n  changed_when: false\n  {loop}")
    hard = playbook(tmp, "hard", f"- hangup.ssh.hard_timeout:\n    cmd: 'true'\n    timeout: 30\n"
                                 f"  changed_when: false\n  {loop}")
    times = {"empty": [], "command": [], "hard": []}
    for _run in range(runs):
        for name, path in (("empty", empty), ("command", command), ("hard", hard)):
            times[name].append(run_playbook(adhoc, path)[0])
    e, c, h = (statistics.median(times[k]) for k in ("empty", "command", "hard"))
    per_c, per_h = (c - e) / LOOP, (h - e) / LOOP
    print(f"overhead, median of {runs} playbooks of {LOOP} tasks (empty playbook {e:.2f} s taken off):")
    print(f"  ansible.builtin.command {per_c * 1000:.0f} ms/task, hangup.ssh.hard_timeout {per_h * 1000:.0f} ms/task"
          f" -> ratio {per_h / per_c:.2f} (goal <= 1.15)")
    return per_h / per_c


def stamps(host):
    out = host.sh("for s in start term gone; do printf '%s ' $(cat /tmp/b.$s 2>/dev/null || echo -); done").stdout
    return [None if v == "-" else float(v) for v in out.split()]


def left(host):
    # [9] and [.]: the pattern must not match the shell that runs pgrep
    return host.sh("pgrep -f 'sleep 319[9]|sleep 0[.]05|b[.]start' | wc -l").stdout.strip() != "0"


def deadline_case(adhoc, host, tmp, how):
    podman("exec", "-d", HOST, "sh", "-c", WATCH)
    time.sleep(0.2)
    cmd = STUBBORN.replace("'", "''")
    if how == "hard_timeout":
        task = (f"- hangup.ssh.hard_timeout:\n    cmd: '{cmd}'\n    shell: true\n    timeout: {DEADLINE}\n"
                f"    kill_after: {KILL_AFTER}\n  ignore_errors: true\n")
    elif how == "timeout keyword":
        task = f"- ansible.builtin.shell: '{cmd}'\n  timeout: {DEADLINE}\n  ignore_errors: true\n"
    else:
        task = f"- ansible.builtin.shell: '{cmd}'\n  async: {DEADLINE}\n  poll: 1\n  ignore_errors: true\n"
    wall, _out = run_playbook(adhoc, playbook(tmp, "case", task))
    end = time.monotonic() + 10
    while time.monotonic() < end and stamps(host)[2] is None:
        time.sleep(0.2)
    start, term, gone = stamps(host)
    leftover = left(host)
    host.sh("pkill -KILL -f 'sleep 319[9]|sleep 0[.]05|b[.]start' || true")
    first = None if term is None else term - start - DEADLINE
    kill = None if gone is None else gone - start - DEADLINE - (KILL_AFTER if term is not None else 0)
    return first, kill, leftover, wall


def fmt(value):
    return "never" if value is None else f"{value:+.2f} s"


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    podman("rm", "-f", HOST, check=False)
    podman("run", "-d", "--name", HOST, "--hostname", HOST, "localhost/hangup-lab:d12")
    lab = Lab([HOST])
    host = lab.host(HOST)
    for _attempt in range(60):
        if host.sh("ss -Htln 'sport = :22' | grep -q .", check=False).returncode == 0:
            break
        time.sleep(0.5)
    adhoc = AdHoc.for_lab(lab, [HOST])
    tmp = adhoc.tmp
    try:
        adhoc.run("ansible.builtin.ping")  # ControlPersist up
        ratio = overhead(adhoc, tmp, runs)
        print(f"deadline {DEADLINE} s, kill_after {KILL_AFTER} s, a command that ignores TERM and daemonizes a child:")
        print(f"  {'method':18} {'first signal':>13} {'SIGKILL':>10} {'left running':>13} {'task took':>10}")
        for how in ("hard_timeout", "timeout keyword", "async"):
            first, kill, leftover, wall = deadline_case(adhoc, host, tmp, how)
            print(f"  {how:18} {fmt(first):>13} {fmt(kill):>10} {'yes' if leftover else 'no':>13} {wall:9.1f}s")
        print(f"hard_timeout: overhead ratio {ratio:.2f}")
    finally:
        adhoc.close()
        podman("rm", "-f", HOST, check=False)


if __name__ == "__main__":
    main()
