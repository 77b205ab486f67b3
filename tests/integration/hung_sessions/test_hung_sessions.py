"""hangup.ssh.hung_sessions against real sessions, real cuts and real freezes.

Per server (OpenSSH 8.4, 9.2, 10.0 here; the other releases in scenario
hung_sessions_versions(_more)), the -client host opens: an active pty session
(input every second, output back), an idle pty session of svc.backup-01,
`ssh host cmd`, sftp as alice, `ssh -N -L`, a session of alice streaming output
that is then cut from the network, and a pty session of alice whose client is
then frozen; the server itself streams into an ssh to the -third host, which is then
paused, once as root with ServerAlive in its -o options and once as alice with
it in her ~/.ssh/config. And what must never be ended: a pty session of carol,
whom a Match block exempts from probing, with a frozen client; an idle pty
session of dave, opened before probing was turned on for him; a client waiting
at the password prompt; and alice, hostile, starting processes titled like
root's sshd, inside her session and detached. Ansible reaches the servers over
SSH as ops with become and ControlPersist, from the controller, and runs the
module the way users do.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from adhoc import AdHoc

# the lab's hosts by their names' ends, so the checks run as they are in scenario hung_sessions_versions
HELPERS = ("-client", "-third")


def servers(lab):
    return [n for n in lab.hosts if not n.endswith(HELPERS)]


def helper(lab, end):
    return next(n for n in lab.hosts if n.endswith(end))


# sshd probes every 2 s (prepare.yml): a live client is never silent for 10 s
LIMITS = "unresponsive_timeout=10 unacked_timeout=8 max_backoff=3 grace=3"
HEALTHY = ("active", "idle", "command", "sftp", "forward", "exempt", "predating", "forger", "password")
# not hung unless asked for with hung_when
ORPHANED = ("lost",)
HUNG = {"cut": "dead_transport", "frozen": "unresponsive_peer", "outbound": "unresponsive_peer",
        "outbound_cfg": "unresponsive_peer"}
OUTBOUND = ("outbound", "outbound_cfg")
# a hostile user's processes titled like root's sshd: inside her session, and detached
FORGED_IN_SESSION = "bash -c 'exec -a \"sshd: root@pts/0\" sleep 86400'"
FORGED_DETACHED = (
    "runuser -u alice -- setsid bash -c 'exec -a \"sshd-session: root [priv]\" sleep 86400' & "
    "runuser -u alice -- setsid bash -c 'exec -a \"sshd: root@../home/alice/f\" sleep 86400' & "
    "runuser -u alice -- setsid bash -c 'exec -a \"sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups\" "
    "sleep 86400' &"
)
# alice's client config: keepalives for the alias, and a canary that says as whom ssh evaluated the file
ALICE_SSH_CONFIG = """Match exec "touch /tmp/hk-canary-$(id -u)"
Host hk-third
    HostName {ip}
    ServerAliveInterval 2
    ServerAliveCountMax 1000
"""


def forged_pids(host):
    """alice's processes whose title says sshd while they run sleep."""
    out = host.sh("ps -u alice -o pid=,comm=,args=").stdout
    return sorted(int(f[0]) for f in (line.split(None, 2) for line in out.splitlines())
                  if len(f) == 3 and f[1] == "sleep" and f[2].startswith("sshd"))


