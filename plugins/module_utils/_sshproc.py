# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What /proc says about SSH processes and their TCP sockets.

Parsing is pure; read_stat and read_process read a /proc-like root they are
given (each read a user can make block through _procread), so all of it is
unit-tested on tables recorded from every OpenSSH of the lab (8.0 to 10.6).

Titles are never trusted alone: any user can `exec -a 'sshd: root@pts/0'`. A
process is sshd's only when the kernel says so (its executable), and a session
is built from the process tree, uids and held ttys; titles only name a
verified process's user and ttys, and each is checked against the kernel.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import struct

from ansible_collections.hangup.ssh.plugins.module_utils import _procread

# Process titles sshd sets (setproctitle), before 9.8 "sshd: ..." and since
# 9.8 "sshd-session: ..." for the per-connection processes, "sshd-auth: ..."
# (10.0) for the pre-authentication one.
# linear on any title (the text is stripped first): a lazy group before \s*$ is quadratic in a run of spaces
_TITLE = re.compile(r"^(?P<prog>sshd|sshd-session|sshd-auth):\s+(?P<rest>.*)$")
# what is read of a command line: titles are short, and a user controls the length of theirs
ARGV_LIMIT = 4096
_USER_TTY = re.compile(r"^(?P<user>[^\s@]+)@(?P<ttys>\S+)$")
# a session with no channel open yet, or only forwardings (`ssh -N`)
_USER_ONLY = re.compile(r"^(?P<user>[^\s@\[]+)$")
_USER_TAG = re.compile(r"^(?P<user>[^\s@\[]+)\s+\[(?P<tag>[a-z]+)\]$")
# the names sshd's executables have; a title is not one of these facts
SSHD_FAMILY = ("sshd", "sshd-session", "sshd-auth")
# the users sshd's pre-authentication child runs as: SSH_PRIVSEP_USER of the distributions' builds
# ("sshd"; "_sshd" on some), and "nobody" where a build names that (Arch, Void)
PRIVSEP_USERS = ("sshd", "_sshd", "nobody")
# ttys a title may name: what devpts and the virtual consoles are called
_TTY_NAME = re.compile(r"^(pts/\d+|tty\d+)$")
_LISTENER = re.compile(r"\[listener\]|^/\S*sshd(\s|$)")

TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
}


def classify_title(cmdline):
    """What an sshd process is, from its title.

    Returns a dict with 'role' in listener, monitor, user, preauth, or None for
    a process that is not sshd's; 'user' and 'ttys' where the title says.
    A root login on older OpenSSH is one process titled like a user child.
    """
    text = cmdline.replace("\0", " ").strip()
    match = _TITLE.match(text)
    if not match:
        if _LISTENER.search(text) and os.path.basename(text.split()[0]) == "sshd":
            return {"role": "listener", "user": None, "ttys": []}
        return {"role": None, "user": None, "ttys": []}
    rest = match.group("rest")
    if match.group("prog") == "sshd" and _LISTENER.search(rest):
        return {"role": "listener", "user": None, "ttys": []}
    if match.group("prog") == "sshd-auth":
        return {"role": "preauth", "user": None, "ttys": []}
    user_tty = _USER_TTY.match(rest)
    if user_tty:
        ttys = user_tty.group("ttys")
        return {"role": "user", "user": user_tty.group("user"),
                "ttys": [] if ttys == "notty" else ttys.split(",")}
    bare = _USER_ONLY.match(rest)
    if bare:
        return {"role": "user", "user": bare.group("user"), "ttys": []}
    tagged = _USER_TAG.match(rest)
    if tagged:
        # "[priv]" until 10.4, "[postauth]" since 10.5; a monitor says nothing of authentication
        role = "preauth" if tagged.group("tag") in ("net", "preauth") else "monitor"
        return {"role": role, "user": tagged.group("user"), "ttys": []}
    # "unknown [preauth]", "10.0.0.1 port 5555 [preauth]" and the like
    return {"role": "preauth", "user": None, "ttys": []}


