"""Synthetic process tables in the shape _sshproc.read_process gives, for tests and bench/hung_sessions.py.

Real executables by default: sshd's processes run /usr/sbin/sshd (or the
sshd-session of 9.8+), everything else the program its title starts with.
A forged process is one whose title says sshd while its executable does not;
executables under /home are a user's own copies, which no root-owned file is.
"""

from ansible_collections.hangup.ssh.plugins.module_utils import _hung, _sshproc

SSHD = "/usr/sbin/sshd"
SESSION = "/usr/lib/openssh/sshd-session"
PTS0 = (136 << 8) | 0  # tty_nr of /dev/pts/0


def proc(pid, ppid, cmdline, exe=None, uid=0, sockets=(), tty_nr=0, state="S", starttime=None):
    if exe is None:
        first = cmdline.split()[0] if cmdline.split() else "init"
        exe = SESSION if first.startswith("sshd-session") else SSHD if first.startswith("sshd") else "/usr/bin/" + \
            first.lstrip("-").rsplit("/", 1)[-1]
    p = {"pid": pid, "ppid": ppid, "cmdline": cmdline, "argv": cmdline.split(), "sockets": list(sockets),
         "starttime": pid if starttime is None else starttime, "state": state, "stuck": state == "D",
         "comm": _sshproc.exe_name(exe)[:15] if exe else cmdline.split()[0][:15], "uid": uid, "exe": exe,
         "exe_readable": exe is not None, "exe_trusted": exe is not None and not exe.startswith("/home/"),
         "listening": False, "tty_nr": tty_nr,
         "title": {"role": None, "user": None, "ttys": []}}
    if _sshproc.is_sshd(p):
        p["title"] = _sshproc.classify_title(cmdline)
    return p


def table(*procs):
    return {p["pid"]: p for p in procs}


def established(local, peer, uid=0, **info):
    return {"state": "ESTABLISHED", "local": local, "peer": peer, "uid": uid, "unacked_bytes": 0, "unread_bytes": 0,
            "tcp_info": dict({"unacked": 0, "backoff": 0, "retransmits": 0, "probes": 0, "last_ack_recv": 100,
                              "last_data_recv": 100, "last_data_sent": 100, "rto": 204000, "total_retrans": 0},
                             **info)}


LISTEN = {"state": "LISTEN", "local": ("0.0.0.0", 22), "peer": ("0.0.0.0", 0), "uid": 0}
UIDS = {"root": 0, "alice": 1000, "svc.backup-01": 1001, "ops": 1002, "sshd": 997}


def uid_of(name):
    return UIDS.get(name)


class NoSystem(_hung.System):
    """No /proc behind a synthetic table: nothing to read; u<N> users are uid 1000."""

    def environ(self, pid):
        return None

    def sessionid(self, pid):
        return None

    def uid_of(self, name):
        return 1000 if name.startswith("u") else uid_of(name)