@pytest.fixture(scope="module")
def world(lab):
    """Every session of the docstring, established, then the faults applied."""
    ansible = AdHoc.for_lab(lab, servers(lab), user="ops", become=True)
    client, third = helper(lab, "-client"), helper(lab, "-third")
    # the controller's SSH connections open (and persist) before anything hangs
    for host, result in ansible.run("ansible.builtin.ping").items():
        assert result.get("ping") == "pong", (host, result)
    sessions = {}
    for n, server in enumerate(servers(lab)):
        for user in ("alice", "svc.backup-01", "carol", "dave"):
            lab.trust(client, server)
            lab.share_key(server, user)
        lab.trust(server, third)
        config = ALICE_SSH_CONFIG.format(ip=lab.host(third).ip)
        lab.host(server).sh("install -d -o alice -m 700 /home/alice/.ssh && "
                            "install -o alice -m 600 /dev/stdin /home/alice/.ssh/config", input=config)
        sessions[server] = {
            "active": lab.open_session(client, server, "pty", feed="while :; do echo date; sleep 1; done"),
            "idle": lab.open_session(client, server, "pty", user="svc.backup-01"),
            "command": lab.open_session(client, server, "notty"),
            "sftp": lab.open_session(client, server, "sftp", user="alice"),
            "forward": lab.open_session(client, server, "forward", options=("-L", f"127.0.0.1:{24000 + n}:127.0.0.1:22")),
            "cut": lab.open_session(client, server, "notty", user="alice",
                                    command="while :; do date; head -c 2000 /dev/zero; sleep 0.2; done"),
            "frozen": lab.open_session(client, server, "pty", user="alice"),
            # its sshd is killed below: the `sleep` is left behind, orphaned
            "lost": lab.open_session(client, server, "notty", user="svc.backup-01"),
            # data keeps coming until the paused host's window closes; the client asks every 2 s
            "outbound": lab.open_session(server, third, "stream", command="cat >/dev/null",
                                         options=("-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=1000"),
                                         feed="while :; do head -c 65536 /dev/zero; sleep 0.1; done"),
            # the same, as alice, her keepalives in her own ~/.ssh/config
            "outbound_cfg": lab.open_session(server, third, "stream", command="cat >/dev/null", address="hk-third",
                                             client_user="alice",
                                             feed="while :; do head -c 65536 /dev/zero; sleep 0.1; done"),
            "exempt": lab.open_session(client, server, "pty", user="carol"),
            "predating": lab.open_session(client, server, "pty", user="dave"),
            "password": lab.open_session(client, server, "password", user="alice"),
            "forger": lab.open_session(client, server, "notty", user="alice", command=FORGED_IN_SESSION),
        }
    lab.wait_established([s for per in sessions.values() for s in per.values()], timeout=40)
    time.sleep(2)  # data flowing in the streaming sessions
    for server, per in sessions.items():
        lab.host(server).sh("kill -KILL " + " ".join(map(str, per["lost"].server_pids)))
        lab.host(server).sh(FORGED_DETACHED)
        lab.cut(per["cut"], side="client")
        lab.freeze_client(per["frozen"])
        lab.freeze_client(per["exempt"])
    lab.pause(third, [per["outbound"] for per in sessions.values()])
    lab.sleep_until_after_faults([s for per in sessions.values() for s in per.values()], 14)
    yield ansible, sessions
    lab.heal()
    ansible.close()


def entry_for(result, sess, kind):
    if kind == "lost":
        matches = [e for e in result["sessions"] if e["kind"] == "orphaned" and e["peer_port"] == sess.client_port]
    elif kind in OUTBOUND:
        matches = [e for e in result["sessions"] if e["kind"] == "outbound" and e["pid"] == sess.client_pid]
    else:
        matches = [e for e in result["sessions"] if e["kind"] == "inbound" and e["peer_port"] == sess.client_port
                   and e["peer_address"] == sess.client.ip]
    assert len(matches) == 1, (kind, sess, result["sessions"])
    return matches[0]


# USER_PROCESS records of /run/utmp, read raw: `who` hides records whose process is gone
# (exactly the stale ones) and on Debian 13 asks logind instead
UTMP_USERS = r"""
import struct
data = open("/run/utmp", "rb").read()
for i in range(0, len(data) - 383, 384):
    kind, pid = struct.unpack_from("<hxxi", data, i)
    if kind == 7:
        print(data[i + 8:i + 40].rstrip(b"\0").decode(), pid)
"""


def logged_in_ttys(host):
    """The ttys utmp records as logged in."""
    return {line.split()[0] for line in host.sh("python3 -", input=UTMP_USERS).stdout.splitlines()}


EXPECTED = {
    # kind: (user, tty is a pty, what runs in it)
    "active": ("root", True, None),
    "idle": ("svc.backup-01", True, None),
    "command": ("root", False, "sleep 86400"),
    "sftp": ("alice", False, "sftp-server"),
    "forward": ("root", False, None),
    "cut": ("alice", False, "while :"),
    "frozen": ("alice", True, None),
    "exempt": ("carol", True, None),
    "predating": ("dave", True, None),
    "password": ("alice", False, None),
    "forger": ("alice", False, "sshd: root@pts/0"),
}


