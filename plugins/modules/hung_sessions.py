#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: hung_sessions
short_description: List SSH sessions with their idle time and TCP liveness, and end the hung ones
version_added: 0.1.0
description:
  - Lists every inbound SSH connection to the host's C(sshd), one entry per connection, under both process title
    schemes (C(sshd:) before OpenSSH 9.8, C(sshd-session:) and C(sshd-auth:) since), with user, ttys or C(notty),
    peer, login time, idle times, TCP liveness and the commands running in it.
  - Also lists outbound C(ssh) client processes and processes left behind by sessions whose C(sshd) is gone.
  - TCP facts come from the kernel through C(NETLINK_SOCK_DIAG) (inet_diag with C(tcp_info)). Where that is not
    available the module falls back to C(/proc/net/tcp), which has counters but no times, so only the backoff rule of
    C(dead_transport) applies; RV(liveness_source) says which was used.
  - Classifies each entry (see O(hung_when)) and, with O(kill=true), ends the hung ones; never the session the module
    itself runs over (found through process ancestry and the audit session id, which both survive C(become) and
    ControlPersist), never the C(sshd) listener, never a process that is not part of an SSH session, never a
    connection that has not authenticated.
  - Process titles are never trusted, since any user can give a process the title of root's C(sshd) session with
    C(exec -a). A process is
    C(sshd)'s only when its executable (C(/proc/PID/exe)) is C(sshd), C(sshd-session) or C(sshd-auth), owned by root
    and writable by nobody else (so no user's copy of it); a connection is
    rooted at root's C(sshd) process forked by the listener (known by its listening socket); it is authenticated only
    when a child of it that is C(sshd)'s runs as a user other than root and the privilege separation user C(sshd),
    whatever its title (root's own child, and before OpenSSH 9.8 the root process itself, must name root); and a tty
    counts only when a process of the session holds it as its controlling tty. So sessions are recognised by their
    structure, and the C(USER [priv]) title a monitor takes before authentication, the C(USER [postauth]) of
    OpenSSH 10.5 or a later retitling change nothing.
  - A socket counts for an inbound session only when root made it (sshd's accepted connections are), for an outbound
    client only when its user did and it goes to the server's port; a socket inode number two sockets share (the
    kernel's counter wraps) counts for nobody.
  - Run as root to see every session; as another user it sees and ends only what that user may signal.
  - The role C(hangup.ssh.keepalive) makes sshd and ssh drop dead peers by themselves; this module finds what is
    still hung, for example sessions opened before the role was applied, which keep the old settings.
author:
  - hangup.ssh maintainers (@hangup-ssh)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing is signalled; RV(would_kill) lists what O(kill=true) would end.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
    details: Linux only; it reads C(/proc).
options:
  kill:
    description:
      - End the entries classified as hung.
      - Each inbound session gets C(SIGTERM) to its privileged monitor, which forwards it and writes the logout
        record; after O(grace) seconds whatever is left gets C(SIGKILL), the child before the monitor; commands still
        running then get C(SIGHUP), as a real hangup would send them.
      - The start time of every PID is checked again before every signal, so a recycled PID is never signalled.
    type: bool
    default: false
  grace:
    description: Seconds between C(SIGTERM) and C(SIGKILL), from 0 to 3600.
    type: float
    default: 5
  hung_when:
    description:
      - Which classes make an entry hung, so that O(kill=true) ends it. Every entry lists all its classes in
        RV(sessions[].reasons) whatever this says.
      - V(dead_transport) sent data stayed unacknowledged for O(unacked_timeout) seconds, or the retransmission or
        zero-window backoff exceeds O(max_backoff), or the peer closed the connection and C(sshd) did not.
      - V(unresponsive_peer) the peer was asked and did not answer. Only evidence counts, read from the kernel's
        C(tcp_info) of the connection. This end sends keepalives to that peer, it sent data (a probe) at least half an
        interval after the last data it received and within the last two intervals, and nothing was received for
        longer than O(unresponsive_timeout) (default, that session's own cut-off). Inbound, the keepalive settings
        are those C(sshd -T -C user=...,addr=...) gives for the session (so C(Match) blocks count); outbound, those
        C(ssh -G) gives for the client's destination, run as the client's own user. A session that predates the
        keepalive settings (sshd reloaded since) or that a C(Match) block exempts is never probed, so never
        V(unresponsive_peer).
      - V(idle) the tty saw no input (sessions without a tty, the socket no data) for longer than O(max_idle).
      - V(orphaned) processes of a session whose C(sshd) is gone (they carry its C(SSH_CONNECTION)); a program a user
        deliberately left running after logout looks the same, so this is not on by default.
    type: list
    elements: str
    choices: [dead_transport, unresponsive_peer, idle, orphaned]
    default: [dead_transport, unresponsive_peer]
  unacked_timeout:
    description: Seconds sent data may stay unacknowledged before the transport counts as dead.
    type: int
    default: 30
  max_backoff:
    description:
      - Highest retransmission or zero-window probe backoff a live connection may show. With the kernel's minimum
        retransmission timeout of 200 ms, a backoff of 7 means about 25 s without progress.
    type: int
    default: 6
  unresponsive_timeout:
    description:
      - Seconds without any data from a peer that was asked (see V(unresponsive_peer) in O(hung_when)) after which it
        counts as unresponsive.
      - Defaults to each session's own cut-off (C(ClientAliveInterval) times C(ClientAliveCountMax) plus one interval,
        doubled on OpenSSH 9.2 to 9.4, whose C(sshd) probes at twice the interval, read from the C(sshd) binary's
        version). When C(sshd) never asks a session (C(ClientAliveInterval 0), for all or in a C(Match) block), a
        frozen client looks exactly like an idle one, and this class never applies to it, whatever is set here.
    type: int
  max_idle:
    description: Seconds of idleness after which an entry is classified V(idle); 0 turns the class off.
    type: int
    default: 0
  users:
    description: Only entries of these users. Each must exist on the host.
    type: list
    elements: str
    default: []
  exclude_users:
    description: Never entries of these users.
    type: list
    elements: str
    default: []
  peers:
    description: Only entries whose peer address is in one of these networks (CIDR, IPv4 or IPv6).
    type: list
    elements: str
    default: []
  outbound:
    description: Also list outbound C(ssh) client processes, known by their executable (and end hung ones with
      O(kill=true)).
    type: bool
    default: true
  scan_timeout:
    description:
      - Seconds the scan of C(/proc) may take. Processes not read by then are listed in RV(not_read) and never
        signalled, and orphans are not looked for (a live session may have been missed).
      - Processes in D state (uninterruptible sleep, for example on a dead NFS mount) are never read beyond
        C(/proc/PID/status), whose reading cannot hang; they are listed in RV(not_read) too.
      - Every other read of a process (C(stat), C(environ), C(exe), C(fd), C(cmdline)) is waited for at most 0.5 s,
        since a local user can make it block for as long as they like (an exec stuck on a file of their FUSE mount).
        A process whose read blocked is listed in RV(not_read) and never signalled. Once reads of one user's
        processes have lost 1 s (blocked or slow), or those of all users 5 s, no more of their processes are read
        in the run; root's always are.
    type: float
    default: 10
notes:
  - Only connections in the module's network namespace have TCP facts; sessions of containers on the host are seen
    through C(/proc) but their sockets are not.
  - Inside a container without C(CAP_SYS_PTRACE), root cannot read the executable or the file descriptors of the
    non-dumpable C(sshd) processes of non-root sessions, so those sessions cannot be shown to be authenticated, are
    listed as not authenticated and are never ended.
  - In check mode C(changed) says whether O(kill=true) would end something.
  - Not root, the module cannot run C(sshd -T) for the sessions or C(ssh -G) as other users; it says so with a warning
    and RV(unresponsive_off) names what V(unresponsive_peer) is off for.
  - C(ssh -G) runs as the client's user and evaluates that user's C(Match exec) commands, as that user's own C(ssh)
    does. Each lookup gets 2 s and 64 KiB of output in a process group of its own, killed as a group when done, and
    all lookups together stop after 10 s; a command that leaves its group with C(setsid) can outlive the module, as
    that user.
  - A multiplexing master (C(ssh -M)) retitles itself and loses its options; its keepalive settings are looked up for
    its peer's address, so a C(Host) block that names the host by an alias does not apply to it.
  - A probe is recognised by the timing of what was sent, not its content. A session that C(sshd) does not probe
    (it predates the settings) but that prints output every few seconds to a client with nothing to say has the
    same timing when the settings now in force would probe it; end such sessions' doubt with O(exclude_users) or
    O(peers).
seealso:
  - module: ansible.builtin.command
"""

EXAMPLES = r"""
- name: List SSH sessions and what is hung
  hangup.ssh.hung_sessions:
  register: ssh_sessions

- name: Show the hung ones
  ansible.builtin.debug:
    msg: "{{ ssh_sessions.sessions | selectattr('hung') | map(attribute='peer_address') | list }}"

- name: End hung sessions of people on the office network, and everything idle for 8 hours
  hangup.ssh.hung_sessions:
    kill: true
    peers: [10.20.0.0/16, "fd00:20::/64"]
    exclude_users: [backup]
    hung_when: [dead_transport, unresponsive_peer, idle]
    max_idle: 28800
  become: true

# ad hoc, from the repository root: ansible all -m hung_sessions -a kill=true
"""

RETURN = r"""
liveness_source:
  description: Where the TCP facts came from, C(sock_diag) (the kernel, with times) or C(proc_net_tcp) (counters only).
  returned: always
  type: str
  sample: sock_diag
unresponsive_timeout:
  description: The O(unresponsive_timeout) given; null when each session's own cut-off applies.
  returned: always
  type: int
  sample: 33
unresponsive_off:
  description: What V(unresponsive_peer) could not be judged for, and why (also given as a warning).
  returned: always
  type: dict
  sample: {"inbound sessions": "`sshd -T` could not be read (not root)"}
not_read:
  description: Processes not read beyond their C(status), with the reason (D state, a read that blocked, or
    O(scan_timeout) reached). They are never signalled.
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4242, "reason": "in D state (uninterruptible): only status was read"}]
sessions:
  description: Every entry found after the filters, inbound sessions first, then outbound clients and orphans.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: C(inbound) (a connection to this host's sshd), C(outbound) (an ssh client here) or C(orphaned).
      type: str
      sample: inbound
    pid:
      description: The main process, the privileged monitor for inbound sessions (the only process of root logins on
        older OpenSSH), the C(ssh) process for outbound ones.
      type: int
      sample: 4211
    starttime:
      description: Start time of RV(sessions[].pid) in clock ticks after boot, as C(/proc/PID/stat) gives it.
      type: int
      sample: 633791
    user:
      description: The user the session is for, the uid of its C(sshd) child; before authentication, the name the
        client asked for (C(unknown) or null when none yet).
      type: str
      sample: svc.backup-01
    authenticated:
      description: False while the connection is still authenticating; those are never ended.
      type: bool
      sample: true
    tty:
      description: The ttys as C(w) shows them (C(pts/0,pts/1) when multiplexed), C(notty), or null (not inbound). Only
        ttys a process of the session holds as its controlling tty are listed.
      type: str
      sample: pts/0
    ttys:
      description: The ttys as a list.
      type: list
      elements: str
      sample: [pts/0]
    sshd_pids:
      description: The sshd processes of the connection, monitor first.
      type: list
      elements: int
      sample: [4211, 4217]
    user_pid:
      description: The unprivileged sshd child running as the user, when there is one.
      type: int
      sample: 4217
    listener_pid:
      description: The sshd listener the session came from; null once sshd was restarted since.
      type: int
      sample: 15
    commands:
      description:
        - The processes running in the session, with their command lines (null for a process in D state or one whose
          read blocked). A process that ended while the module read the session is left out.
      type: list
      elements: dict
      sample: [{"pid": 4218, "cmdline": "-bash"}]
    login_time:
      description: When the connection's first process started, seconds since the epoch.
      type: float
      sample: 1795780800.52
    age_seconds:
      description: Seconds since RV(sessions[].login_time).
      type: float
      sample: 312.4
    idle_seconds:
      description: Seconds since the tty last saw input, as C(w) computes it; null without a tty.
      type: int
      sample: 120
    recv_idle_seconds:
      description: Seconds since data was last received on the connection; null without C(sock_diag) or a socket.
      type: float
      sample: 2.61
    peer_address:
      description: The other end's address (IPv4, or IPv6 without brackets); null when the socket was not found.
      type: str
      sample: "fd00::5"
    peer_port:
      description: The other end's port.
      type: int
      sample: 40112
    local_address:
      description: This end's address.
      type: str
      sample: 10.88.0.2
    local_port:
      description: This end's port (the sshd port for inbound sessions).
      type: int
      sample: 22
    tcp:
      description: TCP liveness of the connection; null when its socket was not found. Times are null from
        C(proc_net_tcp).
      type: dict
      contains:
        state:
          description: TCP state.
          type: str
          sample: ESTABLISHED
        unacked_segments:
          description: Segments sent and not yet acknowledged.
          type: int
          sample: 0
        queued_bytes:
          description: Bytes written and not yet acknowledged (sent or not).
          type: int
          sample: 0
        unread_bytes:
          description: Bytes received and not yet read by sshd.
          type: int
          sample: 0
        retransmits:
          description: Retransmissions of the oldest unacknowledged segment.
          type: int
          sample: 0
        backoff:
          description: Retransmission or zero-window probe backoff.
          type: int
          sample: 0
        probes:
          description: Zero-window or keepalive probes sent and not answered.
          type: int
          sample: 0
        total_retrans:
          description: Retransmissions over the connection's life.
          type: int
          sample: 0
        rto_ms:
          description: Current retransmission timeout in milliseconds.
          type: float
          sample: 204.0
        last_ack_recv_seconds:
          description: Seconds since the last ACK was received.
          type: float
          sample: 1.2
        last_data_recv_seconds:
          description: Seconds since data was last received.
          type: float
          sample: 1.2
        last_data_sent_seconds:
          description: Seconds since data was last sent.
          type: float
          sample: 1.3
    self:
      description: True for the session this module runs over; it is never ended.
      type: bool
      sample: false
    reasons:
      description: Every class that applies (V(dead_transport), V(unresponsive_peer), V(idle), V(orphaned)).
      type: list
      elements: str
      sample: [dead_transport]
    why:
      description: One explanation per reason, with the measured value.
      type: list
      elements: str
      sample: ["3 segments unacknowledged for 31.2 s"]
    hung:
      description: True when a reason is one of O(hung_when), the entry is authenticated and not the module's own.
      type: bool
      sample: true
would_kill:
  description: The entries O(kill=true) would end (all keys of RV(sessions)); nothing was signalled.
  returned: when nothing was killed (check mode, or O(kill=false))
  type: list
  elements: dict
  sample: [{"kind": "inbound", "pid": 4211, "user": "alice", "peer_address": "10.88.0.3", "reasons": ["dead_transport"]}]
killed:
  description: The entries that were ended (all keys of RV(sessions)), with C(signals), the signals sent
    (C(TERM), C(KILL), C(HUP)).
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "inbound", "pid": 4211, "user": "alice", "signals": ["TERM", "HUP"]}]
failed_to_kill:
  description: The entries that could not be ended (all keys of RV(sessions)), with C(signals) and C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "inbound", "pid": 4211, "user": "alice", "signals": [], "reason": "SIGTERM to 4211: Operation not permitted"}]
