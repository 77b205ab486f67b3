"""Scenario `keepalive`: the role's settings are in effect, safe to apply, and really
drop dead peers on time, measured with the hang kit on OpenSSH 8.4, 9.2 and 10.0.
Scenarios keepalive_versions and keepalive_versions_more run the checks marked
every_version on the other OpenSSH releases of the lab (upstream builds, forky).

molecule converge applied the role with a 20 s dead-peer time on both ends, an
UnusedConnectionTimeout of 3600 s, an idle logout of 7200 s, TCPKeepAlive on
both ends and alice as a managed user (converge.yml).
"""

import contextlib
import os
import shlex

import pytest

from ansible_collections.hangup.ssh.plugins.module_utils._openssh import derive_timing, parse_dump, parse_version
from hangkit import NO_KEEPALIVE, Host, podman
from playbook import role_play, run_playbook

KNOB = 20
CONVERGE_VARS = {
    "keepalive_server_dead_peer_timeout": KNOB,
    "keepalive_client_dead_peer_timeout": KNOB,
    "keepalive_unused_connection_timeout": 3600,
    "keepalive_idle_logout": 7200,
    "keepalive_server_tcp_keepalive": True,
    "keepalive_client_tcp_keepalive": True,
    "keepalive_users": ["alice"],
}
ROLE_PLAY = role_play("hangup.ssh.keepalive")
DROPIN = "/etc/ssh/sshd_config.d/00-hangup-keepalive.conf"
CLIENT_DROPIN = "/etc/ssh/ssh_config.d/00-hangup-keepalive.conf"
WATCHED = [DROPIN, CLIENT_DROPIN, "/etc/ssh/sshd_config", "/etc/ssh/ssh_config", "/home/alice/.ssh/config"]


def version(host):
    return parse_version(host.run("ssh -V").stderr)


def checksums(lab, paths=None):
    paths = paths or WATCHED
    return {n: h.sh("sha256sum " + " ".join(paths) + " 2>&1; stat -c '%n %a %U' " + " ".join(paths)
                    + " 2>&1; true").stdout for n, h in lab.hosts.items()}


def all_hosts(lab):
    return list(lab.hosts)


def one_host(lab):
    """For cases decided before anything version-specific runs: one host is enough."""
    return list(lab.hosts)[:1]


# ------------------------------------------------------------ effective values

def reads_dropins(host):
    """Whether sshd_config includes sshd_config.d (Debian, Ubuntu, RHEL 9 on; not RHEL 8)."""
    return host.run("grep -qiE '^\\s*Include\\s+/etc/ssh/sshd_config.d/' /etc/ssh/sshd_config").rc == 0


@pytest.mark.every_version
def test_sshd_effective_values(host):
    v = version(host)
    want = derive_timing(KNOB, v, "server")
    eff = parse_dump(host.check_output("sshd -T -C user=root,host=localhost,addr=127.0.0.1"))
    assert eff["clientaliveinterval"] == str(want["interval"])
    assert eff["clientalivecountmax"] == str(want["count_max"])
    assert eff["tcpkeepalive"] in ("yes", "true")  # 10.6 prints true
    assert want["expected_min"] >= 0.8 * KNOB and want["expected_max"] <= 1.2 * KNOB
    if reads_dropins(host):
        dropin = host.file(DROPIN)
        assert dropin.is_file and dropin.user == "root" and dropin.mode == 0o644
        ours = dropin.content_string
    else:
        # no drop-ins read (RHEL 8's layout): a block at the top of sshd_config, no drop-in
        ours = host.file("/etc/ssh/sshd_config").content_string
        assert ours.startswith("# BEGIN hangup.ssh.keepalive\n") and not host.file(DROPIN).exists
        ours = ours.split("# END hangup.ssh.keepalive")[0]
    if v >= (9, 2):
        assert eff["unusedconnectiontimeout"] == "3600"
        assert "UnusedConnectionTimeout 3600" in ours and "ChannelTimeout session*=7200" in ours
        assert "session*=7200" in eff["channeltimeout"]
    else:
        # older sshd refuses the keywords: skipped with a warning, never written
        assert "unusedconnectiontimeout" not in eff and "channeltimeout" not in eff
        assert "UnusedConnection" not in ours and "ChannelTimeout" not in ours


