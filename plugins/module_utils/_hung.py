# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which SSH sessions are hung: one snapshot of /proc and the kernel's TCP table.

The live system is read by snapshot() and read_sockets() (the process and TCP
tables) and by a System object (environments, ttys, user names, command
lines, read only for what the report needs); both read whatever /proc-like
root they are given. Everything else is pure, so it is tested on recorded
tables and on synthetic ones of any size.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import time

from ansible_collections.hangup.ssh.plugins.module_utils import _checks, _procread, _sockdiag, _sshproc

CLASSES = ("dead_transport", "unresponsive_peer", "idle", "orphaned")
DEFAULT_HUNG_WHEN = ("dead_transport", "unresponsive_peer")
UNSET_SESSION_ID = 4294967295
# every TCP state a session's or listener's socket can be in; TIME_WAIT belongs to none
_STATES = sum(1 << n for n in (1, 3, 4, 5, 7, 8, 9, 10, 11))
# the environment marker sshd gives every process of a session
_SSH_CONNECTION = b"SSH_CONNECTION="
# the longest grace or scan time the module accepts, in seconds
MAX_SECONDS = 3600
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


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
    """(peer address, peer port, local address, local port) from a process environment, or None.

    Addresses come as the socket table shows them: no IPv6 scope, IPv4-mapped as IPv4.
    """
    for entry in (environ or b"").split(b"\0"):
        if entry.startswith(_SSH_CONNECTION):
            fields = entry[len(_SSH_CONNECTION):].decode("ascii", "replace").split()
            if len(fields) == 4 and fields[1].isdigit() and fields[3].isdigit():
                return _sshproc.unmap(fields[0]), int(fields[1]), _sshproc.unmap(fields[2]), int(fields[3])
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
        rows = []
        for name in ("tcp", "tcp6"):
            text = _read(os.path.join(root, "net", name))
            if text:
                rows.extend(_sshproc.parse_proc_net_tcp(text).items())
        return _sshproc.unique_inodes(rows), "proc_net_tcp"


def snapshot(root="/proc", budget=None, clock=time.monotonic, owner=0, reader=None):
    """One pass over /proc: (processes by pid, skipped).

    Processes in D state, and those whose reads blocked (see _procread), are
    kept in the table (their children need them) but nothing beyond status
    is read of them. Once `budget` seconds are spent the scan stops; skipped
    lists [{'pid', 'reason'}] for all of these. owner: who must own sshd's
    and ssh's executables (root; tests pass their own uid).
    """
    processes, skipped = {}, []
    deadline = None if budget is None else clock() + budget
    names = sorted((int(n) for n in os.listdir(root) if n.isdigit()))
    for pid, proc in _sshproc.read_processes(root, names, owner, reader):
        if deadline is not None and clock() > deadline:
            # yielded in order: this one and those after it were not taken
            skipped.extend({"pid": p, "reason": "scan time limit reached"} for p in names if p >= pid)
            break
        processes[pid] = proc
        if proc["blocked"]:
            skipped.append({"pid": pid, "reason": _procread.Blocked.REASON})
        elif proc["stuck"]:
            skipped.append({"pid": pid, "reason": "in D state (uninterruptible): only status was read"})
    return processes, skipped


def alive_window(interval, count_max, factor=1):
    """How a side that sends keepalives asks its peer: seconds between probes, and when it gives up.

    None when it never asks (interval 0).
    """
    if not interval or interval <= 0:
        return None
    step = interval * factor
    return {"interval": step, "cutoff": (count_max + 1) * step}


def connection_spec(user, peer, local):
    """The `sshd -T -C` connection spec of one session, or None when the user name cannot be put in one."""
    if not user or any(c in user for c in ",= \t\n\0"):
        return None
    spec = "user=%s,host=%s,addr=%s" % (user, peer[0], peer[0])
    if local:
        spec += ",laddr=%s,lport=%d" % (local[0], local[1])
    return spec


# ssh(1) options that take an argument (its getopt string), to find the destination
_SSH_ARG_OPTIONS = set("BbcDEeFIiJLlmOoPpQRSWw")