def parse_stat(text):
    """Fields of /proc/PID/stat that matter here; comm may hold spaces and parentheses."""
    head, _sep, tail = text.rpartition(")")
    pid, _sep, comm = head.partition(" (")
    fields = tail.split()
    return {
        "pid": int(pid),
        "comm": comm,
        "state": fields[0],
        "ppid": int(fields[1]),
        "pgrp": int(fields[2]),
        "session": int(fields[3]),
        "tty_nr": int(fields[4]),
        "starttime": int(fields[19]),
    }


def read_stat(root, pid):
    """parse_stat of one process under a /proc-like root, or None once it is gone.

    A user can make this block (see _procread): call it through a Reader.
    """
    try:
        with open(os.path.join(root, str(pid), "stat")) as f:
            return parse_stat(f.read())
    except (IOError, OSError, ValueError, IndexError):
        return None


def unmap(address):
    """An IPv6 address as sockets and SSH_CONNECTION may both name it: IPv4-mapped as IPv4, no scope."""
    if address is None:
        return None
    address = address.split("%", 1)[0]
    if address.lower().startswith("::ffff:") and "." in address:
        return address[len("::ffff:"):]
    return address


def _hex_address(text):
    addr, port = text.split(":")
    raw = bytes.fromhex(addr)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, struct.pack("<I", struct.unpack(">I", raw)[0]))
    else:
        # /proc prints IPv6 as four host-order 32-bit words
        words = struct.unpack(">4I", raw)
        ip = unmap(socket.inet_ntop(socket.AF_INET6, struct.pack("<4I", *words)))
    return ip, int(port, 16)


def parse_proc_net_tcp(text):
    """Rows of /proc/net/tcp or tcp6 as dicts keyed by socket inode."""
    sockets = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 12:
            continue
        tx_queue, rx_queue = (int(x, 16) for x in fields[4].split(":"))
        timer, expires = fields[5].split(":")
        inode = int(fields[9])
        if inode == 0:
            continue
        sockets[inode] = {
            "local": _hex_address(fields[1]),
            "peer": _hex_address(fields[2]),
            "state": TCP_STATES.get(int(fields[3], 16), fields[3]),
            "unacked_bytes": tx_queue,
            "unread_bytes": rx_queue,
            "timer": int(timer, 16),
            "timer_jiffies": int(expires, 16),
            "retransmits": int(fields[6], 16),
            "uid": int(fields[7]),
            # zero-window or keepalive probes sent and not answered
            "probes": int(fields[8]),
        }
    return sockets


def socket_inodes(fd_links):
    """Socket inodes from readlink() of /proc/PID/fd/* ('socket:[12345]')."""
    inodes = []
    for link in fd_links:
        if link.startswith("socket:[") and link.endswith("]"):
            inodes.append(int(link[len("socket:["):-1]))
    return inodes


def exe_name(exe):
    """The file name of /proc/PID/exe's target ('/usr/sbin/sshd (deleted)' after an upgrade -> 'sshd')."""
    if not exe:
        return None
    if exe.endswith(" (deleted)"):
        exe = exe[:-len(" (deleted)")]
    return os.path.basename(exe)


def is_sshd(proc):
    """Whether the kernel says the process runs one of sshd's executables.

    The executable must have sshd's name and be root's, writable by nobody
    else (a user's copy of any program named sshd is not). /proc/PID/exe is
    readable only with ptrace access (root, or the same user); where it is
    not, a root-owned process is taken by its kernel name (comm), which only
    root can set; anything else unverifiable is not sshd's.
    """
    name = exe_name(proc.get("exe"))
    if name is not None:
        return name in SSHD_FAMILY and bool(proc.get("exe_trusted"))
    return proc.get("exe_readable") is False and proc["uid"] == 0 and proc["comm"] in SSHD_FAMILY


def is_ssh_client(proc):
    """An `ssh` client by its executable, root's (unreadable ones are other users': not ours to judge)."""
    return exe_name(proc.get("exe")) == "ssh" and bool(proc.get("exe_trusted"))


def read_argv(root, pid):
    """A process's argv, its first ARGV_LIMIT bytes (a retitled process has one element), or None (gone, unreadable)."""
    try:
        with open(os.path.join(root, str(pid), "cmdline"), "rb") as f:
            raw = f.read(ARGV_LIMIT).decode("utf-8", "replace")
    except (IOError, OSError):
        return None
    return raw.rstrip("\0").split("\0") if raw.strip("\0") else []


