"""hung_sessions against what a hostile local user can arrange: each case failed before its fix.

Built on synthetic tables in the shape /proc gives (tests/unit/synthetic.py);
the live versions of the main cases run in scenario hung_sessions.
"""

import json
import os
import signal
import subprocess
import sys
import time

import fusetrap
import pytest
import synthetic
from adhoc import parse_adhoc
from synthetic import proc

from ansible_collections.hangup.ssh.plugins.module_utils import _hung, _kill, _procread, _run, _sshproc

LIMITS = {"unacked_timeout": 30, "max_backoff": 6, "unresponsive_timeout": None, "max_idle": 0}
ALL = tuple(_hung.CLASSES)
PTS0, PTS1 = synthetic.PTS0, synthetic.PTS0 + 1
ALICE, BOB = 1000, 1001


class Env(synthetic.NoSystem):
    def __init__(self, env):
        super().__init__("/nonexistent", "/nonexistent")
        self.env = env

    def environ(self, pid):
        return self.env.get(pid)

    def user_name(self, uid):
        return {0: "root", ALICE: "alice", BOB: "bob"}.get(uid, str(uid))

    def uid_of(self, name):
        return {"root": 0, "alice": ALICE, "bob": BOB}.get(name)


def report(procs, socks, env=None, hung_when=ALL, **filters):
    entries = _hung.build_report(procs, socks, Env(env or {}), 1000.0, 0, 100, LIMITS, 1)
    return _hung.finish(entries, hung_when, **filters)


def base():
    return [proc(1, 0, "init"), proc(15, 1, "sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups", sockets=[1])]


def dead(local, peer):
    return synthetic.established(local, peer, unacked=3, last_ack_recv=99000)


def bob_session(sockets=(777,)):
    return [proc(20, 15, "sshd: bob [priv]", sockets=sockets),
            proc(21, 20, "sshd: bob@pts/0", uid=BOB, sockets=sockets),
            proc(22, 21, "-bash", uid=BOB, tty_nr=PTS0)]


def test_a_socket_inode_that_repeats_is_nobodys():
    # inode numbers wrap: alice makes sockets until one has the number of bob's, in CLOSE_WAIT
    bob_row = synthetic.established(("10.0.0.2", 22), ("10.0.0.7", 40000))
    alice_row = dict(synthetic.established(("::1", 5000), ("::1", 6000), uid=ALICE), state="CLOSE_WAIT")
    socks = _sshproc.unique_inodes([(1, synthetic.LISTEN), (777, bob_row), (777, alice_row)])
    procs = synthetic.table(*base(), *bob_session(), proc(30, 1, "python3 colliding.py", uid=ALICE, sockets=[777]))
    bob = [e for e in report(procs, socks, hung_when=_hung.DEFAULT_HUNG_WHEN) if e["pid"] == 20][0]
    assert bob["reasons"] == [] and not bob["hung"] and bob["tcp"] is None


def test_a_session_socket_must_be_roots():
    # only alice's row made it into the table under bob's inode: it is not sshd's connection
    alice_row = dict(synthetic.established(("::1", 5000), ("::1", 6000), uid=ALICE), state="CLOSE_WAIT")
    procs = synthetic.table(*base(), *bob_session())
    bob = [e for e in report(procs, {1: synthetic.LISTEN, 777: alice_row}) if e["pid"] == 20][0]
    assert bob["tcp"] is None and not bob["hung"]


def test_the_listeners_inode_taken_leaves_every_session_in_place():
    procs = synthetic.table(*base(), *bob_session(sockets=(2,)))
    socks = {1: synthetic.established(("::1", 5000), ("::1", 6000), uid=ALICE),
             2: synthetic.established(("10.0.0.2", 22), ("10.0.0.7", 40000))}
    env = {22: b"SSH_CONNECTION=10.0.0.7 40000 10.0.0.2 22\0"}
    entries = report(procs, socks, env=env, hung_when=["orphaned"])
    assert [(e["kind"], e["user"], e["hung"]) for e in entries] == [("inbound", "bob", False)]