@pytest.mark.every_version
def test_ssh_effective_values_system_wide_and_as_alice(host):
    want = derive_timing(KNOB, version(host), "client")
    expected = {"serveraliveinterval": str(want["interval"]), "serveralivecountmax": str(want["count_max"])}
    system = parse_dump(host.check_output("ssh -G -F /etc/ssh/ssh_config probe.invalid"))
    alice = parse_dump(host.check_output("runuser -u alice -- ssh -G probe.invalid"))
    root = parse_dump(host.check_output("ssh -G probe.invalid"))
    for eff in (system, alice, root):
        assert {k: eff[k] for k in expected} == expected


@pytest.mark.every_version
def test_alice_config_kept_and_tightened(host):
    cfg = host.file("/home/alice/.ssh/config")
    assert cfg.user == "alice" and cfg.mode == 0o600
    text = cfg.content_string
    assert text.startswith("Host git.example.com\n    User git\n    IdentitiesOnly yes\n"), text
    assert "# BEGIN hangup.ssh.keepalive" in text and "Host *" in text
    assert host.file("/home/alice/.ssh").mode == 0o700
    # her own host entry still applies
    assert "user git" in host.check_output("runuser -u alice -- ssh -G git.example.com")


# ------------------------------------------------------------ check mode and idempotence

@pytest.mark.every_version
def test_check_mode_on_the_converged_hosts_changes_nothing(lab):
    rc, out, stats = run_playbook(all_hosts(lab), ROLE_PLAY, CONVERGE_VARS, check=True, diff=True)
    assert rc == 0, out[-3000:]
    assert {h: s["changed"] for h, s in stats.items()} == {h: 0 for h in lab.hosts}


def test_check_mode_reports_a_change_with_a_diff_and_writes_nothing(lab):
    before = checksums(lab)
    rc, out, stats = run_playbook(all_hosts(lab), ROLE_PLAY, dict(CONVERGE_VARS, keepalive_server_dead_peer_timeout=40),
                                  check=True, diff=True)
    assert rc == 0, out[-3000:]
    assert all(s["changed"] >= 1 for s in stats.values()), stats
    assert "+ClientAliveInterval" in out and "-ClientAliveInterval" in out
    assert checksums(lab) == before


# ------------------------------------------------------------ conflicts, lockout, bad input

def test_an_earlier_dropin_that_disables_keepalive_is_named(lab):
    early = "/etc/ssh/sshd_config.d/00-aaa-early.conf"
    for h in lab.hosts.values():
        h.sh(f"echo 'ClientAliveInterval 0' > {early}")
    try:
        rc, out, _stats = run_playbook(all_hosts(lab), ROLE_PLAY, CONVERGE_VARS)
        assert rc != 0
        assert "ClientAliveInterval is 0 in effect" in out and early + ":1" in out, out[-3000:]
        rc, out, _stats = run_playbook(all_hosts(lab), ROLE_PLAY, dict(CONVERGE_VARS, keepalive_conflicts="warn"))
        assert rc == 0, out[-3000:]
        assert "WARNING: sshd on" in out and early in out
    finally:
        for h in lab.hosts.values():
            h.sh(f"rm -f {early}")