def ssh_destination(argv):
    """(destination, options) of an ssh client's argv: the -o, -p, -l and -F it was given.

    None for a multiplexing master ('ssh: PATH [mux]'), whose title lost its argv.
    """
    if not argv or os.path.basename(argv[0]) != "ssh":
        return None
    options, index = [], 1
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        pos = 1
        while pos < len(arg):
            flag = arg[pos]
            if flag in _SSH_ARG_OPTIONS:
                value = arg[pos + 1:]
                if not value:
                    index += 1
                    value = argv[index] if index < len(argv) else None
                if value is not None and flag in "oplF":
                    options += ["-" + flag, value]
                break
            pos += 1
        index += 1
    if index >= len(argv):
        return None
    return argv[index], options


def server_port(argv):
    """The port an ssh client's argv names (-p), else 22."""
    found = ssh_destination(argv)
    options = found[1] if found else []
    for flag, value in zip(options[::2], options[1::2]):
        if flag == "-p" and value.isdigit():
            return int(value)
    return 22


def client_connection(proc, sockets):
    """The TCP connection of an ssh client to its server, or None when it cannot be told.

    A client holds forwarded connections too (-L, -R, -D); only one of its own
    sockets to the server's port counts, and with several, none does.
    """
    found = _sshproc.connections([proc], sockets, proc["uid"])
    if len(found) > 1:
        port = server_port(proc["argv"])
        found = [row for row in found if row["peer"][1] == port]
    return found[0] if len(found) == 1 else None


def outbound_clients(processes, sockets):
    """`ssh` client processes (by their executable), each with its TCP connection when it has one."""
    clients = []
    for pid in sorted(processes):
        proc = processes[pid]
        if proc["stuck"] or not _sshproc.is_ssh_client(proc):
            continue
        clients.append({"pid": pid, "uid": proc["uid"], "cmdline": proc["cmdline"], "argv": proc["argv"],
                        "starttime": proc["starttime"], "socket": client_connection(proc, sockets)})
    return clients


def ancestry(processes, pid):
    """pid and its ancestors, nearest first."""
    chain, seen = [], set()
    while pid in processes and pid not in seen:
        seen.add(pid)
        chain.append(pid)
        pid = processes[pid]["ppid"]
    return chain


def _key(conn):
    """(peer address, peer port, local port) of an SSH_CONNECTION tuple."""
    return conn[0], conn[1], conn[3]


def live_connections(sessions, environ_of):
    """The connections of the live sessions, and the uids of sessions whose connection is unknown.

    A session's connection is its socket, else the SSH_CONNECTION of one of its
    commands; with neither (sockets unreadable, no command) it is unknown.
    """
    live, unknown = set(), set()
    for sess in sessions:
        sock = sess.get("socket")
        if sock:
            live.add((_sshproc.unmap(sock["peer"][0]), sock["peer"][1], sock["local"][1]))
            continue
        conns = [ssh_connection(environ_of(p)) for p in sess["command_pids"][:3]]
        conns = [c for c in conns if c]
        if conns:
            live.add(_key(conns[0]))
        elif sess["authenticated"]:
            unknown.add(sess["uid"])
    return live, unknown


def find_orphans(processes, sessions, environ_of, own_pids=()):
    """Processes of SSH sessions whose sshd is gone, one group per lost connection.

    A process is one when its environment carries SSH_CONNECTION, it is not
    sshd's and not in a live session's tree, and that connection is known to
    be gone: no live session has it. A user with a live session whose
    connection is unknown has no orphans (they may be that session's).
    Groups are per connection and uid: anyone can copy another's
    SSH_CONNECTION, and the user filters must decide on whose processes
    they are.
    """
    in_session = set()
    for sess in sessions:
        in_session.update(sess["sshd_pids"])
        in_session.update(sess["command_pids"])
    live, unknown = live_connections(sessions, environ_of)
    excluded = in_session | set(own_pids)
    groups = {}
    for pid in sorted(processes):
        proc = processes[pid]
        if (pid in excluded or proc["state"] in ("Z", "X") or proc["stuck"] or proc["uid"] in unknown
                or proc.get("exe_readable") is None or _sshproc.is_sshd(proc)):
            continue
        conn = ssh_connection(environ_of(pid))
        if conn is None or _key(conn) in live:
            continue
        groups.setdefault((conn, proc["uid"]), []).append(pid)
    return [{"connection": conn, "uid": uid, "pids": pids} for (conn, uid), pids in sorted(groups.items())]


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


