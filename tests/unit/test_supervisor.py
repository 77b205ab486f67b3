"""module_utils._supervisor against real processes this test starts (nothing is mocked)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import fusetrap
import pytest

from ansible_collections.hangup.ssh.plugins.module_utils import _deadline, _kill, _supervisor


def alive(marker):
    """Live processes whose command line matches marker, zombies not counted. Only cmdline and status are read:
    stat, which pgrep reads, blocks on a process stuck in exec as the FUSE tests leave one."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if re.search(marker, cmdline) and "pytest" not in cmdline and \
                _supervisor._state(int(name)) not in ("Z", "X", "?"):
            found.append(int(name))
    return found


def wait_gone(marker, seconds):
    end = time.monotonic() + seconds
    while alive(marker) and time.monotonic() < end:
        time.sleep(0.05)
    return alive(marker)


@pytest.fixture(autouse=True)
def no_leftovers():
    yield
    for pid in alive("sleep 41[0-9][0-9]"):
        os.kill(pid, signal.SIGKILL)


SUPERVISED = [
    # argv, timeout, rc, signal_sent, stdout
    (["sh", "-c", "echo hi; exit 3"], 5, 3, None, b"hi\n"),
    (["sh", "-c", "echo start; sleep 4101"], 0.5, 124, "TERM", b"start\n"),
    (["sh", "-c", "trap '' TERM; echo stubborn; sleep 4102"], 0.5, 137, "KILL", b"stubborn\n"),
    (["sh", "-c", "(setsid sh -c 'sleep 4103 & sleep 4103' >/dev/null 2>&1 &); echo forked; sleep 4103"], 0.5, 124,
     "TERM", b"forked\n"),
    (["sh", "-c", "(setsid sleep 4104 </dev/null >/dev/null 2>&1 &); echo gone"], 5, 0, None, b"gone\n"),
    (["sh", "-c", "sleep 4105 & echo holds output; exit 0"], 5, 0, None, b"holds output\n"),
]


@pytest.mark.parametrize("argv,timeout,rc,signal_sent,stdout", SUPERVISED)
def test_supervise(argv, timeout, rc, signal_sent, stdout):
    marker = "sleep 410" + argv[-1].split("sleep 410", 1)[1][0] if "sleep 410" in argv[-1] else None
    started = time.monotonic()
    result = _supervisor.supervise(argv, timeout, kill_after=0.5)
    took = time.monotonic() - started
    assert (result["rc"], result["signal_sent"], result["stdout"]) == (rc, signal_sent, stdout), result
    assert result["failed_to_end"] == []
    if marker:
        assert alive(marker) == [], marker
    if signal_sent:
        assert timeout <= result["signal_times"]["TERM"] < timeout + 0.5
    assert took < timeout + 0.5 + 3 + 1


def test_commands_that_cannot_run_say_why(tmp_path):
    result = _supervisor.supervise(["/nonexistent/cmd"], 5)
    assert result["rc"] == 127 and result["msg"].startswith("could not run /nonexistent/cmd")
    result = _supervisor.supervise(["true"], 5, chdir=str(tmp_path / "missing"))
    assert result["rc"] == 127 and result["msg"].startswith("could not chdir")


def test_stdin_and_chdir(tmp_path):
    result = _supervisor.supervise(["sh", "-c", "pwd; cat"], 5, chdir=str(tmp_path), stdin="fed\n")
    assert result["stdout"] == b"%s\nfed\n" % str(tmp_path).encode() and result["rc"] == 0


# 1. stdin is fed inside the deadline loop: a command that does not read it cannot stall the supervisor
def test_unread_stdin_does_not_hold_the_deadline():
    started = time.monotonic()
    result = _supervisor.supervise(["sleep", "4111"], 1, kill_after=0.5, stdin=b"x" * 300000)
    assert result["timed_out"] and result["rc"] == 124 and time.monotonic() - started < 3, result


def test_stdin_and_output_both_full_do_not_deadlock():
    # writes 200 kB before reading: a blocking feeder and this command wait on each other for good
    started = time.monotonic()
    result = _supervisor.supervise(["sh", "-c", "head -c 200000 /dev/zero; cat >/dev/null; echo done >&2"], 5,
                                   stdin=b"x" * 300000)
    assert result["rc"] == 0 and len(result["stdout"]) == 200000 and result["stderr"] == b"done\n"
    assert time.monotonic() - started < 3


