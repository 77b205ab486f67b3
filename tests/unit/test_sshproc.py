"""module_utils._sshproc: sshd process titles, /proc stat and TCP tables."""

import os

import pytest
import recorded

import synthetic
from synthetic import proc

from ansible_collections.hangup.ssh.plugins.module_utils import _procread, _sshproc

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


def test_status_fields():
    text = "Name:\tsshd: a\\\\b\\n\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t7\nPPid:\t1\nUid:\t1000\t0\t0\t0\n"
    assert _procread.status_fields(text) == {"comm": "sshd: a\\b\n", "state": "S", "ppid": 1, "uid": 1000}
    assert _procread.status_fields("Name:\tx\nUid:\t1\t1\t1\t1\n") is None


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


def _write(root, pid, stat=STAT, comm="sshd: a) b", cmdline=b"", uid=0, exe=None, fds=(), mode=0o755):
    """One process under root/proc; its executable a file under root/fs (mode 0o757: anyone may write it)."""
    base = root / "proc" / str(pid)
    (base / "fd").mkdir(parents=True)
    (base / "stat").write_text(stat.replace("4242 (sshd: a) b)", "%d (%s)" % (pid, comm)))
    (base / "cmdline").write_bytes(cmdline)
    (base / "status").write_text("Name:\t%s\nState:\tS (sleeping)\nPPid:\t1\nUid:\t%d\t%d\t%d\t%d\n" % (
        (comm,) + (uid,) * 4))
    if exe:
        # the kernel names a replaced executable 'PATH (deleted)'; here that is the file's name
        target = root / "fs" / exe.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
        target.chmod(mode)
        os.symlink(target, base / "exe")
    for n, link in enumerate(fds):
        os.symlink(link, base / "fd" / str(n + 3))


def _read(root, pid):
    return _sshproc.read_process(str(root / "proc"), pid, owner=recorded.OWNER)


def test_read_process_from_a_proc_like_root(tmp_path):
    _write(tmp_path, 4242, comm="sshd-session", cmdline=b"sshd-session: alice@pts/0\0\0", uid=1000,
           exe="/usr/lib/openssh/sshd-session", fds=("socket:[1002]", "/dev/null"))
    got = _read(tmp_path, 4242)
    assert got["cmdline"] == "sshd-session: alice@pts/0" and got["uid"] == 1000 and got["sockets"] == [1002]
    assert got["title"]["role"] == "user" and got["tty_nr"] == 34816
    assert _read(tmp_path, 4243) is None


def test_read_process_reads_titles_and_fds_of_real_ssh_executables_only(tmp_path):
    _write(tmp_path, 10, comm="nginx", cmdline=b"nginx: worker\0", exe="/usr/sbin/nginx", fds=("socket:[7]",))
    _write(tmp_path, 11, comm="ssh", cmdline=b"ssh\0-T\0host\0", exe="/usr/bin/ssh", fds=("socket:[7]",))
    # exec -a: a title like sshd's, the executable sleep's
    _write(tmp_path, 12, comm="sleep", cmdline=b"sshd: root@pts/0\0", uid=1000, exe="/usr/bin/sleep",
           fds=("socket:[8]",))
    # sshd replaced on disk by an upgrade while it runs
    _write(tmp_path, 13, comm="sshd", cmdline=b"sshd: root [priv]\0", exe="/usr/sbin/sshd (deleted)")
    # a user's own copy of sshd: anyone may write it, as no root-owned file of sshd's would allow
    _write(tmp_path, 14, comm="sshd", cmdline=b"sshd: root [priv]\0", exe="/home/alice/sshd", mode=0o757)
    procs = {p: _read(tmp_path, p) for p in (10, 11, 12, 13, 14)}
    assert [procs[p]["sockets"] for p in (10, 11, 12)] == [[], [7], []]
    assert procs[10]["cmdline"] is None and procs[11]["argv"] == ["ssh", "-T", "host"]
    assert procs[12]["title"]["role"] is None and not _sshproc.is_sshd(procs[12])
    assert _sshproc.is_sshd(procs[13]) and procs[13]["title"]["role"] == "monitor"
    assert not _sshproc.is_sshd(procs[14]) and procs[14]["cmdline"] is None


def test_read_process_reads_only_stat_of_a_process_in_d_state(tmp_path):
    stuck = STAT.replace(") S 1", ") D 1")
    _write(tmp_path, 20, stat=stuck, comm="sshd", exe="/usr/sbin/sshd", fds=("socket:[9]",))
    got = _read(tmp_path, 20)
    assert got["stuck"] and got["cmdline"] is None and got["sockets"] == []


