"""hangup.ssh across a fleet: N lab hosts over real SSH, each command against ansible.builtin.ping.

The lab grows N = 1, 10, 50, 100 (lightweight Debian 12 containers, OpenSSH 9.2, one
image, one podman network of its own), reached from the controller over real SSH
(ansible.builtin.ssh, a generated key, inventory and known_hosts in .lab/fleet,
ansible.cfg's ControlPersist). Every command at a given N runs with the same --forks
(FLEET_FORKS, default 20). A client container, whose small TCP receive buffer makes a
frozen client show as a closed window, keeps two idle sessions open into every host and,
at each N, a new session that streams output, whose ssh process it then freezes (SIGSTOP).
At each N:

1. `ansible -m ansible.builtin.ping` and `ansible -m hangup.ssh.hung_sessions`, RUNS
   each, alternating, after a warm-up; ratio of medians (goal: at most 1.5 at every N)
   and growth, time at the largest N over time at the smallest (goal: no worse than ping's).
2. Once every frozen session is classified hung (polled from 30 s after the freeze, or
   once the timing runs are over; the first poll that saw them all is recorded),
   `-a kill=true`: each host's `killed` must be exactly its frozen session, never the
   module's own; afterwards every idle session must still be listed on its host and its
   client still running (checked: exit non-zero otherwise).
3. `ansible -m hangup.ssh.hard_timeout -a "cmd='sleep 30' timeout=5"`: each host's own
   `elapsed` at most 5.5 s (checked); the whole run's wall time against 5 s + ping's
   median (goal: within it). A task holds its fork for the whole deadline, so with more
   hosts than forks they take turns, 5 s each turn: the same run again with a fork per host,
   against 5 s + ping's median with as many forks. Next to each, the same deadline the plain
   way, `ansible.builtin.command` running coreutils' `timeout -k 1 5 sleep 30`.
4. `ansible-playbook playbooks/harden-ssh.yml` twice; the second must report changed=0
   (checked); wall time per host (total / N) and second / first (goal: at most 0.6).
   Before each N the role's two drop-ins are removed and sshd reloaded on every host,
   so the first run at each N hardens all N hosts from the image's state, not only the
   new ones; this also keeps sshd from dropping the next frozen sessions itself.

Memory, at each N with its sessions open: the machine's used memory (MemTotal - MemAvailable)
over what it was before the lab (this counts conmon, network namespaces and kernel buffers, and
anything else the machine does meanwhile; per container: that over N + 1), the sum of the
containers' processes' PSS, and of their memory cgroups' usage (page cache included, so more
than the machine's own count). Prints a table, writes
bench/results/fleet.json (make figure draws docs/fleet.png from it), removes the lab
at the end, also on failure or Ctrl-C.

    make setup && .venv/bin/python bench/fleet.py [N ...]   (default: 1 10 50 100; 35 min on 2 cores)
    FLEET_FORKS=20 FLEET_RUNS=3 ... (forks of every command, timing runs per command)
"""

import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.release import __version__ as ANSIBLE_CORE

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from adhoc import parse_adhoc  # noqa: E402
from hangkit import STATE_DIR, lab_image, parse_ss, podman, session_script, ssh_argv  # noqa: E402
from playbook import REPO, parse_recap  # noqa: E402

RESULTS = os.path.join(HERE, "results", "fleet.json")
DIR = os.path.join(REPO, ".lab", "fleet")
INVENTORY = os.path.join(DIR, "inventory.ini")
KEY = os.path.join(DIR, "id_ed25519")
NETWORK, SUBNET, PREFIX = "hangup-fleet", "10.89.70.0/24", "10.89.70."
CLIENT, CLIENT_IP = "hangup-fleet-client", PREFIX + "200"
IMAGE = lab_image("d12")
FORKS = int(os.environ.get("FLEET_FORKS", "20"))
RUNS = int(os.environ.get("FLEET_RUNS", "3"))
IDLE_PER_HOST = 2
STREAM = "while :; do date; head -c 20000 /dev/zero; done"
DROPINS = "/etc/ssh/sshd_config.d/00-hangup-keepalive.conf /etc/ssh/ssh_config.d/00-hangup-keepalive.conf"
HUNG_AFTER, HUNG_GIVE_UP = 30, 120  # seconds after the freeze: first poll, and when to stop waiting
DEADLINE, HOST_SLACK = 5, 0.5


