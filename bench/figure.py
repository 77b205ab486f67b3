"""docs/cutoff.png from bench/results/keepalive_cutoff.json (written by bench/keepalive_cutoff.py).

Per OpenSSH version and requested dead-peer time: how long until sshd dropped a dead client
without the role (the baseline sshd never did: drawn to the end of the wait, hatched), with the
role (server side: the client froze or was cut; client side: the server froze or was cut), and
the requested time as a line.

docs/fleet.png from bench/results/fleet.json (written by bench/fleet.py), when it exists: wall
time of each command against the number of hosts.

    make figure     (installs matplotlib from requirements/docs.txt into .venv first)
"""

import json
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "keepalive_cutoff.json")
OUT = os.path.join(HERE, "..", "docs", "cutoff.png")
FLEET_RESULTS = os.path.join(HERE, "results", "fleet.json")
FLEET_OUT = os.path.join(HERE, "..", "docs", "fleet.png")
# (label, row -> seconds, colour, panel): ad-hoc commands left, the playbook's whole run right
FLEET_SERIES = [
    ("ansible.builtin.ping (median)", lambda r: r["ping"], "#888888", 0),
    ("hangup.ssh.hung_sessions (median)", lambda r: r["hung_sessions"], "#2a7ab0", 0),
    ("hung_sessions kill=true", lambda r: r["kill"]["wall_s"], "#c0392b", 0),
    ("hard_timeout sleep 30, timeout=5", lambda r: r["hard_timeout"]["wall_s"], "#8e44ad", 0),
    ("hard_timeout, a fork per host", lambda r: r["hard_timeout"]["one_fork_per_host"]["wall_s"], "#d35400", 0),
    ("harden-ssh.yml, first run", lambda r: r["harden"]["first_s"], "#5fb35f", 1),
    ("harden-ssh.yml, second run (changed=0)", lambda r: r["harden"]["second_s"], "#e0a030", 1),
]
SIDES = [("baseline", "without the role: never dropped (drawn to the end of the wait, hatched)", "#bbbbbb"),
         ("server", "with the role: sshd drops the client", "#2a7ab0"),
         ("client", "with the role: ssh leaves the server", "#5fb35f")]


def main():
    with open(RESULTS) as f:
        rows = json.load(f)["rows"]
    knobs = sorted({r["requested"] for r in rows})
    versions = sorted({r["openssh"] for r in rows}, key=lambda v: tuple(map(int, v.split("."))))
    # one row per requested time: eleven versions need the width
    fig, axes = plt.subplots(len(knobs), 1, figsize=(max(7, 1.0 * len(versions) + 2), 2.9 * len(knobs)),
                             sharey=False, squeeze=False)
    for ax, knob in zip(axes[:, 0], knobs):
        width = 0.26
        for i, (side, label, color) in enumerate(SIDES):
            xs, heights, never = [], [], []
            for j, ver in enumerate(versions):
                values = next((r["measured"] for r in rows if r["openssh"] == ver and r["side"] == side
                               and r["requested"] == knob), None)
                if values is None:
                    continue
                xs.append(j + (i - 1) * width)
                if any(v is None for v in values):
                    heights.append(2 * knob)
                    never.append(True)
                else:
                    heights.append(statistics.mean(values))
                    never.append(False)
            bars = ax.bar(xs, heights, width, color=color, label=label)
            for rect, is_never in zip(bars, never):
                if is_never:
                    rect.set_hatch("//")
        ax.axhline(knob, color="#c0392b", linestyle="--", linewidth=1.2, label="requested")
        ax.set_xticks(range(len(versions)))
        ax.set_xticklabels(versions, fontsize=8)
        ax.set_xlabel("OpenSSH", fontsize=8)
        ax.set_title("dead-peer time requested: %d s" % knob, fontsize=10)
        ax.set_ylabel("seconds until dropped", fontsize=8)
        ax.set_ylim(0, 2.4 * knob)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("hangup.ssh.keepalive: a frozen or cut-off peer, measured in the lab (bench/keepalive_cutoff.py)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print("written", os.path.relpath(OUT))


def fleet():
    if not os.path.exists(FLEET_RESULTS):
        print("skipped", os.path.relpath(FLEET_OUT), "(no", os.path.relpath(FLEET_RESULTS) + ": run bench/fleet.py)")
        return
    with open(FLEET_RESULTS) as f:
        report = json.load(f)
    rows, facts = report["rows"], report["machine"]
    hosts = [r["hosts"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, value, color, panel in FLEET_SERIES:
        axes[panel].plot(hosts, [value(r) for r in rows], marker="o", color=color, label=label)
    axes[0].plot(hosts, [r["hard_timeout"]["bound_s"] for r in rows], linestyle="--", color="#8e44ad", alpha=0.6,
                 label="goal for hard_timeout: 5 s + ping")
    axes[0].plot(hosts, [r["hard_timeout"]["one_fork_per_host"]["bound_s"] for r in rows], linestyle="--",
                 color="#d35400", alpha=0.6, label="the same with a fork per host")
    titles = ("ad-hoc, whole command", "ansible-playbook playbooks/harden-ssh.yml, whole run")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("hosts", fontsize=8)
        ax.set_ylabel("seconds", fontsize=8)
        ax.set_xticks(hosts)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("hangup.ssh across a fleet of lab containers over SSH (bench/fleet.py): %d cores, forks %d, "
                 "ansible-core %s" % (facts["cores"], facts["forks"], facts["ansible_core"]), fontsize=10)
    fig.tight_layout()
    fig.savefig(FLEET_OUT, dpi=110)
    print("written", os.path.relpath(FLEET_OUT))


if __name__ == "__main__":
    main()
    fleet()
