#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: hard_timeout
short_description: Run a command under a hard deadline that no process of its tree outlives
version_added: 0.1.0
description:
  - Runs a command like M(ansible.builtin.command) does, under a deadline like C(timeout -k KILL_AFTER DURATION).
    At O(timeout) seconds the first O(signal) goes to the command's whole process group and to every other process
    of its tree, C(SIGKILL) follows at O(timeout) + O(kill_after). The supervisor is a child subreaper, so processes
    that left the group (C(setsid), double fork) stay in its tree and are ended too. No process of the tree survives.
  - The command runs under a supervisor detached from the connection (double fork, own session, as C(async) does), so
    the deadline holds and the tree is cleaned up even when the controller's connection is lost. If the supervisor
    itself is killed or falls silent (it says it is alive every second), the module, still waiting and a subreaper
    too, gets the tree back and ends it on the same schedule. Both ignore C(SIGTERM), C(SIGINT), C(SIGQUIT),
    C(SIGUSR1) and C(SIGUSR2) while the command runs, so a C(pkill python3) from the command ends neither.
  - A tree that keeps forking and exiting faster than it can be walked is signalled for as long as the grace lasts;
    if it never settles, RV(failed_to_end) says so and the task fails.
  - Processes are found through the kernel's lists of each process's children and signalled through pidfds; the
    supervisor never reads a process's C(stat) or C(environ), which a local user can make block.
  - The command starts with every signal at its default disposition and none blocked, whatever the caller ignored
    (but for the two real-time signals glibc keeps for itself, which it does not let a program change).
  - Processes that cannot be signalled (another user's, such as a root command run with C(sudo) when the task runs
    without become) are reported in RV(failed_to_end), and the task fails.
  - Output is kept in bounded buffers and returned even on timeout, with a flag when it was cut.
  - The action plugin of the same name bounds the whole task on the controller at O(timeout) + O(kill_after) + a few
    seconds + O(margin), so a frozen host or a cut network cannot hang the play either.
author:
  - hangup.ssh maintainers (@hangup-ssh)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
    details: The deadline is the point; async would take it away from the controller.
  bypass_host_loop:
    support: none
  check_mode:
    support: partial
    details: Skipped in check mode, as M(ansible.builtin.command) is, unless O(creates) or O(removes) decide.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
    details: Linux only; it reads C(/proc) to find the processes of the tree.
options:
  cmd:
    description:
      - The command, split like a shell would but run without one unless O(shell=true). Also taken free form.
      - Exactly one of O(cmd) and O(argv) is required.
    type: str
  argv:
    description:
      - The command as a list of arguments, run without a shell. Its first element names the command.
      - Not with O(shell=true).
    type: list
    elements: str
  shell:
    description: Run O(cmd) with C(/bin/sh -c) (or O(executable)), for pipes, redirections and variables.
    type: bool
    default: false
  executable:
    description: The shell to use with O(shell=true).
    type: path
  chdir:
    description: Directory to run the command in.
    type: path
  stdin:
    description: Text given to the command on its standard input.
    type: str
  stdin_add_newline:
    description: Add a newline to O(stdin).
    type: bool
    default: true
  creates:
    description:
      - Do not run the command when this path exists.
      - Checked in a child process within 2 s; a path on a file system that does not answer fails the task.
    type: path
  removes:
    description:
      - Do not run the command unless this path exists.
      - Checked like O(creates).
    type: path
  timeout:
    description: Seconds the command may run; the first O(signal) is sent then. Above 0 and at most 604800 (a week).
    type: float
    required: true
  kill_after:
    description: Seconds between the first signal and C(SIGKILL) for whatever of the tree is left. From 0 to 3600.
    type: float
    default: 5
  signal:
    description: The first signal sent at the deadline.
    type: str
    default: TERM
    choices: [TERM, INT, HUP, QUIT, USR1, USR2, KILL]
  output_limit:
    description:
      - Bytes of stdout, and of stderr, kept; what comes after is dropped and flagged. From 0 to 67108864 (64 MiB).
      - With O(output_encoding=text) the cut falls on a character boundary, so a few bytes less may be kept.
    type: int
    default: 1048576
  output_encoding:
    description:
      - V(text) returns output as text when it is UTF-8. A stream that is not comes base64-encoded instead, every
        byte kept (Ansible carries no undecodable bytes in a string), and RV(stdout_encoding) says so.
      - V(base64) returns every byte as it came, base64-encoded, with no newline removed and empty C(_lines).
    type: str
    default: text
    choices: [text, base64]
  margin:
    description:
      - Seconds the controller waits beyond O(timeout) + O(kill_after) + 6 for the host to answer, for connection and
        module start-up; after that the task fails with C(timed_out) and the connection is reset. From 5 to 3600.
    type: float
    default: 15
