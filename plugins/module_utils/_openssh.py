# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers about OpenSSH: versions, effective-config dumps, keepalive timing.

No I/O here: callers pass command output in, so everything is unit-tested
against output recorded from every OpenSSH of the lab (8.0 to 10.6).
"""

from __future__ import annotations

import math
import re

_VERSION = re.compile(r"OpenSSH_(\d+)\.(\d+)(?:p(\d+))?")
_BARE_VERSION = re.compile(r"^\s*(\d+)\.(\d+)\s*$")

# sshd 9.2 to 9.4 send client-alive probes at about twice ClientAliveInterval
# (measured in the lab; fixed in 9.5), so the server side compensates there.
SERVER_PROBE_FACTOR = ((9, 2), (9, 5), 2)


def parse_version(text):
    """'OpenSSH_9.2p1 Debian-2, OpenSSL ...' or '9.2' -> (9, 2); None when absent."""
    match = _VERSION.search(text or "") or _BARE_VERSION.match(text or "")
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def parse_dump(text):
    """Parse `sshd -T` / `ssh -G` output into {lowercase keyword: value}.

    Keywords that repeat (e.g. identityfile) keep their first value, which is
    the one in effect for single-valued options; keywords printed without a
    value (OpenSSH 8.4 does this for some) map to ''.
    """
    settings = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        key, _sep, value = line.partition(" ")
        settings.setdefault(key.lower(), value.strip())
    return settings


def probe_factor(version, side):
    """How many configured intervals pass between two probes in practice."""
    if side == "server" and version is not None:
        low, high, factor = SERVER_PROBE_FACTOR
        if low <= tuple(version) < high:
            return factor
    return 1


def cutoff_window(interval, count_max, factor=1):
    """Seconds from a peer's death until the session is dropped: (earliest, latest).

    The alive timer restarts on every packet received, and the session ends on
    the (count_max + 1)-th silent interval; a peer dies at some point inside an
    interval, hence a window one interval wide.
    """
    step = interval * factor
    return count_max * step, (count_max + 1) * step


def derive_timing(dead_peer_timeout, version=None, side="server"):
    """Interval and count so that a dead peer is dropped after about N seconds.

    The interval is about a tenth of N, so the window the peer can die in is
    +-5% of N; the count puts the window's middle as near N as it can.
    """
    if dead_peer_timeout < 2:
        raise ValueError("dead_peer_timeout must be at least 2 seconds")
    factor = probe_factor(version, side)
    interval = max(1, int(round(dead_peer_timeout / 10.0 / factor)))
    step = interval * factor
    count = max(1, int(math.floor(dead_peer_timeout / float(step))))
    # floor(N/step) or one less: whichever centres the window nearer to N
    if count > 1 and abs((count - 0.5) * step - dead_peer_timeout) < abs((count + 0.5) * step - dead_peer_timeout):
        count -= 1
    earliest, latest = cutoff_window(interval, count, factor)
    return {
        "interval": interval,
        "count_max": count,
        "probe_factor": factor,
        "expected_min": earliest,
        "expected_max": latest,
    }


def _yes_no(value):
    return "yes" if value else "no"


def _version_at_least(version, minimum):
    return version is not None and tuple(version) >= minimum


def sshd_settings(version, dead_peer_timeout, client_alive_interval=None, client_alive_count_max=None,
                  tcp_keepalive=None, unused_connection_timeout=None, idle_logout=None):
    """sshd keywords to write, in order, and those skipped on this version.

    Low-level values win over the derived ones. UnusedConnectionTimeout and
    ChannelTimeout exist since OpenSSH 9.2; older sshd refuses them, so they
    are reported as skipped rather than written.
    """
    timing = derive_timing(dead_peer_timeout, version, "server")
    settings = [
        ["ClientAliveInterval", client_alive_interval if client_alive_interval is not None else timing["interval"]],
        ["ClientAliveCountMax", client_alive_count_max if client_alive_count_max is not None else timing["count_max"]],
    ]
    if client_alive_interval is not None or client_alive_count_max is not None:
        timing = dict(timing, probe_factor=probe_factor(version, "server"))
        timing["expected_min"], timing["expected_max"] = cutoff_window(
            settings[0][1], settings[1][1], timing["probe_factor"])
    if tcp_keepalive is not None:
        settings.append(["TCPKeepAlive", _yes_no(tcp_keepalive)])
    skipped = []
    new_enough = _version_at_least(version, (9, 2))
    for keyword, value, text in (
        ("UnusedConnectionTimeout", unused_connection_timeout, "%s"),
        # "session*" matches the 9.2-9.4 types (session:shell, ...) and the later "session"
        ("ChannelTimeout", idle_logout, "session*=%s"),
    ):
        if value is None:
            continue
        if new_enough:
            settings.append([keyword, text % value])
        else:
            skipped.append(keyword)
    return {"settings": settings, "skipped": skipped, "timing": timing}


def ssh_settings(version, dead_peer_timeout, server_alive_interval=None, server_alive_count_max=None,
                 connect_timeout=None, tcp_keepalive=None, host_overrides=()):
    """Client Host blocks to write, most specific first: the overrides, then `Host *`."""
    def block(host, timeout, interval, count, connect, tcp):
        timing = derive_timing(timeout, version, "client")
        settings = [
            ["ServerAliveInterval", interval if interval is not None else timing["interval"]],
            ["ServerAliveCountMax", count if count is not None else timing["count_max"]],
        ]
        if connect is not None:
            settings.append(["ConnectTimeout", connect])
        if tcp is not None:
            settings.append(["TCPKeepAlive", _yes_no(tcp)])
        return {"host": host, "settings": settings}

    blocks = []
    for override in host_overrides or ():
        blocks.append(block(
            override["host"],
            override.get("dead_peer_timeout") or dead_peer_timeout,
            override.get("server_alive_interval"),
            override.get("server_alive_count_max"),
            override.get("connect_timeout", connect_timeout),
            tcp_keepalive,
        ))
    blocks.append(block("*", dead_peer_timeout, server_alive_interval, server_alive_count_max,
                        connect_timeout, tcp_keepalive))
    return {"hosts": blocks, "timing": derive_timing(dead_peer_timeout, version, "client")}


# OpenSSH 10.6 prints some flags as true/false in `sshd -T` and `ssh -G` (TCPKeepAlive), older as yes/no
_FLAG_WORDS = {"true": "yes", "false": "no"}


def _same_value(have, want):
    have, want = have.lower(), want.lower()
    return _FLAG_WORDS.get(have, have) == _FLAG_WORDS.get(want, want)


def mismatches(dump_text, wanted):
    """Which wanted [keyword, value] pairs the effective dump does not show.

    Returns [{'keyword', 'want', 'found'}]; comparison ignores case, as OpenSSH does
    for keywords and for yes/no values, and takes true/false for yes/no.
    """
    found = parse_dump(dump_text)
    result = []
    for keyword, value in wanted:
        have = found.get(keyword.lower())
        want = _yes_no(value) if isinstance(value, bool) else str(value)
        if have is None or not _same_value(have, want):
            result.append({"keyword": keyword, "want": want, "found": have})
    return result


def setting_sources(grep_output, keyword, ours=None, want=None):
    """Places (from `grep -Hin`) that set `keyword`, other than the role's own.

    `ours` is the role's file; lines there, and lines elsewhere that set the wanted
    value (the role's managed block), are not sources of a conflict.
    """
    pattern = re.compile(r"^(?P<path>.+?):(?P<line>\d+):\s*(?P<key>\S+?)(?:\s*=\s*|\s+)(?P<value>.*?)\s*$")
    sources = []
    for line in (grep_output or "").splitlines():
        match = pattern.match(line)
        if not match or match.group("key").lower() != keyword.lower():
            continue
        if ours and match.group("path") == ours:
            continue
        if want is not None and match.group("value").lower() == str(want).lower():
            continue
        sources.append("%s:%s: %s %s" % (match.group("path"), match.group("line"),
                                         match.group("key"), match.group("value")))
    return sources