def test_a_broken_sibling_dropin_fails_before_any_reload_and_logins_still_work(lab):
    broken = "/etc/ssh/sshd_config.d/50-broken.conf"
    for h in lab.hosts.values():
        h.sh(f"echo 'NoSuchKeyword yes' > {broken}")
    before = checksums(lab, [DROPIN])
    try:
        rc, out, _stats = run_playbook(all_hosts(lab), ROLE_PLAY, dict(CONVERGE_VARS, keepalive_server_dead_peer_timeout=40))
        assert rc != 0
        assert "failed to validate" in out, out[-3000:]
        assert "Reload sshd" not in out
        assert checksums(lab, [DROPIN]) == before
    finally:
        for h in lab.hosts.values():
            h.sh(f"rm -f {broken}")
    names = list(lab.hosts)
    for i, server in enumerate(names):
        client = names[(i + 1) % len(names)]
        lab.trust(client, server)
        r = lab.host(client).sh(f"ssh -o BatchMode=yes -o StrictHostKeyChecking=no "
                                f"-o UserKnownHostsFile=/dev/null root@{lab.host(server).ip} echo fresh-login", check=False)
        assert r.stdout.strip() == "fresh-login", (server, r.stderr)


@pytest.mark.parametrize("bad,named", [
    ({"keepalive_server_dead_peer_timeout": 1}, "keepalive_server_dead_peer_timeout"),
    ({"keepalive_client_alive_count_max": 0}, "keepalive_client_alive_count_max"),
    ({"keepalive_client_dead_peer_timeout": "soon"}, "keepalive_client_dead_peer_timeout"),
    ({"keepalive_conflicts": "ignore"}, "keepalive_conflicts"),
    ({"keepalive_client_host_overrides": [{"host": "a # b"}]}, "keepalive_client_host_overrides"),
    ({"keepalive_dropin_name": "../../evil.conf"}, "keepalive_dropin_name"),
])
def test_bad_input_is_named_and_nothing_is_written(lab, bad, named):
    before = checksums(lab)
    rc, out, _stats = run_playbook(one_host(lab), ROLE_PLAY, dict(CONVERGE_VARS, **bad))
    assert rc != 0 and named in out, out[-2000:]
    assert checksums(lab) == before


def test_without_include_the_settings_go_in_a_block_at_the_top_of_the_main_files(lab):
    name = list(lab.hosts)[-1]
    h = lab.host(name)
    mains = ["/etc/ssh/sshd_config", "/etc/ssh/ssh_config"]
    h.sh("set -e; for f in " + " ".join(mains) + "; do cp -p $f $f.hk-orig; sed -i '/^Include /d' $f; done; "
         f"rm -f {DROPIN} {CLIENT_DROPIN}")
    # a session open across the run: sshd is reloaded, never restarted, so it stays
    established = lab.open_session(list(lab.hosts)[0], name, "pty")
    lab.wait_established([established])
    try:
        rc, out, _stats = run_playbook([name], ROLE_PLAY, CONVERGE_VARS)
        assert rc == 0, out[-3000:]
        assert "Reload sshd" in out
        assert established.server_alive() and established.client.alive(established.client_pid)
        for f in mains:
            text = h.sh(f"cat {f}").stdout
            assert text.startswith("# BEGIN hangup.ssh.keepalive\n"), text[:300]
        want = derive_timing(KNOB, h.openssh_version(), "server")
        eff = parse_dump(h.sh("sshd -T").stdout)
        assert eff["clientaliveinterval"] == str(want["interval"])
        assert h.sh(f"ls {DROPIN} 2>/dev/null; true").stdout == ""
    finally:
        h.sh("for f in " + " ".join(mains) + "; do mv $f.hk-orig $f; done")
        rc, out, _stats = run_playbook([name], ROLE_PLAY, CONVERGE_VARS)
        assert rc == 0, out[-3000:]


# ------------------------------------------------------------ hostile homes

HOMES = {
    # user: how the home is booby-trapped
    "mallory": "mkdir -p -m 700 /home/mallory/.ssh && ln -s /etc/hangup-victim /home/mallory/.ssh/config",
    "eve": "ln -s /etc/hangup-victim-dir /home/eve/.ssh",
    "oscar": "echo not-a-dir > /home/oscar/.ssh",
}