def test_every_session_listed_and_classified(world, lab):
    ansible, sessions = world
    results = ansible.run("hangup.ssh.hung_sessions", LIMITS)
    for server, per in sessions.items():
        result = results[server]
        assert result["changed"] is False and result["liveness_source"] == "sock_diag"
        own = [e for e in result["sessions"] if e["self"]]
        assert len(own) == 1 and own[0]["user"] == "ops" and not own[0]["hung"], own
        for kind, sess in per.items():
            entry = entry_for(result, sess, kind)
            print(f"{server} {kind:8} {entry['user']:14} {entry['tty']!s:8} peer={entry['peer_address']}:"
                  f"{entry['peer_port']} recv_idle={entry['recv_idle_seconds']} "
                  f"tcp={entry['tcp']} hung={entry['hung']} why={entry['why']}")
            if kind in ORPHANED:
                assert entry["reasons"] == ["orphaned"] and not entry["hung"], (server, kind, entry)
                assert entry["user"] == "svc.backup-01" and "sleep 86400" in [c["cmdline"] for c in entry["commands"]]
                continue
            if kind in HUNG:
                assert entry["hung"] and HUNG[kind] in entry["reasons"], (server, kind, entry)
            else:
                assert not entry["hung"] and entry["reasons"] == [], (server, kind, entry)
            if kind in OUTBOUND:
                assert entry["peer_address"] == lab.host(helper(lab, "-third")).ip and entry["peer_port"] == 22
                continue
            assert entry["authenticated"] is (kind != "password"), entry
            user, pty, command = EXPECTED[kind]
            assert entry["user"] == user and entry["peer_address"] == lab.host(helper(lab, "-client")).ip
            assert entry["local_port"] == 22 and entry["tcp"]["state"] == "ESTABLISHED"
            assert entry["tty"].startswith("pts/") if pty else entry["tty"] == "notty", entry
            assert (entry["idle_seconds"] is not None) == pty
            if kind == "password":
                assert entry["user_pid"] is None and entry["commands"] == []
            if command:
                assert any(command in (c["cmdline"] or "") for c in entry["commands"]), entry["commands"]
        # from the client, exactly the sessions the kit opened
        from_client = {e["peer_port"] for e in result["sessions"]
                       if e["kind"] == "inbound" and e["peer_address"] == lab.host(helper(lab, "-client")).ip}
        # the lost session's connection is gone: only its process remains
        assert from_client == {per[k].client_port for k in EXPECTED}, from_client
        assert_forged_are_no_sessions(lab.host(server), result)


def assert_forged_are_no_sessions(host, result):
    forged = forged_pids(host)
    assert len(forged) == 4, forged
    for entry in result["sessions"]:
        assert entry["pid"] not in forged and not set(forged) & set(entry["sshd_pids"]), entry
    # only the one inside alice's own session is listed, as her command
    listed = [c["pid"] for e in result["sessions"] for c in e["commands"] if c["pid"] in forged]
    owners = [e["user"] for e in result["sessions"] for c in e["commands"] if c["pid"] in forged]
    assert len(listed) == 1 and owners == ["alice"], (listed, owners)


def test_check_mode_kills_nothing(world, lab):
    ansible, sessions = world
    results = ansible.run("hangup.ssh.hung_sessions", LIMITS + " kill=true", check=True)
    for server, per in sessions.items():
        result = results[server]
        would = {(e["kind"], e["pid"]) for e in result["would_kill"]}
        expected = {("outbound", per[k].client_pid) for k in OUTBOUND} | {
            ("inbound", entry_for(result, per[k], k)["pid"]) for k in ("cut", "frozen")}
        assert would == expected and result["killed"] == [] and result["changed"] is True, result["would_kill"]
        for kind, sess in per.items():
            if kind == "lost":
                continue
            alive = sess.client.alive(sess.client_pid) if kind in OUTBOUND else sess.server_alive()
            assert alive, (server, kind)


