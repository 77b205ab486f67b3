"""module_utils._hung: the report over recorded servers, classification, filters, own session, orphans."""

import pytest
import recorded

from ansible_collections.hangup.ssh.plugins.module_utils import _hung, _sshproc


class RecordedSystem(_hung.System):
    """The real reader over the rebuilt tree; only user names come from the recorded host's passwd."""

    NAMES = {0: "root", 1000: "alice", 1001: "svc.backup-01"}

    def user_name(self, uid):
        return self.NAMES.get(uid, str(uid))


LIMITS = {"unacked_timeout": 30, "max_backoff": 6, "unresponsive_timeout": None, "max_idle": 0}


def report(tmp_path, version, limits=None, hung_when=_hung.DEFAULT_HUNG_WHEN, self_label="root-command",
           sockets="netlink", **filters):
    data = recorded.load(version)
    root, dev = recorded.build_tree(tmp_path, data)
    processes = _hung.snapshot(root)
    socks = recorded.sockets_from_netlink(data) if sockets == "netlink" else recorded.sockets_from_proc(data)
    # the module "runs" inside one recorded session, as it would over Ansible's connection
    self_pid = next(p for p in processes if processes[p]["ppid"] in data["sessions"][self_label]["server_pids"])
    entries = _hung.build_report(processes, socks, RecordedSystem(root, dev), data["now"], data["btime"],
                                 data["clk_tck"], dict(LIMITS, **(limits or {})), self_pid)
    return data, _hung.finish(entries, hung_when, **filters)


def find(data, entries, label):
    kit = data["sessions"][label]
    if label == "outbound":
        match = [e for e in entries if e["kind"] == "outbound" and e["pid"] == kit["client_pid"]]
    else:
        match = [e for e in entries if e["peer_port"] == kit["client_port"] and e["kind"] != "outbound"]
    assert len(match) == 1, (label, entries)
    return match[0]


# label: (kind, user, ttys, address family of the peer, a command in the session)
EXPECTED = {
    "root-pty": ("inbound", "root", 1, "ip", "-bash"),
    "root-command": ("inbound", "root", 0, "ip", "sleep 86400"),
    "alice-sftp": ("inbound", "alice", 0, "ip", "sftp-server"),
    "svc-pty-ipv6": ("inbound", "svc.backup-01", 1, "ip6", "-sh"),
    "root-forward-ipv6": ("inbound", "root", 0, "ip6", None),
    "alice-mux": ("inbound", "alice", 2, "ip", "-sh"),
    "alice-cut": ("inbound", "alice", 0, "ip", "while :"),
    "svc-lost": ("orphaned", "svc.backup-01", 0, "ip", "sleep 86400"),
}


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_recorded_server_every_session(tmp_path, version):
    data, entries = report(tmp_path, version, limits={"unacked_timeout": 5})
    for label, (kind, user, ttys, family, command) in EXPECTED.items():
        entry = find(data, entries, label)
        assert (entry["kind"], entry["user"], len(entry["ttys"])) == (kind, user, ttys), (label, entry)
        assert entry["peer_address"] == data["client_" + family], (label, entry["peer_address"])
        assert entry["tty"] == (",".join(entry["ttys"]) if ttys else ("notty" if kind == "inbound" else None))
        if command:
            assert any(command in c["cmdline"] for c in entry["commands"]), (label, entry["commands"])
        if kind == "inbound":
            assert entry["local_port"] == 22 and entry["tcp"]["state"] == "ESTABLISHED"
            assert (entry["idle_seconds"] is not None) == bool(ttys)
            assert 0 < entry["age_seconds"] < 600 and entry["recv_idle_seconds"] is not None
    # the cut connection is the one with data unacknowledged: dead, and nothing else is
    cut = find(data, entries, "alice-cut")
    assert cut["hung"] and cut["reasons"] == ["dead_transport"] and "unacknowledged" in cut["why"][0]
    assert [e["peer_port"] for e in entries if e["hung"]] == [cut["peer_port"]]
    # a multiplexed connection serves two ttys from one sshd child
    assert find(data, entries, "alice-mux")["tty"].count("pts/") == 2
    out = find(data, entries, "outbound")
    assert out["peer_address"] == data["client_ip"] and out["peer_port"] == 22 and out["tcp"] is not None
    own = [e for e in entries if e["self"]]
    assert [e["peer_port"] for e in own] == [data["sessions"]["root-command"]["client_port"]]


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_recorded_orphans_only_when_asked(tmp_path, version):
    data, entries = report(tmp_path, version)
    lost = find(data, entries, "svc-lost")
    assert lost["reasons"] == ["orphaned"] and not lost["hung"]
    assert sorted(c["cmdline"].split()[-1] for c in lost["commands"]) == ["86400", "86400"]
    _data, entries = report(tmp_path / "again", version, hung_when=["orphaned"])
    assert [e["kind"] for e in entries if e["hung"]] == ["orphaned"]


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_recorded_fallback_to_proc_net_tcp(tmp_path, version):
    # no times without netlink: only the retransmission counter speaks
    data, entries = report(tmp_path, version, limits={"max_backoff": 3}, sockets="proc")
    cut = find(data, entries, "alice-cut")
    assert cut["hung"] and "backoff" in cut["why"][0] and cut["recv_idle_seconds"] is None
    assert [e["peer_port"] for e in entries if e["hung"]] == [cut["peer_port"]]


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_recorded_filters(tmp_path, version):
    data, entries = report(tmp_path, version, users=["svc.backup-01"])
    assert {e["user"] for e in entries} == {"svc.backup-01"}
    data, entries = report(tmp_path / "b", version, exclude_users=["root"])
    assert "root" not in {e["user"] for e in entries}
    data, entries = report(tmp_path / "c", version, peers=["fd00:4b::/64"])
    assert {e["peer_address"] for e in entries} == {data["client_ip6"]}


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_recorded_own_session_never_hung(tmp_path, version):
    # the module running inside the cut session must not end it
    data, entries = report(tmp_path, version, limits={"unacked_timeout": 5}, self_label="alice-cut")
    cut = find(data, entries, "alice-cut")
    assert cut["self"] and cut["reasons"] == ["dead_transport"] and not cut["hung"]