def _stalled(tcp):
    """Seconds this end's written data has waited with nothing more going out, or 0.

    Data waits unacknowledged (a peer that does not acknowledge) or unsent
    (a peer whose kernel advertises a zero window); either way a probe
    written meanwhile waits behind it. A healthy stream sends all the time.
    """
    if not tcp["queued_bytes"] or tcp["last_data_sent_seconds"] is None:
        return 0
    return tcp["last_data_sent_seconds"]


def may_be_unanswered(tcp):
    """Whether this end spoke after the peer last did, by half a second or more, or its data waits unacknowledged.

    The cheap test that decides whether a session's keepalive settings are
    worth looking up (they cost an `sshd -T` or `ssh -G` run).
    """
    if not tcp or tcp["last_data_recv_seconds"] is None or tcp["last_data_sent_seconds"] is None:
        return False
    return tcp["last_data_recv_seconds"] - tcp["last_data_sent_seconds"] >= 0.5 or _stalled(tcp) >= 0.5


def unanswered(tcp, alive, limit=None):
    """Why the peer counts as unresponsive, or None.

    Only evidence counts. This end asks (alive: its keepalive interval and
    cut-off, None when it never asks), and its probe was either sent at least
    half an interval after the peer last spoke and within the last two
    intervals (a probe, not an echo, and still probing), or waits behind data
    that has not moved for a whole interval; and the peer has been
    silent past `limit` (default: the cut-off). A session that predates the
    keepalive settings, or whose Match block turns them off, is never asked,
    so never judged.
    """
    if not alive or not may_be_unanswered(tcp):
        return None
    silent, sent = tcp["last_data_recv_seconds"], tcp["last_data_sent_seconds"]
    limit = limit or alive["cutoff"]
    probed = silent - sent >= alive["interval"] / 2.0 and sent <= 2 * alive["interval"] + 1
    if silent <= limit or not (probed or _stalled(tcp) >= alive["interval"]):
        return None
    return "asked every %s s, nothing received for %.1f s (limit %s s)" % (alive["interval"], silent, limit)


def dead_transport(tcp, limits):
    """Why the connection itself is dead, or None."""
    backoff = tcp["backoff"] if tcp["backoff"] is not None else max(tcp["retransmits"] or 0, tcp["probes"] or 0)
    last_ack = tcp["last_ack_recv_seconds"]
    if tcp["unacked_segments"] and last_ack is not None and last_ack >= limits["unacked_timeout"]:
        return "%d segments unacknowledged for %.1f s" % (tcp["unacked_segments"], last_ack)
    if backoff > limits["max_backoff"]:
        return ("backoff %d exceeds %d (retransmissions or zero-window probes unanswered)"
                % (backoff, limits["max_backoff"]))
    if tcp["state"] == "CLOSE_WAIT":
        return "the peer closed the connection and sshd did not"
    return None


def classify(tcp, idle_seconds, limits, orphaned=False, alive=None):
    """Reasons a session is suspect, as (class, explanation) pairs, in CLASSES order.

    limits: unacked_timeout, max_backoff (dead_transport), unresponsive_timeout
    (None: the peer's own cut-off), max_idle (None or 0: off). alive: see
    unanswered().
    """
    reasons = []
    if tcp:
        why = dead_transport(tcp, limits)
        if why:
            reasons.append(("dead_transport", why))
        why = unanswered(tcp, alive, limits.get("unresponsive_timeout"))
        if why:
            reasons.append(("unresponsive_peer", why))
    max_idle = limits.get("max_idle")
    if max_idle and idle_seconds is not None and idle_seconds > max_idle:
        reasons.append(("idle", "idle for %d s (max_idle %d s)" % (idle_seconds, max_idle)))
    if orphaned:
        reasons.append(("orphaned", "the session's sshd is gone"))
    return reasons


def _network(value):
    """A CIDR network; an IPv4-mapped IPv6 one becomes the IPv4 network it maps."""
    net = ipaddress.ip_network(value, strict=False)
    if net.version == 6 and net.subnet_of(_MAPPED):
        base = int(net.network_address) & 0xFFFFFFFF
        net = ipaddress.ip_network((base, net.prefixlen - 96))
    return net