def test_the_fleet_callback_shows_a_line_per_host_and_the_table(world, tmp_path):
    """make demo's output on this scenario's sessions: the ad-hoc command with ansible.cfg's stdout
    callback, in check mode so that nothing changes for the tests after it."""
    ansible, _sessions = world
    listed = ansible.run("hangup.ssh.hung_sessions", LIMITS + " kill=true", check=True)
    path = tmp_path / "fleet.json"
    env = dict(ansible.env, ANSIBLE_STDOUT_CALLBACK="hangup.ssh.fleet", HANGUP_FLEET_FILE=str(path))
    out = subprocess.run(ansible.argv("hangup.ssh.hung_sessions", LIMITS + " kill=true", check=True), env=env,
                         capture_output=True, text=True, timeout=300, check=False).stdout
    with open(path) as f:
        rows = {row["host"]: row for row in json.load(f)}
    lines = {line.split("[", 1)[1].split("]", 1)[0]: line.split("] ", 1)[1] for line in out.splitlines()
             if line.startswith(("ok: [", "changed: ["))}
    assert set(lines) == set(rows) == set(listed), out
    for host, result in listed.items():
        hung = sum(1 for s in result["sessions"] if s["hung"])
        assert hung and lines[host].startswith("%d sessions, %d hung, would end %d: " % (
            len(result["sessions"]), hung, hung)), (lines[host], result["msg"])
        assert (rows[host]["need"], rows[host]["hung"], rows[host]["msg"]) == ("HUNG", hung, lines[host])
    # the whole results stay out of the output; the table follows the recap
    assert '"sessions"' not in out and out.index("PLAY RECAP") < out.index("HANGUP.SSH FLEET"), out
    assert "hung_sessions (%d hosts: %d HUNG)" % (len(listed), len(listed)) in out, out


def test_kill_ends_exactly_the_hung_sessions(world, lab):
    ansible, sessions = world
    before = {s: logged_in_ttys(lab.host(s)) for s in servers(lab)}
    results = ansible.run("hangup.ssh.hung_sessions", LIMITS + " kill=true")
    for server, per in sessions.items():
        result = results[server]
        print(f"{server}: killed " + ", ".join(f"{e['kind']} {e['user']}@{e['tty']} pid {e['pid']} {e['signals']}"
                                               for e in result["killed"]))
        assert result["changed"] is True and result["failed_to_kill"] == []
        assert len(result["killed"]) == 4, result["killed"]
        for kind in HUNG:
            sess = per[kind]
            if kind in OUTBOUND:
                assert not sess.client.alive(sess.client_pid), (server, kind)
            else:
                assert not sess.server_alive(), (server, kind)
        for kind in HEALTHY:
            assert per[kind].server_alive() and per[kind].client.alive(per[kind].client_pid), (server, kind)
        assert orphan_alive(lab, server, result, per["lost"]), "an orphan was ended without hung_when"
        assert all(lab.host(server).alive(p) for p in forged_pids(lab.host(server)))
        # ssh -G evaluated alice's file as alice, never as root
        canaries = lab.host(server).sh("ls /tmp/hk-canary-* 2>/dev/null", check=False).stdout.split()
        alice = lab.host(server).sh("id -u alice").stdout.strip()
        assert canaries == [f"/tmp/hk-canary-{alice}"], canaries
    # the Ansible connection itself (ControlPersist, become) carries on
    again = ansible.run("hangup.ssh.hung_sessions", LIMITS)
    for server, per in sessions.items():
        own = [e for e in again[server]["sessions"] if e["self"]]
        first = [e for e in results[server]["sessions"] if e["self"]]
        assert own and own[0]["pid"] == first[0]["pid"], "the Ansible session was replaced"
        assert not any(e["hung"] for e in again[server]["sessions"]), again[server]["sessions"]
        # the frozen client's pty is gone from utmp; the healthy ptys are still there
        who = logged_in_ttys(lab.host(server))
        frozen_tty = entry_for(results[server], per["frozen"], "frozen")["tty"]
        assert frozen_tty in before[server] and frozen_tty not in who, (before[server], who)
        for kind in ("active", "idle"):
            assert entry_for(again[server], per[kind], kind)["tty"] in who


def orphan_alive(lab, server, result, sess):
    pids = [c["pid"] for c in entry_for(result, sess, "lost")["commands"]]
    return all(lab.host(server).alive(p) for p in pids)


