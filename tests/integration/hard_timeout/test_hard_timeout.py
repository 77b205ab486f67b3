"""hangup.ssh.hard_timeout over real SSH on Debian 11, 12 and 13.

Ansible connects from the controller as ops and becomes root (sudo), with
ControlPersist; every case runs on the three hosts at once, as an ad-hoc
command across a fleet does. Each command carries a unique `sleep 30NN` so
the check can look for any process of its tree left on the host.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time

import pytest

from adhoc import AdHoc, parse_adhoc

HOSTS = ("hk-ht-d11", "hk-ht-d12", "hk-ht-d13")


@pytest.fixture(scope="module")
def fleet(lab):
    ansible = AdHoc.for_lab(lab, HOSTS, user="ops", become=True)
    yield ansible
    lab.heal()
    ansible.close()


def left_over(lab, marker):
    """Processes whose command line holds `marker`, per host (the pgrep itself excluded)."""
    found = {}
    for name in HOSTS:
        out = lab.host(name).sh(f"pgrep -af '{marker}' | grep -v pgrep || true").stdout.strip()
        if out:
            found[name] = out
    return found


def shell(cmd, **options):
    """Ad-hoc arguments for a shell command, as JSON: the k=v parser is no shell and mangles nested quotes."""
    return json.dumps(dict(cmd=cmd, shell=True, **options))


CASES = [
    # id, command, options, rc, timed out, last signal, stdout
    ("in-time", "echo out; echo err >&2; exit 0", {"timeout": 10}, 0, False, None, "out"),
    ("in-time-rc3", "echo out; exit 3", {"timeout": 10}, 3, False, None, "out"),
    ("term", "echo partial; sleep 3001", {"timeout": 2, "kill_after": 3}, 124, True, "TERM", "partial"),
    ("ignores-term", "trap '' TERM; echo stubborn; sleep 3002; sleep 3002", {"timeout": 2, "kill_after": 2},
     137, True, "KILL", "stubborn"),
    ("tree", "sh -c 'sh -c \"sleep 3003 & sleep 3003\" & sleep 3003' & echo tree; sleep 3003",
     {"timeout": 2, "kill_after": 2}, 124, True, "TERM", "tree"),
    ("daemonizes", "(setsid sh -c 'sleep 3004 & exec sleep 3004' </dev/null >/dev/null 2>&1 &); "
     "setsid sh -c 'trap \"\" TERM; sleep 3004' </dev/null >/dev/null 2>&1 & echo forked; sleep 3004",
     {"timeout": 2, "kill_after": 2}, 137, True, "KILL", "forked"),
    ("daemon-after-exit", "(setsid sleep 3005 </dev/null >/dev/null 2>&1 &); echo done",
     {"timeout": 10, "kill_after": 1}, 0, False, None, "done"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_deadline(fleet, lab, case):
    name, cmd, options, rc, timed_out, last_signal, stdout = case
    marker = "sleep 30" + name_marker(cmd)
    started = time.monotonic()
    results = fleet.run("hangup.ssh.hard_timeout", shell(cmd, **options))
    wall = time.monotonic() - started
    for host, result in results.items():
        print(f"{name} {host}: rc={result['rc']} timed_out={result['timed_out']} signals={result['signal_times']} "
              f"swept={result['swept']} stdout={result['stdout']!r} elapsed={result['elapsed']} wall={wall:.1f}")
        assert result["rc"] == rc and result["timed_out"] is timed_out, result
        assert result["signal_sent"] == last_signal and result["stdout_lines"][:1] == [stdout], result
        assert result["_status"] == ("FAILED" if rc else "CHANGED")
        assert result["failed_to_end"] == [] and result["stdout_encoding"] == "utf-8"
        if timed_out:
            first = result["signal_times"][options.get("signal", "TERM")]
            assert options["timeout"] <= first < options["timeout"] + 0.5, result["signal_times"]
        if last_signal == "KILL":
            # on the deadline's timeline (a first signal sent a little late does not move it)
            kill_at = options["timeout"] + options["kill_after"]
            assert kill_at <= result["signal_times"]["KILL"] < kill_at + 0.5, result["signal_times"]
    assert left_over(lab, marker) == {}


def name_marker(cmd):
    """The NN of the case's `sleep 30NN`, or a marker no process has."""
    match = re.search(r"sleep 30(\d\d)", cmd)
    return match.group(1) if match else "xx-none"


@pytest.mark.parametrize("pipelining", ["1", "0"])
def test_become_with_and_without_pipelining(fleet, lab, pipelining):
    results = fleet.run("hangup.ssh.hard_timeout", shell("id -un; sleep 3010", timeout=2, kill_after=1),
                        env={"ANSIBLE_PIPELINING": pipelining})
    for result in results.values():
        assert result["rc"] == 124 and result["stdout_lines"] == ["root"], result
    assert left_over(lab, "sleep 3010") == {}