def name(i):
    return f"hangup-fleet-{i:03d}"


def ip(i):
    return PREFIX + str(10 + i)


# ---------------------------------------------------------------- the lab

def remove_lab():
    names = [n for n in podman("ps", "-a", "--format", "{{.Names}}").stdout.split() if n.startswith("hangup-fleet-")]
    if names:
        podman("rm", "-f", "-t", "0", *names, timeout=300)
    podman("network", "rm", "-f", NETWORK, check=False)


def close_masters():
    """End the ControlPersist masters ansible started for this lab, one by one through their sockets."""
    cp = os.path.join(DIR, "cp")
    for sock in os.listdir(cp) if os.path.isdir(cp) else ():
        subprocess.run(["ssh", "-o", "ControlPath=" + os.path.join(cp, sock), "-O", "exit", "fleet"],
                       capture_output=True, check=False, timeout=10)


def create_lab():
    remove_lab()
    shutil.rmtree(DIR, ignore_errors=True)
    os.makedirs(os.path.join(DIR, "cp"))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hangup-fleet", "-f", KEY], check=True)
    podman("network", "create", "--subnet", SUBNET, NETWORK)
    # the client's small receive buffer fills before ssh's channel window: a frozen client shows as a zero window
    start_container(CLIENT, CLIENT_IP, "--sysctl", "net.ipv4.tcp_rmem=4096 16384 65536")
    with open(KEY) as f:
        podman("exec", "-i", CLIENT, "sh", "-c", "mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/id_ed25519 && "
               "chmod 600 /root/.ssh/id_ed25519", input=f.read())


def start_container(cname, address, *extra):
    podman("run", "-d", "--name", cname, "--hostname", cname, "--network", NETWORK, "--ip", address, *extra, IMAGE,
           timeout=120)
    with open(KEY + ".pub") as f:
        # authorize the key, then wait for sshd: one exec per container
        podman("exec", "-i", cname, "sh", "-c",
               "mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys"
               " && for i in $(seq 120); do ss -Htln 'sport = :22' | grep -q . && exit 0; sleep 0.5; done; exit 1",
               input=f.read(), timeout=120)


def grow(have, n):
    """Start hosts have+1 .. n; a few at a time, which podman and two cores take best."""
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: start_container(name(i), ip(i)), range(have + 1, n + 1)))
    with open(INVENTORY, "w") as f:
        f.write("[servers]\n" + "".join(f"{name(i)} ansible_host={ip(i)}\n" for i in range(1, n + 1)))
        f.write("\n[servers:vars]\nansible_connection=ansible.builtin.ssh\nansible_user=root\n"
                f"ansible_python_interpreter=/usr/bin/python3\nansible_ssh_private_key_file={KEY}\n"
                f"ansible_ssh_common_args=-o UserKnownHostsFile={DIR}/known_hosts "
                "-o StrictHostKeyChecking=accept-new\n")


def used_memory():
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return info["MemTotal"] - info["MemAvailable"]


def container_memory(n):
    """(sum of the containers' cgroup memory usage, sum of their processes' PSS) in bytes, client included."""
    read = ("cat /sys/fs/cgroup/memory/memory.usage_in_bytes; "
            "cat /proc/[0-9]*/smaps_rollup 2>/dev/null | awk '/^Pss:/ {s += $2} END {print s * 1024}'")
    with ThreadPoolExecutor(8) as pool:
        outs = pool.map(lambda c: podman("exec", c, "sh", "-c", read).stdout.split(),
                        [CLIENT] + [name(i) for i in range(1, n + 1)])
        pairs = [(int(a), int(b)) for a, b in outs]
    return sum(a for a, _b in pairs), sum(b for _a, b in pairs)


# ---------------------------------------------------------------- sessions, from the client

def open_sessions(sessions):
    """Start {session id: (host index, command)} in the client, from one script (too long for an argument)."""
    lines = []
    for k, (sid, (i, command)) in enumerate(sessions.items()):
        lines.append(f"( {session_script(sid, ssh_argv('notty', f'root@{ip(i)}', command=command))} ) "
                     ">/dev/null 2>&1 &")
        if k % 10 == 9:
            lines.append("sleep 1")  # paced, so the two cores keep up with the key exchanges
    podman("exec", "-i", CLIENT, "sh", "-c", "cat > /tmp/fleet-open.sh", input="\n".join(lines) + "\nwait\n")
    podman("exec", "-d", CLIENT, "sh", "/tmp/fleet-open.sh")