def read_cmdline(root, pid):
    """A process's command line with NULs as spaces, or None (gone, or unreadable)."""
    argv = read_argv(root, pid)
    return None if argv is None else " ".join(argv).strip()


def read_process(root, pid, owner=0, reader=None):
    """One process from a /proc-like root (see read_processes), or None when it vanished meanwhile."""
    for _pid, proc in read_processes(root, [pid], owner, reader):
        return proc
    return None


def read_processes(root, pids, owner=0, reader=None):
    """(pid, process) for each of pids still there, from a /proc-like root.

    status is read first: it never blocks. Everything else goes through
    `reader` (a _procread.Reader; the run's shared one by default), which
    gives up on a read that blocks. A process in D state, or one whose reads
    blocked, is 'stuck' ('blocked' says which): kept with what status says,
    since its children need it, and read no further; it has no starttime, so
    it is never signalled. 'exe_trusted': its executable is a file `owner`
    (root; tests pass their own uid) owns and nobody else may write, so no
    user's copy of a program. For sshd's and ssh's processes it adds the
    command line, 'title' (classify_title) and the socket inodes; other
    processes get cmdline None, read later only if the report needs it.
    """
    to_read = []
    for pid in pids:
        status = _procread.read_status(root, pid)
        if status is None:
            continue
        proc = dict(status, pid=pid, pgrp=None, session=None, tty_nr=0, starttime=None, exe=None,
                    exe_readable=False, exe_trusted=False, argv=None, cmdline=None, sockets=[], listening=False,
                    stuck=status["state"] == "D", blocked=False, title={"role": None, "user": None, "ttys": []})
        to_read.append((proc["uid"], (root, pid, owner, proc)))

    def owner_of(item):
        # whose the pid is now: time lost on it is charged to them, not to whom status named before
        now = _procread.read_status(root, item[1][1])
        return item[0] if now is None else now["uid"]

    for (_uid, args), read in (reader or _procread.shared()).each(_read_details, to_read, owner_of):
        if isinstance(read, _procread.Blocked):
            yield args[1], dict(args[3], stuck=True, blocked=True)
        elif read is not None:
            yield args[1], read


def _read_details(root, pid, owner, proc):
    """read_processes's reads beyond status, any of which a user can make block: a new dict, or None (gone)."""
    if proc["stuck"]:
        return proc
    stat = read_stat(root, pid)
    if stat is None:
        return None
    proc = dict(proc, **stat)
    proc["stuck"] = stat["state"] == "D"
    base = os.path.join(root, str(pid))
    try:
        proc["exe"], proc["exe_readable"] = os.readlink(os.path.join(base, "exe")), True
    except OSError as exc:
        # ENOENT: a kernel thread or a zombie; EACCES: no ptrace access to it
        proc["exe_readable"] = None if exc.errno == errno.ENOENT else False
    if proc["exe_readable"]:
        try:
            st = os.stat(os.path.join(base, "exe"))
            proc["exe_trusted"] = st.st_uid == owner and not st.st_mode & 0o022
        except OSError:
            pass
    # status was read before: a pid that passed to another process in between gives no mixed record
    again = _procread.read_status(root, pid)
    if again is None or again["uid"] != proc["uid"]:
        return None
    if proc["stuck"] or not (is_sshd(proc) or is_ssh_client(proc)):
        return proc
    proc["argv"] = read_argv(root, pid) or []
    proc["cmdline"] = " ".join(proc["argv"]).strip()
    proc["title"] = classify_title(proc["cmdline"]) if is_sshd(proc) else proc["title"]
    links = []
    try:
        for fd in os.listdir(os.path.join(base, "fd")):
            try:
                links.append(os.readlink(os.path.join(base, "fd", fd)))
            except OSError:
                continue
    except OSError:
        pass
    proc["sockets"] = socket_inodes(links)
    return proc


def tty_name(tty_nr):
    """The name of a controlling tty from its device number (stat's tty_nr), or None."""
    major = (tty_nr >> 8) & 0xfff
    minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00)
    if 136 <= major <= 143:
        return "pts/%d" % ((major - 136) * 256 + minor)
    if major == 4 and 0 < minor < 64:
        return "tty%d" % minor
    return None