msg:
  description:
    - One line for people; the keys above are for code. How many sessions, how many hung, and each hung one (at
      most three, then how many more) with why, or with the signals that ended it, or why it could not be ended.
      It starts with V(could not end) when the task failed for that.
  returned: always
  type: str
  sample: "4 sessions, 1 hung; ended 1: alice@notty from 10.88.0.3:40112 (TERM+HUP)"
"""

import os
import pwd
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hangup.ssh.plugins.module_utils import _checks, _hung, _kill, _openssh, _run

ARGUMENT_SPEC = dict(
    kill=dict(type="bool", default=False),
    grace=dict(type="float", default=5),
    hung_when=dict(type="list", elements="str", choices=list(_hung.CLASSES), default=list(_hung.DEFAULT_HUNG_WHEN)),
    unacked_timeout=dict(type="int", default=30),
    max_backoff=dict(type="int", default=6),
    unresponsive_timeout=dict(type="int"),
    max_idle=dict(type="int", default=0),
    users=dict(type="list", elements="str", default=[]),
    exclude_users=dict(type="list", elements="str", default=[]),
    peers=dict(type="list", elements="str", default=[]),
    outbound=dict(type="bool", default=True),
    scan_timeout=dict(type="float", default=10),
)
# a lookup (sshd -T, ssh -G) that takes longer is abandoned: the class is then off for that entry;
# all lookups together stop after LOOKUP_BUDGET, so many sessions or hanging user configs cannot stall the task
LOOKUP_TIMEOUT = 2
LOOKUP_BUDGET = 10


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except (KeyError, ValueError):
        return False


class Keepalives(object):
    """How each side probes its peer, looked up once per distinct user and address.

    Inbound: `sshd -T -C` for the session's user and addresses, so Match
    blocks count. Outbound: `ssh -G` run as the client's own user (its
    ~/.ssh/config is never evaluated as root), for the destination in its argv.
    """

    def __init__(self, module, clock=time.monotonic):
        self.module = module
        self.sshd = module.get_bin_path("sshd", opt_dirs=["/usr/sbin", "/usr/local/sbin"])
        self.ssh = module.get_bin_path("ssh")
        self._factor = None
        self._cache = {}
        self.off = {}
        self._clock = clock
        self._deadline = clock() + LOOKUP_BUDGET
        if os.geteuid() != 0:
            # sshd -T reads the host keys, which only root can
            self._turn_off("inbound sessions", "`sshd -T` cannot be read when not root")

    def _spent(self):
        if self._clock() < self._deadline:
            return False
        self._turn_off("the rest", "keepalive lookups took more than %d s" % LOOKUP_BUDGET)
        return True

    def _run(self, argv, pw=None):
        """(rc, output) of a lookup, as `pw`'s user when given (then without its standard error)."""
        if pw is None:
            return _run.run_bounded(argv, LOOKUP_TIMEOUT, merge_stderr=True)
        return _run.run_bounded(argv, LOOKUP_TIMEOUT, env=dict(_run.CLEAN_ENV, HOME=pw.pw_dir),
                                preexec_fn=lambda: _run.become(pw))

    def _turn_off(self, side, why):
        if side not in self.off:
            self.off[side] = why
            self.module.warn("unresponsive_peer is off for %s: %s" % (side, why))

    def factor(self):
        """The sshd binary's probe factor (its own version, not the client's)."""
        if self._factor is None:
            _rc, out = self._run([self.sshd, "-V"])
            self._factor = _openssh.probe_factor(_openssh.parse_version(out), "server")
        return self._factor

    def inbound(self, user, peer, local):
        if not self.sshd:
            self._turn_off("inbound sessions", "no sshd binary found")
        if "inbound sessions" in self.off:
            return None
        spec = _hung.connection_spec(user, peer, local)
        if spec is None:
            return None
        key = ("in", user, peer[0], local)
        if key not in self._cache:
            if self._spent():
                return None
            rc, out = self._run([self.sshd, "-T", "-C", spec])
            if rc not in (0, None) and local:
                rc, out = self._run([self.sshd, "-T", "-C", _hung.connection_spec(user, peer, None)])
            if rc != 0:
                self._turn_off("inbound sessions", "`sshd -T` could not be read (%s)"
                               % ("not root" if os.geteuid() else (out or "rc %s" % rc).strip()[:200]))
                self._cache[key] = None
            else:
                self._cache[key] = self._window(out, "clientalive", self.factor())
        return self._cache[key]

    def outbound(self, client):
        if not self.ssh:
            return None
        try:
            pw = pwd.getpwuid(client["uid"])
        except KeyError:
            return None
        if os.geteuid() not in (0, pw.pw_uid):
            self._turn_off("other users' ssh clients", "ssh -G can only run as their user, and this is not root")
            return None
        found = _hung.ssh_destination(client["argv"])
        if found is None and client["socket"]:
            # a multiplexing master lost its argv: its peer's address is all there is
            found = client["socket"]["peer"][0], ["-p", str(client["socket"]["peer"][1])]
        if found is None:
            return None
        key = ("out", pw.pw_uid, found[0], tuple(found[1]))
        if key not in self._cache:
            if self._spent():
                return None
            as_user = pw if os.geteuid() == 0 and pw.pw_uid != 0 else None
            rc, out = self._run([self.ssh, "-G"] + found[1] + ["--", found[0]], as_user)
            self._cache[key] = self._window(out, "serveralive", 1) if rc == 0 else None
        return self._cache[key]

    @staticmethod
    def _window(dump, prefix, factor):
        settings = _openssh.parse_dump(dump)
        try:
            interval, count = int(settings.get(prefix + "interval", 0)), int(settings.get(prefix + "countmax", 3))
        except ValueError:
            return None
        return _hung.alive_window(interval, count, factor)


