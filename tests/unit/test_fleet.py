"""The fleet callbacks on the demo's recorded results (tests/integration/record_fleet.py).

The callbacks are loaded by Ansible's plugin loader and fed Ansible's own Task and Host objects; only
the result object around them is a stand-in (the constructor of Ansible's is internal and changes
between releases), with the three attributes callbacks read. What the callback prints is compared
whole, and the README's sample output is this test's rendering of the recorded kill.
"""

import csv
import json
import os
import types

import pytest
from ansible import context
from ansible.executor.stats import AggregateStats
from ansible.inventory.host import Host
from ansible.module_utils.common.collections import ImmutableDict
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.task import Task
from ansible.plugins.loader import callback_loader
from ansible.utils.display import Display

from ansible_collections.hangup.ssh.plugins.module_utils import _hung
from ansible_collections.hangup.ssh.plugins.plugin_utils import _fleet

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "README.md")
STATUS = {"SUCCESS": "ok", "CHANGED": "changed", "FAILED": "failed", "UNREACHABLE": "unreachable",
          "SKIPPED": "skipped"}
EVENTS = {"ok": "v2_runner_on_ok", "changed": "v2_runner_on_ok", "failed": "v2_runner_on_failed",
          "unreachable": "v2_runner_on_unreachable", "skipped": "v2_runner_on_skipped"}

STATS = {"ok": ["ok"], "changed": ["ok", "changed"], "failed": ["failures"], "unreachable": ["dark"],
         "skipped": ["skipped"]}


def recorded(name):
    with open(os.path.join(HERE, "fixtures", "fleet", name + ".json")) as f:
        return json.load(f)


@pytest.fixture(autouse=True)
def ansible_cli(monkeypatch):
    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(check=False, verbosity=0))
    # Display is a singleton: the callback's lines are the only ones wanted
    monkeypatch.setattr(Display(), "verbosity", 0)


def load(name, **options):
    callback = callback_loader.get(name)
    callback.set_options(direct=dict(options))
    return callback


def task_of(module, name=None):
    data = {module: {}}
    if name:
        data["name"] = name
    return Task.load(data, loader=DataLoader())


def feed(callback, task, results):
    """Each host's result into the callback as Ansible hands it over, then the end of the run."""
    stats = AggregateStats()
    for host, result in sorted(results.items()):
        result = {k: v for k, v in result.items() if k != "_status"}
        status = STATUS[results[host]["_status"]]
        event = getattr(callback, EVENTS[status])
        event(types.SimpleNamespace(task=task, host=Host(host), result=result))
        for counter in STATS[status]:
            stats.increment(counter, host)
    callback.v2_playbook_on_stats(stats)


def render(name, capsys, callback="hangup.ssh.fleet", **options):
    data = recorded(name)
    module = data["command"].split()[3]
    feed(load(callback, **options), task_of(module), data["results"])
    return capsys.readouterr().out


def lines_between(text, first, last):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(last))
    return lines[start:end + 1]


def test_one_line_per_host_then_the_table_hung_first(capsys):
    out = render("report", capsys)
    results = recorded("report")["results"]
    for host, result in results.items():
        if result["_status"] == "UNREACHABLE":
            assert "fatal: [%s]: UNREACHABLE! %s" % (host, result["msg"]) in out
        else:
            assert "ok: [%s] %s" % (host, result["msg"]) in out
            assert result["msg"].startswith("2 sessions, 1 hung: root@notty from 10.89.60.20:")
    # nothing of the whole result is printed: its keys do not appear
    assert '"sessions"' not in out and "liveness_source" not in out
    table = lines_between(out, "hung_sessions (", "TOTAL")
    assert table[0] == "hung_sessions (4 hosts: 1 UNREACHABLE, 3 HUNG)"
    assert [row.split()[:2] for row in table[2:]] == [
        ["UNREACHABLE", "hangup-demo-gone"], ["HUNG", "hangup-demo-d11"], ["HUNG", "hangup-demo-d12"],
        ["HUNG", "hangup-demo-d13"], ["TOTAL", "4"]]
    assert table[-1].split() == ["TOTAL", "4", "hosts", "6", "3", "0", "0", "3", "0", "0", "0"]


def test_check_mode_says_what_would_be_ended(capsys):
    out = render("check", capsys)
    for host in ("hangup-demo-d11", "hangup-demo-d12", "hangup-demo-d13"):
        line = next(line for line in out.splitlines() if line.startswith("changed: [%s]" % host))
        assert "2 sessions, 1 hung, would end 1: root@notty" in line
    assert "hung_sessions (4 hosts: 1 UNREACHABLE, 3 HUNG)" in out


def test_killed_sessions_and_the_readme_shows_this_output(capsys):
    out = render("kill", capsys)
    shown = lines_between(out, "TASK [hangup.ssh.hung_sessions]", "TOTAL")
    assert "hung_sessions (4 hosts: 1 UNREACHABLE, 3 ENDED)" in shown
    assert all("ended 1: root@notty" in line and line.endswith("(TERM+HUP)")
               for line in shown if line.startswith("changed: ["))
    with open(README) as f:
        readme = f.read()
    block = "$ %s\n\n%s\n" % (recorded("kill")["command"], "\n".join(line.rstrip() for line in shown))
    assert block in readme, "the README's fleet output is not the callback's; put this in it:\n" + block


