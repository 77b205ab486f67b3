# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which SSH sessions are hung: one snapshot of /proc and the kernel's TCP table.

snapshot() is the only function that reads the live system, and it reads
whatever /proc-like root it is given; everything else is pure, so it is tested
on recorded tables and on synthetic ones of any size.
"""

from __future__ import annotations

import ipaddress
import os
import re

from ansible_collections.hangup.ssh.plugins.module_utils import _sockdiag, _sshproc

CLASSES = ("dead_transport", "unresponsive_peer", "idle", "orphaned")
DEFAULT_HUNG_WHEN = ("dead_transport", "unresponsive_peer")
UNSET_SESSION_ID = 4294967295
# every TCP state a session's socket can be in; LISTEN and TIME_WAIT belong to none
_STATES = sum(1 << n for n in (1, 3, 4, 5, 7, 8, 9, 11))
# the environment marker sshd gives every process of a session
_SSH_CONNECTION = b"SSH_CONNECTION="


def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except (IOError, OSError):
        return None


def read_sessionid(root, pid):
    """The audit session id of a process, or None when unset or unreadable."""
    text = _read(os.path.join(root, str(pid), "sessionid"))
    try:
        value = int(text)
    except (TypeError, ValueError):
        return None
    return None if value == UNSET_SESSION_ID else value


def ssh_connection(environ):
    """(peer address, peer port, local address, local port) from a process environment, or None."""
    for entry in (environ or b"").split(b"\0"):
        if entry.startswith(_SSH_CONNECTION):
            fields = entry[len(_SSH_CONNECTION):].decode("ascii", "replace").split()
            if len(fields) == 4 and fields[1].isdigit() and fields[3].isdigit():
                return fields[0], int(fields[1]), fields[2], int(fields[3])
    return None


def normalize_socket(entry):
    """A sock_diag entry in the shape of a /proc/net/tcp row (state by name)."""
    row = dict(entry)
    row["state"] = _sshproc.TCP_STATES.get(entry["state"], str(entry["state"]))
    return row


def read_sockets(root="/proc"):
    """TCP sockets keyed by inode, and where they came from.

    sock_diag gives the times since the last ACK and data; /proc/net/tcp is
    the fallback (counters only, no times).
    """
    try:
        entries = _sockdiag.dump(states=_STATES)
        return {inode: normalize_socket(row) for inode, row in entries.items()}, "sock_diag"
    except _sockdiag.SockDiagUnavailable:
        sockets = {}
        for name in ("tcp", "tcp6"):
            text = _read(os.path.join(root, "net", name))
            if text:
                sockets.update(_sshproc.parse_proc_net_tcp(text))
        return sockets, "proc_net_tcp"


def snapshot(root="/proc"):
    """One pass over /proc: every process, classified by its title."""
    processes = {}
    for name in os.listdir(root):
        if not name.isdigit():
            continue
        proc = _sshproc.read_process(root, int(name))
        if proc is not None:
            processes[proc["pid"]] = proc
    return processes


_ALIVE_OPTION = re.compile(r"(?i)ServerAlive(Interval|CountMax)[=\s]+(\d+)")


def server_alive(cmdline, defaults=(0, 3)):
    """(ServerAliveInterval, ServerAliveCountMax) of an ssh client: its -o options, else `defaults`."""
    interval, count = defaults
    for name, value in _ALIVE_OPTION.findall(cmdline):
        if name.lower() == "interval":
            interval = int(value)
        else:
            count = int(value)
    return interval, count


def outbound_limit(alive, unresponsive_timeout):
    """Seconds of silence after which an ssh client's server counts as unresponsive, or None.

    Only a client that sends keepalives hears from an idle server, so only
    those can be judged: by `unresponsive_timeout` when given, else by the
    client's own cut-off.
    """
    interval, count = alive
    if interval <= 0:
        return None
    return unresponsive_timeout or interval * (count + 1)


def outbound_clients(processes, sockets):
    """`ssh` client processes, each with its TCP connection when it has one."""
    clients = []
    for pid in sorted(processes):
        proc = processes[pid]
        if proc["comm"] != "ssh" or proc["title"]["role"] is not None:
            continue
        conn = None
        for inode in proc["sockets"]:
            row = sockets.get(inode)
            if row and row["state"] != "LISTEN":
                conn = dict(row, inode=inode)
                break
        clients.append({"pid": pid, "uid": proc["uid"], "cmdline": proc["cmdline"],
                        "starttime": proc["starttime"], "socket": conn})
    return clients


def ancestry(processes, pid):
    """pid and its ancestors, nearest first."""
    chain, seen = [], set()
    while pid in processes and pid not in seen:
        seen.add(pid)
        chain.append(pid)
        pid = processes[pid]["ppid"]
    return chain


def find_orphans(processes, sessions, environ_of, own_pids=()):
    """Processes of SSH sessions whose sshd is gone, one group per lost connection.

    A process is one when its environment carries SSH_CONNECTION, no sshd
    session process is among its ancestors, and no live session has that
    connection's peer and ports.
    """
    in_session = set()
    for sess in sessions:
        in_session.update(sess["sshd_pids"])
        in_session.update(sess["command_pids"])
    live = set()
    for sess in sessions:
        sock = sess.get("socket")
        if sock:
            live.add((sock["peer"][0], sock["peer"][1], sock["local"][1]))
    excluded = in_session | set(own_pids)
    groups = {}
    for pid in sorted(processes):
        proc = processes[pid]
        if pid in excluded or proc["title"]["role"] is not None or proc["state"] == "Z":
            continue
        if any(p in in_session for p in ancestry(processes, proc["ppid"])):
            continue
        conn = ssh_connection(environ_of(pid))
        if conn is None or (conn[0], conn[1], conn[3]) in live:
            continue
        groups.setdefault(conn, []).append(pid)
    return [{"connection": conn, "pids": pids} for conn, pids in sorted(groups.items())]


def own_sessions(processes, sessions, self_pid, self_sessionid, sessionid_of):
    """Indexes of the sessions this process runs over.

    Ancestry finds it through sudo, pipelining and ControlPersist; the audit
    session id, which every process of a login inherits, finds it even when
    the ancestry was cut (a daemonized async task).
    """
    chain = set(ancestry(processes, self_pid))
    own = set()
    for index, sess in enumerate(sessions):
        if chain.intersection(sess["sshd_pids"]) or chain.intersection(sess["command_pids"]):
            own.add(index)
        elif self_sessionid is not None and any(sessionid_of(p) == self_sessionid for p in sess["sshd_pids"]):
            own.add(index)
    return own


def liveness(sock):
    """The TCP facts of a socket row, times in seconds (None when the source has no times)."""
    if not sock:
        return None
    info = sock.get("tcp_info") or {}

    def seconds(key):
        return round(info[key] / 1000.0, 3) if key in info else None

    return {
        "state": sock["state"],
        "unacked_segments": info.get("unacked"),
        "queued_bytes": sock.get("unacked_bytes"),
        "unread_bytes": sock.get("unread_bytes"),
        "retransmits": info.get("retransmits", sock.get("retransmits")),
        "backoff": info.get("backoff"),
        "probes": info.get("probes", sock.get("probes")),
        "total_retrans": info.get("total_retrans"),
        "rto_ms": round(info["rto"] / 1000.0, 1) if "rto" in info else None,
        "last_ack_recv_seconds": seconds("last_ack_recv"),
        "last_data_recv_seconds": seconds("last_data_recv"),
        "last_data_sent_seconds": seconds("last_data_sent"),
    }


def classify(tcp, idle_seconds, limits, orphaned=False):
    """Reasons a session is suspect, as (class, explanation) pairs, in CLASSES order.

    limits: unacked_timeout, max_backoff (dead_transport), unresponsive_timeout
    (None: off), max_idle (None or 0: off).
    """
    reasons = []
    if tcp:
        backoff = tcp["backoff"] if tcp["backoff"] is not None else max(tcp["retransmits"] or 0, tcp["probes"] or 0)
        last_ack = tcp["last_ack_recv_seconds"]
        if tcp["unacked_segments"] and last_ack is not None and last_ack >= limits["unacked_timeout"]:
            reasons.append(("dead_transport", "%d segments unacknowledged for %.1f s" % (tcp["unacked_segments"], last_ack)))
        elif backoff > limits["max_backoff"]:
            reasons.append(("dead_transport", "backoff %d exceeds %d (retransmissions or zero-window probes unanswered)"
                            % (backoff, limits["max_backoff"])))
        elif tcp["state"] == "CLOSE_WAIT":
            reasons.append(("dead_transport", "the peer closed the connection and sshd did not"))
        silent = tcp["last_data_recv_seconds"]
        limit = limits.get("unresponsive_timeout")
        if limit and silent is not None and silent > limit:
            reasons.append(("unresponsive_peer", "nothing received for %.1f s (limit %s s)" % (silent, limit)))
    max_idle = limits.get("max_idle")
    if max_idle and idle_seconds is not None and idle_seconds > max_idle:
        reasons.append(("idle", "idle for %d s (max_idle %d s)" % (idle_seconds, max_idle)))
    if orphaned:
        reasons.append(("orphaned", "the session's sshd is gone"))
    return reasons


def peer_filter(networks):
    """A predicate over peer addresses for the `peers` option (an empty list admits all)."""
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]

    def admit(address):
        if not nets:
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        return any(ip in net or (mapped is not None and mapped in net) for net in nets)

    return admit


def parse_networks(values):
    """Validate CIDR strings; returns the bad ones."""
    bad = []
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            bad.append(value)
    return bad


def admitted(user, peer_address, users, exclude_users, admit_peer):
    return ((not users or user in users) and user not in exclude_users and admit_peer(peer_address))


def tty_label(ttys):
    return ",".join(ttys) if ttys else "notty"


class System(object):
    """What the report needs beyond the process and socket tables, read from a /proc-like root.

    Tests pass their own object with the same methods.
    """

    def __init__(self, root="/proc", dev="/dev"):
        self.root, self.dev = root, dev
        self._names = {}

    def environ(self, pid):
        return _read(os.path.join(self.root, str(pid), "environ"), "rb")

    def sessionid(self, pid):
        return read_sessionid(self.root, pid)

    def tty_idle(self, tty, now):
        # what w(1) shows: seconds since the terminal last saw input
        try:
            return max(0.0, now - os.stat(os.path.join(self.dev, tty)).st_atime)
        except OSError:
            return None

    def user_name(self, uid):
        if uid not in self._names:
            try:
                import pwd
                self._names[uid] = pwd.getpwuid(uid).pw_name
            except (ImportError, KeyError, TypeError):
                self._names[uid] = str(uid)
        return self._names[uid]


def _clock(starttime, btime, clk_tck):
    return btime + starttime / float(clk_tck)


def _peer(sock):
    if not sock:
        return {"peer_address": None, "peer_port": None, "local_address": None, "local_port": None}
    return {"peer_address": sock["peer"][0], "peer_port": sock["peer"][1],
            "local_address": sock["local"][0], "local_port": sock["local"][1]}


def build_report(processes, sockets, system, now, btime, clk_tck, limits, self_pid, outbound=True,
                 client_defaults=(0, 3), outbound_timeout=None):
    """Every inbound session, outbound client and orphaned group, classified.

    Returns a list of entries (see the module's RETURN for their keys).
    """
    sessions = _sshproc.group_sessions(processes, sockets)
    own = own_sessions(processes, sessions, self_pid, system.sessionid(self_pid), system.sessionid)
    own_chain = ancestry(processes, self_pid)
    entries = []
    for index, sess in enumerate(sessions):
        idles = [system.tty_idle(t, now) for t in sess["ttys"]]
        idles = [i for i in idles if i is not None]
        tty_idle = min(idles) if idles else None
        tcp = liveness(sess["socket"])
        login = _clock(sess["starttime"], btime, clk_tck)
        entry = {
            "kind": "inbound",
            "pid": sess["monitor_pid"],
            "starttime": sess["starttime"],
            "user": sess["user"],
            "authenticated": sess["authenticated"],
            "tty": tty_label(sess["ttys"]),
            "ttys": sess["ttys"],
            "sshd_pids": sess["sshd_pids"],
            "user_pid": sess["user_pid"],
            "listener_pid": sess["listener_pid"],
            "commands": [{"pid": p, "cmdline": processes[p]["cmdline"]} for p in sess["command_pids"]],
            "login_time": login,
            "age_seconds": round(now - login, 1),
            "idle_seconds": None if tty_idle is None else int(tty_idle),
            "recv_idle_seconds": tcp["last_data_recv_seconds"] if tcp else None,
            "tcp": tcp,
            "self": index in own,
        }
        entry.update(_peer(sess["socket"]))
        # the tty's input time where there is one, else the socket's silence
        entry["_reasons"] = classify(tcp, tty_idle if tty_idle is not None else entry["recv_idle_seconds"], limits)
        entries.append(entry)
    if outbound:
        for client in outbound_clients(processes, sockets):
            tcp = liveness(client["socket"])
            login = _clock(client["starttime"], btime, clk_tck)
            entry = {
                "kind": "outbound", "pid": client["pid"], "starttime": client["starttime"],
                "user": system.user_name(client["uid"]), "authenticated": True, "tty": None, "ttys": [],
                "sshd_pids": [], "user_pid": None, "listener_pid": None,
                "commands": [{"pid": client["pid"], "cmdline": client["cmdline"]}],
                "login_time": login, "age_seconds": round(now - login, 1), "idle_seconds": None,
                "recv_idle_seconds": tcp["last_data_recv_seconds"] if tcp else None,
                "tcp": tcp, "self": client["pid"] in own_chain,
            }
            entry.update(_peer(client["socket"]))
            # a server's silence means something only to a client that asks (ServerAlive)
            alive = server_alive(client["cmdline"], client_defaults)
            entry["_reasons"] = classify(tcp, None, dict(limits, max_idle=None,
                                                         unresponsive_timeout=outbound_limit(alive, outbound_timeout)))
            entries.append(entry)
    for group in find_orphans(processes, sessions, system.environ, own_chain):
        first = processes[group["pids"][0]]
        login = _clock(first["starttime"], btime, clk_tck)
        entry = {
            "kind": "orphaned", "pid": first["pid"], "starttime": first["starttime"],
            "user": system.user_name(first["uid"]), "authenticated": True, "tty": None, "ttys": [],
            "sshd_pids": [], "user_pid": None, "listener_pid": None,
            "commands": [{"pid": p, "cmdline": processes[p]["cmdline"]} for p in group["pids"]],
            "login_time": login, "age_seconds": round(now - login, 1), "idle_seconds": None,
            "recv_idle_seconds": None, "tcp": None, "self": False,
            "peer_address": group["connection"][0], "peer_port": group["connection"][1],
            "local_address": group["connection"][2], "local_port": group["connection"][3],
        }
        entry["_reasons"] = classify(None, None, limits, orphaned=True)
        entries.append(entry)
    for entry in entries:
        pids = entry["sshd_pids"] + [c["pid"] for c in entry["commands"]]
        entry["_starts"] = {p: processes[p]["starttime"] for p in pids if p in processes}
    return entries


def public(entry):
    """An entry without the keys that only kill needs."""
    return {k: v for k, v in entry.items() if not k.startswith("_")}


def finish(entries, hung_when, users=(), exclude_users=(), peers=()):
    """Apply the filters and decide `hung`: the listed entries, and those kill would end."""
    admit_peer = peer_filter(peers)
    listed = []
    for entry in entries:
        if not admitted(entry["user"], entry["peer_address"], users, exclude_users, admit_peer):
            continue
        reasons = entry.pop("_reasons")
        entry["reasons"] = [name for name, _detail in reasons]
        entry["why"] = [detail for _name, detail in reasons]
        # the module's own session and sessions still authenticating are never ended
        entry["hung"] = bool(set(entry["reasons"]) & set(hung_when)) and not entry["self"] and entry["authenticated"]
        listed.append(entry)
    return listed