@pytest.mark.parametrize("user", sorted(HOMES))
def test_a_symlinked_or_odd_home_is_refused_and_the_target_untouched(lab, user):
    setup = ("printf 'victim\\n' > /etc/hangup-victim && chmod 0644 /etc/hangup-victim && "
             "mkdir -p /etc/hangup-victim-dir && printf 'victim\\n' > /etc/hangup-victim-dir/config && "
             f"(id {user} >/dev/null 2>&1 || useradd -m {user}) && rm -rf /home/{user}/.ssh && " + HOMES[user])
    for h in lab.hosts.values():
        h.sh(setup)
    victims = ["/etc/hangup-victim", "/etc/hangup-victim-dir/config"]
    before = checksums(lab, victims)
    rc, out, _stats = run_playbook(one_host(lab), ROLE_PLAY, dict(CONVERGE_VARS, keepalive_users=[user]))
    assert rc != 0
    assert f"Refusing /home/{user}/.ssh" in out, out[-2000:]
    assert checksums(lab, victims) == before


def test_a_user_without_home_fails_or_is_skipped(lab):
    rc, out, _stats = run_playbook(one_host(lab), ROLE_PLAY, dict(CONVERGE_VARS, keepalive_users=["ghost"]))
    assert rc != 0 and "ghost does not exist" in out
    skip = dict(CONVERGE_VARS, keepalive_users=["ghost"], keepalive_users_missing_home="skip")
    rc, out, _stats = run_playbook(one_host(lab), ROLE_PLAY, skip)
    assert rc == 0, out[-2000:]


# ------------------------------------------------------------ real behaviour

CONTROL_PORT = 2222


@pytest.fixture(scope="module")
def measured(lab):
    """All cases on every server at once; see the table printed by the test."""
    names = list(lab.hosts)
    for h in lab.hosts.values():
        # the same sshd and config without the role's effect: ClientAliveInterval 0 from the command line wins
        h.sh(f"kill -0 $(cat /run/sshd-control.pid 2>/dev/null) 2>/dev/null || /usr/sbin/sshd -p {CONTROL_PORT} "
             f"-o ClientAliveInterval=0 -o PidFile=/run/sshd-control.pid")
    plan = []
    for i, server in enumerate(names):
        client = names[(i + 1) % len(names)]
        for case, kind, opts, port in [
            ("server-drops-frozen-client", "notty", NO_KEEPALIVE, 22),
            ("server-drops-cut-client", "notty", NO_KEEPALIVE, 22),
            ("control-frozen-client", "notty", NO_KEEPALIVE, CONTROL_PORT),
            ("control-cut-client", "notty", NO_KEEPALIVE, CONTROL_PORT),
            ("client-leaves-frozen-server", "notty", (), 22),
            ("client-leaves-cut-server", "notty", (), 22),
            ("healthy-idle", "pty", (), 22),
        ]:
            s = lab.open_session(client, server, kind=kind, options=opts, port=port)
            s.label = f"{server}:{case}"
            s.planned = case
            plan.append(s)
    lab.wait_established(plan)
    lab.watch_server(plan)
    for s in plan:
        if "frozen-client" in s.planned:
            lab.freeze_client(s)
        elif "frozen-server" in s.planned:
            lab.freeze_server(s)
        elif "cut" in s.planned:
            lab.cut(s)
        else:
            lab.mark(s, "none")
    try:
        server_side = [s for s in plan if s.planned.startswith("server-")]
        client_side = [s for s in plan if s.planned.startswith("client-")]
        lab.sleep_until_after_faults(plan, 1.2 * KNOB + 6)
        dropped = lab.elapsed(server_side, side="server")
        left = lab.elapsed(client_side, side="client")
        control = [s for s in plan if s.planned.startswith("control-")]
        control_up = {s.id for s in lab.still_hung_after(control, 2 * KNOB, side="server")}
        healthy = [s for s in plan if s.planned == "healthy-idle"]
        healthy_client = {s.id for s in lab.still_hung_after(healthy, 3 * KNOB, side="client")}
        healthy_server = {s.id for s in lab.still_hung_after(healthy, 0, side="server")}
        rows = {}
        for s in plan:
            rows[s.label] = {
                "ended_after": dropped.get(s.id, left.get(s.id)),
                "still_up": (s.id in control_up) if s in control
                else (s.id in healthy_client and s.id in healthy_server) if s in healthy else None,
                "openssh": "%d.%d" % s.server.openssh_version(),
            }
        print(f"\ndead-peer time {KNOB} s; window {0.8 * KNOB:.0f}-{1.2 * KNOB:.0f} s")
        print(f"{'case':48} {'OpenSSH':7} {'ended after':>11} {'still up':>9}")
        for label, row in sorted(rows.items()):
            print(f"{label:48} {row['openssh']:7} {str(row['ended_after']):>11} {str(row['still_up']):>9}")
        return rows
    finally:
        lab.heal()


