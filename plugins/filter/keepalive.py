# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the keepalive role uses to turn 'drop a dead peer after N s' into settings."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hangup.ssh.plugins.module_utils._openssh import (
    derive_timing,
    mismatches,
    parse_dump,
    parse_version,
    setting_sources,
    ssh_settings,
    sshd_settings,
)


def keepalive_timing(dead_peer_timeout, version=None, side="server"):
    if side not in ("server", "client"):
        raise AnsibleFilterError("keepalive_timing: side must be 'server' or 'client', not %r" % (side,))
    try:
        return derive_timing(int(dead_peer_timeout), _version(version), side)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("keepalive_timing: %s" % exc)


def openssh_version(text):
    version = parse_version(text)
    if version is None:
        raise AnsibleFilterError("openssh_version: no 'OpenSSH_X.Y' in %r" % (text[:200],))
    return "%d.%d" % version


def openssh_settings(text):
    return parse_dump(text)


def _version(version):
    return parse_version(version) if isinstance(version, str) else version


def _settings(name, derive, allowed, options, version):
    """Check the options against `allowed`, then call `derive` with AnsibleFilterError on bad input."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise AnsibleFilterError("%s: unknown options %s" % (name, ", ".join(unknown)))
    opts = dict((k, v) for k, v in options.items() if v is not None)
    try:
        return derive(_version(version), int(opts.pop("dead_peer_timeout")), **opts)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("%s: %s" % (name, exc))


def keepalive_sshd_settings(options, version):
    return _settings("keepalive_sshd_settings", sshd_settings,
                     ("dead_peer_timeout", "client_alive_interval", "client_alive_count_max", "tcp_keepalive",
                      "unused_connection_timeout", "idle_logout"), options, version)


def keepalive_ssh_settings(options, version):
    return _settings("keepalive_ssh_settings", ssh_settings,
                     ("dead_peer_timeout", "server_alive_interval", "server_alive_count_max", "connect_timeout",
                      "tcp_keepalive", "host_overrides"), options, version)


def openssh_mismatches(text, wanted, grep_output="", ours=None):
    """Mismatches, each with the places that set the keyword (from grep -Hin output)."""
    result = mismatches(text, wanted)
    for item in result:
        item["sources"] = setting_sources(grep_output, item["keyword"], ours, item["want"])
    return result


class FilterModule:
    def filters(self):
        return {
            "keepalive_timing": keepalive_timing,
            "openssh_version": openssh_version,
            "openssh_settings": openssh_settings,
            "openssh_mismatches": openssh_mismatches,
            "keepalive_sshd_settings": keepalive_sshd_settings,
            "keepalive_ssh_settings": keepalive_ssh_settings,
        }
