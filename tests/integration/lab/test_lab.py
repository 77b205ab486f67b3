"""Scenario `lab`: the harness works, and sessions really hang without keepalives.

These measurements are the control group for the keepalive role: the same faults
must leave a session hung for good when nobody sends keepalives, and must end it
within a few intervals when the client does.
"""

import socket

import pytest

from hangkit import KEEPALIVE_3x2, NO_KEEPALIVE

# the control group: a login shell on a pty, and `ssh host cmd`
CONTROL_KINDS = ("pty", "notty")

HUNG_FOR = 30  # a session still up this long after the fault counts as hung
ENDS_WITHIN = 15  # with ServerAliveInterval=3, ServerAliveCountMax=2
OPENSSH_BY_CODENAME = {"bullseye": "OpenSSH_8.4", "bookworm": "OpenSSH_9.2", "trixie": "OpenSSH_10.0"}
KEEPALIVES = {"none": NO_KEEPALIVE, "3x2": KEEPALIVE_3x2}


def codename(host):
    return host.run(". /etc/os-release && echo $VERSION_CODENAME").stdout.strip()


def test_sshd_listens_and_answers(host, lab):
    """sshd listens in the container and greets a TCP client from the controller."""
    assert host.socket("tcp://0.0.0.0:22").is_listening
    name = host.backend.hostname
    with socket.create_connection((lab.host(name).ip, 22), timeout=5) as conn:
        banner = conn.recv(256).decode()
    assert banner.startswith("SSH-2.0-" + OPENSSH_BY_CODENAME[codename(host)]), banner


def test_host_keys_are_distinct(lab):
    """Each container made its own host keys at start."""
    keys = {n: h.sh("cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1] for n, h in lab.hosts.items()}
    assert len(set(keys.values())) == len(keys), keys


def _open_all(lab, pairs, faults):
    """One session per (client, server, fault, kind, keepalive); all established first."""
    sessions = []
    for client, server in pairs:
        for fault in faults:
            for kind in CONTROL_KINDS:
                for ka, opts in KEEPALIVES.items():
                    s = lab.open_session(client, server, kind=kind, options=opts)
                    s.label = f"{server}-{fault}-{kind}-{ka}"
                    s.planned, s.keepalive = fault, ka
                    sessions.append(s)
    lab.wait_established(sessions)
    return sessions


def _measure(lab, sessions):
    keep = [s for s in sessions if s.keepalive != "none"]
    ended = lab.wait_ended(keep, timeout=ENDS_WITHIN + 5)
    hung = {s.id for s in lab.still_hung_after([s for s in sessions if s.keepalive == "none"], HUNG_FOR)}
    ends = lab.ends(sessions)
    table = {}
    for s in sessions:
        table[s.label] = {
            "keepalive": s.keepalive,
            "ended_after": ended.get(s.id),
            "hung_after_30s": s.id in hung,
            "rc": ends.get(s.id, (None,))[0],
            "messages": s.messages().strip()[-300:] if s.keepalive != "none" else "",
        }
    print(f"\n{'session':40} {'keepalive':9} {'ended after':>11} {'hung at 30 s':>12} rc")
    for label, row in sorted(table.items()):
        print(f"{label:40} {row['keepalive']:9} {str(row['ended_after']):>11} "
              f"{str(row['hung_after_30s']):>12} {row['rc']}")
    return table


@pytest.fixture(scope="module")
def per_connection(lab):
    """Phase 1: a ring of client->server pairs; faults hit one connection each."""
    names = list(lab.hosts)
    pairs = [(names[(i + 1) % len(names)], server) for i, server in enumerate(names)]
    sessions = _open_all(lab, pairs, ["cut", "freeze"])
    for s in sessions:
        (lab.cut if s.planned == "cut" else lab.freeze_server)(s)
    try:
        return _measure(lab, sessions)
    finally:
        lab.heal()


@pytest.fixture(scope="module")
def whole_host(lab):
    """Phase 2: podman pause of one server, network disconnect of another."""
    names = list(lab.hosts)
    client, paused, cut_off = names[0], names[-1], names[-2]
    sessions = _open_all(lab, [(client, paused), (client, cut_off)], ["host"])
    lab.pause(paused, [s for s in sessions if s.server.name == paused])
    lab.disconnect(cut_off, [s for s in sessions if s.server.name == cut_off])
    try:
        return _measure(lab, sessions)
    finally:
        lab.heal()


def _check(table):
    assert table, "no sessions were measured"
    for label, row in table.items():
        if row["keepalive"] == "none":
            assert row["hung_after_30s"], f"{label}: ended without keepalives, so the fault did not hold: {row}"
        else:
            assert row["ended_after"] is not None and row["ended_after"] <= ENDS_WITHIN, f"{label}: {row}"
            # 255 is ssh's own failure: the peer cannot have closed a cut or frozen session
            assert row["rc"] == 255, f"{label}: {row}"


def test_cut_and_frozen_sessions_hang_without_keepalive_and_end_with_it(per_connection):
    assert len(per_connection) == 8 * 4
    _check(per_connection)


def test_paused_and_disconnected_hosts_hang_without_keepalive_and_end_with_it(whole_host):
    _check(whole_host)