# one process for the whole table: the client is busy with hundreds of ssh processes
VIEW = f"""
import glob, os, subprocess
for path in glob.glob("{STATE_DIR}/*.pid"):
    with open(path) as f:
        out = path[:-4] + ".out"
        print(os.path.basename(path)[:-4], f.read().strip() or 0, os.path.getsize(out) if os.path.exists(out) else 0)
print("---")
print(subprocess.run(["ss", "-Htnp", "state", "established", "dport = :22"], capture_output=True, text=True).stdout)
"""


def client_view():
    """{session id: (ssh pid, local port or 0, bytes received)} of the client's sessions."""
    table, conns = podman("exec", "-i", CLIENT, "python3", "-", input=VIEW, timeout=180).stdout.split("---\n", 1)
    port_of = {pid: c["local"][1] for c in parse_ss(conns) for _proc, pid in c["procs"]}
    view = {}
    for line in table.splitlines():
        sid, pid, size = line.split()
        view[sid] = (int(pid), port_of.get(int(pid), 0), int(size))
    return view


def wait_sessions(sessions, timeout=300):
    """Wait until every session is connected and each streaming one has output; {id: (pid, port)}."""
    deadline = time.monotonic() + timeout
    while True:
        view = client_view()
        pending = [s for s, (_i, cmd) in sessions.items()
                   if s not in view or not view[s][1] or (cmd == STREAM and not view[s][2])]
        if not pending:
            return {s: view[s][:2] for s in sessions}
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} sessions not up after {timeout} s, e.g. {pending[:5]}")
        time.sleep(2)


def client_alive(pids):
    """PIDs of `pids` that are still running (not stopped, not gone) in the client."""
    out = podman("exec", CLIENT, "ps", "-o", "pid=,stat=", "-p", ",".join(map(str, pids)), check=False).stdout
    return {int(p) for p, stat in (line.split() for line in out.splitlines()) if not stat.startswith(("T", "Z"))}


# ---------------------------------------------------------------- ansible

def env(callback):
    # only this callback, whatever ansible.cfg enables, so the parsing below holds (an empty list is an error)
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK=callback,
                ANSIBLE_CALLBACKS_ENABLED=callback, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_NOCOLOR="1",
                ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="0", ANSIBLE_RETRY_FILES_ENABLED="0",
                ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(DIR, "cp"))


def tool(program):
    return os.path.join(os.path.dirname(sys.executable), program)


def run(argv, callback, timeout):
    """(wall seconds, the finished process) of one ansible command."""
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env(callback), capture_output=True, text=True, timeout=timeout,
                          check=False)
    return time.perf_counter() - t, proc


