# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet callbacks' pure part: a row per host from each result, the lines and tables people read, the file.

Nothing here touches Ansible's display or objects; the callbacks hand in names, statuses and result dicts.
"""

from __future__ import annotations

import csv
import io
import json

HUNG_SESSIONS, HARD_TIMEOUT = "hung_sessions", "hard_timeout"
CLASSES = ("dead_transport", "unresponsive_peer", "idle", "orphaned")
# the names a task may use for the two modules: FQCN, the short name through a library path, and both resolved
_PREFIXES = ("", "hangup.ssh.", "ansible.legacy.", "ansible_collections.hangup.ssh.plugins.modules.")

# what needs a person first: the lower, the sooner
NEEDS = {
    HUNG_SESSIONS: ("UNREACHABLE", "NOT ENDED", "FAILED", "HUNG", "ENDED", "ok", "skipped"),
    HARD_TIMEOUT: ("UNREACHABLE", "NOT ENDED", "FAILED", "TIMED OUT", "RC", "ok", "skipped"),
}
COLUMNS = {
    HUNG_SESSIONS: ("need", "host", "sessions", "hung", "ended", "not_ended") + CLASSES,
    HARD_TIMEOUT: ("need", "host", "rc", "timed_out", "signals", "seconds", "not_ended"),
}
FILE_COLUMNS = ("task", "module", "need", "host", "status", "sessions", "hung", "ended", "not_ended") + CLASSES + (
    "rc", "timed_out", "signals", "seconds", "msg")


def module_of(action):
    """HUNG_SESSIONS or HARD_TIMEOUT for a task's action or resolved action, else None."""
    for name in (HUNG_SESSIONS, HARD_TIMEOUT):
        if any(action == prefix + name for prefix in _PREFIXES):
            return name
    return None


def _count(value):
    return len(value) if isinstance(value, list) else 0


def _hung_row(status, result):
    sessions = result.get("sessions")
    hung = [s for s in sessions or [] if s.get("hung")]
    row = {"sessions": len(sessions) if isinstance(sessions, list) else None, "hung": len(hung),
           "ended": _count(result.get("killed")), "not_ended": _count(result.get("failed_to_kill"))}
    row.update((name, sum(1 for s in hung if name in s.get("reasons", ()))) for name in CLASSES)
    if status == "unreachable":
        row["need"] = "UNREACHABLE"
    elif row["not_ended"]:
        row["need"] = "NOT ENDED"
    elif status == "failed":
        row["need"] = "FAILED"
    elif status == "skipped":
        row["need"] = "skipped"
    elif row["hung"] > row["ended"]:
        row["need"] = "HUNG"
    else:
        row["need"] = "ENDED" if row["ended"] else "ok"
    return row


def _deadline_row(status, result):
    times = result.get("signal_times") or {}
    row = {"rc": result.get("rc"), "timed_out": result.get("timed_out"),
           "signals": " ".join("%s %.2f" % (name, at) for name, at in sorted(times.items(), key=lambda i: i[1])),
           "seconds": result.get("elapsed"), "not_ended": _count(result.get("failed_to_end"))}
    if status == "unreachable":
        row["need"] = "UNREACHABLE"
    elif row["not_ended"] or result.get("supervisor_lost") or result.get("controller_timed_out"):
        row["need"] = "NOT ENDED"
    elif status == "skipped":
        row["need"] = "skipped"
    elif row["timed_out"]:
        row["need"] = "TIMED OUT"
    elif status == "failed" and row["rc"] is None:
        row["need"] = "FAILED"
    else:
        row["need"] = "RC" if row["rc"] else "ok"
    return row


def printable(text):
    """One line, control characters as \\xNN: a name on the host (a user's, a tty's) must not drive the
    terminal of whoever reads the run."""
    return "".join(c if c.isprintable() else "\\x%02x" % ord(c) if ord(c) < 256 else "\\u%04x" % ord(c)
                   for c in " ".join(str(text).split()))


def host_line(module, status, result):
    """What follows 'changed: [host]' in the run's output: the module's own msg, or what stands for it."""
    msg = result.get("msg")
    if status == "skipped":
        return printable(msg or "skipped")
    if msg:
        return printable(msg)
    if module == HUNG_SESSIONS and "sessions" in result:
        return "%d sessions" % len(result["sessions"])
    return "no message"


