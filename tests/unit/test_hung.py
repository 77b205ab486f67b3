"""module_utils._hung: the report over recorded servers, classification, filters, own session, orphans."""

import pytest
import recorded

import synthetic
from synthetic import proc

from ansible_collections.hangup.ssh.plugins.module_utils import _hung, _sshproc


class RecordedSystem(_hung.System):
    """The real reader over the rebuilt tree; user names come from the recorded host's passwd.

    The rebuilt /dev/pts holds plain files (making device nodes needs root),
    so the device check of is_tty is the one thing not exercised here; the
    scenario hung_sessions runs it on real ttys.
    """

    def __init__(self, root, dev, data):
        super().__init__(root, dev)
        self._uid_of, self._name_of = recorded.uid_of(data), recorded.name_of(data)

    def user_name(self, uid):
        return self._name_of(uid, str(uid))

    def uid_of(self, name):
        return self._uid_of(name)

    def is_tty(self, st, tty_nr):
        return True


LIMITS = {"unacked_timeout": 30, "max_backoff": 6, "unresponsive_timeout": None, "max_idle": 0}


class Keepalives(object):
    """sshd probing every `interval` s and giving up after `count`, for every session (or per user)."""

    def __init__(self, interval=2, count=1000, off_for=()):
        self.window = _hung.alive_window(interval, count)
        self.off_for = off_for

    def inbound(self, user, peer, local):
        return None if user in self.off_for else self.window

    def outbound(self, client):
        return self.window


def report(tmp_path, version, limits=None, hung_when=_hung.DEFAULT_HUNG_WHEN, self_label="root-command",
           sockets="netlink", keepalives=None, edit=None, **filters):
    data = recorded.load(version)
    if edit:
        edit(data)
    root, dev = recorded.build_tree(tmp_path, data)
    processes, _skipped = _hung.snapshot(root, owner=recorded.OWNER)
    socks = recorded.sockets_from_netlink(data) if sockets == "netlink" else recorded.sockets_from_proc(data)
    # the module "runs" inside one recorded session, as it would over Ansible's connection
    self_pid = next(p for p in processes if processes[p]["ppid"] in data["sessions"][self_label]["server_pids"])
    entries = _hung.build_report(processes, socks, RecordedSystem(root, dev, data), data["now"], data["btime"],
                                 data["clk_tck"], dict(LIMITS, **(limits or {})), self_pid, keepalives=keepalives)
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


def alive(interval=2, count=3):
    return _hung.alive_window(interval, count)