def adhoc(n, module, args="", forks=FORKS):
    """(wall seconds, {host: result}) of `ansible servers -m module -a args`; every host must answer."""
    wall, proc = run([tool("ansible"), "servers", "-i", INVENTORY, "--forks", str(forks), "-m", module, "-a", args],
                     "ansible.builtin.minimal", 900)
    results = parse_adhoc(proc.stdout)
    if set(results) != {name(i) for i in range(1, n + 1)}:
        raise RuntimeError(f"{module}: {len(results)} of {n} hosts answered\n"
                           f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return wall, results


def playbook(n):
    """(wall seconds, {host: recap counters}) of playbooks/harden-ssh.yml on the servers."""
    wall, proc = run([tool("ansible-playbook"), "-i", INVENTORY, "--forks", str(FORKS), "playbooks/harden-ssh.yml",
                      "-e", "harden_ssh_hosts=servers", "-e", "harden_ssh_dead_peer_timeout=60"],
                     "ansible.builtin.default", 1800)
    recap = parse_recap(proc.stdout)
    if proc.returncode or len(recap) != n:
        raise RuntimeError(f"harden-ssh.yml: rc {proc.returncode}\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}")
    return wall, recap


def unharden():
    """Remove the role's drop-ins and reload sshd on every host: the image's own configuration again."""
    _wall, proc = run([tool("ansible"), "servers", "-i", INVENTORY, "--forks", str(FORKS),
                       "-m", "ansible.builtin.shell", "-a", f"rm -f {DROPINS} && service ssh reload >/dev/null"],
                      "ansible.builtin.minimal", 900)
    if proc.returncode:
        raise RuntimeError(f"resetting sshd failed\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


# ---------------------------------------------------------------- the measurements at one N

def timing(n):
    adhoc(n, "ansible.builtin.ping")  # warm: every ControlPersist master up
    ping, hung = [], []
    for _run in range(RUNS):
        ping.append(adhoc(n, "ansible.builtin.ping")[0])
        hung.append(adhoc(n, "hangup.ssh.hung_sessions")[0])
    return {"ping_s": ping, "hung_sessions_s": hung, "ping": statistics.median(ping),
            "hung_sessions": statistics.median(hung), "ratio": statistics.median(hung) / statistics.median(ping)}


def ours(result):
    """{peer port: entry} of the inbound sessions from the client in one host's result."""
    return {e["peer_port"]: e for e in result.get("sessions", []) if e["peer_address"] == CLIENT_IP}


def wait_hung(n, frozen, frozen_at):
    """Poll hung_sessions from HUNG_AFTER s after the freeze until each host shows exactly its frozen session hung."""
    time.sleep(max(0.0, frozen_at + HUNG_AFTER - time.time()))
    while True:
        _wall, results = adhoc(n, "hangup.ssh.hung_sessions")
        wrong = {h: sorted(p for p, e in ours(r).items() if e["hung"]) for h, r in results.items()
                 if [p for p, e in ours(r).items() if e["hung"]] != [frozen[h]]}
        if not wrong or time.time() > frozen_at + HUNG_GIVE_UP:
            return round(time.time() - frozen_at, 1), wrong
        time.sleep(3)


def kill_check(n, frozen, idle, idle_pids):
    """Run kill=true; the problems, if it ended anything but the frozen sessions, or not all of them."""
    wall, results = adhoc(n, "hangup.ssh.hung_sessions", "kill=true")
    problems = []
    for host, result in results.items():
        killed = [(e["peer_address"], e["peer_port"]) for e in result.get("killed", [])]
        if killed != [(CLIENT_IP, frozen[host])] or any(e.get("self") for e in result.get("killed", [])):
            problems.append(f"{host}: killed {killed}, expected [({CLIENT_IP!r}, {frozen[host]})]")
        if result.get("failed_to_kill"):
            problems.append(f"{host}: failed_to_kill {result['failed_to_kill']}")
    _wall, after = adhoc(n, "hangup.ssh.hung_sessions")
    for host, result in after.items():
        listed = set(ours(result))
        if frozen[host] in listed or not idle[host] <= listed:
            problems.append(f"{host}: after the kill lists ports {sorted(listed)}; frozen {frozen[host]}, "
                            f"idle {sorted(idle[host])}")
    gone = set(idle_pids) - client_alive(idle_pids)
    if gone:
        problems.append(f"idle clients no longer running: {sorted(gone)}")
    killed = sum(len(r.get("killed", [])) for r in results.values())
    return {"wall_s": wall, "killed": killed, "expected": n, "exact": not problems, "problems": problems[:20]}


def deadline_run(n, ping, forks):
    # the same deadline by coreutils' timeout under ansible.builtin.command: what the plain way costs (rc 124)
    plain, proc = run([tool("ansible"), "servers", "-i", INVENTORY, "--forks", str(forks),
                       "-m", "ansible.builtin.command", "-a", f"timeout -k 1 {DEADLINE} sleep 30"],
                      "ansible.builtin.minimal", 900)
    # the minimal callback prints a command's result as 'host | FAILED | rc=124 >>'
    if proc.stdout.count("| FAILED | rc=124 >>") != n:
        raise RuntimeError(f"timeout under ansible.builtin.command: not rc 124 on every host\n{proc.stdout[-3000:]}")
    wall, results = adhoc(n, "hangup.ssh.hard_timeout", f"cmd='sleep 30' timeout={DEADLINE}", forks)
    elapsed = {h: r.get("elapsed") for h, r in results.items()}
    late = {h: e for h, e in elapsed.items() if e is None or e > DEADLINE + HOST_SLACK or not results[h]["timed_out"]}
    first = [min(r["signal_times"].values()) for r in results.values() if r.get("signal_times")]
    return {"forks": forks, "wall_s": wall, "max_host_elapsed_s": max(e for e in elapsed.values() if e is not None),
            "max_first_signal_s": max(first) if first else None, "late_hosts": late,
            "bound_s": DEADLINE + ping, "excess_s": wall - (DEADLINE + ping), "command_timeout_wall_s": plain}


def hard_timeout(n, ping):
    """With the forks of every command, then with a fork per host (ping again with as many, for the bound):
    a task holds its fork for the whole deadline, so with fewer forks than hosts they take turns."""
    row = deadline_run(n, ping, FORKS)
    wide = max(n, FORKS)
    if wide == FORKS:
        row["one_fork_per_host"] = dict(row)
    else:
        adhoc(n, "ansible.builtin.ping", forks=wide)  # warm: as many masters at once as the run below
        ping_wide = statistics.median(adhoc(n, "ansible.builtin.ping", forks=wide)[0] for _run in range(RUNS))
        row["one_fork_per_host"] = dict(deadline_run(n, ping_wide, wide), ping_s=ping_wide)
    return row


def harden(n):
    first, _recap = playbook(n)
    second, recap = playbook(n)
    changed = {h: c["changed"] for h, c in recap.items() if c.get("changed")}
    return {"first_s": first, "second_s": second, "first_per_host_s": first / n, "second_per_host_s": second / n,
            "ratio": second / first, "second_changed": changed}


def hang(n, have):
    """Idle sessions into the new hosts, a streaming one into every host, frozen at once.

    Returns ({host: frozen session's client port}, their ssh pids, {host: idle sessions' client ports},
    the idle sessions' ssh pids, when the freeze happened).
    """
    sessions = {f"f{i:03d}-idle{k}": (i, "sleep 86400") for i in range(have + 1, n + 1) for k in range(IDLE_PER_HOST)}
    sessions.update({f"f{i:03d}-n{n}-hung": (i, STREAM) for i in range(1, n + 1)})
    open_sessions(sessions)
    up = {s: v for s, v in wait_sessions(sessions).items() if s.endswith("-hung")}
    podman("exec", CLIENT, "kill", "-STOP", *[str(pid) for pid, _port in up.values()])
    frozen_at = time.time()
    idle = {name(i): set() for i in range(1, n + 1)}
    idle_pids = []
    for sid, (pid, port, _size) in client_view().items():
        if "-idle" in sid:
            idle[name(int(sid[1:4]))].add(port)
            idle_pids.append(pid)
    frozen = {name(int(s[1:4])): port for s, (_pid, port) in up.items()}
    return frozen, [pid for pid, _port in up.values()], idle, idle_pids, frozen_at


def measure(n, have, baseline_memory):
    """Everything at N hosts; hosts 1..have are up from the N before, with their idle sessions."""
    grow(have, n)
    unharden()  # the next frozen sessions must stay up until the module ends them
    frozen, frozen_pids, idle, idle_pids, frozen_at = hang(n, have)
    used, (cgroups, pss) = used_memory(), container_memory(n)
    row = {"hosts": n, "forks": FORKS, "sessions": {"idle": len(idle_pids), "frozen": len(frozen)},
           "memory": {"used_bytes": used, "lab_bytes": used - baseline_memory, "cgroups_bytes": cgroups,
                      "pss_bytes": pss, "per_container_mib": (used - baseline_memory) / (n + 1) / 2**20}}
    row.update(timing(n))
    row["classified_hung_after_s"], wrong = wait_hung(n, frozen, frozen_at)
    row["kill"] = kill_check(n, frozen, idle, idle_pids)
    if wrong:
        row["kill"]["problems"].insert(0, f"hung before the kill, not as expected: {dict(list(wrong.items())[:5])}")
        row["kill"]["exact"] = False
    # the frozen clients have nothing left to do
    podman("exec", CLIENT, "kill", "-KILL", *map(str, frozen_pids), check=False)
    row["hard_timeout"] = hard_timeout(n, row["ping"])
    row["harden"] = harden(n)
    print(line(row), flush=True)
    return row


# ---------------------------------------------------------------- report

HEADER = ("hosts  ping s  hung_sessions s  ratio  kill=true s  kill exact  harden 1st/2nd s/host  ratio  "
          "hard_timeout host max s  wall s (bound; command+timeout)  fork per host: wall s (bound; command+timeout)  "
          "lab MiB (PSS)")


def line(row):
    h, k, t = row["harden"], row["kill"], row["hard_timeout"]
    w = t["one_fork_per_host"]
    return (f"{row['hosts']:5d}  {row['ping']:6.2f}  {row['hung_sessions']:15.2f}  {row['ratio']:5.2f}  "
            f"{k['wall_s']:10.2f}  {('yes' if k['exact'] else 'NO'):>10}  "
            f"{h['first_per_host_s']:10.2f} / {h['second_per_host_s']:5.2f}  {h['ratio']:5.2f}  "
            f"{t['max_host_elapsed_s']:23.2f}  "
            f"{t['wall_s']:6.2f} ({t['bound_s']:5.2f}; {t['command_timeout_wall_s']:5.2f})  "
            f"{w['wall_s']:6.2f} ({w['bound_s']:5.2f}; {w['command_timeout_wall_s']:5.2f})  "
            f"{row['memory']['lab_bytes'] / 2**20:7.0f} ({row['memory']['pss_bytes'] / 2**20:.0f})")


def summary(rows):
    first, last = rows[0], rows[-1]
    growth = {"hosts": [first["hosts"], last["hosts"]], "ping": last["ping"] / first["ping"],
              "hung_sessions": last["hung_sessions"] / first["hung_sessions"]}
    goals = {
        "hung_sessions_over_ping_at_most_1.5": all(r["ratio"] <= 1.5 for r in rows),
        "growth_no_worse_than_ping": growth["hung_sessions"] <= growth["ping"],
        "harden_second_over_first_at_most_0.6": all(r["harden"]["ratio"] <= 0.6 for r in rows),
        "hard_timeout_wall_within_5_plus_ping": all(r["hard_timeout"]["excess_s"] <= 0 for r in rows),
        "hard_timeout_wall_within_5_plus_ping_with_a_fork_per_host": all(
            r["hard_timeout"]["one_fork_per_host"]["excess_s"] <= 0 for r in rows),
    }
    checks = {
        "kill_exact": all(r["kill"]["exact"] for r in rows),
        "harden_second_changed_0": all(not r["harden"]["second_changed"] for r in rows),
        "hard_timeout_hosts_within_5.5_s": all(
            not r["hard_timeout"]["late_hosts"] and not r["hard_timeout"]["one_fork_per_host"]["late_hosts"]
            for r in rows),
    }
    return growth, goals, checks


def machine(baseline_memory, after_memory):
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    return {"cores": os.cpu_count(), "mem_bytes": total, "used_before_lab_bytes": baseline_memory,
            "used_after_lab_bytes": after_memory,
            "ansible_core": ANSIBLE_CORE, "python": sys.version.split()[0], "image": IMAGE, "forks": FORKS,
            "runs": RUNS, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [1, 10, 50, 100]
    started = time.monotonic()
    baseline_memory = used_memory()
    rows, have = [], 0
    try:
        create_lab()
        print(f"fleet: forks {FORKS}, {RUNS} timing runs per command\n{HEADER}", flush=True)
        for n in sizes:
            rows.append(measure(n, have, baseline_memory))
            have = n
    finally:
        close_masters()
        remove_lab()
        shutil.rmtree(DIR, ignore_errors=True)
    growth, goals, checks = summary(rows)
    report = {"machine": machine(baseline_memory, used_memory()), "duration_s": round(time.monotonic() - started),
              "rows": rows, "growth": growth, "goals": goals, "checks": checks}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    print(HEADER)
    for row in rows:
        print(line(row))
    print(f"growth {growth['hosts'][0]} -> {growth['hosts'][1]} hosts: ping x{growth['ping']:.2f}, "
          f"hung_sessions x{growth['hung_sessions']:.2f}")
    for what, held in {**goals, **checks}.items():
        print(f"  {what}: {'yes' if held else 'NO'}")
    print(f"took {report['duration_s']} s; written {os.path.relpath(RESULTS)}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