def test_output_is_bounded(fleet):
    args = shell("yes xy | head -c 100000; sleep 3011", timeout=2, kill_after=1, output_limit=1000)
    results = fleet.run("hangup.ssh.hard_timeout", args)
    for result in results.values():
        assert result["rc"] == 124 and len(result["stdout"]) == 1000 and result["stdout_truncated"], result


def test_check_mode_and_creates(fleet, lab):
    results = fleet.run("hangup.ssh.hard_timeout", "cmd='touch /tmp/hk-ht-ran' timeout=5", check=True)
    for result in results.values():
        assert result.get("skipped") or "skipped" in result.get("msg", ""), result
    results = fleet.run("hangup.ssh.hard_timeout", "cmd='touch /tmp/hk-ht-ran' timeout=5 creates=/etc/hostname")
    for result in results.values():
        assert result["changed"] is False and "exists" in result["msg"], result
    for name in HOSTS:
        assert lab.host(name).sh("test -e /tmp/hk-ht-ran", check=False).returncode == 1


@pytest.mark.parametrize("args,parameter", [
    ("timeout=0", "timeout"),
    ("timeout=-1", "timeout"),
    ("timeout=soon", "timeout"),
    ("timeout=nan", "timeout"),
    ("timeout=inf", "timeout"),
    ("timeout=1e10", "timeout"),
    ("timeout=5 kill_after=-1", "kill_after"),
    ("timeout=5 kill_after=never", "kill_after"),
    ("timeout=5 kill_after=nan", "kill_after"),
    ("timeout=5 margin=nan", "margin"),
    ("timeout=5 margin=inf", "margin"),
    ("timeout=5 argv=touch,/tmp/hk-ht-bad", "cmd"),
    ("timeout=5 signal=STOP", "signal"),
    ("", "timeout"),
])
def test_bad_input_names_the_parameter_and_runs_nothing(fleet, lab, args, parameter):
    results = fleet.run("hangup.ssh.hard_timeout", "cmd='touch /tmp/hk-ht-bad' " + args)
    for result in results.values():
        assert result["_status"] == "FAILED" and parameter in result["msg"], (args, result)
    for name in HOSTS:
        assert lab.host(name).sh("test -e /tmp/hk-ht-bad", check=False).returncode == 1, args


@pytest.mark.parametrize("args,parameter", [
    ({"argv": [], "timeout": 5}, "argv"),
    ({"argv": ["touch", "/tmp/hk-ht-bad"], "shell": True, "timeout": 5}, "argv"),
    ({"cmd": "touch '/tmp/hk-ht-bad", "timeout": 5}, "cmd"),
    ({"cmd": "touch /tmp/hk-ht-bad", "timeout": 5, "output_limit": 2 ** 40}, "output_limit"),
])
def test_bad_shapes_fail_on_the_controller(fleet, lab, args, parameter):
    # the inventory points at a closed port: only a check made on the controller can answer FAILED, not UNREACHABLE
    results = fleet.run("hangup.ssh.hard_timeout", json.dumps(args), extra=("-e", "ansible_port=1"))
    for result in results.values():
        assert result["_status"] == "FAILED" and result["msg"].startswith(parameter), (args, result)
    for name in HOSTS:
        assert lab.host(name).sh("test -e /tmp/hk-ht-bad", check=False).returncode == 1, args


def test_slow_stdin_reader_ends_at_the_deadline(fleet, lab, tmp_path):
    # 1.2 MB of stdin to a reader that takes a line every 10 ms: feeding it blocks for 20 minutes
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"hk_big": "line\n" * 200000}))
    started = time.monotonic()
    results = fleet.run("hangup.ssh.hard_timeout", shell("while read -r l; do sleep 0.01; done; sleep 3040",
                                                         timeout=2, kill_after=1, stdin="{{ hk_big }}"),
                        extra=("-e", "@%s" % big))
    wall = time.monotonic() - started
    for result in results.values():
        assert result["rc"] == 124 and 2 <= result["signal_times"]["TERM"] < 2.5, result
    assert wall < 30 and left_over(lab, "sleep 3040") == {}


# `kill $PPID` (SIGTERM) is ignored while the command runs; SIGKILL ends the supervisor, SIGSTOP silences it
@pytest.mark.parametrize("how", ["kill -9 $PPID", "kill -STOP $PPID"])
def test_command_that_kills_its_supervisor(fleet, lab, how):
    # no output: with its supervisor gone, a write would end the shell (SIGPIPE) before its deadline
    cmd = how + "; (setsid sleep 3041 </dev/null >/dev/null 2>&1 &); trap '' TERM; sleep 3041"
    started = time.monotonic()
    results = fleet.run("hangup.ssh.hard_timeout", shell(cmd, timeout=2, kill_after=1))
    # timeout + kill_after + 1 s, plus what ansible takes to start and return
    deadline = started + 2 + 1 + 1
    for host, result in results.items():
        print(f"{how} {host}: {result['msg']} signals={result['signal_times']} swept={result['swept']}")
        assert result["_status"] == "FAILED" and result["supervisor_lost"] and result["rc"] == 137, result
        assert result["signal_times"]["KILL"] < 2 + 1 + 1 and result["swept"] and result["failed_to_end"] == []
    while time.monotonic() < deadline:
        time.sleep(0.1)
    assert left_over(lab, "sleep 3041") == {}


