"""hangup.ssh.hung_sessions at scale: 300+ real sessions, and 10,000 synthetic ones.

1. One server container (Debian 12, OpenSSH 9.2) gets SESSIONS real concurrent
   sessions from a client container (`ssh -T user@server sleep`, each its own TCP
   connection: a monitor, a child and a command on the server). Then, over SSH
   from the controller with ControlPersist, alternating runs of
   `ansible -m ansible.builtin.ping` (the baseline) and
   `ansible -m hangup.ssh.hung_sessions`; the ratio of medians is the whole
   task against ping (goal: at most 1.5). The module's own work (one pass over
   /proc, the netlink dump, the report) is also timed inside the container,
   next to a bare `python3 -c pass` on the same host.
2. The pure part (build_report and finish) on a synthetic table of 10,000
   sessions in this process (goal: under 1 s), against a baseline that only
   walks the same table once.

    make setup && .venv/bin/python bench/hung_sessions.py [SESSIONS] [RUNS]   (default: 300 7)
"""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "unit"))

from adhoc import AdHoc  # noqa: E402
from hangkit import BASE_SSH_OPTIONS, Lab, podman  # noqa: E402
from playbook import REPO, collection_root  # noqa: E402

sys.path.insert(0, collection_root())

from ansible_collections.hangup.ssh.plugins.module_utils import _hung  # noqa: E402
from synthetic import LISTEN, NoSystem, established, proc  # noqa: E402

SERVER, CLIENT = "hk-bench-hs-server", "hk-bench-hs-client"
LIMITS = {"unacked_timeout": 30, "max_backoff": 6, "unresponsive_timeout": 60, "max_idle": 3600}
# the module's own work, run inside the server with the collection's module_utils copied in
INSIDE = r"""
import os, sys, time
sys.path.insert(0, "/tmp/hk-bench")
from ansible_collections.hangup.ssh.plugins.module_utils import _hung
limits = dict(unacked_timeout=30, max_backoff=6, unresponsive_timeout=60, max_idle=0)
times = []
for _run in range(RUNS):
    t = time.perf_counter()
    procs, _skipped = _hung.snapshot("/proc")
    socks, source = _hung.read_sockets("/proc")
    entries = _hung.finish(_hung.build_report(procs, socks, _hung.System(), time.time(), 0, 100, limits,
                                              os.getpid()), _hung.DEFAULT_HUNG_WHEN)
    times.append(time.perf_counter() - t)
times.sort()
import subprocess
bare = []
for _run in range(RUNS):
    t = time.perf_counter()
    subprocess.run(["python3", "-c", "pass"], check=True)
    bare.append(time.perf_counter() - t)
bare.sort()
print(len([e for e in entries if e["kind"] == "inbound"]), source, times[len(times) // 2], bare[len(bare) // 2])
"""


def median_time(argv, env=None, runs=1):
    t = time.perf_counter()
    for _run in range(runs):
        subprocess.run(argv, env=env, check=True, capture_output=True)
    return (time.perf_counter() - t) / runs


def start(sessions):
    for name in (SERVER, CLIENT):
        podman("rm", "-f", name, check=False)
    podman("run", "-d", "--name", SERVER, "--hostname", SERVER, "--cap-add", "SYS_PTRACE", "localhost/hangup-lab:d12")
    podman("run", "-d", "--name", CLIENT, "--hostname", CLIENT, "localhost/hangup-lab:d12")
    lab = Lab([SERVER, CLIENT])
    server = lab.host(SERVER)
    for _run in range(60):
        if server.sh("ss -Htln 'sport = :22' | grep -q .", check=False).returncode == 0:
            break
        time.sleep(0.5)
    server.sh("useradd -m -s /bin/sh bench && printf 'MaxStartups 200\\nMaxSessions 20\\n' "
              "> /etc/ssh/sshd_config.d/00-bench.conf && kill -HUP $(cat /run/sshd.pid)")
    lab.trust(CLIENT, SERVER)
    lab.share_key(SERVER, "bench")
    opts = " ".join(BASE_SSH_OPTIONS)
    # batches of 20, so sshd's MaxStartups never refuses one
    podman("exec", "-d", CLIENT, "sh", "-c",
           f"for i in $(seq {sessions}); do ssh {opts} -T -n bench@{server.ip} sleep 86400 >/dev/null 2>&1 & "
           f"[ $((i % 20)) = 0 ] && sleep 1; done; wait")
    deadline = time.monotonic() + 300
    count = 0
    while time.monotonic() < deadline:
        count = int(server.sh("pgrep -c -f '^sleep 86400' || true").stdout.strip() or 0)
        if count >= sessions:
            break
        time.sleep(1)
    return lab, count


