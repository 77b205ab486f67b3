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
    ControlPersist), never the C(sshd) listener, never a process that is not part of an SSH session.
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
    description: Seconds between C(SIGTERM) and C(SIGKILL).
    type: float
    default: 5
  hung_when:
    description:
      - Which classes make an entry hung, so that O(kill=true) ends it. Every entry lists all its classes in
        RV(sessions[].reasons) whatever this says.
      - V(dead_transport) sent data stayed unacknowledged for O(unacked_timeout) seconds, or the retransmission or
        zero-window backoff exceeds O(max_backoff), or the peer closed the connection and C(sshd) did not.
      - V(unresponsive_peer) nothing was received for longer than O(unresponsive_timeout). For an outbound client this
        applies only when it sends keepalives (C(ServerAliveInterval) in its C(-o) options or the system-wide
        C(ssh_config)); without O(unresponsive_timeout) its own C(ServerAlive) cut-off is used.
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
      - Seconds without any data from the client after which an inbound session counts as unresponsive.
      - Defaults to the effective C(ClientAlive) cut-off read from C(sshd -T) (ClientAliveInterval times
        ClientAliveCountMax plus one interval, doubled on OpenSSH 9.2 to 9.4, which probe at twice the interval).
        When C(ClientAliveInterval) is 0 the server never asks, a frozen client looks exactly like an idle one, and
        this class is off unless set here.
      - Use a value above the effective C(ClientAliveInterval) probe period, since an idle healthy client only speaks
        when probed.
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
    description: Also list outbound C(ssh) client processes (and end hung ones with O(kill=true)).
    type: bool
    default: true
notes:
  - Only connections in the module's network namespace have TCP facts; sessions of containers on the host are seen
    through C(/proc) but their sockets are not.
  - Inside a container without C(CAP_SYS_PTRACE), root cannot read the file descriptors of the non-dumpable C(sshd)
    processes of non-root sessions, so those entries have no peer or TCP facts and are never V(dead_transport).
  - In check mode C(changed) says whether O(kill=true) would end something.
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
  description: The O(unresponsive_timeout) in effect (given, or derived from C(sshd -T)); null when the class is off.
  returned: always
  type: int
  sample: 33
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
      description: The user the session is for (C(unknown) or null before authentication).
      type: str
      sample: svc.backup-01
    authenticated:
      description: False while the connection is still authenticating; those are never ended.
      type: bool
      sample: true
    tty:
      description: The ttys as C(w) shows them (C(pts/0,pts/1) when multiplexed), C(notty), or null (not inbound).
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
      description: The processes running in the session, with their command lines.
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
"""

import os
import pwd
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hangup.ssh.plugins.module_utils import _hung, _kill, _openssh

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
)
NON_NEGATIVE = ("grace", "unacked_timeout", "max_backoff", "unresponsive_timeout", "max_idle")


def check_input(module):
    """What the argument spec cannot say; fails naming the parameter, before anything else runs."""
    params = module.params
    for name in NON_NEGATIVE:
        if params[name] is not None and params[name] < 0:
            module.fail_json(msg="%s must be 0 or more, got %s" % (name, params[name]))
    bad = _hung.parse_networks(params["peers"])
    if bad:
        module.fail_json(msg="peers: not a network in CIDR notation: %s" % ", ".join(bad))
    for name in ("users", "exclude_users"):
        unknown = []
        for user in params[name]:
            try:
                pwd.getpwnam(user)
            except KeyError:
                unknown.append(user)
        if unknown:
            module.fail_json(msg="%s: no such user on this host: %s" % (name, ", ".join(unknown)))


def client_alive_cutoff(module):
    """The latest moment sshd drops a silent client, from `sshd -T`; None when it never does or cannot be read."""
    sshd = module.get_bin_path("sshd", opt_dirs=["/usr/sbin", "/usr/local/sbin"])
    if not sshd:
        return None
    rc, out, _err = module.run_command([sshd, "-T"], environ_update={"LC_ALL": "C"})
    if rc != 0:
        return None
    settings = _openssh.parse_dump(out)
    try:
        interval, count = int(settings.get("clientaliveinterval", 0)), int(settings.get("clientalivecountmax", 3))
    except ValueError:
        return None
    if interval <= 0:
        return None
    ssh = module.get_bin_path("ssh")
    version = None
    if ssh:
        _rc, out, err = module.run_command([ssh, "-V"], environ_update={"LC_ALL": "C"})
        version = _openssh.parse_version(err or out)
    return int(_openssh.cutoff_window(interval, count, _openssh.probe_factor(version, "server"))[1])


def client_defaults(module):
    """System-wide (ServerAliveInterval, ServerAliveCountMax) for ssh clients, from `ssh -G`."""
    ssh = module.get_bin_path("ssh")
    if not ssh:
        return 0, 3
    rc, out, _err = module.run_command([ssh, "-G", "-F", "/etc/ssh/ssh_config", "localhost"],
                                       environ_update={"LC_ALL": "C"})
    settings = _openssh.parse_dump(out) if rc == 0 else {}
    try:
        return int(settings.get("serveraliveinterval", 0)), int(settings.get("serveralivecountmax", 3))
    except ValueError:
        return 0, 3


def boot_time():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return int(line.split()[1])
    return 0


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    check_input(module)
    params = module.params
    unresponsive = params["unresponsive_timeout"]
    if unresponsive is None:
        unresponsive = client_alive_cutoff(module)
    limits = dict(unacked_timeout=params["unacked_timeout"], max_backoff=params["max_backoff"],
                  unresponsive_timeout=unresponsive, max_idle=params["max_idle"])

    processes = _hung.snapshot("/proc")
    sockets, source = _hung.read_sockets("/proc")
    defaults = client_defaults(module) if params["outbound"] and _hung.outbound_clients(processes, {}) else (0, 3)
    entries = _hung.build_report(processes, sockets, _hung.System(), time.time(), boot_time(),
                                 os.sysconf("SC_CLK_TCK"), limits, os.getpid(), outbound=params["outbound"],
                                 client_defaults=defaults, outbound_timeout=params["unresponsive_timeout"])
    entries = _hung.finish(entries, params["hung_when"], params["users"], params["exclude_users"], params["peers"])
    hung = [e for e in entries if e["hung"]]

    result = dict(changed=False, liveness_source=source, unresponsive_timeout=unresponsive,
                  sessions=[_hung.public(e) for e in entries], killed=[], failed_to_kill=[])
    if not params["kill"] or module.check_mode:
        result["would_kill"] = [_hung.public(e) for e in hung]
        result["changed"] = bool(params["kill"] and hung)
        module.exit_json(**result)

    killed, failed = _kill.end_all(hung, params["grace"])
    result.update(changed=bool(killed), killed=[_hung.public(e) for e in killed],
                  failed_to_kill=[_hung.public(e) for e in failed])
    if failed:
        module.fail_json(msg="could not end %d of %d hung sessions" % (len(failed), len(hung)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