def test_is_sshd_when_the_executable_cannot_be_read():
    # without ptrace access only root's processes are taken by their kernel name
    base = {"exe": None, "exe_readable": False, "comm": "sshd-session"}
    assert _sshproc.is_sshd(dict(base, uid=0))
    assert not _sshproc.is_sshd(dict(base, uid=1000))
    assert not _sshproc.is_sshd(dict(base, uid=0, exe_readable=None))  # a kernel thread or zombie


@pytest.mark.parametrize("tty_nr,name", [(34816, "pts/0"), (34819, "pts/3"), ((137 << 8) | 4, "pts/260"),
                                         ((4 << 8) | 2, "tty2"), (0, None), ((5 << 8) | 1, None)])
def test_tty_name_from_the_device_number(tty_nr, name):
    assert _sshproc.tty_name(tty_nr) == name


def _sessions(procs, socks):
    return _sshproc.group_sessions(procs, socks, synthetic.uid_of)


def test_group_sessions_both_title_schemes_and_root_single_process():
    procs = synthetic.table(
        proc(1, 0, "/usr/bin/tini -- /usr/local/sbin/lab-init"),
        proc(15, 1, "sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups", sockets=[1001]),
        # root login on 8.4: one process
        proc(34, 15, "sshd: root@pts/0", sockets=[1002], starttime=500),
        proc(42, 34, "-bash", tty_nr=synthetic.PTS0),
        proc(43, 42, "sleep 100", tty_nr=synthetic.PTS0),
        # non-root on 10.0: monitor and user child, sftp below
        proc(60, 15, "sshd-session: svc.backup-01 [priv]", sockets=[1003], starttime=600),
        proc(61, 60, "sshd-session: svc.backup-01@notty", uid=1001, sockets=[1003]),
        proc(62, 61, "/usr/lib/openssh/sftp-server", uid=1001),
        # pre-auth connection: the monitor already carries the name the client asked for
        proc(70, 15, "sshd-session: alice [priv]", sockets=[1004]),
        proc(71, 70, "sshd-auth: alice [net]", exe="/usr/lib/openssh/sshd-auth", uid=997, sockets=[1004]),
        # 10.5 and later: the monitor is "[postauth]"
        proc(80, 15, "sshd-session: alice [postauth]", sockets=[1006]),
        proc(81, 80, "sshd-session: alice@notty", uid=1000, sockets=[1006]),
        # an outbound client is no session
        proc(90, 1, "ssh root@10.0.0.7", sockets=[1005]),
    )
    socks = {
        1001: synthetic.LISTEN,
        1002: synthetic.established(("10.0.0.2", 22), ("10.0.0.3", 40000)),
        1003: synthetic.established(("10.0.0.2", 22), ("fd00::5", 40001)),
        1004: synthetic.established(("10.0.0.2", 22), ("10.0.0.9", 40002)),
        1005: synthetic.established(("10.0.0.2", 50000), ("10.0.0.7", 22)),
        1006: synthetic.established(("10.0.0.2", 22), ("10.0.0.9", 40003)),
    }
    got = _sessions(procs, socks)
    assert [s["monitor_pid"] for s in got] == [34, 60, 70, 80]
    root, svc, pre, post = got
    assert (root["user"], root["ttys"], root["user_pid"], root["command_pids"]) == ("root", ["pts/0"], 34, [42, 43])
    assert root["socket"]["peer"] == ("10.0.0.3", 40000) and root["starttime"] == 500 and root["tty_nrs"] == [34816]
    assert (svc["user"], svc["ttys"], svc["user_pid"], svc["sshd_pids"], svc["command_pids"]) == (
        "svc.backup-01", [], 61, [60, 61], [62])
    assert svc["socket"]["peer"] == ("fd00::5", 40001) and svc["socket"]["inode"] == 1003
    assert pre["authenticated"] is False and pre["user"] == "alice" and pre["sshd_pids"] == [70, 71]
    assert post["authenticated"] and post["user_pid"] == 81 and post["uid"] == 1000