@pytest.mark.every_version
def test_dead_peers_are_dropped_within_20_percent_of_the_knob(measured):
    bad = {k: v for k, v in measured.items()
           if k.split(":")[1].startswith(("server-", "client-"))
           and not (v["ended_after"] is not None and 0.8 * KNOB <= v["ended_after"] <= 1.2 * KNOB)}
    assert not bad, bad


@pytest.mark.every_version
def test_without_the_role_the_same_sessions_stay_hung_for_twice_the_knob(measured):
    control = {k: v for k, v in measured.items() if ":control-" in k}
    assert len(control) == 2 * len({k.split(":")[0] for k in measured}) and all(v["still_up"] for v in control.values()), control


@pytest.mark.every_version
def test_a_healthy_idle_session_survives_three_times_the_knob(measured):
    healthy = {k: v for k, v in measured.items() if ":healthy-idle" in k}
    assert len(healthy) == len({k.split(":")[0] for k in measured}) and all(v["still_up"] for v in healthy.values()), healthy


@pytest.mark.every_version
def test_the_probe_factor_is_the_one_measured(measured):
    """sshd 9.2 to 9.4 probe every two intervals (the table in _openssh.py); measured, not assumed.

    A frozen client is dropped after about (count_max + 0.5) probe periods: the
    measured time over that, in intervals, is the factor sshd really has.
    """
    seen = {}
    for label, row in measured.items():
        if ":server-drops-" in label and row["ended_after"] is not None:
            v = tuple(int(x) for x in row["openssh"].split("."))
            t = derive_timing(KNOB, v, "server")
            ratio = row["ended_after"] / ((t["count_max"] + 0.5) * t["interval"])
            seen.setdefault(row["openssh"], []).append((ratio, t["probe_factor"]))
    assert seen
    print("\nprobe factor: OpenSSH, measured, table")
    for openssh, pairs in sorted(seen.items()):
        for ratio, factor in pairs:
            print(f"  {openssh:6} {ratio:.2f} {factor}")
            # 1 and 2 are the only factors sshd has shown: the nearer one must be the table's
            assert abs(ratio - factor) < 0.5, (openssh, ratio, factor)


# ------------------------------------------------------------ a listed user, hostile

CLIENT_ONLY = dict(CONVERGE_VARS, keepalive_server=False)
ROOT_SECRET, SHADOW_SECRET = "HKROOTSECRET", "HKSHADOWSECRET"
# as the user, for as long as it runs: ~/.ssh a directory, then a link to root's; config a link to
# /etc/shadow, then to a path that does not exist
SWAP_LOOP = """
h=/home/trudy
while :; do
  rm -rf $h/.ssh; ln -s /root/.ssh $h/.ssh
  rm -f $h/.ssh; mkdir $h/.ssh; ln -s /etc/shadow $h/.ssh/config
  rm -f $h/.ssh/config; ln -s /tmp/hk-ka-missing $h/.ssh/config
  rm -f $h/.ssh/config
done
"""