notes:
  - A process started for the command by something outside its tree (C(systemd-run), C(at), a login over SSH) is not
    in the tree, and is not ended.
  - If the command kills both the supervisor and the module with C(SIGKILL), nothing on the host is left to end the
    tree; the task fails and says the tree may still be alive.
  - A process that enters a PID namespace made outside the tree (C(nsenter -p), which takes root, or a user
    namespace of the user's own) and is orphaned there goes to that namespace's init, not to the supervisor, and is
    not ended, nor named in RV(failed_to_end). Containment that nothing escapes needs a cgroup of its own
    (C(systemd-run --scope)), which this module does not make.
seealso:
  - module: ansible.builtin.command
  - module: hangup.ssh.hung_sessions
"""

EXAMPLES = r"""
- name: A backup that must not run past 10 minutes, anywhere
  hangup.ssh.hard_timeout:
    cmd: /usr/local/bin/backup --full
    timeout: 600
    kill_after: 30

- name: Give a stuck health check 20 s, then INT, then KILL 5 s later
  hangup.ssh.hard_timeout:
    cmd: curl -fsS http://localhost:8080/health | grep -q ok
    shell: true
    timeout: 20
    signal: INT
  register: health
  failed_when: health.rc not in [0, 124]

# ad hoc across the fleet, the pssh --timeout use case:
#   ansible all -m hangup.ssh.hard_timeout -a "cmd='sleep 40' timeout=30"
"""

RETURN = r"""
cmd:
  description: The command as run (argv).
  returned: when the command ran
  type: list
  elements: str
  sample: [sleep, "40"]
rc:
  description:
    - 124 when the command timed out and its tree ended after the first signal, 137 when it needed C(SIGKILL), else
      the command's own exit code (negative when a signal from elsewhere ended it).
  returned: when the command ran, unless RV(supervisor_lost) and the command ended before its deadline (its exit code
    was lost with the supervisor)
  type: int
  sample: 124
stdout:
  description:
    - Standard output, up to O(output_limit) bytes, also when the command timed out, without the final newline (as
      M(ansible.builtin.command) gives it); with O(output_encoding=base64), every byte base64-encoded.
    - Empty when RV(supervisor_lost).
  returned: when the command ran
  type: str
  sample: "step 1 done"
stderr:
  description: Standard error, up to O(output_limit) bytes.
  returned: when the command ran
  type: str
  sample: ""
stdout_lines:
  description: RV(stdout) split into lines; empty when RV(stdout_encoding=base64).
  returned: when the command ran
  type: list
  elements: str
  sample: [step 1 done]
stderr_lines:
  description: RV(stderr) split into lines; empty when RV(stderr_encoding=base64).
  returned: when the command ran
  type: list
  elements: str
  sample: []
stdout_encoding:
  description:
    - How RV(stdout) holds the bytes; V(utf-8) text, all were UTF-8; V(base64) every byte base64-encoded, with
      O(output_encoding=base64) or when they were not UTF-8.
  returned: when the command ran
  type: str
  sample: utf-8
stderr_encoding:
  description: How RV(stderr) holds the bytes, as RV(stdout_encoding).
  returned: when the command ran
  type: str
  sample: utf-8
stdout_truncated:
  description: True when more standard output came than O(output_limit).
  returned: when the command ran
  type: bool
  sample: false
stderr_truncated:
  description: True when more standard error came than O(output_limit).
  returned: when the command ran
  type: bool
  sample: false
timed_out:
  description: True when the deadline passed, on the host or (with RV(controller_timed_out)) on the controller.
  returned: always
  type: bool
  sample: true
controller_timed_out:
  description: True when the host did not answer within the controller's bound; the connection was reset.
  returned: when the controller gave up on the host
  type: bool
  sample: true
signal_sent:
  description: The last signal the deadline sent (the first O(signal), or C(KILL)); null when none was needed.
  returned: when the command ran
  type: str
  sample: TERM
signal_times:
  description: Seconds after the start at which each signal was sent.
  returned: when the command ran
  type: dict
  sample: {"TERM": 30.01, "KILL": 35.02}
swept:
  description: PIDs of the processes of the tree that were signalled one by one, besides the process group.
  returned: when the command ran
  type: list
  elements: int
  sample: [4242]
failed_to_end:
  description:
    - Processes of the tree still running at the end, each with why; empty unless something could not be ended.
      The task fails when there are any.
  returned: when the command ran
  type: list
  elements: dict
  contains:
    pid:
      description: The process ID; V(null) for what is known only of the tree as a whole (a walk that did not
        finish, a tree that kept forking).
      type: int
    reason:
      description:
        - V(operation not permitted) (another user's process), or V(still running after SIGKILL (state X)) with the
          kernel's state letter (V(D) for a process stuck in the kernel, for example in an exec reading a file
          from a user's FUSE mount that never answers), or why the walk could not vouch for the whole tree.
      type: str
  sample: [{"pid": 4243, "reason": "operation not permitted"}]
supervisor_lost:
  description: True when the supervisor was killed or stopped answering and the module ended the tree itself.
  returned: when that happened
  type: bool
  sample: true
elapsed:
  description: Seconds the command ran, measured on the host.
  returned: when the command ran
  type: float
  sample: 30.08
start:
  description: When the command started, as M(ansible.builtin.command) prints it.
  returned: when the command ran
  type: str
  sample: "2026-11-27 14:05:01.123456"
end:
  description: When the command's tree was gone.
  returned: when the command ran
  type: str
  sample: "2026-11-27 14:05:31.203456"
delta:
  description: RV(end) minus RV(start).
  returned: when the command ran
  type: str
  sample: "0:00:30.080000"
msg:
  description:
    - One line for people; the keys above are for code. The exit code and time, or the deadline, each signal
      sent with its time and the exit code, or what could not be ended.
  returned: always
  type: str
  sample: timed out after 30 s; the tree ended on SIGTERM (TERM at 30.01 s); rc 124
"""

import datetime
import os
import select
import signal

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hangup.ssh.plugins.module_utils import _checks, _deadline, _supervisor

# how long checking creates, removes or chdir may take
PATH_WAIT = 2.0


def check_path(params, name, test, wait=PATH_WAIT):
    """(test(path), None), or (None, the problem) when checking the path did not finish in `wait` seconds: a user's
    FUSE mount that never answers must not hold the task outside its deadline.

    The check runs in a child holding nothing but its pipe: a lookup the
    server never answers cannot be interrupted, not even by SIGKILL, and a
    thread stuck in it would keep this process, and its stdout, from ending.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's side
        try:
            os.closerange(0, write_fd)
            os.closerange(write_fd + 1, _supervisor.MAX_FD)
            os.write(write_fd, b"1" if test(params[name]) else b"0")
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        answer = os.read(read_fd, 1) if select.select([read_fd], [], [], wait)[0] else None
    finally:
        os.close(read_fd)
    if answer is None:
        os.kill(pid, signal.SIGKILL)  # it may stay, stuck in the kernel: it is left to init, holding nothing
        return None, "%s: checking %s did not finish within %g s (a file system that does not answer)" % (
            name, params[name], wait)
    os.waitpid(pid, 0)
    return answer == b"1", None


def skip_reason(params):
    """(why creates/removes say not to run, or None; a path that could not be checked, or None)."""
    if params["creates"]:
        exists, problem = check_path(params, "creates", os.path.exists)
        if problem or exists:
            return None if problem else "%s exists, nothing run" % params["creates"], problem
    if params["removes"]:
        exists, problem = check_path(params, "removes", os.path.exists)
        if problem or not exists:
            return None if problem else "%s does not exist, nothing run" % params["removes"], problem
    return None, None


def _stamp(epoch):
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S.%f")


def shape(result, params):
    """The supervisor's result as the module returns it: output as text, times as ansible.builtin.command's."""
    start, end = result.pop("start_time"), result.pop("end_time")
    for name in ("stdout", "stderr"):
        text, how = _deadline.as_text(result[name], result[name + "_truncated"], params["output_encoding"])
        if how != "base64":
            # as ansible.builtin.command gives them: without the final newline
            text = text.rstrip("\r\n")
        # set here, or Ansible would split the base64 into lines
        result[name + "_lines"] = text.splitlines() if how != "base64" else []
        result[name], result[name + "_encoding"] = text, how
    result.update(start=_stamp(start), end=_stamp(end), delta=str(datetime.timedelta(seconds=end - start)))
    result["msg"] = _deadline.describe(result, params)
    return result


def main():
    module = AnsibleModule(argument_spec=_deadline.ARGUMENT_SPEC, mutually_exclusive=_deadline.MUTUALLY_EXCLUSIVE,
                           required_one_of=_deadline.REQUIRED_ONE_OF, supports_check_mode=True)
    params = module.params
    _checks.fail_on(module, _deadline.input_problems(params), timed_out=False)
    argv, _problems = _deadline.command_argv(params)
    skip, problem = skip_reason(params)
    _checks.fail_on(module, [problem] if problem else [], timed_out=False)
    if skip:
        module.exit_json(changed=False, msg=skip, rc=0, cmd=argv, timed_out=False)
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, msg="Command would have run if not in check mode", cmd=argv,
                         timed_out=False)
    if params["chdir"]:
        isdir, problem = check_path(params, "chdir", os.path.isdir)
        _checks.fail_on(module, [problem] if problem else [], timed_out=False)
        if not isdir:
            module.fail_json(msg="chdir: %s is not a directory" % params["chdir"], timed_out=False)
    stdin = params["stdin"]
    if stdin is not None and params["stdin_add_newline"]:
        stdin += "\n"
    wait = _deadline.remote_wait(params["timeout"], params["kill_after"])
    result = _supervisor.run_detached(
        argv, wait, timeout=params["timeout"], kill_after=params["kill_after"], first_signal=params["signal"],
        chdir=params["chdir"], stdin=None if stdin is None else stdin.encode("utf-8", "surrogateescape"),
        output_limit=params["output_limit"])
    if result is None:
        module.fail_json(msg="the supervisor ended before it started the command; nothing ran", cmd=argv,
                         timed_out=False)
    result = shape(result, params)
    result.update(cmd=argv, changed=True)
    if result["rc"] is None:
        del result["rc"]
    if result["timed_out"] or result.get("rc") != 0 or result["failed_to_end"] or result.get("supervisor_lost"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
