"""Rebuild a server's /proc and /dev/pts from tables recorded in the lab.

fixtures/sshproc/VERSION.json is written by tests/integration/record_sshproc.py:
the process table (stat, cmdline, uid, executable, audit session id, the SSH_*
variables of each environment, socket fds), the pids of the forged processes
a hostile user started, /proc/net/tcp{,6}, a raw NETLINK_SOCK_DIAG
reply, the ttys' input times, and which lab session is which.
"""

import json
import os

from ansible_collections.hangup.ssh.plugins.module_utils import _hung, _sockdiag, _sshproc

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "sshproc")
# one recording per OpenSSH of the lab (Debian's and upstream builds), oldest first
VERSIONS = tuple(sorted((n[:-len(".json")] for n in os.listdir(HERE) if n.endswith(".json")),
                        key=lambda v: tuple(int(x) for x in v.split("."))))


def load(version):
    with open(os.path.join(HERE, version + ".json")) as f:
        return json.load(f)


OWNER = os.getuid()


def build_tree(tmp_path, recorded):
    """A /proc-like root and a /dev with the recorded ttys (their atimes are the input times).

    Each exe link points to a file of that path under tmp_path/fs, owned by
    whoever runs the tests (OWNER, passed as the owner sshd's executables
    must have); on the recorded hosts they were all root's.
    """
    proc, dev, fs = tmp_path / "proc", tmp_path / "dev", tmp_path / "fs"
    for pid, p in recorded["procs"].items():
        base = proc / pid
        (base / "fd").mkdir(parents=True)
        (base / "stat").write_text(p["stat"])
        (base / "cmdline").write_bytes(p["cmdline"].encode())
        # the recordings kept stat; status has the same facts, as the kernel prints them
        fields = _sshproc.parse_stat(p["stat"])
        (base / "status").write_text("Name:\t%s\nState:\t%s\nPPid:\t%d\nUid:\t%s\t%s\t%s\t%s\n" % (
            (fields["comm"], fields["state"], fields["ppid"]) + (p["uid"],) * 4))
        (base / "sessionid").write_text(p.get("sessionid", "4294967295"))
        (base / "environ").write_bytes(b"".join(e.encode() + b"\0" for e in p.get("environ", [])))
        if p.get("exe"):
            exe = fs / p["exe"].lstrip("/")
            exe.parent.mkdir(parents=True, exist_ok=True)
            exe.touch(mode=0o755)
            os.symlink(exe, base / "exe")
        for n, link in enumerate(p["fd"]):
            os.symlink(link, base / "fd" / str(n))
    for tty, atime in recorded.get("ttys", {}).items():
        path = dev / tty
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        os.utime(path, (atime, atime))
    return str(proc), str(dev)


def sockets_from_netlink(recorded):
    sockets = {}
    for chunk in recorded["sockdiag"]:
        for entry in _sockdiag.parse_reply(bytes.fromhex(chunk))[0]:
            sockets[entry["inode"]] = _hung.normalize_socket(entry)
    return sockets


def sockets_from_proc(recorded):
    sockets = _sshproc.parse_proc_net_tcp(recorded["tcp"])
    sockets.update(_sshproc.parse_proc_net_tcp(recorded["tcp6"]))
    return sockets


def uid_of(recorded):
    """name -> uid from the recorded host's passwd."""
    return recorded["users"].get


def name_of(recorded):
    """uid -> name from the recorded host's passwd."""
    return {uid: name for name, uid in sorted(recorded["users"].items(), reverse=True)}.get