def test_a_slow_reader_of_a_megabyte_ends_at_the_deadline():
    reader = "while read -r line; do sleep 0.01; done"
    result = _supervisor.supervise(["sh", "-c", reader], 1, kill_after=0.5, stdin=b"line\n" * 200000)
    assert result["timed_out"] and 1 <= result["signal_times"]["TERM"] < 1.5, result


# 3. the supervisor killed or stopped: the module, still waiting, ends the tree on the same schedule
def test_killed_supervisor_still_loses_no_deadline():
    cmd = "kill -9 $PPID; (setsid sleep 4121 </dev/null >/dev/null 2>&1 &); trap '' TERM; sleep 4121"
    started = time.monotonic()
    result = _supervisor.run_detached(["sh", "-c", cmd], 10, timeout=1, kill_after=0.5)
    took = time.monotonic() - started
    assert result["supervisor_lost"] and "ended" in result["msg"], result
    assert result["timed_out"] and result["signal_sent"] == "KILL" and result["rc"] == 137, result
    assert result["swept"] and result["failed_to_end"] == []
    assert alive("sleep 4121") == [] and took < 1 + 0.5 + 3 + 1


def test_pkill_python_ends_neither_supervisor_nor_module():
    # what `pkill python3` sends: both ignore it while the command runs, and the output is kept
    cmd = "kill -TERM $PPID; kill -INT $PPID; echo kept; trap '' TERM; sleep 4124"
    result = _supervisor.run_detached(["sh", "-c", cmd], 10, timeout=1, kill_after=0.5)
    assert not result.get("supervisor_lost") and result["stdout"] == b"kept\n" and result["rc"] == 137, result
    assert alive("sleep 4124") == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "the caller's dispositions were not given back"


def test_pkill_python_does_not_end_the_module_either():
    # the supervisor's parent is the module (a subreaper): TERM to it too, in a child of this test's, which a
    # module that did not ignore it would not survive
    cmd = "m=$(awk '/^PPid/{print $2}' /proc/$PPID/status); kill -TERM $m; kill -INT $m; echo kept; sleep 4125"
    result = in_child(lambda: dict(_supervisor.run_detached(["sh", "-c", cmd], 10, timeout=1, kill_after=0.5),
                                   stdout=None, stderr=None))
    assert result is not None, "the module died of SIGTERM"
    assert not result.get("supervisor_lost") and result["rc"] == 124, result
    assert alive("sleep 4125") == []


def test_a_take_over_after_the_leader_died_keeps_the_deadline():
    # the leader ends at the deadline; what it left ignores TERM and kills the supervisor after it: the module
    # takes over with the leader gone, and KILL must still come at deadline + kill_after, not kill_after later
    daemon = "trap '' TERM; sleep 3.3; kill -9 $(awk '/^PPid/{print $2}' /proc/$$/status); exec sleep 4126"
    started = time.monotonic()
    result = in_child(lambda: dict(_supervisor.run_detached(
        ["sh", "-c", "setsid sh -c \"%s\" </dev/null >/dev/null 2>&1 & sleep 4127" % daemon], 20, timeout=1,
        kill_after=3), stdout=None, stderr=None))
    gone = wait_gone("sleep 4126", 10)
    took = time.monotonic() - started
    assert result["supervisor_lost"] and result["timed_out"] and "KILL" in result["signal_times"], result
    assert gone == [] and took < 1 + 3 + 1, "KILL came %.1f s after the start" % took


@pytest.mark.parametrize("limits,deep", [
    ((4096, None), False),  # pidfds numbered past what select() can watch (1024)
    ((512, 512), True),  # more processes with children than this process may open files
])
def test_a_wide_tree_is_ended_whatever_the_number_of_its_pidfds(limits, deep):
    # 1100 children, each in a group of its own and deaf to TERM (and, deep, each with a child of its own)
    if not shutil.which("cc"):
        pytest.skip("needs a C compiler")
    where = tempfile.mkdtemp(prefix="hk-wide-")
    with open(os.path.join(where, "wide.c"), "w") as f:
        f.write(WIDE)
    binary = os.path.join(where, "hk_wide_4192")
    subprocess.run(["cc", "-o", binary, os.path.join(where, "wide.c")], check=True)

    def run():
        import resource
        soft, hard = limits
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard or resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        argv = [binary, "1100"] + (["deep"] if deep else [])
        return dict(_supervisor.supervise(argv, 1, kill_after=1), stdout=None, stderr=None)
    try:
        started = time.monotonic()
        result = in_child(run)
        took = time.monotonic() - started
        assert result is not None, "the supervisor died"
        assert result["rc"] == 137 and result["failed_to_end"] == [] and wait_gone("hk_wide_4192", 3) == [], result
        assert took < 1 + 1 + _deadline.SLACK
    finally:
        for pid in alive("hk_wide_4192"):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(where)