def bench_real(sessions, runs):
    lab, count = start(sessions)
    server = lab.host(SERVER)
    print(f"real sessions: {count} concurrent `ssh -T bench@server sleep` sessions in {SERVER} "
          f"({server.sh('ps -e --no-headers | wc -l').stdout.strip()} processes)")
    adhoc = AdHoc.for_lab(lab, [SERVER])
    try:
        assert adhoc.run("ansible.builtin.ping")[SERVER]["ping"] == "pong"  # ControlPersist up
        listed = adhoc.run("hangup.ssh.hung_sessions")[SERVER]
        inbound = [e for e in listed["sessions"] if e["kind"] == "inbound"]
        ping, hung = [], []
        for _run in range(runs):
            ping.append(median_time(adhoc.argv("ansible.builtin.ping"), adhoc.env))
            hung.append(median_time(adhoc.argv("hangup.ssh.hung_sessions"), adhoc.env))
        ping_m, hung_m = statistics.median(ping), statistics.median(hung)
        print(f"  module listed {len(inbound)} inbound sessions (liveness from {listed['liveness_source']})")
        print(f"  whole task, median of {runs}: ansible.builtin.ping {ping_m:.2f} s, "
              f"hangup.ssh.hung_sessions {hung_m:.2f} s -> ratio {hung_m / ping_m:.2f} (goal <= 1.5)")
        # the module's own work, inside the server
        podman("exec", SERVER, "mkdir", "-p", "/tmp/hk-bench/ansible_collections/hangup/ssh/plugins")
        podman("cp", os.path.join(REPO, "plugins", "module_utils"),
               f"{SERVER}:/tmp/hk-bench/ansible_collections/hangup/ssh/plugins/")
        for pkg in ("ansible_collections", "ansible_collections/hangup", "ansible_collections/hangup/ssh",
                    "ansible_collections/hangup/ssh/plugins", "ansible_collections/hangup/ssh/plugins/module_utils"):
            server.sh(f"touch /tmp/hk-bench/{pkg}/__init__.py")
        out = server.sh("python3 -", input=INSIDE.replace("RUNS", str(runs))).stdout.split()
        own, bare = float(out[2]), float(out[3])
        print(f"  module's own work inside the server: {own * 1000:.0f} ms for {out[0]} sessions "
              f"({own / int(out[0]) * 1e6:.0f} us each); python3 startup there {bare * 1000:.0f} ms "
              f"-> ratio {own / bare:.2f}")
        return hung_m / ping_m
    finally:
        adhoc.close()
        for name in (SERVER, CLIENT):
            podman("rm", "-f", name, check=False)


def synthetic(n):
    """A process table and netlink-like sockets of n inbound sessions (monitor, child, shell)."""
    procs = {1: proc(1, 0, "init"), 15: proc(15, 1, "sshd: /usr/sbin/sshd [listener]", sockets=[0])}
    sockets = {0: LISTEN}
    for i in range(n):
        mon, child, shell = 100 + 3 * i, 101 + 3 * i, 102 + 3 * i
        procs[mon] = proc(mon, 15, "sshd: u%d [priv]" % i)
        procs[child] = proc(child, mon, "sshd: u%d@notty" % i, uid=1000, sockets=[i + 1])
        procs[shell] = proc(shell, child, "sleep 86400", uid=1000)
        peer = ("10.%d.%d.%d" % (i >> 16, (i >> 8) & 255, i & 255), 40000 + i % 20000)
        sockets[i + 1] = established(("10.0.0.2", 22), peer, unacked=i % 7 == 0, backoff=i % 11, last_ack_recv=40000,
                                     last_data_recv=1000 * (i % 90), last_data_sent=10)
    return procs, sockets


class Probing(_hung.NoKeepalives):
    """sshd probing every 2 s: the lookup the module caches, without its `sshd -T` runs."""

    def inbound(self, user, peer, local):
        return _hung.alive_window(2, 3)


def bench_synthetic(n, runs):
    procs, sockets = synthetic(n)
    system = NoSystem("/nonexistent", "/nonexistent")

    def classify_all():
        entries = _hung.build_report(procs, sockets, system, 1e9, 0, 100, LIMITS, 1, outbound=False,
                                     keepalives=Probing())
        return _hung.finish(entries, _hung.DEFAULT_HUNG_WHEN)

    def baseline():
        # one walk over the same table, touching every process and socket once
        return sum(len(p["cmdline"]) for p in procs.values()) + sum(s["local"][1] for s in sockets.values())

    times, base = [], []
    for _run in range(runs):
        t = time.perf_counter()
        entries = classify_all()
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        baseline()
        base.append(time.perf_counter() - t)
    m, b = statistics.median(times), statistics.median(base)
    print(f"synthetic: {len(entries)} sessions ({len(procs)} processes), {sum(e['hung'] for e in entries)} hung: "
          f"classification {m * 1000:.0f} ms (goal < 1000 ms, ratio to goal {m:.2f}); "
          f"one bare walk over the table {b * 1000:.1f} ms -> ratio {m / b:.1f}")
    return m


def main():
    sessions = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    bench_synthetic(10000, runs)
    ratio = bench_real(sessions, runs)
    print(f"hung_sessions: task/ping {ratio:.2f}")


if __name__ == "__main__":
    main()