# sudo's own process keeps ops's real uid, so that ops may signal it; the root command it starts ignores what
# sudo relays, so only SIGKILL could end it, and ops may not send root that
STUBBORN_ROOT = "sudo -n sh -c \"trap '' TERM HUP INT; exec sleep 3042\""


@pytest.mark.parametrize("cmd", [STUBBORN_ROOT, STUBBORN_ROOT + " & sleep 3043"])
def test_non_root_task_names_what_it_could_not_end(fleet, lab, cmd):
    try:
        results = fleet.run("hangup.ssh.hard_timeout", shell(cmd, timeout=2, kill_after=1),
                            extra=("-e", "ansible_become=false"))
        for host, result in results.items():
            print(f"{host}: {result['msg']}")
            assert result["_status"] == "FAILED" and result["failed_to_end"], result
            assert result["signal_sent"] == "KILL" and result["elapsed"] < 2 + 1 + 3 + 2, result
            roots = lab.host(host).sh("ps -o pid= -u root").stdout.split()
            for failed in result["failed_to_end"]:
                assert failed["reason"] == "operation not permitted" and str(failed["pid"]) in roots, result
            assert "could not end" in result["msg"]
        assert left_over(lab, "sleep 3043") == {}
        for name in HOSTS:
            # the one left is root's, and only because ops may not signal it
            assert left_over(lab, "sleep 3042")[name].split()[1:] == ["sleep", "3042"]
    finally:
        for name in HOSTS:
            lab.host(name).sh("pkill -9 -f 'sleep 304[23]' || true")


def test_hup_ends_a_shell_that_did_not_trap_it(fleet, lab):
    results = fleet.run("hangup.ssh.hard_timeout", shell("echo up; sleep 3044", timeout=1, kill_after=5,
                                                         signal="HUP"))
    for result in results.values():
        assert result["rc"] == 124 and result["signal_sent"] == "HUP", result
        assert list(result["signal_times"]) == ["HUP"]
    assert left_over(lab, "sleep 3044") == {}


def test_output_keeps_characters_and_bytes(fleet):
    cut = fleet.run("hangup.ssh.hard_timeout", shell("printf '\\303\\251\\303\\251\\303\\251'", timeout=5,
                                                     output_limit=5))
    raw = fleet.run("hangup.ssh.hard_timeout", shell("printf 'ok\\377\\376'", timeout=5, output_encoding="base64"))
    text = fleet.run("hangup.ssh.hard_timeout", shell("printf 'ok\\377\\376'", timeout=5))
    for host in HOSTS:
        assert cut[host]["stdout"] == "éé" and cut[host]["stdout_truncated"], cut[host]
        assert base64.b64decode(raw[host]["stdout"]) == b"ok\xff\xfe" and raw[host]["stdout_encoding"] == "base64"
        # Ansible carries no undecodable bytes in a string: such a stream comes as base64, and says so
        assert base64.b64decode(text[host]["stdout"]) == b"ok\xff\xfe" and text[host]["stdout_encoding"] == "base64"
        assert text[host]["stdout_lines"] == [] and text[host]["stderr_encoding"] == "utf-8", text[host]


def test_frozen_host_does_not_hang_the_play(fleet, lab):
    host = HOSTS[1]
    # bound: timeout 4 + kill_after 1 + 6 (reaping, the last scan, start-up) + margin 5 = 16 s
    argv = fleet.argv("hangup.ssh.hard_timeout", shell("sleep 3020", timeout=4, kill_after=1, margin=5),
                      pattern=host)
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=fleet.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not left_over(lab, "sleep 3020"):
        time.sleep(0.2)
    lab.pause(host)
    try:
        out, err = proc.communicate(timeout=60)
        wall = time.monotonic() - started
    finally:
        lab.heal()
    result = parse_adhoc(out)[host]
    print(f"frozen {host}: returned after {wall:.1f} s: {result['msg']}")
    assert result["_status"] == "FAILED" and result["timed_out"] and result["controller_timed_out"], out + err
    assert wall < 16 + 5, wall  # the bound, plus ansible's own start-up
    # thawed, the supervisor finds its deadline long past and ends the tree by itself
    end = time.monotonic() + 15
    while time.monotonic() < end and left_over(lab, "sleep 3020"):
        time.sleep(0.5)
    assert left_over(lab, "sleep 3020") == {}
    # and the host is usable again through the reset connection
    assert fleet.run("ansible.builtin.ping", pattern=host)[host]["ping"] == "pong"