def unique_inodes(rows):
    """{inode: row} from (inode, row) pairs, leaving out every inode seen twice.

    Socket inode numbers come from a 32-bit counter that wraps: a user who
    makes enough sockets can get one with the number of another's, and then
    neither row can be told to be the one a process holds.
    """
    table, twice = {}, set()
    for inode, row in rows:
        if inode in table:
            twice.add(inode)
        table[inode] = row
    for inode in twice:
        del table[inode]
    return table


def connections(proc_list, sockets, uid):
    """The connected (not listening) TCP sockets the processes hold that `uid` made, with their inodes.

    A socket's uid is its creator's: sshd's accepted connections are root's,
    an ssh client's are its user's.
    """
    found = []
    for proc in proc_list:
        for inode in proc["sockets"]:
            row = sockets.get(inode)
            if row and row["state"] != "LISTEN" and row.get("uid", uid) == uid:
                found.append(dict(row, inode=inode))
    return found


def first_connection(proc_list, sockets, uid=0):
    """The first of connections(), or None."""
    found = connections(proc_list, sockets, uid)
    return found[0] if found else None


def mark_listeners(processes, sockets):
    """Flag every process that holds a LISTEN socket; returns the sshd listeners' pids.

    The listener is known by its sockets, not its title (a listener started
    with a short argv has a title like a session's): root's sshd, started by
    something that is not sshd, holding root's listening socket and no
    connection unless its title says listener (a session that forwards a port
    listens too, but holds its connection). Only where none of its sockets can
    be seen (another network namespace, fds unreadable) does it count as one
    by its title alone.
    """
    listeners = set()
    for proc in processes.values():
        rows = [sockets[i] for i in proc["sockets"] if i in sockets]
        proc["listening"] = any(row["state"] == "LISTEN" for row in rows)
        if proc["uid"] != 0 or not is_sshd(proc):
            continue
        # a row another user made under the number of root's socket (see unique_inodes) is not its
        rows = [row for row in rows if row.get("uid", 0) == 0]
        parent = processes.get(proc["ppid"])
        if parent is not None and is_sshd(parent):
            continue
        titled = proc["title"]["role"] == "listener"
        if rows:
            listens = any(row["state"] == "LISTEN" for row in rows)
            # between accept and fork the listener holds the new connection for a moment
            serves = listens and (titled or all(row["state"] == "LISTEN" for row in rows))
        else:
            serves = titled
        if serves:
            listeners.add(proc["pid"])
    return listeners


def _children(processes):
    kids = {}
    for proc in processes.values():
        kids.setdefault(proc["ppid"], []).append(proc["pid"])
    return kids


def _descendants(kids, pid, stop=()):
    """Every process below pid, not going below the pids in `stop` nor listing them."""
    out, stack = [], list(kids.get(pid, ()))
    while stack:
        child = stack.pop()
        if child in stop:
            continue
        out.append(child)
        stack.extend(kids.get(child, ()))
    return sorted(out)


def _is_root(processes, listeners, proc):
    """Whether proc is the topmost process of one connection: root's sshd, forked by the listener.

    After an sshd restart its parent is init (or a subreaper); then only its
    own title tells it from `sshd -T` and the like.
    """
    if proc["uid"] != 0 or proc["pid"] in listeners or not is_sshd(proc):
        return False
    if proc["ppid"] in listeners:
        return True
    parent = processes.get(proc["ppid"])
    return (parent is None or not is_sshd(parent)) and proc["title"]["role"] in ("monitor", "user", "preauth")


def _user_process(root, children, uid_of, privsep_uids, connection):
    """The process that serves the user: a child of the monitor, or the root itself.

    A child counts when it is sshd's executable (not sshd-auth) and either its
    title names a user who owns it, or, whatever its title says (OpenSSH
    retitled these processes at 9.8, 10.0 and 10.5), it has the shape of the
    user's process: it runs as a user other than root and the privilege
    separation user, it holds the connection root's sshd accepted (sshd
    closes it before it runs a command or a helper), and where the monitor's
    title names a user, it is that user's. Root's children need their title:
    root's own session child (9.8 on) and the PAM helper both run as root. A
    root login has no child before 9.8: the root process itself then names root.
    """
    monitor_user = root["title"]["user"]
    for child in children:
        if not is_sshd(child) or exe_name(child.get("exe")) == "sshd-auth":
            continue
        title = child["title"]
        if title["role"] == "user":
            if uid_of(title["user"]) == child["uid"]:
                return child
            continue
        if (child["uid"] != 0 and child["uid"] not in privsep_uids and connection is not None
                and connection["inode"] in child["sockets"]
                and (monitor_user is None or uid_of(monitor_user) == child["uid"])):
            return child
    title = root["title"]
    if title["role"] == "user" and uid_of(title["user"]) == root["uid"] == 0:
        return root
    return None