CLASSIFY = [
    # (tcp, idle seconds, limits, keepalives of this end, expected classes)
    (tcp(), None, {}, alive(), []),
    (tcp(last_ack_recv_seconds=3600, last_data_recv_seconds=5), 3600, {}, alive(), []),  # idle, nothing in flight
    (tcp(unacked_segments=3, last_ack_recv_seconds=31), None, {}, alive(), ["dead_transport"]),
    (tcp(unacked_segments=3, last_ack_recv_seconds=29), None, {}, alive(), []),
    (tcp(backoff=7), None, {}, alive(), ["dead_transport"]),  # zero-window probes to a frozen reader
    (tcp(backoff=6), None, {}, alive(), []),
    (tcp(state="CLOSE_WAIT"), None, {}, alive(), ["dead_transport"]),
    # asked every 2 s (a probe 1 s ago), nothing back for 40 s: past the cut-off (8 s) or the given limit
    (tcp(last_data_recv_seconds=40, last_data_sent_seconds=1), None, {}, alive(), ["unresponsive_peer"]),
    (tcp(last_data_recv_seconds=40, last_data_sent_seconds=1), None, {"unresponsive_timeout": 33}, alive(),
     ["unresponsive_peer"]),
    (tcp(last_data_recv_seconds=40, last_data_sent_seconds=1), None, {"unresponsive_timeout": 50}, alive(), []),
    # never asked: a session that predates ClientAlive, or a Match block with ClientAliveInterval 0
    (tcp(last_data_recv_seconds=4000, last_data_sent_seconds=3999.9), None, {}, None, []),
    (tcp(last_data_recv_seconds=4000, last_data_sent_seconds=1), None, {"unresponsive_timeout": 10}, None, []),
    # the last thing sent was an echo right after the last input, long ago: no probe, no evidence
    (tcp(last_data_recv_seconds=4000, last_data_sent_seconds=3999.9), None, {}, alive(), []),
    # it spoke after the peer, but not lately: it is not probing this session
    (tcp(last_data_recv_seconds=4000, last_data_sent_seconds=300), None, {}, alive(), []),
    # its probe waits behind data that has not moved for an interval: a paused host whose kernel
    # advertises a zero window (recorded in scenario hung_sessions), or one that acknowledges nothing
    (tcp(last_data_recv_seconds=14.86, last_data_sent_seconds=12.628, last_ack_recv_seconds=5.148, backoff=5,
         queued_bytes=656464, total_retrans=7), None, {"unresponsive_timeout": 10, "max_backoff": 6}, alive(),
     ["unresponsive_peer"]),
    (tcp(last_data_recv_seconds=40, last_data_sent_seconds=39.8, unacked_segments=2, last_ack_recv_seconds=39.8,
         queued_bytes=3000), None, {"unacked_timeout": 60}, alive(), ["unresponsive_peer"]),
    # a busy stream to a peer that answers: data queued and going out all the time
    (tcp(last_data_recv_seconds=3, last_data_sent_seconds=0.01, queued_bytes=30000, unacked_segments=2,
         last_ack_recv_seconds=0.02), None, {}, alive(), []),
    (tcp(), 7200, {"max_idle": 3600}, None, ["idle"]),
    (tcp(), 7200, {"max_idle": 0}, None, []),
    # /proc/net/tcp: counters, no times
    (tcp(backoff=None, unacked_segments=None, last_ack_recv_seconds=None, last_data_recv_seconds=None,
         last_data_sent_seconds=None, retransmits=8), None, {}, alive(), ["dead_transport"]),
    (tcp(backoff=None, unacked_segments=None, last_ack_recv_seconds=None, last_data_recv_seconds=None,
         last_data_sent_seconds=None, retransmits=2), None, {"unresponsive_timeout": 1}, alive(), []),
    (None, None, {}, alive(), []),
]


@pytest.mark.parametrize("sock,idle,limits,keepalive,expected", CLASSIFY)
def test_classify(sock, idle, limits, keepalive, expected):
    got = _hung.classify(sock, idle, dict(LIMITS, **limits), alive=keepalive)
    assert [name for name, _why in got] == expected


def test_classify_orphaned_and_order():
    got = _hung.classify(tcp(backoff=9, last_data_recv_seconds=99, last_data_sent_seconds=1), 99,
                         dict(LIMITS, unresponsive_timeout=10, max_idle=10), orphaned=True, alive=alive())
    assert [n for n, _w in got] == list(_hung.CLASSES)


def test_alive_window():
    assert _hung.alive_window(0, 3) is None
    assert _hung.alive_window(5, 3) == {"interval": 5, "cutoff": 20}
    assert _hung.alive_window(3, 2, factor=2) == {"interval": 6, "cutoff": 18}


@pytest.mark.parametrize("user,peer,local,spec", [
    ("alice", ("10.0.0.3", 40000), ("10.0.0.2", 22), "user=alice,host=10.0.0.3,addr=10.0.0.3,laddr=10.0.0.2,lport=22"),
    ("svc.backup-01", ("fd00::5", 1), None, "user=svc.backup-01,host=fd00::5,addr=fd00::5"),
    ("a,user=root", ("10.0.0.3", 1), None, None),
    ("", ("10.0.0.3", 1), None, None),
])
def test_connection_spec(user, peer, local, spec):
    assert _hung.connection_spec(user, peer, local) == spec


