"""module_utils._openssh and the keepalive filters, over output recorded from every
OpenSSH of the lab images (tests/integration/record_openssh.py): Debian's 8.4, 9.2,
10.0 and 10.6, and the upstream builds 8.0 to 10.5."""

import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hangup.ssh.plugins.filter import keepalive as filters
from ansible_collections.hangup.ssh.plugins.module_utils import _openssh

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "openssh")
VERSIONS = {v: tuple(int(x) for x in v.split(".")) for v in os.listdir(FIXTURES)}


def fixture(version, name):
    with open(os.path.join(FIXTURES, version, name)) as f:
        return f.read()


@pytest.mark.parametrize("version", sorted(VERSIONS))
@pytest.mark.parametrize("name", ["sshd-V.txt", "ssh-V.txt"])
def test_parse_version_from_recorded_output(version, name):
    # 8.4's sshd has no -V: the version comes from its usage message
    assert _openssh.parse_version(fixture(version, name)) == VERSIONS[version]


@pytest.mark.parametrize("text", ["", None, "usage: sshd [-46DdeiqTt]", "OpenSSH_x.y", "9.2.1", "v9.2"])
def test_parse_version_absent(text):
    assert _openssh.parse_version(text) is None


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_parse_dump_recorded(version):
    sshd = _openssh.parse_dump(fixture(version, "sshd-T.txt"))
    ssh = _openssh.parse_dump(fixture(version, "ssh-G.txt"))
    assert sshd["clientaliveinterval"] == "0" and sshd["clientalivecountmax"] == "3"
    # 10.6 prints this flag as true, the others as yes
    assert sshd["tcpkeepalive"] in ("yes", "true") and sshd["port"] == "22"
    assert ssh["serveraliveinterval"] == "0" and ssh["serveralivecountmax"] == "3"
    assert ssh["hostname"] == "example.invalid"


def test_parse_dump_first_value_and_bare_keyword():
    got = _openssh.parse_dump("IdentityFile ~/.ssh/a\nidentityfile ~/.ssh/b\nipqos\n\n  Port 22  \n")
    assert got == {"identityfile": "~/.ssh/a", "ipqos": "", "port": "22"}


@pytest.mark.parametrize("version,side,factor", [
    ((8, 4), "server", 1), ((9, 2), "server", 2), ((9, 4), "server", 2), ((9, 5), "server", 1),
    ((10, 0), "server", 1), ((9, 2), "client", 1), (None, "server", 1),
])
def test_probe_factor(version, side, factor):
    assert _openssh.probe_factor(version, side) == factor


@pytest.mark.parametrize("n", [2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 900, 3600])
@pytest.mark.parametrize("version", [(8, 4), (9, 2), (10, 0)])
@pytest.mark.parametrize("side", ["server", "client"])
def test_derive_timing_window_within_20_percent(n, version, side):
    t = _openssh.derive_timing(n, version, side)
    assert t["interval"] >= 1 and t["count_max"] >= 1
    assert (t["expected_min"], t["expected_max"]) == _openssh.cutoff_window(
        t["interval"], t["count_max"], t["probe_factor"])
    # the whole window, not just its middle, stays within +-20% of N from 5 s up
    if n >= 5:
        assert 0.8 * n <= t["expected_min"] and t["expected_max"] <= 1.2 * n, t


def test_derive_timing_examples():
    assert _openssh.derive_timing(20, (10, 0)) == {
        "interval": 2, "count_max": 10, "probe_factor": 1, "expected_min": 20, "expected_max": 22}
    assert _openssh.derive_timing(20, (9, 2))["interval"] == 1
    with pytest.raises(ValueError, match="at least 2"):
        _openssh.derive_timing(1)


def test_filters():
    f = filters.FilterModule().filters()
    assert f["keepalive_timing"](20, "OpenSSH_9.2p1 Debian", "server")["probe_factor"] == 2
    assert f["keepalive_timing"]("20", "10.0", "client")["interval"] == 2
    assert f["openssh_version"](fixture("8.4", "sshd-V.txt")) == "8.4"
    assert f["openssh_settings"]("ClientAliveInterval 5")["clientaliveinterval"] == "5"
    with pytest.raises(AnsibleFilterError, match="side"):
        f["keepalive_timing"](20, None, "both")
    with pytest.raises(AnsibleFilterError, match="at least 2"):
        f["keepalive_timing"](0)
    with pytest.raises(AnsibleFilterError, match="OpenSSH_X.Y"):
        f["openssh_version"]("no version here")