WIDE = ("#include <signal.h>\n#include <stdlib.h>\n#include <unistd.h>\nint main(int c, char **v) { "
        "signal(SIGTERM, SIG_IGN); for (int i = 0; i < atoi(v[1]); i++) { pid_t p = fork(); "
        "if (p == 0) { setpgid(0, 0); if (c > 2) fork(); for (;;) pause(); } if (p < 0) break; } "
        "for (;;) pause(); }\n")


def test_stopped_supervisor_is_killed_and_replaced_on_the_same_timeline():
    # stopped, silent: the module takes over, and SIGKILL still comes at deadline + kill_after
    started = time.monotonic()
    result = _supervisor.run_detached(["sh", "-c", "kill -STOP $PPID; trap '' TERM; sleep 4122"], 30, timeout=4,
                                      kill_after=1)
    assert result["supervisor_lost"] and "fell silent" in result["msg"], result
    assert 4 <= result["signal_times"]["TERM"] < 4.5 and 5 <= result["signal_times"]["KILL"] < 5.5, result
    assert alive("sleep 4122") == [] and time.monotonic() - started < 4 + 1 + 3 + 1


def test_supervisor_says_where_the_tree_is_before_the_command_runs():
    told = []
    result = _supervisor.supervise(["sh", "-c", "echo $$; ps -o pgid= -p $$"], 5, on_start=told.append)
    pid, pgid = (int(v) for v in result["stdout"].split())
    assert told[0]["leader"] == pid == pgid and told[0]["supervisor"] == os.getpid() and told[0]["timeout"] == 5


def test_a_silent_supervisor_is_noticed_within_seconds():
    # stopped at once: the module takes over within QUIET seconds, not after the whole deadline, and sees the
    # command end by itself at 4 s
    started = time.monotonic()
    result = _supervisor.run_detached(["sh", "-c", "kill -STOP $PPID; sleep 4; (sleep 4123 &)"], 60, timeout=30,
                                      kill_after=0.5)
    took = time.monotonic() - started
    assert result["supervisor_lost"] and "fell silent" in result["msg"] and not result["timed_out"], result
    assert alive("sleep 4123") == [] and 4 <= took < 4 + 2, took


def test_an_ignored_sigchld_changes_nothing():
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        result = _supervisor.run_detached(["sh", "-c", "exit 3"], 10, timeout=5)
    finally:
        signal.signal(signal.SIGCHLD, old)
    assert result["rc"] == 3, result


# 4. signal dispositions and mask: none of the caller's reach the command
GLIBC_INTERNAL = (1 << 31) | (1 << 32)


def test_command_starts_with_default_signals():
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    try:
        status = _supervisor.supervise(["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"], 5)["stdout"].decode()
        result = _supervisor.supervise(["sh", "-c", "echo up; sleep 4131"], 0.5, first_signal="HUP", kill_after=3)
    finally:
        signal.signal(signal.SIGHUP, old)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
    # glibc keeps signals 32 and 33 for itself and refuses to change them: whatever the caller had there stays
    masks = dict(zip(status.split()[::2], (int(v, 16) & ~GLIBC_INTERNAL for v in status.split()[1::2])))
    assert masks == {"SigBlk:": 0, "SigIgn:": 0}, status
    assert result["rc"] == 124 and result["signal_sent"] == "HUP" and result["signal_times"].keys() == {"HUP"}


# 7. the leader stays unreaped while anything of its group may run, so the group id cannot be reused
def test_leader_is_kept_until_the_work_is_done(tmp_path):
    pidfile = tmp_path / "leader"
    cmd = "echo $$ > %s; (trap '' TERM; exec sleep 4141) & exit 0" % pidfile
    fd = _supervisor.start_supervisor(["sh", "-c", cmd], timeout=10, kill_after=1)
    states = []
    end = time.monotonic() + 5
    while time.monotonic() < end and not (pidfile.exists() and pidfile.read_text().strip()):
        time.sleep(0.01)
    leader = int(pidfile.read_text())
    while alive("sleep 4141") and time.monotonic() < end:
        stat = _kill.starttime_of("/proc", leader)
        states.append(open("/proc/%d/stat" % leader).read().split(") ")[1][0] if stat is None else "R")
        time.sleep(0.05)
    _started, result, how = _supervisor.await_reports(fd, 10)
    assert how == "result" and result["rc"] == 0 and not result["timed_out"]
    assert states and set(states) == {"Z"}, states