def tcp(**kw):
    base = {"state": "ESTABLISHED", "unacked_segments": 0, "queued_bytes": 0, "unread_bytes": 0, "retransmits": 0,
            "backoff": 0, "probes": 0, "total_retrans": 0, "rto_ms": 204.0, "last_ack_recv_seconds": 1.0,
            "last_data_recv_seconds": 1.0, "last_data_sent_seconds": 1.0}
    base.update(kw)
    return base


CLASSIFY = [
    # (tcp, idle seconds, limits, expected classes)
    (tcp(), None, {}, []),
    (tcp(last_ack_recv_seconds=3600, last_data_recv_seconds=5), 3600, {}, []),  # idle, nothing in flight
    (tcp(unacked_segments=3, last_ack_recv_seconds=31), None, {}, ["dead_transport"]),
    (tcp(unacked_segments=3, last_ack_recv_seconds=29), None, {}, []),
    (tcp(backoff=7), None, {}, ["dead_transport"]),  # zero-window probes to a frozen reader
    (tcp(backoff=6), None, {}, []),
    (tcp(state="CLOSE_WAIT"), None, {}, ["dead_transport"]),
    (tcp(last_data_recv_seconds=40), None, {"unresponsive_timeout": 33}, ["unresponsive_peer"]),
    (tcp(last_data_recv_seconds=40), None, {"unresponsive_timeout": None}, []),
    (tcp(), 7200, {"max_idle": 3600}, ["idle"]),
    (tcp(), 7200, {"max_idle": 0}, []),
    # /proc/net/tcp: counters, no times
    (tcp(backoff=None, unacked_segments=None, last_ack_recv_seconds=None, last_data_recv_seconds=None,
         retransmits=8), None, {}, ["dead_transport"]),
    (tcp(backoff=None, unacked_segments=None, last_ack_recv_seconds=None, last_data_recv_seconds=None,
         retransmits=2), None, {"unresponsive_timeout": 1}, []),
    (None, None, {}, []),
]


@pytest.mark.parametrize("sock,idle,limits,expected", CLASSIFY)
def test_classify(sock, idle, limits, expected):
    got = _hung.classify(sock, idle, dict(LIMITS, **limits))
    assert [name for name, _why in got] == expected


def test_classify_orphaned_and_order():
    got = _hung.classify(tcp(backoff=9, last_data_recv_seconds=99), 99,
                         dict(LIMITS, unresponsive_timeout=10, max_idle=10), orphaned=True)
    assert [n for n, _w in got] == list(_hung.CLASSES)


@pytest.mark.parametrize("cmdline,defaults,expected", [
    ("ssh host", (0, 3), (0, 3)),
    ("ssh -o ServerAliveInterval=5 host", (0, 3), (5, 3)),
    ("ssh -oserveraliveinterval=5 -o ServerAliveCountMax 9 host", (0, 3), (5, 9)),
    ("ssh host", (15, 4), (15, 4)),
    ("ssh -o ServerAliveInterval=0 host", (15, 4), (0, 4)),
])
def test_server_alive_from_argv(cmdline, defaults, expected):
    assert _hung.server_alive(cmdline, defaults) == expected


def test_outbound_limit():
    assert _hung.outbound_limit((0, 3), 10) is None  # a client that never asks says nothing
    assert _hung.outbound_limit((5, 3), None) == 20
    assert _hung.outbound_limit((5, 3), 12) == 12


@pytest.mark.parametrize("networks,address,admitted", [
    ([], "10.0.0.1", True),
    (["10.0.0.0/8"], "10.1.2.3", True),
    (["10.0.0.0/8"], "192.168.0.1", False),
    (["10.0.0.0/8"], "::ffff:10.1.2.3", True),
    (["fd00::/8"], "fd00:4b::9", True),
    (["fd00::/8"], "fe80::1%eth0", False),
    (["fe80::/10"], "fe80::1%eth0", True),
    (["10.0.0.0/8"], None, False),
    (["10.0.0.0/8"], "not-an-ip", False),
])
def test_peer_filter(networks, address, admitted):
    assert _hung.peer_filter(networks)(address) is admitted