def test_sessions_that_could_not_be_ended_come_first(capsys):
    """Ending a session failed on no lab host (root may signal any process); made from the recorded kill
    as the module reports EPERM."""
    data = recorded("kill")
    result = data["results"]["hangup-demo-d12"]
    failed = [dict(s, reason="SIGTERM to %d: Operation not permitted" % s["pid"], signals=[])
              for s in result["killed"]]
    result.update(_status="FAILED", killed=[], failed_to_kill=failed,
                  msg=_hung.describe(result["sessions"], [], failed))
    feed(load("hangup.ssh.fleet"), task_of("hangup.ssh.hung_sessions", "End hung sessions"), data["results"])
    out = capsys.readouterr().out
    assert "fatal: [hangup-demo-d12]: FAILED! could not end 1 of 1 hung: root@notty from 10.89.60.20:" in out
    table = lines_between(out, "hung_sessions: End hung sessions (", "TOTAL")
    assert table[0] == "hung_sessions: End hung sessions (4 hosts: 1 UNREACHABLE, 1 NOT ENDED, 2 ENDED)"
    assert [row.split()[:3] for row in table[2:4]] == [["UNREACHABLE", "hangup-demo-gone", "-"],
                                                       ["NOT", "ENDED", "hangup-demo-d12"]]


def test_deadlines_per_host_and_in_the_table(capsys):
    out = render("deadline", capsys)
    results = recorded("deadline")["results"]
    for host in ("hangup-demo-d11", "hangup-demo-d12", "hangup-demo-d13"):
        assert "fatal: [%s]: FAILED! %s" % (host, results[host]["msg"]) in out
        assert results[host]["msg"].startswith("timed out after 5 s; the tree ended on SIGTERM (TERM at 5.")
    table = lines_between(out, "hard_timeout (", "TOTAL")
    assert table[0] == "hard_timeout (4 hosts: 1 UNREACHABLE, 3 TIMED OUT)"
    row = table[3].split()
    assert row[:6] == ["TIMED", "OUT", "hangup-demo-d11", "124", "yes", "TERM"]
    # the error's own report would repeat the line
    assert "[ERROR]" not in out and "Origin:" not in out


def test_other_tasks_are_shown_as_the_default_callback_shows_them(capsys):
    callback = load("hangup.ssh.fleet")
    feed(callback, task_of("ansible.builtin.ping", "Ping"), {"h1": {"_status": "SUCCESS", "ping": "pong"}})
    out = capsys.readouterr().out
    assert "TASK [Ping]" in out and "ok: [h1]\n" in out and "HANGUP.SSH FLEET" not in out
    assert not callback.fleet.tasks


@pytest.mark.parametrize("suffix", ["json", "csv"])
def test_the_table_goes_to_a_file(tmp_path, capsys, suffix):
    path = str(tmp_path / ("fleet." + suffix))
    out = render("kill", capsys, fleet_file=path)
    assert "the table's rows are in %s" % path in out
    with open(path) as f:
        rows = json.load(f) if suffix == "json" else list(csv.DictReader(f))
    assert [(r["host"], r["need"], str(r["ended"])) for r in rows] == [
        ("hangup-demo-gone", "UNREACHABLE", "0"), ("hangup-demo-d11", "ENDED", "1"),
        ("hangup-demo-d12", "ENDED", "1"), ("hangup-demo-d13", "ENDED", "1")]
    assert all(r["task"] == "hangup.ssh.hung_sessions" and r["msg"] for r in rows)


def test_a_file_of_another_kind_is_refused_with_a_warning(tmp_path, capsys):
    path = tmp_path / "fleet.txt"
    captured = render("kill", capsys, fleet_file=str(path))
    assert not path.exists() and "the table's rows are in" not in captured


def test_the_aggregate_adds_only_the_table(capsys):
    out = render("deadline", capsys, callback="hangup.ssh.fleet_table")
    assert "fatal: [" not in out and "PLAY RECAP" not in out
    assert "hard_timeout (4 hosts: 1 UNREACHABLE, 3 TIMED OUT)" in out


@pytest.mark.parametrize("action,module", [
    ("hangup.ssh.hung_sessions", "hung_sessions"), ("hung_sessions", "hung_sessions"),
    ("ansible.legacy.hard_timeout", "hard_timeout"), ("other.collection.hung_sessions", None),
    ("ansible.builtin.command", None),
])
def test_module_of(action, module):
    assert _fleet.module_of(action) == module


def test_a_hostile_name_cannot_drive_the_readers_terminal(capsys):
    """A title or a tty name on the host is the user's to choose; the line shows escapes, not their effect."""
    data = recorded("report")
    result = data["results"]["hangup-demo-d11"]
    result["msg"] = result["msg"].replace("root@notty", "evil\x1b[2J\x1b]0;owned\x07@pts/9\nok: [forged]")
    feed(load("hangup.ssh.fleet"), task_of("hangup.ssh.hung_sessions"), data["results"])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\nok: [forged]" not in out
    assert "evil\\x1b[2J\\x1b]0;owned\\x07@pts/9 ok: [forged]" in out
