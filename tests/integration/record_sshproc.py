"""Record the process and TCP tables of real SSH sessions for tests/unit/test_sshproc.py.

Starts one container per OpenSSH version plus a client, opens a root pty session,
a root `ssh host cmd`, an sftp session and a pty session of svc.backup-01 into
each, and writes what /proc shows of them to tests/unit/fixtures/sshproc/VERSION.json.

    .venv/bin/python tests/integration/record_sshproc.py     (as root, after make setup)
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hangkit import Lab, podman  # noqa: E402

SERVERS = {"hk-rec-d11": "d11", "hk-rec-d12": "d12", "hk-rec-d13": "d13"}
CLIENT = "hk-rec-client"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit", "fixtures", "sshproc")
# Everything a unit test needs to rebuild a /proc-like tree of the server.
DUMP = r"""
import json, os
procs = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    base = "/proc/" + pid
    try:
        stat = open(base + "/stat").read()
        cmd = open(base + "/cmdline", "rb").read().decode(errors="replace")
        uid = [l.split()[1] for l in open(base + "/status") if l.startswith("Uid:")][0]
        fds = []
        for fd in os.listdir(base + "/fd"):
            try:
                fds.append(os.readlink(base + "/fd/" + fd))
            except OSError:
                pass
    except OSError:
        continue
    procs[pid] = {"stat": stat, "cmdline": cmd, "uid": uid, "fd": sorted(f for f in fds if f.startswith("socket:"))}
print(json.dumps({"procs": procs, "tcp": open("/proc/net/tcp").read(), "tcp6": open("/proc/net/tcp6").read()}))
"""


def main():
    names = {**{n: f"localhost/hangup-lab:{v}" for n, v in SERVERS.items()}, CLIENT: "localhost/hangup-lab:d12"}
    for name, image in names.items():
        podman("rm", "-f", name, check=False)
        podman("run", "-d", "--name", name, "--hostname", name, image)
    time.sleep(3)
    lab = Lab(list(names))
    try:
        sessions = []
        for server in SERVERS:
            s = lab.host(server)
            s.sh("id svc.backup-01 >/dev/null 2>&1 || useradd -m svc.backup-01; "
                 "mkdir -p -m 700 ~svc.backup-01/.ssh; cp /root/.ssh/authorized_keys ~svc.backup-01/.ssh/ 2>/dev/null; true")
            sessions += [lab.open_session(CLIENT, server, "pty"), lab.open_session(CLIENT, server, "notty")]
        lab.wait_established(sessions)
        for server in SERVERS:
            s, c = lab.host(server), lab.host(CLIENT)
            s.sh("cp /root/.ssh/authorized_keys ~svc.backup-01/.ssh/ && chown -R svc.backup-01 ~svc.backup-01/.ssh")
            opts = "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
            podman("exec", "-d", CLIENT, "sh", "-c", f"sleep 600 | sftp {opts} root@{s.ip} >/dev/null 2>&1")
            podman("exec", "-d", CLIENT, "sh", "-c",
                   f"mkfifo /tmp/svc-{server}; ssh -tt {opts} svc.backup-01@{s.ip} < /tmp/svc-{server} >/dev/null 2>&1 & "
                   f"exec 3>/tmp/svc-{server}; wait")
        time.sleep(4)
        os.makedirs(OUT, exist_ok=True)
        for server, variant in SERVERS.items():
            text = podman("exec", "-i", server, "python3", "-", input=DUMP).stdout
            data = json.loads(text)
            version = lab.host(server).sh("ssh -V 2>&1").stdout.split("_", 1)[1].split("p", 1)[0]
            with open(os.path.join(OUT, f"{version}.json"), "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            print(f"{server}: OpenSSH {version}: {len(data['procs'])} processes recorded")
    finally:
        lab.heal()
        for name in names:
            podman("rm", "-f", name, check=False)


if __name__ == "__main__":
    main()
