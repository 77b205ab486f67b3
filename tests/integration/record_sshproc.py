"""Record what /proc and the kernel show of real SSH sessions, for the unit tests.

Starts one container per OpenSSH version plus a client on a dual-stack network,
opens the sessions listed in SESSIONS below into each server, hangs or orphans
some, and writes the server's process table, TCP tables, a raw NETLINK_SOCK_DIAG
reply and tty input times to tests/unit/fixtures/sshproc/VERSION.json, with
which kit session is which.

    .venv/bin/python tests/integration/record_sshproc.py [VARIANT...]   (as root, after make setup)

VARIANT is a lab image (lab/images.sh --list); by default every server image that is built.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hangkit import VARIANTS, Lab, built, podman, run_containers  # noqa: E402

# every OpenSSH the lab has: Debian's packages and the upstream builds
CLIENT = "hk-rec-client"
NETWORK = ("hk-rec-net", "fd00:4b::/64", "10.89.77.0/24")
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "unit", "fixtures", "sshproc")
MODULE_UTILS = os.path.join(HERE, "..", "..", "plugins", "module_utils")
# where the collection's module_utils are copied in each server, for the dump's imports
REMOTE = "/tmp/hk-record"
# Everything a unit test needs to rebuild a /proc-like tree of the server.
# Only the SSH_* variables of each environment are kept.
DUMP = r"""
import glob, json, os, socket, time
from ansible_collections.hangup.ssh.plugins.module_utils._sockdiag import NETLINK_SOCK_DIAG, build_request, parse_reply
procs = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    base = "/proc/" + pid
    try:
        stat = open(base + "/stat").read()
        cmd = open(base + "/cmdline", "rb").read().decode(errors="replace")
        uid = [l.split()[1] for l in open(base + "/status") if l.startswith("Uid:")][0]
        sessionid = open(base + "/sessionid").read().strip()
        try:
            exe = os.readlink(base + "/exe")
        except OSError:
            exe = None
        env = [e.decode(errors="replace") for e in open(base + "/environ", "rb").read().split(b"\0")
               if e.startswith(b"SSH_CONNECTION=") or e.startswith(b"SSH_CLIENT=")]
        fds = []
        for fd in os.listdir(base + "/fd"):
            try:
                fds.append(os.readlink(base + "/fd/" + fd))
            except OSError:
                pass
    except OSError:
        continue
    procs[pid] = {"stat": stat, "cmdline": cmd, "uid": uid, "sessionid": sessionid, "environ": env, "exe": exe,
                  "fd": sorted(f for f in fds if f.startswith("socket:"))}
chunks = []
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
    sock.sendto(build_request(family, sum(1 << n for n in (1, 3, 4, 5, 7, 8, 9, 10, 11)), seq), (0, 0))
    done = False
    while not done:
        data = sock.recv(65536)
        chunks.append(data.hex())
        done = parse_reply(data)[1]
ttys = {p[len("/dev/"):]: os.stat(p).st_atime for p in glob.glob("/dev/pts/[0-9]*")}
btime = [int(l.split()[1]) for l in open("/proc/stat") if l.startswith("btime ")][0]
import pwd
users = {p.pw_name: p.pw_uid for p in pwd.getpwall()}
print(json.dumps({"procs": procs, "users": users, "tcp": open("/proc/net/tcp").read(), "tcp6": open("/proc/net/tcp6").read(),
                  "sockdiag": chunks, "ttys": ttys, "now": time.time(), "btime": btime,
                  "clk_tck": os.sysconf("SC_CLK_TCK")}))