@pytest.mark.parametrize("argv,expected", [
    (["ssh", "host"], ("host", [])),
    (["ssh", "-tt", "-o", "ServerAliveInterval=5", "-p2222", "alice@host", "uptime"],
     ("alice@host", ["-o", "ServerAliveInterval=5", "-p", "2222"])),
    (["/usr/bin/ssh", "-NL", "8080:localhost:80", "-F", "/home/a/cfg", "jump"], ("jump", ["-F", "/home/a/cfg"])),
    (["ssh", "-i", "key", "-l", "bob", "--", "host"], ("host", ["-l", "bob"])),
    (["ssh: /home/alice/.ssh/cm-host [mux]"], None),  # a multiplexing master lost its argv
    (["ssh", "-o"], None),
    (["sleep", "host"], None),
    ([], None),
])
def test_ssh_destination(argv, expected):
    assert _hung.ssh_destination(argv) == expected


@pytest.mark.parametrize("networks,address,admitted", [
    ([], "10.0.0.1", True),
    (["10.0.0.0/8"], "10.1.2.3", True),
    (["10.0.0.0/8"], "192.168.0.1", False),
    (["10.0.0.0/8"], "::ffff:10.1.2.3", True),
    (["::ffff:10.0.0.0/104"], "10.1.2.3", True),  # an IPv4-mapped network matches IPv4 peers
    (["::ffff:10.0.0.0/104"], "11.1.2.3", False),
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


GOOD = {"grace": 5.0, "scan_timeout": 10.0, "unacked_timeout": 30, "max_backoff": 6, "unresponsive_timeout": None,
        "max_idle": 0, "peers": [], "users": [], "exclude_users": []}


@pytest.mark.parametrize("change,names", [
    ({}, []),
    ({"grace": float("nan")}, ["grace"]),
    ({"grace": float("inf")}, ["grace"]),
    ({"grace": -1.0}, ["grace"]),
    ({"scan_timeout": 1e9}, ["scan_timeout"]),
    ({"max_idle": -1}, ["max_idle"]),
    ({"peers": ["10.0.0.0/33", "::ffff:10.0.0.0/104"]}, ["peers"]),
    ({"users": ["ali\0ce"]}, ["users"]),
    ({"exclude_users": ["nobody-here"]}, ["exclude_users"]),
    ({"users": ["alice", "nobody-here"], "grace": float("nan")}, ["grace", "users"]),
])
def test_input_problems_name_the_parameter(change, names):
    got = _hung.input_problems(dict(GOOD, **change), lambda u: u in ("alice", "root"))
    assert [p.split(" ")[0].rstrip(":") for p in got] == names


def _table():
    return synthetic.table(
        proc(1, 0, "init"),
        proc(15, 1, "sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups", sockets=[1]),
        proc(20, 15, "sshd: ops [priv]"),
        proc(21, 20, "sshd: ops@notty", uid=1002),
        proc(22, 21, "/bin/sh -c sudo -H -S -n -u root /bin/sh -c python3 AnsiballZ_hung_sessions.py", uid=1002),
        proc(23, 22, "sudo -H -S -n -u root /bin/sh -c python3 AnsiballZ_hung_sessions.py"),
        proc(24, 23, "python3 AnsiballZ_hung_sessions.py"),
        proc(30, 15, "sshd: alice [priv]"),
        proc(31, 30, "sshd: alice@pts/0", uid=1000),
        # a daemon alice started with setsid: reparented to init, its session still alive
        proc(40, 1, "alice-daemon", uid=1000),
        # left over from a connection whose sshd is gone
        proc(50, 1, "sleep 86400", uid=1001),
        proc(51, 50, "sleep 1", uid=1001),
        proc(52, 1, "zombie", state="Z", uid=1001),
        # a system daemon with no SSH environment
        proc(60, 1, "cron"),
    )


SOCKETS = {1: synthetic.LISTEN}


def test_own_session_through_sudo_ancestry_and_audit_id():
    procs = _table()
    sessions = _sshproc.group_sessions(procs, SOCKETS, synthetic.uid_of)
    ids = {20: 7, 21: 7, 30: 8, 31: 8}
    assert _hung.own_sessions(procs, sessions, 24, None, ids.get) == {0}
    # an async task daemonized away from its ancestry is still found by the audit session id
    procs[99] = proc(99, 1, "python3 async_wrapper.py")
    assert _hung.own_sessions(procs, sessions, 99, 8, ids.get) == {1}
    assert _hung.own_sessions(procs, sessions, 99, None, ids.get) == set()


ENV = {
    40: b"PATH=/bin\0SSH_CONNECTION=10.0.0.3 40000 10.0.0.2 22\0",
    50: b"SSH_CONNECTION=10.0.0.9 50000 10.0.0.2 22\0SSH_CLIENT=10.0.0.9 50000 22\0",
    51: b"SSH_CONNECTION=10.0.0.9 50000 10.0.0.2 22\0",
    52: b"SSH_CONNECTION=10.0.0.9 50000 10.0.0.2 22\0",
    60: b"PATH=/bin\0",
}


def test_find_orphans():
    procs = _table()
    sessions = _sshproc.group_sessions(procs, SOCKETS, synthetic.uid_of)
    sessions[1]["socket"] = {"peer": ("10.0.0.3", 40000), "local": ("10.0.0.2", 22)}
    got = _hung.find_orphans(procs, sessions, ENV.get, own_pids=[24])
    assert got == [{"connection": ("10.0.0.9", 50000, "10.0.0.2", 22), "uid": 1001, "pids": [50, 51]}]


def test_no_orphans_where_a_live_connection_is_unknown():
    # sockets unreadable (no CAP_SYS_PTRACE, another netns): alice's daemon may belong to her live session
    procs = _table()
    procs[50]["uid"] = procs[51]["uid"] = 1000
    sessions = _sshproc.group_sessions(procs, {}, synthetic.uid_of)
    assert all(s["socket"] is None for s in sessions)
    assert _hung.find_orphans(procs, sessions, ENV.get, own_pids=[24]) == []
    # known through a command's environment instead: then what is gone is known too
    procs[32] = proc(32, 31, "-sh", uid=1000)
    env = dict(ENV)
    env[32] = b"SSH_CONNECTION=10.0.0.3 40000 10.0.0.2 22\0"
    sessions = _sshproc.group_sessions(procs, {}, synthetic.uid_of)
    got = _hung.find_orphans(procs, sessions, env.get, own_pids=[24])
    assert [g["pids"] for g in got] == [[50, 51]]


def test_a_scoped_link_local_connection_is_its_socket():
    procs = _table()
    sessions = _sshproc.group_sessions(procs, SOCKETS, synthetic.uid_of)
    sessions[1]["socket"] = {"peer": ("fe80::3", 40000), "local": ("fe80::2", 22)}
    env = {40: b"SSH_CONNECTION=fe80::3%eth0 40000 fe80::2%eth0 22\0"}
    assert _hung.find_orphans(procs, sessions, env.get, own_pids=[24]) == []


@pytest.mark.parametrize("environ,expected", [
    (b"SSH_CONNECTION=fd00::9 50000 fd00::2 22\0", ("fd00::9", 50000, "fd00::2", 22)),
    (b"SSH_CONNECTION=::ffff:10.0.0.9 50000 ::ffff:10.0.0.2 22\0", ("10.0.0.9", 50000, "10.0.0.2", 22)),
    (b"SSH_CONNECTION=garbage\0", None),
    (b"", None),
    (None, None),
])
def test_ssh_connection(environ, expected):
    assert _hung.ssh_connection(environ) == expected


def test_finish_leaves_its_input_as_it_was():
    entries = [{"user": "alice", "peer_address": "10.0.0.3", "self": False, "authenticated": True,
                "_reasons": [("dead_transport", "x")]}]
    first = _hung.finish(entries, _hung.DEFAULT_HUNG_WHEN)
    assert _hung.finish(entries, _hung.DEFAULT_HUNG_WHEN) == first and first[0]["hung"]
    assert "_reasons" in entries[0] and "hung" not in entries[0]


def test_synthetic_table_scales_linearly():
    # the benchmark measures time; here only that 2,000 sessions come out right
    procs = synthetic.table(proc(1, 0, "init"), proc(15, 1, "sshd: /usr/sbin/sshd [listener]", sockets=[0]))
    sockets = {0: synthetic.LISTEN}
    for n in range(2000):
        mon, child = 1000 + 3 * n, 1001 + 3 * n
        procs[mon] = proc(mon, 15, "sshd: u%d [priv]" % n)
        procs[child] = proc(child, mon, "sshd: u%d@notty" % n, uid=1000, sockets=[n + 1])
        sockets[n + 1] = synthetic.established(("10.0.0.2", 22), ("10.0.0.3", 10000 + n), unacked=n % 2,
                                               last_ack_recv=60000)
    system = synthetic.NoSystem("/nonexistent", "/nonexistent")
    entries = _hung.finish(_hung.build_report(procs, sockets, system, 1000.0, 0, 100, LIMITS, 1, outbound=False),
                           _hung.DEFAULT_HUNG_WHEN)
    assert len(entries) == 2000 and sum(e["hung"] for e in entries) == 1000


ALL = list(_hung.CLASSES)


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_recorded_forged_titles_are_no_sessions_and_never_signalled(tmp_path, version):
    # whatever is asked for, a hostile user's `exec -a 'sshd: root@pts/0'` is never a session's sshd
    data, entries = report(tmp_path, version, limits={"max_idle": 1, "unacked_timeout": 5}, hung_when=ALL,
                           keepalives=Keepalives(2, 3))
    forged = set(data["forged"])
    assert len(forged) == 4
    for entry in entries:
        assert entry["pid"] not in forged and not forged & set(entry["sshd_pids"]), entry
    forger = find(data, entries, "alice-forger")
    inside = [c["pid"] for c in forger["commands"] if c["pid"] in forged]
    # the one started inside alice's own session is her command, with her session's user and tty
    assert len(inside) == 1 and forger["user"] == "alice" and forger["tty"] == "notty"
    listed = {c["pid"] for e in entries for c in e["commands"]}
    assert not (forged - set(inside)) & listed


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_recorded_password_prompt_is_not_authenticated_and_never_hung(tmp_path, version):
    data, entries = report(tmp_path, version, limits={"max_idle": 1, "unacked_timeout": 1}, hung_when=ALL,
                           keepalives=Keepalives(1, 1))
    waiting = find(data, entries, "alice-password")
    assert waiting["authenticated"] is False and waiting["user_pid"] is None and not waiting["hung"]
    assert set(data["sessions"]["alice-password"]["server_pids"]) == set(waiting["sshd_pids"])


@pytest.mark.parametrize("version", recorded.VERSIONS)
def test_recorded_unresponsive_only_where_asked(tmp_path, version):
    # the recorded sshd never probed; told that it probes every 2 s, only the session whose server kept
    # speaking after its peer went quiet (the cut one) has the shape of an unanswered probe
    data, entries = report(tmp_path, version, keepalives=Keepalives(2, 3))
    cut = find(data, entries, "alice-cut")
    assert [e["pid"] for e in entries if "unresponsive_peer" in e["reasons"]] == [cut["pid"]]
    # never asked (no ClientAlive, or a Match block turning it off for alice): never unresponsive
    for keepalives in (None, Keepalives(2, 3, off_for=("alice",))):
        _data, entries = report(tmp_path / str(id(keepalives)), version, keepalives=keepalives,
                                limits={"unresponsive_timeout": 1})
        assert not any("unresponsive_peer" in e["reasons"] for e in entries)


def test_snapshot_skips_d_state_and_stops_at_its_budget(tmp_path):
    data = recorded.load("10.0")
    stuck = data["sessions"]["alice-sftp"]["server_pids"][1]
    text = data["procs"][str(stuck)]["stat"]
    data["procs"][str(stuck)]["stat"] = text.replace(") S ", ") D ", 1)
    root, _dev = recorded.build_tree(tmp_path, data)
    processes, skipped = _hung.snapshot(root, owner=recorded.OWNER)
    assert processes[stuck]["stuck"] and processes[stuck]["cmdline"] is None
    assert [s["pid"] for s in skipped] == [stuck] and "D state" in skipped[0]["reason"]
    ticks = iter(range(1000))
    processes, skipped = _hung.snapshot(root, budget=4.5, clock=lambda: next(ticks), owner=recorded.OWNER)
    assert len(processes) == 4 and {s["reason"] for s in skipped} == {"scan time limit reached"}
    assert len(skipped) == len(data["procs"]) - 4


def test_a_command_that_ended_while_the_session_was_read_is_left_out():
    # live, the kit's `while :; do date; head ...; done` sessions start and end such processes all the time
    class Ended(synthetic.NoSystem):
        def cmdline(self, pid):
            return {21: "-bash"}.get(pid)

        def gone(self, pid):
            return pid == 23

    procs = {p: {"stuck": p == 24, "cmdline": None} for p in (21, 22, 23, 24)}
    got = _hung._commands([21, 22, 23, 24], procs, Ended("/nonexistent", "/nonexistent"))
    # 22's read blocked and 24 is in D state: both listed without a command line; 23 ended: not listed
    assert got == [{"pid": 21, "cmdline": "-bash"}, {"pid": 22, "cmdline": None}, {"pid": 24, "cmdline": None}]


def _listed_entry(user, port, hung=True, **extra):
    entry = {"kind": "inbound", "pid": port, "user": user, "tty": "notty", "peer_address": "10.88.0.3",
             "peer_port": port, "hung": hung, "why": ["3 segments unacknowledged for 31.2 s"]}
    entry.update(extra)
    return entry


def test_describe_says_in_one_line_what_was_found_and_done():
    healthy, hung = _listed_entry("bob", 1, hung=False), _listed_entry("alice", 2)
    assert _hung.describe([healthy], [], []) == "1 session, 0 hung"
    assert _hung.describe([healthy, hung], [], []) == \
        "2 sessions, 1 hung: alice@notty from 10.88.0.3:2 (3 segments unacknowledged for 31.2 s)"
    assert _hung.describe([healthy, hung], [], [], would_end=True) == \
        "2 sessions, 1 hung, would end 1: alice@notty from 10.88.0.3:2 (3 segments unacknowledged for 31.2 s)"
    assert _hung.describe([healthy, hung], [dict(hung, signals=["TERM", "HUP"])], []) == \
        "2 sessions, 1 hung; ended 1: alice@notty from 10.88.0.3:2 (TERM+HUP)"
    denied = dict(_listed_entry("carol", 3), signals=[], reason="SIGTERM to 3: Operation not permitted")
    assert _hung.describe([healthy, hung, denied], [dict(hung, signals=["TERM"])], [denied]) == (
        "could not end 1 of 2 hung: carol@notty from 10.88.0.3:3 (SIGTERM to 3: Operation not permitted); "
        "3 sessions, 2 hung; ended 1: alice@notty from 10.88.0.3:2 (TERM)")


def test_describe_stays_one_line_on_a_host_with_many_hung():
    many = [_listed_entry("u%d" % i, i) for i in range(40)]
    line = _hung.describe(many, [], [])
    assert line.startswith("40 sessions, 40 hung: u0@") and line.endswith(", 37 more") and "\n" not in line
    outbound = dict(_listed_entry("alice", 22), kind="outbound", tty=None)
    orphan = dict(_listed_entry("bob", 5), kind="orphaned", pid=77, peer_address=None)
    assert _hung.label(outbound) == "ssh of alice to 10.88.0.3:22"
    assert _hung.label(orphan) == "orphaned pid 77 of bob (no peer)"
