# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parsing of what /proc says about SSH processes and their TCP sockets.

Nothing here reads the live system: callers pass text in (or a /proc-like root
to read_process), so all of it is unit-tested on tables recorded from
OpenSSH 8.4, 9.2 and 10.0.
"""

from __future__ import annotations

import os
import re
import socket
import struct

# Process titles sshd sets (setproctitle), before 9.8 "sshd: ..." and since
# 9.8 "sshd-session: ..." for the per-connection processes, "sshd-auth: ..."
# (10.0) for the pre-authentication one.
_TITLE = re.compile(
    r"^(?P<prog>sshd|sshd-session|sshd-auth):\s+(?P<rest>.*?)\s*$"
)
_USER_TTY = re.compile(r"^(?P<user>[^\s@]+)@(?P<ttys>\S+)$")
# a session with no channel open yet, or only forwardings (`ssh -N`)
_USER_ONLY = re.compile(r"^(?P<user>[^\s@\[]+)$")
_USER_TAG = re.compile(r"^(?P<user>[^\s@\[]+)\s+\[(?P<tag>[a-z]+)\]$")
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
        role = "monitor" if tagged.group("tag") == "priv" else "preauth"
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


def parse_status_uid(text):
    """Real uid from /proc/PID/status."""
    for line in text.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def _hex_address(text):
    addr, port = text.split(":")
    raw = bytes.fromhex(addr)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, struct.pack("<I", struct.unpack(">I", raw)[0]))
    else:
        # /proc prints IPv6 as four host-order 32-bit words
        words = struct.unpack(">4I", raw)
        ip = socket.inet_ntop(socket.AF_INET6, struct.pack("<4I", *words))
        if ip.startswith("::ffff:") and "." in ip:
            ip = ip[len("::ffff:"):]
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


def read_process(root, pid):
    """One process from a /proc-like root, or None when it vanished meanwhile.

    Adds 'title' (classify_title); the socket fds are listed only for sshd's
    processes and ssh clients, the only ones whose sockets matter.
    """
    base = os.path.join(root, str(pid))
    try:
        with open(os.path.join(base, "stat")) as f:
            stat = parse_stat(f.read())
        with open(os.path.join(base, "cmdline"), "rb") as f:
            cmdline = f.read().decode("utf-8", "replace").replace("\0", " ").strip()
        with open(os.path.join(base, "status")) as f:
            uid = parse_status_uid(f.read())
    except (IOError, OSError, ValueError, IndexError):
        return None
    title = classify_title(cmdline)
    links = []
    if title["role"] is not None or stat["comm"] == "ssh":
        try:
            for fd in os.listdir(os.path.join(base, "fd")):
                try:
                    links.append(os.readlink(os.path.join(base, "fd", fd)))
                except OSError:
                    continue
        except OSError:
            pass
    stat.update(cmdline=cmdline, uid=uid, sockets=socket_inodes(links), title=title)
    return stat


def _children(processes):
    kids = {}
    for proc in processes.values():
        kids.setdefault(proc["ppid"], []).append(proc["pid"])
    return kids


def _descendants(kids, pid):
    out, stack = [], list(kids.get(pid, ()))
    while stack:
        child = stack.pop()
        out.append(child)
        stack.extend(kids.get(child, ()))
    return sorted(out)


def group_sessions(processes, sockets):
    """Inbound SSH connections from a process table and a TCP table.

    processes: {pid: read_process() dict, with 'title' = classify_title() added}
    sockets: {inode: parse_proc_net_tcp() row}
    Each connection is rooted at the topmost sshd session process: the
    privileged monitor, or (root logins before 9.8, and pre-auth) the only
    process. Its parent is the listener, or init once sshd was restarted.
    Returns one dict per connection, sorted by root pid.
    """
    kids = _children(processes)
    session_roles = ("monitor", "user", "preauth")

    def is_session(pid):
        return pid in processes and processes[pid]["title"]["role"] in session_roles

    sessions = []
    for root in sorted(p for p in processes if is_session(p) and not is_session(processes[p]["ppid"])):
        root_proc = processes[root]
        parent = processes.get(root_proc["ppid"])
        tree = _descendants(kids, root)
        sshd_pids = [root] + [p for p in tree if is_session(p)]
        user_procs = [processes[p] for p in sshd_pids if processes[p]["title"]["role"] == "user"]
        titled = user_procs[0] if user_procs else root_proc
        conn = None
        for pid in sshd_pids:
            for inode in processes[pid]["sockets"]:
                row = sockets.get(inode)
                if row and row["state"] != "LISTEN":
                    conn = dict(row, inode=inode)
                    break
            if conn:
                break
        sessions.append({
            "listener_pid": parent["pid"] if parent and parent["title"]["role"] == "listener" else None,
            "monitor_pid": root,
            "user_pid": user_procs[0]["pid"] if user_procs else None,
            "sshd_pids": sshd_pids,
            "command_pids": [p for p in tree if p not in sshd_pids],
            "user": titled["title"]["user"],
            "ttys": titled["title"]["ttys"],
            "authenticated": root_proc["title"]["role"] != "preauth",
            "starttime": root_proc["starttime"],
            "socket": conn,
        })
    return sessions
