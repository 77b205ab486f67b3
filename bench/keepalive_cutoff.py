"""Requested vs measured dead-peer cut-off of hangup.ssh.keepalive, per OpenSSH version.

For each requested time N, applies the role (both ends N s) to a lab container of
every OpenSSH the lab has built (Debian 11, 12, 13 and forky; the upstream
releases 8.0 to 10.5, see lab/images.sh), then, with the hang kit, freezes or
cuts one end of live sessions and measures when the other end drops them. The
baseline is the same sshd with the role's setting overridden to 0 (a second sshd
started with -o ClientAliveInterval=0): it never drops them. Prints ratios
measured/requested; the goal is 0.8 to 1.2.

    make setup && .venv/bin/python bench/keepalive_cutoff.py [N ...]   (default: 10 20 40)
    BENCH_VARIANTS="d12 u94" ... picks the images (default: every one built)
"""

import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from hangkit import NO_KEEPALIVE, VARIANTS, Lab, built, podman, run_containers  # noqa: E402
from playbook import role_play, run_playbook  # noqa: E402

RESULTS = os.path.join(HERE, "results", "keepalive_cutoff.json")
ROLE_PLAY = role_play("hangup.ssh.keepalive")
CONTROL_PORT = 2222
CASES = [  # (side measured, fault, ssh options, port)
    ("server", "freeze", NO_KEEPALIVE, 22),
    ("server", "cut", NO_KEEPALIVE, 22),
    ("client", "freeze", (), 22),
    ("client", "cut", (), 22),
    ("baseline", "freeze", NO_KEEPALIVE, CONTROL_PORT),
    ("baseline", "cut", NO_KEEPALIVE, CONTROL_PORT),
]


IMAGES = {f"hk-bench-{v}": v for v in (os.environ.get("BENCH_VARIANTS", "").split() or VARIANTS) if built(v)}


def start_lab():
    run_containers(IMAGES)
    lab = Lab(list(IMAGES))
    for h in lab.hosts.values():
        h.sh(f"/usr/sbin/sshd -p {CONTROL_PORT} -o ClientAliveInterval=0 -o PidFile=/run/sshd-control.pid")
    return lab


def measure(lab, knob):
    rc, out, _stats = run_playbook(list(IMAGES), ROLE_PLAY, {
        "keepalive_server_dead_peer_timeout": knob, "keepalive_client_dead_peer_timeout": knob})
    if rc:
        sys.exit(f"role failed for N={knob}:\n{out[-3000:]}")
    names = list(IMAGES)
    plan = []
    for i, server in enumerate(names):
        client = names[(i + 1) % len(names)]
        for side, fault, opts, port in CASES:
            s = lab.open_session(client, server, "notty", opts, port=port)
            s.planned, s.label = fault, side
            plan.append(s)
    lab.wait_established(plan)
    lab.watch_server(plan)
    for s in plan:
        if s.planned == "cut":
            lab.cut(s)
        elif s.label == "client":
            lab.freeze_server(s)
        else:
            lab.freeze_client(s)
    try:
        lab.sleep_until_after_faults(plan, 2 * knob)
        by_server = lab.elapsed([s for s in plan if s.label != "client"], side="server")
        by_client = lab.elapsed([s for s in plan if s.label == "client"], side="client")
    finally:
        lab.heal()
    results = {}
    for s in plan:
        got = by_server.get(s.id) if s.label != "client" else by_client.get(s.id)
        results.setdefault(("%d.%d" % s.server.openssh_version(), s.label), []).append(got)
    return results


def main(knobs):
    lab = start_lab()
    rows = []
    try:
        for knob in knobs:
            started = time.monotonic()
            for (ver, side), values in sorted(measure(lab, knob).items()):
                rows.append((ver, side, knob, values))
            print(f"N={knob}: measured in {time.monotonic() - started:.0f} s", file=sys.stderr)
    finally:
        for name in IMAGES:
            podman("rm", "-f", name, check=False)
    print(f"{'OpenSSH':8} {'side':9} {'requested':>9} {'measured (freeze, cut)':>24} {'ratio':>6}")
    for ver, side, knob, values in sorted(rows, key=lambda r: (r[2], tuple(map(int, r[0].split("."))), r[1])):
        if any(v is None for v in values):
            shown, ratio = f"still up after {2 * knob} s", "inf"
        else:
            shown, ratio = ", ".join(f"{v:.1f}" for v in values), f"{statistics.mean(values) / knob:.2f}"
        print(f"{ver:8} {side:9} {knob:>9} {shown:>24} {ratio:>6}")
    # bench/figure.py draws docs/cutoff.png from these
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"horizon": "2 x requested", "rows": [
            {"openssh": ver, "side": side, "requested": knob, "measured": values} for ver, side, knob, values in rows]},
            f, indent=1)
    print(f"written {os.path.relpath(RESULTS)}")


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("run as root: the hang kit uses podman and nsenter")
    subprocess.run(["podman", "version"], check=True, capture_output=True)
    main([int(a) for a in sys.argv[1:]] or [10, 20, 40])