def boot_time():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return int(line.split()[1])
    return 0


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    problems = _hung.input_problems(params, user_exists)
    _checks.fail_on(module, problems)
    limits = dict(unacked_timeout=params["unacked_timeout"], max_backoff=params["max_backoff"],
                  unresponsive_timeout=params["unresponsive_timeout"], max_idle=params["max_idle"])

    processes, not_read = _hung.snapshot("/proc", budget=params["scan_timeout"])
    sockets, source = _hung.read_sockets("/proc")
    complete = not any(s["reason"] == "scan time limit reached" for s in not_read)
    if not complete:
        module.warn("the scan of /proc stopped after scan_timeout=%s s: %d processes were not read, orphans are "
                    "not looked for" % (params["scan_timeout"], len(not_read)))
    keepalives = Keepalives(module)
    entries = _hung.build_report(processes, sockets, _hung.System(), time.time(), boot_time(),
                                 os.sysconf("SC_CLK_TCK"), limits, os.getpid(), outbound=params["outbound"],
                                 keepalives=keepalives, orphans=complete)
    entries = _hung.finish(entries, params["hung_when"], params["users"], params["exclude_users"], params["peers"])
    hung = [e for e in entries if e["hung"]]

    result = dict(changed=False, liveness_source=source, unresponsive_timeout=params["unresponsive_timeout"],
                  unresponsive_off=keepalives.off, not_read=not_read,
                  sessions=[_hung.public(e) for e in entries], killed=[], failed_to_kill=[])
    if not params["kill"] or module.check_mode:
        result["would_kill"] = [_hung.public(e) for e in hung]
        result["changed"] = bool(params["kill"] and hung)
        result["msg"] = _hung.describe(result["sessions"], [], [], would_end=params["kill"])
        module.exit_json(**result)

    killed, failed = _kill.end_all(hung, params["grace"])
    result.update(changed=bool(killed), killed=[_hung.public(e) for e in killed],
                  failed_to_kill=[_hung.public(e) for e in failed])
    result["msg"] = _hung.describe(result["sessions"], result["killed"], result["failed_to_kill"])
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