def test_a_session_that_forwards_a_port_is_still_authenticated_and_ended_when_dead():
    # ssh -X or -R: the user's sshd child listens on localhost
    procs = synthetic.table(*base(),
                            proc(20, 15, "sshd: alice [priv]", sockets=[2]),
                            proc(21, 20, "sshd: alice@pts/0", uid=ALICE, sockets=[2, 3]),
                            proc(22, 21, "-bash", uid=ALICE, tty_nr=PTS0))
    socks = {1: synthetic.LISTEN, 2: dead(("10.0.0.2", 22), ("10.0.0.3", 40000)),
             3: dict(synthetic.LISTEN, local=("127.0.0.1", 6010), uid=ALICE)}
    (entry,) = [e for e in report(procs, socks) if e["kind"] == "inbound"]
    assert entry["authenticated"] and entry["user_pid"] == 21 and entry["hung"]
    assert set(entry["_starts"]) == {20, 21, 22}


def test_a_root_login_that_forwards_a_port_is_no_listener():
    # before 9.8 a root login is one process; with -R it listens too, and holds its connection
    procs = synthetic.table(*base(),
                            proc(34, 15, "sshd: root@pts/0", sockets=[2, 3]),
                            proc(42, 34, "-bash", tty_nr=PTS0),
                            proc(43, 42, "vim /etc/important", tty_nr=PTS0))
    socks = {1: synthetic.LISTEN, 2: synthetic.established(("10.0.0.2", 22), ("10.0.0.3", 40000)),
             3: dict(synthetic.LISTEN, local=("127.0.0.1", 6010))}
    conn = b"SSH_CONNECTION=10.0.0.3 40000 10.0.0.2 22\0"
    entries = report(procs, socks, env={42: conn, 43: conn}, hung_when=["orphaned"])
    assert [(e["kind"], e["user"], e["hung"]) for e in entries] == [("inbound", "root", False)]


def test_sessions_of_a_listener_started_in_a_session_are_not_its_commands():
    procs = synthetic.table(*base(),
                            proc(20, 15, "sshd: alice [priv]", sockets=[2]),
                            proc(21, 20, "sshd: alice@pts/0", uid=ALICE, sockets=[2]),
                            proc(22, 21, "-bash", uid=ALICE, tty_nr=PTS0),
                            proc(23, 22, "sudo /usr/sbin/sshd -D -p 2222", tty_nr=PTS0),
                            proc(24, 23, "/usr/sbin/sshd -D -p 2222", sockets=[4]),
                            proc(50, 24, "sshd: bob [priv]", sockets=[5]),
                            proc(51, 50, "sshd: bob@pts/1", uid=BOB, sockets=[5]),
                            proc(52, 51, "-bash", uid=BOB, tty_nr=PTS1))
    socks = {1: synthetic.LISTEN, 2: dead(("10.0.0.2", 22), ("10.0.0.3", 40000)),
             4: dict(synthetic.LISTEN, local=("0.0.0.0", 2222)),
             5: synthetic.established(("10.0.0.2", 2222), ("10.0.0.9", 41000))}
    entries = report(procs, socks, hung_when=_hung.DEFAULT_HUNG_WHEN)
    alice = [e for e in entries if e["pid"] == 20][0]
    bob = [e for e in entries if e["pid"] == 50][0]
    assert alice["hung"] and not bob["hung"] and bob["listener_pid"] == 24
    _first, _wait, _last, hangup = _kill.plan(alice)
    assert {pid for pid, _start in hangup} == {22, 23}  # the nested listener and bob's session are spared
    assert 24 not in alice["_starts"]


def test_orphan_groups_are_per_user_so_filters_decide_on_whose_processes():
    procs = synthetic.table(*base(),
                            proc(300, 1, "sleep inf", uid=ALICE),  # exec'd with bob's old SSH_CONNECTION
                            proc(5000, 1, "backup-job --resume", uid=BOB))
    conn = b"SSH_CONNECTION=10.0.0.9 50000 10.0.0.2 22\0"
    entries = report(procs, {1: synthetic.LISTEN}, env={300: conn, 5000: conn}, hung_when=["orphaned"],
                     users=["alice"], exclude_users=["bob"])
    assert [(e["user"], sorted(e["_starts"])) for e in entries] == [("alice", [300])]