def test_parse_networks_reports_the_bad_ones():
    assert _hung.parse_networks(["10.0.0.0/8", "fd00::/64", "10.0.0.1", "10.0.0.0/33", "x"]) == ["10.0.0.0/33", "x"]


def _proc(pid, ppid, cmdline, starttime=100, state="S", comm=None):
    return {"pid": pid, "ppid": ppid, "cmdline": cmdline, "sockets": [], "starttime": starttime, "state": state,
            "comm": comm or cmdline.split()[0], "uid": 0, "title": _sshproc.classify_title(cmdline)}


def _table():
    procs = [
        _proc(1, 0, "init"),
        _proc(15, 1, "sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups"),
        _proc(20, 15, "sshd: ops [priv]"),
        _proc(21, 20, "sshd: ops@notty"),
        _proc(22, 21, "/bin/sh -c sudo -H -S -n -u root /bin/sh -c python3 AnsiballZ_hung_sessions.py"),
        _proc(23, 22, "sudo -H -S -n -u root /bin/sh -c python3 AnsiballZ_hung_sessions.py"),
        _proc(24, 23, "python3 AnsiballZ_hung_sessions.py"),
        _proc(30, 15, "sshd: alice [priv]"),
        _proc(31, 30, "sshd: alice@pts/0"),
        # a daemon alice started with setsid: reparented to init, its session still alive
        _proc(40, 1, "alice-daemon"),
        # left over from a connection whose sshd is gone
        _proc(50, 1, "sleep 86400"),
        _proc(51, 50, "sleep 1"),
        _proc(52, 1, "zombie", state="Z"),
        # a system daemon with no SSH environment
        _proc(60, 1, "cron"),
    ]
    return {p["pid"]: p for p in procs}


def test_own_session_through_sudo_ancestry_and_audit_id():
    procs = _table()
    sessions = _sshproc.group_sessions(procs, {})
    ids = {20: 7, 21: 7, 30: 8, 31: 8}
    assert _hung.own_sessions(procs, sessions, 24, None, ids.get) == {0}
    # an async task daemonized away from its ancestry is still found by the audit session id
    procs[99] = _proc(99, 1, "python3 async_wrapper.py")
    assert _hung.own_sessions(procs, sessions, 99, 8, ids.get) == {1}
    assert _hung.own_sessions(procs, sessions, 99, None, ids.get) == set()


def test_find_orphans():
    procs = _table()
    sessions = _sshproc.group_sessions(procs, {})
    sessions[1]["socket"] = {"peer": ("10.0.0.3", 40000), "local": ("10.0.0.2", 22)}
    env = {
        40: b"PATH=/bin\0SSH_CONNECTION=10.0.0.3 40000 10.0.0.2 22\0",
        50: b"SSH_CONNECTION=10.0.0.9 50000 10.0.0.2 22\0SSH_CLIENT=10.0.0.9 50000 22\0",
        51: b"SSH_CONNECTION=10.0.0.9 50000 10.0.0.2 22\0",
        52: b"SSH_CONNECTION=10.0.0.9 50000 10.0.0.2 22\0",
        60: b"PATH=/bin\0",
    }
    got = _hung.find_orphans(procs, sessions, env.get, own_pids=[24])
    assert got == [{"connection": ("10.0.0.9", 50000, "10.0.0.2", 22), "pids": [50, 51]}]


@pytest.mark.parametrize("environ,expected", [
    (b"SSH_CONNECTION=fd00::9 50000 fd00::2 22\0", ("fd00::9", 50000, "fd00::2", 22)),
    (b"SSH_CONNECTION=garbage\0", None),
    (b"", None),
    (None, None),
])
def test_ssh_connection(environ, expected):
    assert _hung.ssh_connection(environ) == expected


def test_synthetic_table_scales_linearly():
    # the benchmark measures time; here only that 2,000 sessions come out right
    procs = {1: _proc(1, 0, "init"), 15: _proc(15, 1, "sshd: /usr/sbin/sshd [listener]")}
    sockets = {}
    for n in range(2000):
        mon, child = 1000 + 3 * n, 1001 + 3 * n
        procs[mon] = _proc(mon, 15, "sshd: u%d [priv]" % n)
        procs[child] = _proc(child, mon, "sshd: u%d@notty" % n)
        procs[child]["sockets"] = [n + 1]
        sockets[n + 1] = {"state": "ESTABLISHED", "local": ("10.0.0.2", 22), "peer": ("10.0.0.3", 10000 + n),
                          "tcp_info": {"unacked": 1 if n % 2 else 0, "backoff": 0, "last_ack_recv": 60000,
                                       "last_data_recv": 100, "last_data_sent": 100}}
    system = _hung.System("/nonexistent", "/nonexistent")
    entries = _hung.finish(_hung.build_report(procs, sockets, system, 1000.0, 0, 100, LIMITS, 1, outbound=False),
                           _hung.DEFAULT_HUNG_WHEN)
    assert len(entries) == 2000 and sum(e["hung"] for e in entries) == 1000