def _session_user(user_proc, uid_of, name_of):
    """The user's name: the title's when it names the process's owner, else the owner's from passwd."""
    named = user_proc["title"]["user"]
    if named is not None and uid_of(named) == user_proc["uid"]:
        return named
    return name_of(user_proc["uid"]) if name_of else str(user_proc["uid"])


def _session_ttys(user_proc, kids, processes, commands):
    """The session's ttys: those the title names, or with a title that names none (an unknown scheme
    on a process that is not root's) the controlling ttys of the commands sshd started directly."""
    held = [processes[c] for c in commands]
    if user_proc["title"]["role"] == "user":
        return _held_ttys(user_proc["title"]["ttys"], held)
    names = set(tty_name(processes[c]["tty_nr"]) for c in kids.get(user_proc["pid"], ()) if processes[c]["tty_nr"])
    return _held_ttys(sorted(n for n in names if n), held)


def _held_ttys(title_ttys, holders):
    """The title's ttys that some process of the session holds as its controlling tty: [(name, tty_nr)]."""
    held = {}
    for proc in holders:
        name = tty_name(proc["tty_nr"]) if proc["tty_nr"] else None
        if name:
            held[name] = proc["tty_nr"]
    return [(name, held[name]) for name in title_ttys if _TTY_NAME.match(name) and name in held]


def group_sessions(processes, sockets, uid_of, listeners=None, name_of=None):
    """Inbound SSH connections from a process table and a TCP table.

    processes: {pid: read_process() dict}; sockets: {inode: TCP row};
    uid_of: user name -> uid or None; name_of: uid -> user name. Each connection is rooted at root's
    sshd process forked by the listener (the monitor, or the only process of a
    root login before 9.8, or a pre-auth connection); its sshd processes are
    it and its direct sshd children. It is authenticated only when a user
    process (see _user_process) exists. Returns one dict per connection,
    sorted by root pid.
    """
    if listeners is None:
        listeners = mark_listeners(processes, sockets)
    kids = _children(processes)
    privsep_uids = set(uid for uid in map(uid_of, PRIVSEP_USERS) if uid is not None)
    roots = [p for p in sorted(processes) if _is_root(processes, listeners, processes[p])]
    # a listener started inside a session (sshd -D -p 2222 while debugging) serves sessions of its own
    stop = listeners.union(roots)
    sessions = []
    for pid in roots:
        root = processes[pid]
        children = [processes[c] for c in sorted(kids.get(pid, ())) if is_sshd(processes[c])]
        user_proc = _user_process(root, children, uid_of, privsep_uids, first_connection([root], sockets, uid=0))
        sshd = [root] + children
        sshd_pids = [p["pid"] for p in sshd]
        commands = [c for c in _descendants(kids, pid, stop) if c not in sshd_pids]
        ttys = _session_ttys(user_proc, kids, processes, commands) if user_proc else []
        sessions.append({
            "listener_pid": root["ppid"] if root["ppid"] in listeners else None,
            "monitor_pid": pid,
            "user_pid": user_proc["pid"] if user_proc else None,
            "uid": user_proc["uid"] if user_proc else None,
            "sshd_pids": sshd_pids,
            "command_pids": commands,
            # before authentication the title's user is only what the client asked for
            "user": _session_user(user_proc, uid_of, name_of) if user_proc else root["title"]["user"],
            "ttys": [name for name, _nr in ttys],
            "tty_nrs": [nr for _name, nr in ttys],
            "authenticated": user_proc is not None,
            "starttime": root["starttime"],
            "socket": first_connection(sshd, sockets, uid=0),
        })
    return sessions