def test_sessions_are_recognised_by_structure_whatever_the_next_titles_say():
    procs = synthetic.table(
        proc(1, 0, "init"),
        proc(15, 1, "sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups", sockets=[1001]),
        # a retitled release: neither the monitor's nor the user child's title is a scheme known today
        proc(20, 15, "sshd-session: alice (monitor)", sockets=[1002]),
        proc(21, 20, "sshd-session: serving alice on pts/0", uid=1000, sockets=[1002]),
        proc(22, 21, "-bash", uid=1000, tty_nr=synthetic.PTS0),
        # the same before authentication: the child runs as the privilege separation user
        proc(30, 15, "sshd-session: alice (monitor)", sockets=[1003]),
        proc(31, 30, "sshd-session: alice (pre-auth)", uid=997, sockets=[1003]),
        # PAM's helper, forked by the monitor as root during the password prompt, titled like it
        proc(40, 15, "sshd: alice [priv]", sockets=[1004]),
        proc(41, 40, "sshd: alice [priv]", sockets=[1004]),
        # a root child whose title names no user: root's need their title
        proc(50, 15, "sshd-session: root (monitor)", sockets=[1005]),
        proc(51, 50, "sshd-session: serving root", sockets=[1005]),
    )
    socks = {1001: synthetic.LISTEN,
             **{i: synthetic.established(("10.0.0.2", 22), ("10.0.0.3", 40000 + i)) for i in (1002, 1003, 1004, 1005)}}
    names = {1000: "alice", 997: "sshd"}
    got = _sshproc.group_sessions(procs, socks, synthetic.uid_of, name_of=names.get)
    assert [s["monitor_pid"] for s in got] == [20, 30, 40, 50]
    retitled, pre, pam, root = got
    assert (retitled["authenticated"], retitled["user_pid"], retitled["uid"], retitled["user"]) == (True, 21, 1000, "alice")
    assert retitled["ttys"] == ["pts/0"] and retitled["command_pids"] == [22]
    assert pre["authenticated"] is False and pre["user_pid"] is None
    assert pam["authenticated"] is False and root["authenticated"] is False


def test_a_child_of_another_shape_is_not_the_users_whatever_its_uid():
    """What a hostile review found: children of a monitor that run as someone else than root and sshd."""
    nobody = 65534
    uids = dict(synthetic.UIDS, nobody=nobody)
    procs = synthetic.table(
        proc(1, 0, "init"),
        proc(15, 1, "sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups", sockets=[1001]),
        # a build whose privilege separation user is not "sshd" (Arch: nobody), at the password prompt
        proc(20, 15, "sshd: alice [priv]", sockets=[1002]),
        proc(21, 20, "sshd: alice [net]", uid=97, sockets=[1002]),
        # AuthorizedKeysCommand's child, stopped before its exec: sshd's executable, no connection held
        proc(30, 15, "sshd-session: bob [priv]", sockets=[1003]),
        proc(31, 30, "sshd-session: bob [priv]", uid=nobody, state="T"),
        # root's one-process login before 9.8, whose command became alice's own sshd on a high port
        proc(40, 15, "sshd: root@notty", sockets=[1004]),
        proc(41, 40, "/usr/sbin/sshd -D -p 2222 -f /home/alice/cfg", uid=1000, sockets=[1005]),
    )
    socks = {1001: synthetic.LISTEN, 1005: dict(synthetic.LISTEN, local=("0.0.0.0", 2222), uid=1000),
             **{i: synthetic.established(("10.0.0.2", 22), ("10.0.0.3", 40000 + i)) for i in (1002, 1003, 1004)}}
    names = {v: k for k, v in uids.items()}
    pre, akc, root = _sshproc.group_sessions(procs, socks, uids.get, name_of=names.get)
    assert (pre["authenticated"], pre["user"]) == (False, "alice")
    assert akc["authenticated"] is False
    assert (root["authenticated"], root["user_pid"], root["uid"], root["user"]) == (True, 40, 0, "root")


