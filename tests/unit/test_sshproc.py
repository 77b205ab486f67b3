"""module_utils._sshproc: sshd process titles, /proc stat and TCP tables."""

import os

import pytest
import recorded

from ansible_collections.hangup.ssh.plugins.module_utils import _sshproc

TITLES = [
    # OpenSSH 8.4 / 9.2 titles
    ("sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups", "listener", None, []),
    ("/usr/sbin/sshd -D", "listener", None, []),
    ("sshd: alice [priv]", "monitor", "alice", []),
    ("sshd: alice@pts/0", "user", "alice", ["pts/0"]),
    ("sshd: alice@notty", "user", "alice", []),
    ("sshd: root@pts/3", "user", "root", ["pts/3"]),
    ("sshd: svc.backup-01@notty", "user", "svc.backup-01", []),
    ("sshd: svc.backup-01 [priv]", "monitor", "svc.backup-01", []),
    ("sshd: alice@pts/0,pts/1", "user", "alice", ["pts/0", "pts/1"]),
    ("sshd: alice [net]", "preauth", "alice", []),
    ("sshd: root", "user", "root", []),  # ssh -N: no channel, no tty
    ("sshd-session: alice", "user", "alice", []),
    ("sshd: [accepted]", "preauth", None, []),
    ("sshd: unknown [preauth]", "preauth", "unknown", []),
    ("sshd: 10.0.0.9 port 40112 [preauth]", "preauth", None, []),
    # OpenSSH 9.8+ / 10.0
    ("sshd-session: bob [priv]", "monitor", "bob", []),
    ("sshd-session: bob@pts/1", "user", "bob", ["pts/1"]),
    ("sshd-session: bob@notty", "user", "bob", []),
    ("sshd-auth: 10.0.0.9 [net]", "preauth", None, []),
    # not sshd's
    ("ssh -p 22 root@10.0.0.2", None, None, []),
    ("bash -c sshd: alice@pts/0", None, None, []),
    ("/usr/bin/python3 sshd.py", None, None, []),
    ("", None, None, []),
]


@pytest.mark.parametrize("title,role,user,ttys", TITLES)
def test_classify_title(title, role, user, ttys):
    got = _sshproc.classify_title(title)
    assert (got["role"], got["user"], got["ttys"]) == (role, user, ttys)


def test_classify_title_nul_separated_cmdline():
    assert _sshproc.classify_title("/usr/sbin/sshd\0-D\0")["role"] == "listener"


STAT = ("4242 (sshd: a) b) S 1 4242 4242 34816 4242 4194560 1 0 0 0 0 0 0 0 20 0 1 0 "
        "987654 10000000 300 18446744073709551615 1 1 0 0 0 0 0 4096 81926 0 0 0 17 1 0 0 0 0 0")


def test_parse_stat_with_parentheses_in_comm():
    got = _sshproc.parse_stat(STAT)
    assert got == {"pid": 4242, "comm": "sshd: a) b", "state": "S", "ppid": 1, "pgrp": 4242,
                   "session": 4242, "tty_nr": 34816, "starttime": 987654}


def test_parse_status_uid():
    assert _sshproc.parse_status_uid("Name:\tsshd\nUid:\t1000\t1000\t1000\t1000\n") == 1000
    assert _sshproc.parse_status_uid("Name:\tx\n") is None


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt uid timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0
   1: 0200580A:0016 0300580A:ADA2 01 00000024:00000000 01:00000031 00000003     0        0 1002 4 0 20 4 30 10 -1
   2: 0300580A:ADA2 0200580A:0016 01 00000000:00000000 02:000A7F2B 00000000     0        0 0 4 0 20 4 30 10 -1
"""
TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt uid inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000200580A:0016 0000000000000000FFFF00000300580A:C350 01 00000000:00000000 02:00000010 00000000 0 0 2002 1 0 20 4 30 10 -1
   2: 000080FE00000000FF0000000100A8C0:0016 000080FE00000000FF0000000200A8C0:D431 01 00000000:00000008 00:00000000 00000000 1000 0 2003 1 0 20 4 30 10 -1
"""


def test_parse_proc_net_tcp_ipv4():
    got = _sshproc.parse_proc_net_tcp(TCP)
    assert set(got) == {1001, 1002}  # inode 0 (a TIME_WAIT-like orphan) is dropped
    assert got[1001]["state"] == "LISTEN" and got[1001]["local"] == ("0.0.0.0", 22)
    row = got[1002]
    assert row["local"] == ("10.88.0.2", 22) and row["peer"] == ("10.88.0.3", 44450)
    assert (row["state"], row["unacked_bytes"], row["retransmits"], row["timer"]) == ("ESTABLISHED", 0x24, 3, 1)


def test_parse_proc_net_tcp_ipv6_and_mapped():
    got = _sshproc.parse_proc_net_tcp(TCP6)
    assert got[2001]["local"] == ("::", 22)
    assert got[2002]["peer"] == ("10.88.0.3", 50000)  # v4-mapped shown as IPv4
    assert got[2003]["local"] == ("fe80::ff:c0a8:1", 22) and got[2003]["peer"] == ("fe80::ff:c0a8:2", 54321)
    assert got[2003]["unread_bytes"] == 8 and got[2003]["uid"] == 1000


def test_socket_inodes():
    assert _sshproc.socket_inodes(["/dev/null", "socket:[1002]", "pipe:[7]", "socket:[9]"]) == [1002, 9]