def test_a_users_own_copy_of_ssh_is_no_outbound_client():
    p = proc(70, 1, "ssh h1", exe="/home/alice/bin/ssh", uid=ALICE, sockets=[9])
    socks = {9: synthetic.established(("127.0.0.1", 1), ("127.0.0.1", 2), uid=ALICE)}
    assert _hung.outbound_clients({70: p}, socks) == []


def test_an_outbound_client_is_judged_by_its_own_connection_only():
    # bob's ProxyJump client holds no connection of its own, only one forwarded to alice's service
    procs = synthetic.table(*base(),
                            proc(80, 1, "ssh -J jump -R 9000:localhost:8000 build", uid=BOB, sockets=[11]),
                            proc(81, 1, "ssh -p 2200 -L 8080:web:80 gw", uid=BOB, sockets=[12, 13]))
    socks = {1: synthetic.LISTEN,
             11: synthetic.established(("127.0.0.1", 51000), ("127.0.0.1", 8000), uid=ALICE, backoff=8),
             12: synthetic.established(("127.0.0.1", 51001), ("10.0.0.5", 2200), uid=BOB),
             13: synthetic.established(("127.0.0.1", 8080), ("127.0.0.1", 51002), uid=BOB, backoff=8)}
    out = {e["pid"]: e for e in report(procs, socks, hung_when=_hung.DEFAULT_HUNG_WHEN) if e["kind"] == "outbound"}
    assert out[80]["tcp"] is None and not out[80]["hung"]
    assert out[81]["peer_port"] == 2200 and not out[81]["hung"]


def test_a_long_title_is_parsed_in_linear_time():
    # a run of spaces once took the title regex quadratic time (40k spaces: 3 s; 1 MB: half an hour)
    def give_up(_signum, _frame):
        raise AssertionError("classify_title did not finish in 20 s")
    old = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(20)
    try:
        assert _sshproc.classify_title("sshd: " + " " * 200000 + "b")["role"] == "user"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_titles_are_read_no_further_than_the_limit(tmp_path):
    base_dir = tmp_path / "9"
    base_dir.mkdir()
    (base_dir / "cmdline").write_bytes(b"sshd: " + b"x" * 100000 + b"\0")
    assert len(_sshproc.read_cmdline(str(tmp_path), 9)) == _sshproc.ARGV_LIMIT


def test_a_lookup_is_bounded_in_time_and_output_and_leaves_nothing_behind():
    # what a user's `Match exec` can do while ssh -G evaluates it: flood, hang, leave a child
    script = ("import os, sys, time\n"
              "if os.fork() == 0:\n"
              "    time.sleep(60); sys.exit()\n"
              "print(os.getpgrp(), flush=True)\n"
              "sys.stdout.write('x' * 3000000); sys.stdout.flush(); time.sleep(60)\n")
    rc, out = _run.run_bounded([sys.executable, "-c", script], timeout=2, limit=1000)
    assert rc is None and "2 s" in out
    rc, out = _run.run_bounded([sys.executable, "-c", "import os; print(os.getpgrp())"], timeout=5)
    assert rc == 0 and int(out) != os.getpgrp()  # a session and group of its own, killed as a whole
    rc, out = _run.run_bounded([sys.executable, "-c", "print('y' * 100000)"], timeout=5, limit=1000)
    assert rc == 0 and out == "y" * 1000


def test_a_lookups_leftover_children_are_killed():
    marker = "hk-leftover-%d" % os.getpid()
    script = ("import os, time, sys\n"
              "if os.fork() == 0:\n"
              "    sys.argv[0] = %r; time.sleep(60)\n"
              "print('done')\n" % marker)
    rc, out = _run.run_bounded([sys.executable, "-c", script], timeout=5)
    assert rc == 0 and out.strip() == "done"
    time.sleep(0.2)
    left = [p for p in os.listdir("/proc") if p.isdigit() and _cmd(p).count(marker)]
    assert left == []