# role runs against the swapping loop: 12 take about 270 s of make test on 2 cores (each run
# competes with four busy loops); HK_RACE_RUNS=40 searches longer
RACE_RUNS = int(os.environ.get("HK_RACE_RUNS", "12"))


def user_with(lab, user, config=None, home_setup=None):
    for h in lab.hosts.values():
        h.sh(f"id {user} >/dev/null 2>&1 || useradd -m -s /bin/sh {user}")
        if home_setup:
            h.sh(home_setup)
        if config is not None:
            h.sh(f"install -d -o {user} -g {user} -m 700 ~{user}/.ssh && "
                 f"install -o {user} -g {user} -m 600 /dev/stdin ~{user}/.ssh/config", input=config)


def test_a_match_exec_in_the_users_file_never_runs_as_root(lab):
    user_with(lab, "carol", config='Match exec "touch /tmp/hk-ka-canary-$(id -u)"\nHost git.example.com\n    User git\n')
    rc, out, _stats = run_playbook(all_hosts(lab), ROLE_PLAY, dict(CLIENT_ONLY, keepalive_users=["carol"]))
    assert rc == 0, out[-3000:]
    for name, h in lab.hosts.items():
        canaries = h.sh("ls /tmp/hk-ka-canary-* 2>/dev/null; true").stdout.split()
        assert "/tmp/hk-ka-canary-0" not in canaries, (name, canaries)
        assert "# BEGIN hangup.ssh.keepalive" in h.sh("cat /home/carol/.ssh/config").stdout


def test_a_user_swapping_links_while_the_role_runs_gets_nothing_of_roots(lab):
    user_with(lab, "trudy")
    for h in lab.hosts.values():
        h.sh(f"mkdir -p -m 700 /root/.ssh && echo '# {ROOT_SECRET}' >> /root/.ssh/config && "
             f"(id hkcanary >/dev/null 2>&1 || useradd -M -p '{SHADOW_SECRET}' hkcanary) && rm -f /tmp/hk-ka-missing")
    watched = ["/etc/shadow", "/root/.ssh", "/root/.ssh/*"]
    before = checksums(lab, watched)
    loops = {n: h.sh(f"runuser -u trudy -- sh -c {shlex.quote(SWAP_LOOP)} >/dev/null 2>&1 & echo $!").stdout.strip()
             for n, h in lab.hosts.items()}
    outcomes = []
    try:
        for run in range(RACE_RUNS):
            # every fourth run as --check --diff: a diff must never show root's files either
            check = run % 4 == 3
            rc, out, _stats = run_playbook(all_hosts(lab), ROLE_PLAY, dict(CLIENT_ONLY, keepalive_users=["trudy"]),
                                           check=check, diff=check)
            outcomes.append(rc)
            assert ROOT_SECRET not in out and SHADOW_SECRET not in out, out[-3000:]
            assert "Traceback" not in out, out[-3000:]
    finally:
        for n, pid in loops.items():
            lab.host(n).sh(f"kill {pid}; pkill -u trudy; true")
    print(f"{RACE_RUNS} role runs against the swapping loop: rc {outcomes}")
    assert checksums(lab, watched) == before
    for name, h in lab.hosts.items():
        assert h.sh("ls /tmp/hk-ka-missing 2>/dev/null; true").stdout == "", name
        # whatever trudy's home holds now is trudy's
        assert h.sh("find /home/trudy ! -user trudy").stdout.strip() == "", name