"""


def open_sessions(lab, server, n):
    """The recorded sessions of one server, by label."""
    s, c = lab.host(server), lab.host(CLIENT)
    for user in ("alice", "svc.backup-01"):
        s.sh(f"id {user} >/dev/null 2>&1 || useradd -m -s /bin/sh {user}")
        lab.trust(CLIENT, server)
        lab.share_key(server, user)
    lab.trust(server, CLIENT)
    sessions = {
        "root-pty": lab.open_session(CLIENT, server, "pty"),
        "root-command": lab.open_session(CLIENT, server, "notty"),
        "alice-sftp": lab.open_session(CLIENT, server, "sftp", user="alice"),
        "svc-pty-ipv6": lab.open_session(CLIENT, server, "pty", user="svc.backup-01", address=s.ip6),
        "root-forward-ipv6": lab.open_session(CLIENT, server, "forward", address=s.ip6,
                                              options=("-L", f"127.0.0.1:{24100 + n}:127.0.0.1:22")),
        "alice-mux": lab.open_session(CLIENT, server, "pty", user="alice",
                                      options=("-o", "ControlMaster=yes", "-o", f"ControlPath=/tmp/mux-{server}")),
        "alice-cut": lab.open_session(CLIENT, server, "notty", user="alice",
                                      command="while :; do date; head -c 2000 /dev/zero; sleep 0.2; done"),
        "svc-lost": lab.open_session(CLIENT, server, "notty", user="svc.backup-01"),
        "outbound": lab.open_session(server, CLIENT, "notty", options=("-o", "ServerAliveInterval=5")),
        # at the password prompt: the monitor already calls itself "alice [priv]"
        "alice-password": lab.open_session(CLIENT, server, "password", user="alice"),
        # a real session of alice whose command claims to be root's sshd
        "alice-forger": lab.open_session(CLIENT, server, "notty", user="alice", command=FORGED_IN_SESSION),
    }
    return sessions


# what a hostile user can start: processes titled like sshd's, one with a path in its "tty"
FORGED_IN_SESSION = "bash -c 'exec -a \"sshd: root@pts/0\" sleep 86400'"
FORGED_DETACHED = (
    "runuser -u alice -- setsid bash -c 'exec -a \"sshd-session: root [priv]\" sleep 86400' &"
    "runuser -u alice -- setsid bash -c 'exec -a \"sshd: root@../home/alice/f\" sleep 86400' &"
    "runuser -u alice -- setsid bash -c 'exec -a \"sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups\" "
    "sleep 86400' &"
)


def main(variants):
    net, subnet6, subnet4 = NETWORK
    servers = {f"hk-rec-{v}": v for v in variants}
    names = {**servers, CLIENT: "d12"}
    for name in names:
        podman("rm", "-f", name, check=False)
    podman("network", "rm", "-f", net, check=False)
    podman("network", "create", "--ipv6", "--subnet", subnet6, "--subnet", subnet4, net)
    # root reads the fds of non-root sshd processes only with CAP_SYS_PTRACE
    run_containers(names, "--network", net, "--cap-add", "SYS_PTRACE")
    lab = Lab(list(names))
    for server in servers:
        podman("exec", server, "mkdir", "-p", f"{REMOTE}/ansible_collections/hangup/ssh/plugins")
        podman("cp", MODULE_UTILS, f"{server}:{REMOTE}/ansible_collections/hangup/ssh/plugins/module_utils")
    try:
        sessions = {server: open_sessions(lab, server, n) for n, server in enumerate(servers)}
        lab.wait_established([x for per in sessions.values() for x in per.values()], timeout=40)
        for server, per in sessions.items():
            # a second pty over alice's connection: her sshd child then serves pts/N,pts/M
            podman("exec", "-d", CLIENT, "sh", "-c",
                   f"sleep 86400 | ssh -tt -o ControlPath=/tmp/mux-{server} alice@{lab.host(server).ip} >/dev/null 2>&1")
            lab.cut(per["alice-cut"], side="client")
            # svc.backup-01's sshd dies without a word: its `sleep` is left over
            lab.host(server).sh("kill -KILL " + " ".join(map(str, per["svc-lost"].server_pids)))
            lab.host(server).sh(FORGED_DETACHED)
        time.sleep(8)
        os.makedirs(OUT, exist_ok=True)
        for server, per in sessions.items():
            data = json.loads(podman("exec", "-i", "-e", f"PYTHONPATH={REMOTE}", server, "python3", "-", input=DUMP).stdout)
            data["sessions"] = {label: {"client_port": x.client_port, "client_pid": x.client_pid,
                                        "client": x.client.name, "server_pids": x.server_pids}
                                for label, x in per.items()}
            data["client_ip"], data["client_ip6"] = lab.host(CLIENT).ip, lab.host(CLIENT).ip6
            data["forged"] = sorted(int(p) for p, proc in data["procs"].items()
                                    if proc["cmdline"].startswith("sshd") and (proc["exe"] or "").endswith("/sleep"))
            version = lab.host(server).sh("ssh -V 2>&1").stdout.split("_", 1)[1].split("p", 1)[0]
            with open(os.path.join(OUT, f"{version}.json"), "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            print(f"{server}: OpenSSH {version}: {len(data['procs'])} processes recorded")
    finally:
        lab.heal()
        for name in names:
            podman("rm", "-f", name, check=False)
        podman("network", "rm", "-f", net, check=False)


if __name__ == "__main__":
    main(sys.argv[1:] or [v for v in VARIANTS if built(v)])
