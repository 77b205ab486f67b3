# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What hangup.ssh.hard_timeout decides without touching a process: its input, its bounds, which signal is due
when, and how output becomes text. Shared by the action on the controller and the module on the host."""

from __future__ import annotations

import base64
import shlex

from ansible_collections.hangup.ssh.plugins.module_utils import _checks

SIGNALS = ("TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "KILL")
RC_TIMED_OUT = 124
RC_KILLED = 137
# upper bounds, stated in the documentation: a week of run time, an hour of grace or margin, 64 MiB of output
MAX_TIMEOUT = 604800
MAX_GRACE = 3600
MAX_OUTPUT = 64 * 1024 * 1024
MIN_MARGIN = 5
# after SIGKILL, how long the tree may take to disappear
REAP_SECONDS = 3.0
# the module's wait beyond the deadline and kill_after: the reaping, the last scan for what is left,
# and starting the supervisor
SLACK = REAP_SECONDS + 3.0
# how long a command that ended may leave something holding its output before that is ended too
HOLD_SECONDS = 0.2

ARGUMENT_SPEC = dict(
    cmd=dict(type="str"),
    argv=dict(type="list", elements="str"),
    shell=dict(type="bool", default=False),
    executable=dict(type="path"),
    chdir=dict(type="path"),
    stdin=dict(type="str"),
    stdin_add_newline=dict(type="bool", default=True),
    creates=dict(type="path"),
    removes=dict(type="path"),
    timeout=dict(type="float", required=True),
    kill_after=dict(type="float", default=5),
    signal=dict(type="str", default="TERM", choices=list(SIGNALS)),
    output_limit=dict(type="int", default=1048576),
    output_encoding=dict(type="str", default="text", choices=["text", "base64"]),
    margin=dict(type="float", default=15),
)
MUTUALLY_EXCLUSIVE = [["cmd", "argv"]]
REQUIRED_ONE_OF = [["cmd", "argv"]]


def command_argv(params):
    """(argv, problems): the command to run, or what keeps it from being one."""
    if params.get("argv") is not None:
        if params["shell"]:
            return None, ["argv: not with shell=true; give a shell command as cmd"]
        if not params["argv"] or not params["argv"][0]:
            return None, ["argv: must start with the command to run, got %r" % (params["argv"],)]
        argv = list(params["argv"])
    elif not (params.get("cmd") or "").strip():
        return None, ["cmd: no command given"]
    elif params["shell"]:
        argv = [params["executable"] or "/bin/sh", "-c", params["cmd"]]
    else:
        try:
            argv = shlex.split(params["cmd"])
        except ValueError as exc:
            return None, ["cmd: cannot be split into arguments (%s); quote it, or use argv or shell=true" % exc]
    if any("\0" in arg for arg in argv):
        return None, ["%s: holds a NUL byte" % ("argv" if params.get("argv") is not None else "cmd")]
    return argv, []


def input_problems(params):
    """What the argument spec cannot say, one message per problem, each naming the parameter."""
    problems = [p for p in (
        _checks.number_problem("timeout", params["timeout"], 0, MAX_TIMEOUT, low_open=True),
        _checks.number_problem("kill_after", params["kill_after"], 0, MAX_GRACE),
        _checks.number_problem("margin", params["margin"], MIN_MARGIN, MAX_GRACE),
        _checks.number_problem("output_limit", params["output_limit"], 0, MAX_OUTPUT, unit="bytes"),
    ) if p]
    if params["timeout"] is None:
        problems.insert(0, "timeout: required")
    if params["executable"] and not params["shell"]:
        problems.append("executable: only used with shell=true")
    if params.get("stdin") is not None and "\0" in params["stdin"]:
        problems.append("stdin: holds a NUL byte")
    problems.extend(command_argv(params)[1])
    return problems


def remote_wait(timeout, kill_after):
    """How long the module waits for its supervisor: the deadline, the grace, and the reaping."""
    return timeout + kill_after + SLACK


def controller_bound(params):
    """How long the controller waits for the whole task before it gives up on the host."""
    return remote_wait(params["timeout"], params["kill_after"]) + params["margin"]


def rc_for(timed_out, signal_sent, returncode):
    """The rc coreutils' timeout gives: 124 ended by the first signal, 137 needed SIGKILL."""
    if not timed_out:
        return returncode
    return RC_KILLED if signal_sent == "KILL" else RC_TIMED_OUT