def peer_filter(networks):
    """A predicate over peer addresses for the `peers` option (an empty list admits all)."""
    nets = [_network(n) for n in networks]

    def admit(address):
        if not nets:
            return True
        try:
            ip = ipaddress.ip_address(_sshproc.unmap(address))
        except ValueError:
            return False
        return any(ip in net for net in nets)

    return admit


def parse_networks(values):
    """Validate CIDR strings; returns the bad ones."""
    bad = []
    for value in values:
        try:
            _network(value)
        except (ValueError, TypeError):
            bad.append(value)
    return bad


def input_problems(params, user_exists):
    """What the argument spec cannot say about the module's input, one message per problem, each naming the parameter."""
    problems = []
    for name in ("grace", "scan_timeout"):
        problem = _checks.number_problem(name, params.get(name), 0, MAX_SECONDS)
        if problem:
            problems.append(problem)
    for name in ("unacked_timeout", "max_backoff", "unresponsive_timeout", "max_idle"):
        if params.get(name) is not None and params[name] < 0:
            problems.append("%s must be 0 or more, got %s" % (name, params[name]))
    bad = parse_networks(params.get("peers") or [])
    if bad:
        problems.append("peers: not a network in CIDR notation: %s" % ", ".join(map(repr, bad)))
    for name in ("users", "exclude_users"):
        values = params.get(name) or []
        malformed = [u for u in values if not u or "\0" in u or "/" in u]
        unknown = [u for u in values if u not in malformed and not user_exists(u)]
        if malformed:
            problems.append("%s: not a user name: %s" % (name, ", ".join(map(repr, malformed))))
        if unknown:
            problems.append("%s: no such user on this host: %s" % (name, ", ".join(unknown)))
    return problems


def admitted(user, peer_address, users, exclude_users, admit_peer):
    return ((not users or user in users) and user not in exclude_users and admit_peer(peer_address))


def tty_label(ttys):
    return ",".join(ttys) if ttys else "notty"


class System(object):
    """What the report needs beyond the process and socket tables, read from a /proc-like root.

    Tests pass their own object with the same methods.
    """

    def __init__(self, root="/proc", dev="/dev", reader=None):
        self.root, self.dev = root, dev
        self.reader = reader or _procread.shared()
        self._names, self._uids = {}, {}

    def _bounded(self, pid, func, *args):
        """func(*args) through the reader, or None when pid is gone or reading it blocked."""
        status = _procread.read_status(self.root, pid)
        if status is None:
            return None
        try:
            return self.reader(status["uid"], func, *args)
        except _procread.Blocked:
            return None

    def environ(self, pid):
        return self._bounded(pid, _read, os.path.join(self.root, str(pid), "environ"), "rb")

    def cmdline(self, pid):
        return self._bounded(pid, _sshproc.read_cmdline, self.root, pid)

    def gone(self, pid):
        """Whether the process has ended (status never blocks)."""
        return _procread.read_status(self.root, pid) is None

    def sessionid(self, pid):
        return read_sessionid(self.root, pid)

    def is_tty(self, st, tty_nr):
        """Whether a stat result is the terminal device tty_nr names."""
        major, minor = (tty_nr >> 8) & 0xfff, (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00)
        return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(major, minor)

    def tty_idle(self, tty_nr, now):
        """What w(1) shows: seconds since the terminal last saw input.

        The path comes from the kernel's device number, and the file found
        there must be that device.
        """
        name = _sshproc.tty_name(tty_nr)
        if not name:
            return None
        try:
            st = os.stat(os.path.join(self.dev, name))
        except OSError:
            return None
        return max(0.0, now - st.st_atime) if self.is_tty(st, tty_nr) else None

    def user_name(self, uid):
        if uid not in self._names:
            try:
                import pwd
                self._names[uid] = pwd.getpwuid(uid).pw_name
            except (ImportError, KeyError, TypeError):
                self._names[uid] = str(uid)
        return self._names[uid]

    def uid_of(self, name):
        if name not in self._uids:
            try:
                import pwd
                self._uids[name] = pwd.getpwnam(name).pw_uid
            except (ImportError, KeyError, TypeError, ValueError):
                self._uids[name] = None
        return self._uids[name]


class NoKeepalives(object):
    """Keepalive settings when none can be looked up: nobody asks, so nobody is unresponsive."""

    def inbound(self, user, peer, local):
        return None

    def outbound(self, client):
        return None