def _cmd(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


@pytest.mark.parametrize("title", ["sshd: root@pts/0", "sshd-session: root [priv]", "sshd: root@../home/alice/f"])
def test_forged_titles_in_and_out_of_a_session_are_never_sshd(title):
    procs = synthetic.table(*base(),
                            proc(20, 15, "sshd: alice [priv]", sockets=[2]),
                            proc(21, 20, "sshd: alice@pts/0", uid=ALICE, sockets=[2]),
                            proc(22, 21, "-sh", uid=ALICE, tty_nr=PTS0),
                            proc(23, 22, title, exe="/usr/bin/sleep", uid=ALICE, sockets=[9]),
                            proc(30, 1, title, exe="/usr/bin/sleep", uid=ALICE),
                            proc(31, 30, title, exe="/usr/bin/sleep", uid=ALICE))
    socks = {1: synthetic.LISTEN, 2: synthetic.established(("10.0.0.2", 22), ("10.0.0.3", 40000)),
             9: dict(dead(("10.0.0.2", 51000), ("10.9.9.9", 80)), uid=ALICE)}
    entries = report(procs, socks, hung_when=ALL)
    assert [(e["pid"], e["sshd_pids"], e["ttys"], e["reasons"]) for e in entries] == [(20, [20, 21], ["pts/0"], [])]


# A user's process stuck in exec on their own FUSE file: reading its stat, environ, exe or fd blocks for as long as
# they like (the process shows state S). Before _procread, the scan blocked on it, and with it the whole task.
HOSTILE_UID = 64997
PIECES = """
import json, sys, time
from ansible_collections.hangup.ssh.plugins.module_utils import _hung, _kill, _procread
pids, uid = [int(p) for p in sys.argv[1].split(",")], int(sys.argv[2])
reader = _procread.Reader(wait=0.3, per_uid=0.5)
procs, skipped = _hung.snapshot("/proc", reader=reader)
system = _hung.System(reader=reader)
print(json.dumps({"skipped": [s for s in skipped if s["pid"] in pids], "stuck": [procs[p]["stuck"] for p in pids],
                  "starttime": [procs[p]["starttime"] for p in pids], "environ": system.environ(pids[0]),
                  "send": _kill.send("/proc", (pids[0], 0), 0, reader), "left_behind": reader.left_behind.get(uid)}))
"""


def bounded_run(argv, seconds, **kwargs):
    """argv's stdout; the test fails, instead of hanging, when argv does not end within `seconds`."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **kwargs.pop("env", {}))
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=seconds, env=env, check=False,
                              **kwargs).stdout
    except subprocess.TimeoutExpired:
        pytest.fail("%s blocked on the stuck process for %d s" % (argv[0], seconds))


@pytest.fixture
def stuck_user(stuck_exec):
    """The pids of five processes of a hostile user whose stat blocks."""
    _where, start = stuck_exec
    traps = [start(uid=HOSTILE_UID) for _n in range(5)]
    if not all(fusetrap.wait_stuck(trap.pid) for trap in traps):
        pytest.skip("the FUSE trap does not block reading stat on this kernel")
    return [trap.pid for trap in traps]


def test_a_process_whose_proc_files_block_stalls_no_read(stuck_user):
    got = json.loads(bounded_run([sys.executable, "-c", PIECES, ",".join(map(str, stuck_user)), str(HOSTILE_UID)],
                                 30))
    assert got["skipped"] == [{"pid": p, "reason": _procread.Blocked.REASON} for p in sorted(stuck_user)]
    assert all(got["stuck"]) and got["starttime"] == [None] * 5, "a process of unknown identity is never signalled"
    assert got["environ"] is None and got["send"] == _kill.BLOCKED
    # two reads waited for (0.3 s each) use up that user's 0.5 s: the other three, and the reads after, are not tried
    assert got["left_behind"] == 2


def test_hung_sessions_with_kill_ends_on_a_host_with_a_stuck_process(stuck_user):
    from playbook import collection_root
    out = bounded_run(["ansible", "localhost", "-i", "localhost,", "-c", "local", "-m", "hangup.ssh.hung_sessions",
                       "-a", "kill=true", "-e", "ansible_python_interpreter=" + sys.executable], 60,
                      env={"ANSIBLE_COLLECTIONS_PATH": collection_root(), "ANSIBLE_STDOUT_CALLBACK": "minimal",
                           "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "NO_COLOR": "1"})
    result = parse_adhoc(out)["localhost"]
    assert result["_status"] == "SUCCESS", out
    assert all({"pid": p, "reason": _procread.Blocked.REASON} in result["not_read"] for p in stuck_user)