def test_sshd_settings_derived_lowlevel_and_version_gates():
    new = _openssh.sshd_settings((10, 0), 20, tcp_keepalive=False, unused_connection_timeout=3600, idle_logout=900)
    assert new["settings"] == [["ClientAliveInterval", 2], ["ClientAliveCountMax", 10], ["TCPKeepAlive", "no"],
                               ["UnusedConnectionTimeout", "3600"], ["ChannelTimeout", "session*=900"]]
    assert new["skipped"] == []
    old = _openssh.sshd_settings((8, 4), 20, unused_connection_timeout=3600, idle_logout=900)
    assert [k for k, v in old["settings"]] == ["ClientAliveInterval", "ClientAliveCountMax"]
    assert old["skipped"] == ["UnusedConnectionTimeout", "ChannelTimeout"]
    # low-level values win, and the reported window follows them (and 9.2's doubling)
    low = _openssh.sshd_settings((9, 2), 20, client_alive_interval=5, client_alive_count_max=3)
    assert low["settings"][:2] == [["ClientAliveInterval", 5], ["ClientAliveCountMax", 3]]
    assert (low["timing"]["expected_min"], low["timing"]["expected_max"]) == (30, 40)


def test_ssh_settings_overrides_first_and_host_star_last():
    got = _openssh.ssh_settings((9, 2), 20, connect_timeout=10, tcp_keepalive=True, host_overrides=[
        {"host": "*.slow.example.com", "dead_peer_timeout": 120},
        {"host": "bastion", "server_alive_interval": 5, "server_alive_count_max": 2, "connect_timeout": 3},
    ])
    assert [b["host"] for b in got["hosts"]] == ["*.slow.example.com", "bastion", "*"]
    assert got["hosts"][0]["settings"][:2] == [["ServerAliveInterval", 12], ["ServerAliveCountMax", 10]]
    assert got["hosts"][1]["settings"] == [["ServerAliveInterval", 5], ["ServerAliveCountMax", 2],
                                           ["ConnectTimeout", 3], ["TCPKeepAlive", "yes"]]
    assert got["hosts"][2]["settings"] == [["ServerAliveInterval", 2], ["ServerAliveCountMax", 10],
                                           ["ConnectTimeout", 10], ["TCPKeepAlive", "yes"]]


def test_mismatches_against_recorded_dump():
    dump = fixture("9.2", "sshd-T.txt")
    want = [["ClientAliveInterval", 0], ["ClientAliveCountMax", 10], ["TCPKeepAlive", True], ["ChannelTimeout", "x"]]
    assert _openssh.mismatches(dump, want) == [
        {"keyword": "ClientAliveCountMax", "want": "10", "found": "3"},
        {"keyword": "ChannelTimeout", "want": "x", "found": None},
    ]
    assert _openssh.mismatches(dump, []) == []


GREP = """/etc/ssh/sshd_config:14:#ClientAliveInterval 0
/etc/ssh/sshd_config.d/00-aaa-early.conf:1:ClientAliveInterval 0
/etc/ssh/sshd_config.d/00-hangup-keepalive.conf:4:ClientAliveInterval 2
/etc/ssh/sshd_config:3:clientaliveinterval=2
/etc/ssh/sshd_config.d/90-x.conf:7:  ClientAliveInterval   30
/etc/ssh/sshd_config.d/90-x.conf:8:ClientAliveCountMax 9
"""


def test_setting_sources():
    got = _openssh.setting_sources(GREP, "clientaliveinterval", "/etc/ssh/sshd_config.d/00-hangup-keepalive.conf", "2")
    assert got == ["/etc/ssh/sshd_config.d/00-aaa-early.conf:1: ClientAliveInterval 0",
                   "/etc/ssh/sshd_config.d/90-x.conf:7: ClientAliveInterval 30"]
    assert _openssh.setting_sources("", "ClientAliveInterval") == []


def test_openssh_mismatches_filter_names_the_file():
    f = filters.FilterModule().filters()["openssh_mismatches"]
    got = f("clientaliveinterval 0\nclientalivecountmax 10\n", [["ClientAliveInterval", 2], ["ClientAliveCountMax", 10]],
            GREP, "/etc/ssh/sshd_config.d/00-hangup-keepalive.conf")
    assert len(got) == 1 and got[0]["found"] == "0"
    assert got[0]["sources"][0].startswith("/etc/ssh/sshd_config.d/00-aaa-early.conf:1")


def test_settings_filters_reject_unknown_options():
    f = filters.FilterModule().filters()
    with pytest.raises(AnsibleFilterError, match="unknown options colour"):
        f["keepalive_sshd_settings"]({"dead_peer_timeout": 20, "colour": 1}, "9.2")
    with pytest.raises(AnsibleFilterError, match="dead_peer_timeout"):
        f["keepalive_ssh_settings"]({}, "9.2")
    assert f["keepalive_ssh_settings"]({"dead_peer_timeout": 20, "connect_timeout": None}, "10.0")["hosts"][0]["host"] == "*"


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_the_stock_flags_match_what_the_role_writes_on_every_version(version):
    # the role writes yes/no; what each OpenSSH prints for them must count as the same
    for name in ("sshd-T.txt", "ssh-G.txt"):
        assert _openssh.mismatches(fixture(version, name), [["TCPKeepAlive", True]]) == [], (version, name)
        assert _openssh.mismatches(fixture(version, name), [["TCPKeepAlive", "no"]])[0]["want"] == "no"