# 2. a process the supervisor may not signal: it goes on, ends what it can and names the rest
SETUID_ROOT = "#define _GNU_SOURCE\n#include <unistd.h>\nint main(void) { if (setresuid(0, 0, 0)) return 1; for (;;) pause(); }\n"


@pytest.fixture
def root_helper():
    if os.geteuid() != 0 or not shutil.which("cc"):
        pytest.skip("needs root and a C compiler to make a setuid-root process")
    where = tempfile.mkdtemp(prefix="hk-setuid-")
    os.chmod(where, 0o755)
    source, binary = os.path.join(where, "h.c"), os.path.join(where, "hk_root_4151")
    with open(source, "w") as f:
        f.write(SETUID_ROOT)
    subprocess.run(["cc", "-o", binary, source], check=True)
    os.chmod(binary, 0o4755)
    yield binary
    for pid in alive("hk_root_4151"):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(where)


def in_child(func, uid=None):
    """func() in a forked child, as the supervisor runs: a process with no other children (and as uid, when
    given); its return value (JSON)."""
    import json
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            os.write(write, json.dumps(func(), default=repr).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        return json.loads(f.read() or "null")


def supervised(*args, **kwargs):
    """supervise() in a child of its own: this test process has children of its own, which are not the tree."""
    return in_child(lambda: dict(_supervisor.supervise(*args, **kwargs), stdout="", stderr=""))


@pytest.mark.parametrize("cmd", [
    "exec {h}",  # the whole group is root's: killpg itself fails with EPERM
    "{h} & sleep 4152",
])
def test_a_process_that_may_not_be_signalled_is_named(root_helper, cmd):
    def run():
        result = _supervisor.supervise(["sh", "-c", cmd.format(h=root_helper)], 0.5, kill_after=0.5)
        return dict(result, stdout="", stderr="")
    started = time.monotonic()
    result = in_child(run, uid=65534)
    took = time.monotonic() - started
    assert result is not None, "the supervisor died"
    roots = alive("hk_root_4151")
    assert [f["pid"] for f in result["failed_to_end"]] == roots and len(roots) == 1, result
    assert result["failed_to_end"][0]["reason"] == _kill.DENIED and result["timed_out"]
    assert alive("sleep 4152") == [] and took < 0.5 + 0.5 + 3 + 2


def test_run_detached_returns_the_result():
    result = _supervisor.run_detached(["sh", "-c", "echo detached"], 10, timeout=5, kill_after=1)
    assert result["rc"] == 0 and result["stdout"] == b"detached\n"


def test_detached_supervisor_outlives_its_caller():
    # the caller stops waiting (its connection is gone); the supervisor still ends the tree at the deadline
    started = time.monotonic()
    os.close(_supervisor.start_supervisor(["sleep", "4160"], timeout=1, kill_after=0.5))
    while not alive("sleep 4160") and time.monotonic() - started < 1:
        time.sleep(0.02)
    assert alive("sleep 4160"), "the command did not start"
    assert wait_gone("sleep 4160", 10) == []
    assert 1 <= time.monotonic() - started < 3


def test_output_limit_keeps_the_head():
    result = _supervisor.supervise([sys.executable, "-c", "import sys; sys.stdout.write('é' * 100)"], 5,
                                   output_limit=5)
    assert result["stdout"] == "ééé".encode()[:5] and result["stdout_truncated"]


def test_megabytes_of_output_come_back_whole():
    started = time.monotonic()
    result = _supervisor.run_detached(["head", "-c", "20000000", "/dev/urandom"], 30, timeout=20,
                                      output_limit=20000000)
    assert len(result["stdout"]) == 20000000 and not result["stdout_truncated"]
    assert time.monotonic() - started < 10


def test_a_process_with_no_environment_does_not_hold_the_end():
    # an exec'ing process reads with an empty environment and may be the tree's; one that stays so is not
    hostile = subprocess.Popen(["env", "-i", "sleep", "4170"])
    try:
        started = time.monotonic()
        assert supervised(["true"], 5, kill_after=2)["rc"] == 0
        assert time.monotonic() - started < 1
    finally:
        hostile.kill()
        hostile.wait()


def test_a_stuck_process_elsewhere_does_not_stall_the_supervisor(stuck_exec):
    _where, start = stuck_exec
    hostile = start()
    time.sleep(0.5)
    print("reading the stuck process's stat blocks:", fusetrap.stat_blocks(hostile.pid))
    started = time.monotonic()
    assert supervised(["sh", "-c", "(setsid sleep 4181 &); exit 0"], 5, kill_after=1)["rc"] == 0
    assert time.monotonic() - started < 2 and alive("sleep 4181") == []
    assert hostile.poll() is None, "a process outside the tree was ended"


def test_a_stuck_process_in_the_tree_is_ended(stuck_exec):
    where, _start = stuck_exec
    started = time.monotonic()
    result = _supervisor.supervise([sys.executable, "-c", fusetrap.STUCK, os.path.join(where, "f")], 1, kill_after=1)
    assert result["timed_out"] and result["failed_to_end"] == [] and time.monotonic() - started < 1 + 1 + 3 + 1
    assert alive("sleep 4180") == []


def test_an_exec_stuck_on_a_users_file_still_ends_at_the_deadline(stuck_exec):
    # the command itself lives on the user's FUSE mount: its exec never ends, and the supervisor must not wait on it
    where, _start = stuck_exec
    started = time.monotonic()
    result = _supervisor.run_detached([os.path.join(where, "x")], 1 + 1 + _deadline.SLACK, timeout=1, kill_after=1)
    took = time.monotonic() - started
    assert not result.get("supervisor_lost"), "the supervisor fell silent waiting on the exec"
    # an exec reading its binary from FUSE may be beyond even SIGKILL (state D, kernel-dependent): then it is named
    stuck = [f["reason"] for f in result["failed_to_end"]]
    assert result["timed_out"] and (result["rc"] == 124 and stuck == [] or stuck == [_supervisor.STUCK % "D"]), result
    assert took < 1 + 1 + _deadline.SLACK


# a process that forks and exits in a loop, each child in a session of its own, run under a uid of its own so
# that it can be ended afterwards (kill(-1) as that uid); the walk may never catch it, and must then say so
HOPPER = ("#include <signal.h>\n#include <unistd.h>\nint main(void) { signal(SIGTERM, SIG_IGN); "
          "signal(SIGHUP, SIG_IGN); for (;;) { pid_t p = fork(); if (p > 0) _exit(0); if (p == 0) setsid(); } }\n")
HOP_UID = 64999


def end_uid(uid):
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setgid(uid)
            os.setuid(uid)
            for _attempt in range(50):
                os.kill(-1, signal.SIGKILL)
                time.sleep(0.01)
        except OSError:
            pass
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def test_a_tree_that_outruns_the_walk_is_named():
    if os.geteuid() != 0 or not shutil.which("cc"):
        pytest.skip("needs root and a C compiler")
    where = tempfile.mkdtemp(prefix="hk-hop-")
    os.chmod(where, 0o755)
    with open(os.path.join(where, "hop.c"), "w") as f:
        f.write(HOPPER)
    binary = os.path.join(where, "hk_hop_4190")
    subprocess.run(["cc", "-o", binary, os.path.join(where, "hop.c")], check=True)
    try:
        started = time.monotonic()
        result = in_child(lambda: dict(_supervisor.supervise(
            ["sh", "-c", binary + " </dev/null >/dev/null 2>&1 & exit 0"], 5, kill_after=0.5), stdout="", stderr=""),
            uid=HOP_UID)
        took = time.monotonic() - started
        print("hopper:", result["failed_to_end"], "left:", len(alive("hk_hop_4190")), "took %.1f s" % took)
        assert alive("hk_hop_4190") == [] or any("kept forking" in f["reason"] for f in result["failed_to_end"])
        assert result["rc"] is not None and took < 0.5 + 3 + 0.1 + 2
    finally:
        end_uid(HOP_UID)
        shutil.rmtree(where)


@pytest.mark.parametrize("name,test", [("creates", os.path.exists), ("removes", os.path.exists),
                                       ("chdir", os.path.isdir)])
def test_a_path_on_a_file_system_that_does_not_answer_fails_in_bounded_time(stuck_exec, name, test):
    from ansible_collections.hangup.ssh.plugins.modules import hard_timeout as module
    where, _start = stuck_exec
    params = {name: os.path.join(where, "hang", "x")}
    started = time.monotonic()
    got, problem = module.check_path(params, name, test, wait=0.5)
    assert got is None and problem.startswith(name + ": checking") and time.monotonic() - started < 0.5 + 1