class Fleet(object):
    """The rows of every hung_sessions and hard_timeout task of a run, one per host and task."""

    def __init__(self):
        self.tasks = []
        self._by_id = {}

    def add(self, task_id, task_name, module, host, status, result):
        """Record one host's result (status: ok, changed, failed, unreachable, skipped); returns its row."""
        if task_id not in self._by_id:
            self._by_id[task_id] = {"task": task_name, "module": module, "rows": {}}
            self.tasks.append(self._by_id[task_id])
        row = (_hung_row if module == HUNG_SESSIONS else _deadline_row)(status, result)
        row.update(host=host, status=status, msg=host_line(module, status, result))
        self._by_id[task_id]["rows"][host] = row
        return row

    def sorted_rows(self, task):
        needs = NEEDS[task["module"]]
        return sorted(task["rows"].values(), key=lambda r: (needs.index(r["need"]), r["host"]))

    def tables(self):
        """Lines: per task, a heading with the counts by need, then a row per host, what needs a person first."""
        lines = []
        for task in self.tasks:
            rows = self.sorted_rows(task)
            counts = {}
            for row in rows:
                counts[row["need"]] = counts.get(row["need"], 0) + 1
            by_need = ", ".join("%d %s" % (counts[n], n) for n in NEEDS[task["module"]] if n in counts)
            # an ad-hoc task is named after its module: said once
            name = task["module"] if module_of(task["task"]) else "%s: %s" % (task["module"], task["task"])
            lines.append("%s (%d host%s: %s)" % (name, len(rows), "" if len(rows) == 1 else "s", by_need))
            lines.extend(_aligned(COLUMNS[task["module"]], rows, _total(task["module"], rows)))
            lines.append("")
        return lines

    def as_records(self):
        return [dict(row, task=task["task"], module=task["module"]) for task in self.tasks
                for row in self.sorted_rows(task)]

    def dump(self, fmt):
        """The rows as 'json' (a list of objects) or 'csv' (FILE_COLUMNS, empty where a module has no such key)."""
        records = self.as_records()
        if fmt == "json":
            return json.dumps(records, indent=2, sort_keys=True) + "\n"
        out = io.StringIO()
        writer = csv.DictWriter(out, FILE_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({k: "" if v is None else v for k, v in record.items()})
        return out.getvalue()


def _total(module, rows):
    total = {"need": "TOTAL", "host": "%d host%s" % (len(rows), "" if len(rows) == 1 else "s")}
    if module == HUNG_SESSIONS:
        for key in ("sessions", "hung", "ended", "not_ended") + CLASSES:
            total[key] = sum(r[key] or 0 for r in rows)
    else:
        total.update(rc="", timed_out=sum(1 for r in rows if r["timed_out"]), signals="",
                     seconds=max([r["seconds"] for r in rows if r["seconds"] is not None] or [None]),
                     not_ended=sum(r["not_ended"] for r in rows))
    return total


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "%.2f" % value
    return printable(value)


def _aligned(columns, rows, total):
    table = [[c.replace("_", " ") for c in columns]] + [[_cell(r[c]) for c in columns] for r in rows + [total]]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    # text columns left, numbers right
    left = {"need", "host", "signals"}
    return ["  ".join(cell.ljust(w) if c in left else cell.rjust(w) for c, cell, w in zip(columns, line, widths))
            .rstrip() for line in table]


def file_format(path):
    """'json' or 'csv' by the file's extension; None for any other."""
    lower = path.lower()
    return "csv" if lower.endswith(".csv") else "json" if lower.endswith(".json") else None


class FleetCallback(object):
    """What both fleet callbacks do with Ansible's results; mixed in before CallbackBase (self._display,
    get_option)."""

    def __init__(self, *args, **kwargs):
        super(FleetCallback, self).__init__(*args, **kwargs)
        self.fleet = Fleet()

    def fleet_record(self, result, status):
        """The row of a hung_sessions or hard_timeout result, recorded; None for any other task's."""
        task = result.task
        module = module_of(getattr(task, "resolved_action", None) or task.action) or module_of(task.action)
        if module is None:
            return None
        return self.fleet.add(task._uuid, task.get_name(), module, result.host.get_name(), status, result.result)

    def fleet_report(self):
        if not self.fleet.tasks:
            return
        self._display.banner("HANGUP.SSH FLEET")
        for line in self.fleet.tables():
            self._display.display(line)
        path = self.get_option("fleet_file")
        if not path:
            return
        fmt = file_format(path)
        if fmt is None:
            self._display.warning("fleet_file %s: the name must end in .json or .csv; nothing was written" % path)
            return
        try:
            with open(path, "w") as f:
                f.write(self.fleet.dump(fmt))
        except (IOError, OSError) as e:
            self._display.warning("fleet_file %s: could not be written: %s" % (path, e))
            return
        self._display.display("the table's rows are in %s" % path)