def test_group_sessions_ignores_what_a_user_can_forge():
    procs = synthetic.table(
        proc(1, 0, "init"),
        # the real listener, started with a title like a session's
        proc(15, 1, "sshd: root", sockets=[1001]),
        proc(20, 15, "sshd: alice [priv]", sockets=[1002]),
        proc(21, 20, "sshd: alice@pts/0", uid=1000, sockets=[1002]),
        proc(22, 21, "-sh", uid=1000, tty_nr=synthetic.PTS0),
        # in alice's session, after sudo -u bob: a title naming root, a tty path, and its own socket
        proc(23, 22, "sshd: root@pts/0,../../home/alice/f", exe="/usr/bin/sleep", uid=1000, sockets=[1009]),
        # detached, the titles of every scheme
        proc(30, 1, "sshd: root@pts/9", exe="/usr/bin/sleep", uid=1000),
        proc(31, 1, "sshd-session: root [priv]", exe="/usr/bin/sleep", uid=1000),
        proc(32, 31, "sshd-session: root@pts/9", exe="/usr/bin/sleep", uid=1000),
        proc(33, 1, "sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups", exe="/usr/bin/sleep", uid=1000),
        # alice's own copy of sshd, run as alice: never a session of this host's sshd
        proc(40, 1, "sshd: alice [priv]", exe="/home/alice/sshd", uid=1000, sockets=[1010]),
        proc(41, 40, "sshd: alice@pts/0", exe="/home/alice/sshd", uid=1000),
        # a pre-auth child whose title claims a user it does not run as
        proc(50, 15, "sshd: root [priv]", sockets=[1011]),
        proc(51, 50, "sshd: root@pts/1", uid=997, sockets=[1011]),
    )
    socks = {1001: synthetic.LISTEN,
             1002: synthetic.established(("10.0.0.2", 22), ("10.0.0.3", 40000)),
             1009: synthetic.established(("10.0.0.2", 51000), ("10.9.9.9", 80), unacked=3, last_ack_recv=99000),
             1010: synthetic.established(("10.0.0.2", 2222), ("10.0.0.4", 40000)),
             1011: synthetic.established(("10.0.0.2", 22), ("10.0.0.5", 40000))}
    got = _sessions(procs, socks)
    assert [s["monitor_pid"] for s in got] == [20, 50]
    alice, fake_root = got
    assert alice["sshd_pids"] == [20, 21] and alice["command_pids"] == [22, 23]
    assert alice["user"] == "alice" and alice["ttys"] == ["pts/0"] and alice["socket"]["inode"] == 1002
    assert fake_root["authenticated"] is False and fake_root["user_pid"] is None


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_recorded_tables_group_into_sessions(tmp_path, version):
    data = recorded.load(version)
    root, _dev = recorded.build_tree(tmp_path, data)
    procs = {int(pid): _sshproc.read_process(root, int(pid), recorded.OWNER) for pid in data["procs"]}
    sessions = _sshproc.group_sessions(procs, recorded.sockets_from_proc(data), recorded.uid_of(data),
                                       name_of=recorded.name_of(data))
    by_port = {s["socket"]["peer"][1]: s for s in sessions if s["socket"]}
    # the recorded host's one listener: root's sshd whose parent is not sshd's (init, tini or systemd)
    sshd = {int(pid) for pid, p in data["procs"].items() if (p["exe"] or "").endswith("/sbin/sshd")}
    listener, = {pid for pid in sshd if procs[pid]["ppid"] not in sshd}
    inbound = {k: v for k, v in data["sessions"].items() if k not in ("outbound", "svc-lost")}
    # one connection per inbound session, found by its socket; the forged processes are in none
    assert len(sessions) == len(inbound)
    for label, kit in inbound.items():
        sess = by_port[kit["client_port"]]
        assert set(kit["server_pids"]) <= set(sess["sshd_pids"]), label
        assert sess["authenticated"] == (label != "alice-password") and sess["listener_pid"] == listener, label
    assert data["forged"] and not set(data["forged"]) & {p for s in sessions for p in s["sshd_pids"]}
    forger = by_port[data["sessions"]["alice-forger"]["client_port"]]
    assert forger["user"] == "alice" and set(data["forged"]) & set(forger["command_pids"])


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_recorded_sessions_survive_a_retitling(tmp_path, version):
    """The next OpenSSH may title its processes anew: every monitor, pre-auth and user child is retitled
    here, only root's own (whose title must name root) and the listener keep theirs."""
    data = recorded.load(version)
    root, _dev = recorded.build_tree(tmp_path, data)
    procs = {int(pid): _sshproc.read_process(root, int(pid), recorded.OWNER) for pid in data["procs"]}
    for p in procs.values():
        if _sshproc.is_sshd(p) and p["title"]["role"] not in ("listener", None) and p["title"]["user"] != "root":
            p["title"] = _sshproc.classify_title("sshd-session: retitled (%d)" % p["pid"])
    sessions = _sshproc.group_sessions(procs, recorded.sockets_from_proc(data), recorded.uid_of(data),
                                       name_of=recorded.name_of(data))
    by_port = {s["socket"]["peer"][1]: s for s in sessions if s["socket"]}
    for label, kit in data["sessions"].items():
        if label in ("outbound", "svc-lost"):
            continue
        sess = by_port[kit["client_port"]]
        assert sess["authenticated"] == (label != "alice-password"), label
        if sess["authenticated"]:
            assert sess["user"] == ("root" if label.startswith("root") else "svc.backup-01" if label.startswith("svc")
                                    else "alice"), label
    mux = by_port[data["sessions"]["alice-mux"]["client_port"]]
    assert len(mux["ttys"]) == 2, mux
