# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TCP liveness from the kernel through NETLINK_SOCK_DIAG (inet_diag with tcp_info).

build_request and parse_reply are pure (tested on replies recorded from the
kernel); dump() is the only function that talks to the kernel. Where netlink
is not available (old kernels, seccomp, no AF_NETLINK), dump() raises
SockDiagUnavailable and callers fall back to /proc/net/tcp, which lacks the
last-received/last-ACK times.
"""

from __future__ import annotations

import os
import socket
import struct

from ansible_collections.hangup.ssh.plugins.module_utils import _sshproc

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x01
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_INFO = 2
TCP_ESTABLISHED = 1

_NLMSGHDR = struct.Struct("=IHHII")
# family, protocol, ext, pad, states, then inet_diag_sockid:
# sport, dport (network order), src[16], dst[16], interface, cookie[2]
_REQ = struct.Struct("=BBBxI")
_SOCKID = struct.Struct("!HH16s16s")
_SOCKID_TAIL = struct.Struct("=III")
# inet_diag_msg after the sockid: expires, rqueue, wqueue, uid, inode
_MSG_HEAD = struct.Struct("=BBBB")
_MSG_TAIL = struct.Struct("=IIIII")
_RTA = struct.Struct("=HH")
# struct tcp_info: 8 single bytes, then 32-bit fields in this order
_TCP_INFO_BYTES = ("state", "ca_state", "retransmits", "probes", "backoff", "options", "wscale", "flags")
_TCP_INFO_U32 = ("rto", "ato", "snd_mss", "rcv_mss", "unacked", "sacked", "lost", "retrans", "fackets",
                 "last_data_sent", "last_ack_sent", "last_data_recv", "last_ack_recv", "pmtu",
                 "rcv_ssthresh", "rtt", "rttvar", "snd_ssthresh", "snd_cwnd", "advmss", "reordering",
                 "rcv_rtt", "rcv_space", "total_retrans")


class SockDiagUnavailable(Exception):
    """The kernel did not answer a sock_diag dump."""


def build_request(family, states=1 << TCP_ESTABLISHED, seq=1):
    """One SOCK_DIAG_BY_FAMILY dump request for TCP sockets of `family`, with tcp_info."""
    body = (_REQ.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), states)
            + _SOCKID.pack(0, 0, b"\0" * 16, b"\0" * 16) + _SOCKID_TAIL.pack(0, 0, 0))
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def _address(family, raw, port):
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4]), port
    return _sshproc.unmap(socket.inet_ntop(socket.AF_INET6, raw)), port


def parse_tcp_info(raw):
    """The fields of struct tcp_info that liveness needs (times in milliseconds, rto in microseconds)."""
    info = dict(zip(_TCP_INFO_BYTES, raw[:8]))
    count = min(len(_TCP_INFO_U32), (len(raw) - 8) // 4)
    info.update(zip(_TCP_INFO_U32[:count], struct.unpack_from("=%dI" % count, raw, 8)))
    return info


def parse_reply(data):
    """Parse one recv() worth of netlink messages.

    Returns (sockets, done): sockets as dicts keyed like /proc/net/tcp rows plus
    'tcp_info'; done is True once NLMSG_DONE was seen.
    """
    sockets, offset, done = [], 0, False
    while offset + _NLMSGHDR.size <= len(data):
        length, msg_type, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        body = data[offset + _NLMSGHDR.size:offset + length]
        offset += (length + 3) & ~3
        if msg_type == NLMSG_DONE:
            done = True
            break
        if msg_type == NLMSG_ERROR:
            errno = -struct.unpack_from("=i", body)[0]
            raise SockDiagUnavailable("sock_diag error: %s" % os.strerror(errno))
        if msg_type != SOCK_DIAG_BY_FAMILY:
            continue
        family, state, timer, retrans = _MSG_HEAD.unpack_from(body, 0)
        sport, dport, src, dst = _SOCKID.unpack_from(body, _MSG_HEAD.size)
        pos = _MSG_HEAD.size + _SOCKID.size + _SOCKID_TAIL.size
        expires, rqueue, wqueue, uid, inode = _MSG_TAIL.unpack_from(body, pos)
        pos += _MSG_TAIL.size
        entry = {
            "inode": inode, "uid": uid, "state": state, "timer": timer, "retransmits": retrans,
            "expires_ms": expires, "unread_bytes": rqueue, "unacked_bytes": wqueue,
            "local": _address(family, src, sport), "peer": _address(family, dst, dport), "tcp_info": None,
        }
        while pos + _RTA.size <= len(body):
            rta_len, rta_type = _RTA.unpack_from(body, pos)
            if rta_len < _RTA.size:
                break
            if rta_type == INET_DIAG_INFO:
                entry["tcp_info"] = parse_tcp_info(body[pos + _RTA.size:pos + rta_len])
            pos += (rta_len + 3) & ~3
        sockets.append(entry)
    return sockets, done


def dump(families=(socket.AF_INET, socket.AF_INET6), states=1 << TCP_ESTABLISHED, timeout=5.0):
    """TCP sockets of this network namespace in `states` (a bit mask), from the kernel, keyed by inode.

    An inode number seen twice is left out (see _sshproc.unique_inodes).
    """
    rows = []
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except (AttributeError, OSError) as exc:
        raise SockDiagUnavailable("no NETLINK_SOCK_DIAG socket: %s" % exc)
    with sock:
        sock.settimeout(timeout)
        for seq, family in enumerate(families, 1):
            try:
                sock.sendto(build_request(family, states, seq), (0, 0))
                done = False
                while not done:
                    entries, done = parse_reply(sock.recv(65536))
                    rows.extend((entry["inode"], entry) for entry in entries)
            except (OSError, socket.timeout) as exc:
                raise SockDiagUnavailable("sock_diag dump failed: %s" % exc)
    return _sshproc.unique_inodes(rows)