@pytest.mark.parametrize("args,message", [
    ("hung_when=bogus", "hung_when"),
    ("max_idle=-1", "max_idle"),
    ("unacked_timeout=-5", "unacked_timeout"),
    ("peers=10.0.0.0/33", "peers"),
    ("peers=not-a-network", "peers"),
    ("users=nobody-here", "users"),
    ("exclude_users=nobody-here", "exclude_users"),
    ("grace=soon", "grace"),
])
def test_bad_input_names_the_parameter_and_kills_nothing(world, args, message):
    ansible, sessions = world
    results = ansible.run("hangup.ssh.hung_sessions", args + " kill=true")
    for server, result in results.items():
        assert result["_status"] == "FAILED" and message in result["msg"], (args, result)
        assert "sessions" not in result and "killed" not in result
    for per in sessions.values():
        for kind in HEALTHY:
            assert per[kind].server_alive(), kind


def test_not_root_says_what_it_cannot_judge(world):
    ansible, _sessions = world
    results = ansible.run("hangup.ssh.hung_sessions", "", extra=["-e", "ansible_become=false"])
    for server, result in results.items():
        assert result["_status"] == "SUCCESS", result
        assert "not root" in result["unresponsive_off"].get("inbound sessions", ""), (server, result["unresponsive_off"])
        # other users' sessions cannot be shown to be authenticated without root: never ended
        assert not any(e["hung"] for e in result["sessions"] if e["user"] != "ops"), server


def test_orphans_end_when_asked(world, lab):
    ansible, sessions = world
    listed = ansible.run("hangup.ssh.hung_sessions", "")
    results = ansible.run("hangup.ssh.hung_sessions", "kill=true hung_when=orphaned users=svc.backup-01")
    for server, per in sessions.items():
        killed = results[server]["killed"]
        assert [(e["kind"], e["user"]) for e in killed] == [("orphaned", "svc.backup-01")], killed
        assert not orphan_alive(lab, server, listed[server], per["lost"])
        assert per["idle"].server_alive(), "svc.backup-01's own live session was ended"


# what harden-ssh.yml does: new keepalives for everyone (dave no longer exempt), sshd reloaded
PROBE_NOW = """ClientAliveInterval 1
ClientAliveCountMax 2
LoginGraceTime 0
"""


def test_default_kill_after_a_reload_ends_no_healthy_session(world, lab):
    """Runs last: what was hung is gone, and the defaults must now end nothing at all."""
    ansible, sessions = world
    for server in servers(lab):
        host = lab.host(server)
        # as prepare.yml laid it out: drop-ins, or around the vendor's file where sshd reads none (8.0)
        host.sh("m='Match User carol\\n    ClientAliveInterval 0\\n'; "
                "if [ -e /etc/ssh/sshd_config.hk-base ]; then "
                "{ cat; cat /etc/ssh/sshd_config.hk-base; printf \"$m\"; } > /etc/ssh/sshd_config; else "
                "cat >/etc/ssh/sshd_config.d/00-probe.conf && printf \"$m\" >/etc/ssh/sshd_config.d/99-match.conf; fi && "
                "/usr/sbin/sshd -t && kill -HUP $(cat /run/sshd.pid)", input=PROBE_NOW)
    # past every cut-off now in force: (2 + 1) x 1 s, doubled on 9.2
    time.sleep(9)
    results = ansible.run("hangup.ssh.hung_sessions", "kill=true")
    for server, per in sessions.items():
        result = results[server]
        print(f"{server}: " + "; ".join(f"{k} {entry_for(result, per[k], k)['recv_idle_seconds']} s "
                                        f"{entry_for(result, per[k], k)['reasons']}" for k in ("predating", "exempt")))
        assert result["killed"] == [] and result["failed_to_kill"] == [] and result["changed"] is False, result
        assert result["unresponsive_off"] == {}, result["unresponsive_off"]
        predating = entry_for(result, per["predating"], "predating")
        assert predating["recv_idle_seconds"] > 6 and predating["reasons"] == [], predating
        assert "unresponsive_peer" not in entry_for(result, per["exempt"], "exempt")["reasons"]
        waiting = entry_for(result, per["password"], "password")
        assert waiting["authenticated"] is False and not waiting["hung"]
        for kind in HEALTHY:
            assert per[kind].server_alive(), (server, kind)
        assert_forged_are_no_sessions(lab.host(server), result)
        assert all(lab.host(server).alive(p) for p in forged_pids(lab.host(server)))