def _clock(starttime, btime, clk_tck):
    return btime + starttime / float(clk_tck)


def _peer(sock):
    if not sock:
        return {"peer_address": None, "peer_port": None, "local_address": None, "local_port": None}
    return {"peer_address": sock["peer"][0], "peer_port": sock["peer"][1],
            "local_address": sock["local"][0], "local_port": sock["local"][1]}


def _commands(pids, processes, system):
    """[{pid, cmdline}]: null for a process whose reads block; one that ended since the scan is left out."""
    found = []
    for p in pids:
        cmdline = None if processes[p]["stuck"] else processes[p]["cmdline"]
        if cmdline is None and not processes[p]["stuck"]:
            cmdline = system.cmdline(p)
            if cmdline is None and system.gone(p):
                continue
        found.append({"pid": p, "cmdline": cmdline})
    return found


def _entry(kind, pid, starttime, user, ctx, tcp=None, sock=None, commands=(), **extra):
    """The keys every entry has, with the defaults of an entry that is no inbound session."""
    login = _clock(starttime, ctx["btime"], ctx["clk_tck"])
    entry = {
        "kind": kind, "pid": pid, "starttime": starttime, "user": user, "authenticated": True,
        "tty": None, "ttys": [], "sshd_pids": [], "user_pid": None, "listener_pid": None,
        "commands": list(commands), "login_time": login, "age_seconds": round(ctx["now"] - login, 1),
        "idle_seconds": None, "recv_idle_seconds": tcp["last_data_recv_seconds"] if tcp else None,
        "tcp": tcp, "self": False,
    }
    entry.update(_peer(sock))
    entry.update(extra)
    return entry


def inbound_entries(ctx, sessions, own):
    processes, system, limits = ctx["processes"], ctx["system"], ctx["limits"]
    entries = []
    for index, sess in enumerate(sessions):
        idles = [system.tty_idle(nr, ctx["now"]) for nr in sess["tty_nrs"]]
        idles = [i for i in idles if i is not None]
        tty_idle = min(idles) if idles else None
        tcp = liveness(sess["socket"])
        entry = _entry("inbound", sess["monitor_pid"], sess["starttime"], sess["user"], ctx, tcp, sess["socket"],
                       _commands(sess["command_pids"], processes, system),
                       authenticated=sess["authenticated"], tty=tty_label(sess["ttys"]), ttys=sess["ttys"],
                       sshd_pids=sess["sshd_pids"], user_pid=sess["user_pid"], listener_pid=sess["listener_pid"],
                       idle_seconds=None if tty_idle is None else int(tty_idle), self=index in own)
        alive = None
        if sess["authenticated"] and sess["socket"] and may_be_unanswered(tcp):
            alive = ctx["keepalives"].inbound(sess["user"], sess["socket"]["peer"], sess["socket"]["local"])
        # the tty's input time where there is one, else the socket's silence
        entry["_reasons"] = classify(tcp, tty_idle if tty_idle is not None else entry["recv_idle_seconds"],
                                     limits, alive=alive)
        entries.append(entry)
    return entries


def outbound_entries(ctx, own_chain):
    entries = []
    for client in outbound_clients(ctx["processes"], ctx["sockets"]):
        tcp = liveness(client["socket"])
        entry = _entry("outbound", client["pid"], client["starttime"], ctx["system"].user_name(client["uid"]), ctx,
                       tcp, client["socket"], [{"pid": client["pid"], "cmdline": client["cmdline"]}],
                       self=client["pid"] in own_chain)
        # a server's silence means something only to a client that asks (ServerAlive)
        alive = ctx["keepalives"].outbound(client) if may_be_unanswered(tcp) else None
        entry["_reasons"] = classify(tcp, None, dict(ctx["limits"], max_idle=None), alive=alive)
        entries.append(entry)
    return entries


def orphan_entries(ctx, sessions, own_chain):
    processes, system = ctx["processes"], ctx["system"]
    entries = []
    for group in find_orphans(processes, sessions, system.environ, own_chain):
        first = processes[group["pids"][0]]
        conn = group["connection"]
        entry = _entry("orphaned", first["pid"], first["starttime"], system.user_name(group["uid"]), ctx,
                       commands=_commands(group["pids"], processes, system),
                       peer_address=conn[0], peer_port=conn[1], local_address=conn[2], local_port=conn[3])
        entry["_reasons"] = classify(None, None, ctx["limits"], orphaned=True)
        entries.append(entry)
    return entries