class Schedule(object):
    """Which signal is due when, for a tree whose leader started at `started`.

    Pure: the supervisor and the module taking over from it both follow it.
    `step` is told what was seen and answers with a signal name to send now,
    "done", or None (wait). Signals of the deadline are recorded in
    `signal_times` and `signal_sent`; the clean-up of what a command that
    ended in time left holding its output is not a timeout.
    """

    def __init__(self, started, timeout, kill_after, first_signal="TERM"):
        self.started, self.deadline, self.kill_after, self.first = started, started + timeout, kill_after, first_signal
        self.timed_out, self.signal_sent, self.signal_times = False, None, {}
        self._held_since = self._kill_at = self._give_up_at = None

    def step(self, now, leader_exited, output_open, tree_alive):
        """tree_alive: a callable, asked only when the answer matters (it scans /proc)."""
        if self._give_up_at is not None:
            return "done" if now >= self._give_up_at or not tree_alive() else None
        if self._kill_at is not None:
            if leader_exited and not tree_alive():
                return "done"
            if now < self._kill_at:
                return None
            return self._send("KILL", now, deadline_signal=self.timed_out)
        if leader_exited:
            if not output_open:
                return "done"
            self._held_since = now if self._held_since is None else self._held_since
            return self._send("TERM", now, deadline_signal=False) if now - self._held_since > HOLD_SECONDS else None
        if now >= self.deadline:
            self.timed_out = True
            return self._send(self.first, now, deadline_signal=True)
        return None

    def _send(self, name, now, deadline_signal):
        if deadline_signal:
            self.signal_sent = name
            self.signal_times[name] = round(now - self.started, 3)
        if name == "KILL":
            self._give_up_at = now + REAP_SECONDS
        else:
            # on the deadline's timeline, also for one who takes over late: KILL at once when that time is past
            self._kill_at = (self.deadline if deadline_signal else now) + self.kill_after
        return name


def utf8_head(data):
    """data without a UTF-8 character cut in two at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the start of the last character
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
            return data[:-back] if need > back else data
    return data


def as_text(data, truncated, encoding="text"):
    """(text, how) for the bytes of a stream: 'utf-8' when they are; else, and when asked, 'base64' of every byte
    as it came (Ansible refuses strings holding undecodable bytes, even as surrogate escapes)."""
    if encoding == "text":
        try:
            return (utf8_head(data) if truncated else data).decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii"), "base64"


def describe(result, params):
    """The one line that says what became of the command."""
    if result.get("msg"):
        return result["msg"]
    if result["failed_to_end"]:
        # pid is None for what is known only as a whole (a walk that did not finish)
        return "could not end %d process(es) of the tree: %s" % (len(result["failed_to_end"]), ", ".join(
            "%s (%s)" % (f["pid"], f["reason"]) if f["pid"] is not None else f["reason"]
            for f in result["failed_to_end"]))
    if not result["timed_out"]:
        return "exited with rc %s after %.2f s" % (result.get("rc"), result.get("elapsed", 0))
    how = "needed SIGKILL after %g s more" % params["kill_after"] if result["signal_sent"] == "KILL" else \
        "ended on SIG%s" % params["signal"]
    sent = sorted(result["signal_times"].items(), key=lambda item: item[1])
    times = ", ".join("%s at %.2f s" % (name, at) for name, at in sent)
    return "timed out after %g s; the tree %s (%s); rc %s" % (params["timeout"], how, times, result.get("rc"))