def test_read_process_from_a_proc_like_root(tmp_path):
    base = tmp_path / "4242"
    (base / "fd").mkdir(parents=True)
    (base / "stat").write_text(STAT)
    (base / "cmdline").write_bytes(b"sshd: alice@pts/0\0\0")
    (base / "status").write_text("Name:\tsshd\nUid:\t1000\t1000\t1000\t1000\n")
    os.symlink("socket:[1002]", base / "fd" / "3")
    os.symlink("/dev/null", base / "fd" / "0")
    got = _sshproc.read_process(str(tmp_path), 4242)
    assert got["cmdline"] == "sshd: alice@pts/0" and got["uid"] == 1000 and got["sockets"] == [1002]
    assert _sshproc.read_process(str(tmp_path), 4243) is None
    assert got["title"]["role"] == "user"


def test_read_process_lists_fds_of_ssh_processes_only(tmp_path):
    for pid, comm, cmdline in ((10, "nginx", b"nginx: worker\0"), (11, "ssh", b"ssh\0-T\0host\0")):
        base = tmp_path / str(pid)
        (base / "fd").mkdir(parents=True)
        (base / "stat").write_text(STAT.replace("4242 (sshd: a) b)", "%d (%s)" % (pid, comm)))
        (base / "cmdline").write_bytes(cmdline)
        (base / "status").write_text("Uid:\t0\t0\t0\t0\n")
        os.symlink("socket:[7]", base / "fd" / "3")
    assert _sshproc.read_process(str(tmp_path), 10)["sockets"] == []
    assert _sshproc.read_process(str(tmp_path), 11)["sockets"] == [7]


def _proc(pid, ppid, cmdline, sockets=(), starttime=100):
    return {"pid": pid, "ppid": ppid, "cmdline": cmdline, "sockets": list(sockets), "starttime": starttime,
            "title": _sshproc.classify_title(cmdline)}


def test_group_sessions_both_title_schemes_and_root_single_process():
    procs = {p["pid"]: p for p in [
        _proc(1, 0, "/usr/bin/tini -- /usr/local/sbin/lab-init"),
        _proc(15, 1, "sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups", [1001]),
        # root login on 8.4: one process
        _proc(34, 15, "sshd: root@pts/0", [1002], starttime=500),
        _proc(42, 34, "-bash"),
        _proc(43, 42, "sleep 100"),
        # non-root on 10.0: monitor and user child, sftp below
        _proc(60, 15, "sshd-session: svc.backup-01 [priv]", [1003], starttime=600),
        _proc(61, 60, "sshd-session: svc.backup-01@notty", [1003]),
        _proc(62, 61, "/usr/lib/openssh/sftp-server"),
        # pre-auth connection
        _proc(70, 15, "sshd-auth: 10.0.0.9 [net]", [1004]),
        # an outbound client is no session
        _proc(80, 1, "ssh root@10.0.0.7", [1005]),
    ]}
    socks = {
        1001: {"state": "LISTEN", "local": ("0.0.0.0", 22), "peer": ("0.0.0.0", 0)},
        1002: {"state": "ESTABLISHED", "local": ("10.0.0.2", 22), "peer": ("10.0.0.3", 40000)},
        1003: {"state": "ESTABLISHED", "local": ("10.0.0.2", 22), "peer": ("fd00::5", 40001)},
        1004: {"state": "ESTABLISHED", "local": ("10.0.0.2", 22), "peer": ("10.0.0.9", 40002)},
        1005: {"state": "ESTABLISHED", "local": ("10.0.0.2", 50000), "peer": ("10.0.0.7", 22)},
    }
    got = _sshproc.group_sessions(procs, socks)
    assert [s["monitor_pid"] for s in got] == [34, 60, 70]
    root, svc, pre = got
    assert (root["user"], root["ttys"], root["user_pid"], root["command_pids"]) == ("root", ["pts/0"], 34, [42, 43])
    assert root["socket"]["peer"] == ("10.0.0.3", 40000) and root["starttime"] == 500
    assert (svc["user"], svc["ttys"], svc["user_pid"], svc["sshd_pids"], svc["command_pids"]) == (
        "svc.backup-01", [], 61, [60, 61], [62])
    assert svc["socket"]["peer"] == ("fd00::5", 40001) and svc["socket"]["inode"] == 1003
    assert pre["authenticated"] is False and pre["user"] is None


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_recorded_tables_group_into_sessions(tmp_path, version):
    data = recorded.load(version)
    root, _dev = recorded.build_tree(tmp_path, data)
    procs = {}
    for pid in data["procs"]:
        proc = _sshproc.read_process(root, int(pid))
        proc["title"] = _sshproc.classify_title(proc["cmdline"])
        procs[proc["pid"]] = proc
    sessions = _sshproc.group_sessions(procs, recorded.sockets_from_proc(data))
    by_port = {s["socket"]["peer"][1]: s for s in sessions if s["socket"]}
    inbound = {k: v for k, v in data["sessions"].items() if k not in ("outbound", "svc-lost")}
    # the listener's TCP-less children aside, one connection per inbound session, found by its socket
    assert len(sessions) == len(inbound)
    for label, kit in inbound.items():
        sess = by_port[kit["client_port"]]
        assert set(kit["server_pids"]) <= set(sess["sshd_pids"]), label
        assert sess["authenticated"] and sess["listener_pid"] == 15
