"""module_utils._sockdiag: inet_diag requests and replies.

Parsing is tested on a reply recorded from the kernel (an IPv6 loopback
connection, fixtures/sockdiag); dump() is tested against the real kernel with a
loopback connection this test makes.
"""

import json
import os
import socket
import struct
import time

import pytest

from ansible_collections.hangup.ssh.plugins.module_utils import _sockdiag

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "sockdiag", "ipv6-loopback.json")


def test_build_request_layout():
    req = _sockdiag.build_request(socket.AF_INET6, seq=7)
    length, msg_type, flags, seq, pid = struct.unpack_from("=IHHII", req)
    assert (length, len(req), msg_type, flags, seq, pid) == (72, 72, 20, 0x301, 7, 0)
    family, proto, ext, states = struct.unpack_from("=BBBxI", req, 16)
    assert (family, proto, ext, states) == (socket.AF_INET6, socket.IPPROTO_TCP, 2, 1 << 1)


def test_parse_recorded_reply():
    with open(FIXTURE) as f:
        rec = json.load(f)
    first, done = _sockdiag.parse_reply(bytes.fromhex(rec["recv"][0]))
    assert not done
    by_inode = {e["inode"]: e for e in first}
    client = by_inode[rec["client_inode"]]
    assert client["local"] == tuple(rec["client"]) and client["peer"] == tuple(rec["server"])
    assert by_inode[rec["server_inode"]]["local"] == tuple(rec["server"])
    info = client["tcp_info"]
    assert info["state"] == _sockdiag.TCP_ESTABLISHED and info["unacked"] == 0 and info["backoff"] == 0
    assert 400 <= info["last_data_sent"] <= 2000 and info["rto"] >= 200000
    rest, done = _sockdiag.parse_reply(bytes.fromhex(rec["recv"][1]))
    assert rest == [] and done


def test_error_reply_raises():
    body = struct.pack("=i", -13) + b"\0" * 16
    msg = struct.pack("=IHHII", 16 + len(body), _sockdiag.NLMSG_ERROR, 0, 1, 0) + body
    with pytest.raises(_sockdiag.SockDiagUnavailable, match="Permission denied"):
        _sockdiag.parse_reply(msg)


def test_garbage_and_truncated_input_is_ignored():
    assert _sockdiag.parse_reply(b"") == ([], False)
    assert _sockdiag.parse_reply(b"\x04\0\0\0" + b"\0" * 12) == ([], False)


def test_dump_sees_a_real_loopback_connection_with_its_liveness():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    with srv, socket.create_connection(srv.getsockname()) as client:
        peer, _addr = srv.accept()
        with peer:
            client.sendall(b"ping")
            assert peer.recv(4) == b"ping"
            time.sleep(0.3)
            try:
                table = _sockdiag.dump(families=(socket.AF_INET,))
            except _sockdiag.SockDiagUnavailable as exc:
                pytest.skip("this kernel or sandbox has no sock_diag: %s" % exc)
            entry = table[os.fstat(peer.fileno()).st_ino]
            assert entry["peer"] == client.getsockname()
            # the server side last received data ~0.3 s ago and owes no ACKs
            assert 200 <= entry["tcp_info"]["last_data_recv"] <= 5000
            assert entry["tcp_info"]["unacked"] == 0