def test_a_symlinked_home_is_configured(lab):
    user_with(lab, "sam", home_setup="id sam >/dev/null && mkdir -p /data/home && "
              "{ [ -L /home/sam ] || { mv /home/sam /data/home/sam && ln -s /data/home/sam /home/sam; }; }")
    rc, out, _stats = run_playbook(all_hosts(lab), ROLE_PLAY, dict(CLIENT_ONLY, keepalive_users=["sam"]))
    assert rc == 0, out[-3000:]
    for name, h in lab.hosts.items():
        assert h.sh("stat -c '%U %a' /data/home/sam/.ssh/config").stdout.split() == ["sam", "600"], name
        assert "hangup.ssh.keepalive" in h.sh("cat /data/home/sam/.ssh/config").stdout


def test_a_home_the_user_cannot_open_is_named_and_skipped_or_failed(lab):
    user_with(lab, "nina", home_setup="chown root: /home/nina && chmod 0700 /home/nina")
    rc, out, _stats = run_playbook(one_host(lab), ROLE_PLAY, dict(CLIENT_ONLY, keepalive_users=["nina"]))
    assert rc != 0 and "nina cannot open the home directory /home/nina" in out, out[-2000:]
    skip = dict(CLIENT_ONLY, keepalive_users=["nina"], keepalive_users_missing_home="skip")
    rc, out, _stats = run_playbook(one_host(lab), ROLE_PLAY, skip)
    assert rc == 0 and "nina cannot open the home directory /home/nina" in out, out[-2000:]


@contextlib.contextmanager
def scratch_host(name):
    """A Debian 12 container of the test's own, for a test that changes what the host is."""
    podman("rm", "-f", name, check=False)
    podman("run", "-d", "--name", name, "--hostname", name, "localhost/hangup-lab:d12")
    try:
        yield Host(name)
    finally:
        podman("rm", "-f", name, check=False)


def test_a_client_only_host_without_sshd(lab):
    name = "hk-ka-clientonly"
    with scratch_host(name) as h:
        # lab-init has started sshd once its pid file is there; then the package goes, without asking
        h.sh("for i in $(seq 50); do test -e /run/sshd.pid && break; sleep 0.2; done; "
             "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && "
             "DEBIAN_FRONTEND=noninteractive dpkg --purge openssh-server >/tmp/purge.log 2>&1; "
             "rm -f /usr/sbin/policy-rc.d; ! test -e /usr/sbin/sshd", timeout=120)
        rc, out, _stats = run_playbook([name], ROLE_PLAY, dict(CLIENT_ONLY, keepalive_users=[]))
        assert rc == 0, out[-3000:]
        eff = parse_dump(h.sh("ssh -G probe.invalid").stdout)
        assert eff["serveraliveinterval"] == str(derive_timing(KNOB, h.openssh_version(), "client")["interval"])
        rc, out, _stats = run_playbook([name], ROLE_PLAY, dict(CONVERGE_VARS, keepalive_users=[]))
        assert rc != 0 and "/usr/sbin/sshd is not installed" in out and "keepalive_server=false" in out, out[-2000:]


def test_a_platform_without_facts_fails_clearly_and_changes_nothing(lab):
    name = "hk-ka-unknown"
    with scratch_host(name) as h:
        # a distribution of no family the role knows: Ansible names the family after it
        h.sh("rm -f /etc/debian_version /etc/os-release /usr/lib/os-release && "
             "printf 'NAME=\"Hangup Test OS\"\\nID=hangupos\\nVERSION_ID=\"7\"\\n' > /etc/os-release")
        before = h.sh("sha256sum /etc/ssh/sshd_config /etc/ssh/ssh_config; ls /etc/ssh/sshd_config.d /etc/ssh/ssh_config.d").stdout
        rc, out, _stats = run_playbook([name], ROLE_PLAY, dict(CONVERGE_VARS, keepalive_users=[]))
        assert rc != 0 and "no platform facts for" in out and "Nothing was changed" in out, out[-2000:]
        assert h.sh("sha256sum /etc/ssh/sshd_config /etc/ssh/ssh_config; "
                    "ls /etc/ssh/sshd_config.d /etc/ssh/ssh_config.d").stdout == before