def build_report(processes, sockets, system, now, btime, clk_tck, limits, self_pid, outbound=True,
                 keepalives=None, orphans=True):
    """Every inbound session, outbound client and orphaned group, classified.

    keepalives: an object like NoKeepalives that says how each side probes
    its peer (the module looks it up with `sshd -T -C` and `ssh -G`).
    orphans: False when the scan was incomplete, since then a live session
    may have been missed. Returns a list of entries (see the module's RETURN
    for their keys) with private '_reasons' and '_starts'.
    """
    ctx = {"processes": processes, "sockets": sockets, "system": system, "now": now, "btime": btime,
           "clk_tck": clk_tck, "limits": limits, "keepalives": keepalives or NoKeepalives()}
    listeners = _sshproc.mark_listeners(processes, sockets)
    sessions = _sshproc.group_sessions(processes, sockets, system.uid_of, listeners, system.user_name)
    own = own_sessions(processes, sessions, self_pid, system.sessionid(self_pid), system.sessionid)
    own_chain = ancestry(processes, self_pid)
    entries = inbound_entries(ctx, sessions, own)
    if outbound:
        entries += outbound_entries(ctx, own_chain)
    if orphans:
        entries += orphan_entries(ctx, sessions, own_chain)
    for entry in entries:
        pids = entry["sshd_pids"] + [c["pid"] for c in entry["commands"]]
        # sshd's listener is never signalled, nor a process whose start time could not be read (no identity)
        entry["_starts"] = {p: processes[p]["starttime"] for p in pids if p in processes and p not in listeners
                            and processes[p]["starttime"] is not None}
    return entries


def public(entry):
    """An entry without the keys that only kill needs."""
    return {k: v for k, v in entry.items() if not k.startswith("_")}


def finish(entries, hung_when, users=(), exclude_users=(), peers=()):
    """Apply the filters and decide `hung`: new entries, the listed ones (the input is left as it was)."""
    admit_peer = peer_filter(peers)
    listed = []
    for entry in entries:
        if not admitted(entry["user"], entry["peer_address"], users, exclude_users, admit_peer):
            continue
        reasons = entry["_reasons"]
        done = {k: v for k, v in entry.items() if k != "_reasons"}
        done["reasons"] = [name for name, _detail in reasons]
        done["why"] = [detail for _name, detail in reasons]
        # the module's own session and sessions still authenticating are never ended
        done["hung"] = bool(set(done["reasons"]) & set(hung_when)) and not done["self"] and done["authenticated"]
        listed.append(done)
    return listed


def label(entry):
    """Who and where, short: 'alice@pts/0 from 10.88.0.3:40112' (inbound), 'ssh alice -> ...' (outbound)."""
    peer = "%s:%s" % (entry["peer_address"], entry["peer_port"]) if entry.get("peer_address") else "no peer"
    if entry["kind"] == "inbound":
        return "%s@%s from %s" % (entry["user"], entry["tty"], peer)
    if entry["kind"] == "outbound":
        return "ssh of %s to %s" % (entry["user"], peer)
    return "orphaned pid %s of %s (%s)" % (entry["pid"], entry["user"], peer)


def _listed(entries, detail, most):
    shown = ["%s (%s)" % (label(e), detail(e)) for e in entries[:most]]
    if len(entries) > most:
        shown.append("%d more" % (len(entries) - most))
    return ", ".join(shown)


def describe(sessions, killed, failed, would_end=False, most=3):
    """The one line that says what was found and done on this host (`would_end`: kill=true in check mode)."""
    hung = [s for s in sessions if s["hung"]]
    line = "%d session%s, %d hung" % (len(sessions), "" if len(sessions) == 1 else "s", len(hung))
    if failed:
        line = "could not end %d of %d hung: %s; %s" % (
            len(failed), len(failed) + len(killed), _listed(failed, lambda e: e["reason"], most), line)
    if killed:
        line += "; ended %d: %s" % (len(killed), _listed(killed, lambda e: "+".join(e["signals"]), most))
    elif hung and not failed:
        line += (", would end %d: " % len(hung) if would_end else ": ") + _listed(hung, lambda e: ", ".join(e["why"]), most)
    return line
