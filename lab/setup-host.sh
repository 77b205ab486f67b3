#!/usr/bin/env bash
# Host preparation for the lab: Debian packages and the podman configuration.
# Idempotent. Changes on the host (see README, "What make setup changes"):
#   - installs podman, runc, debootstrap, iptables, shellcheck, and gcc for a unit test's setuid-root helper
#     (Debian packages)
#   - writes /etc/containers/containers.conf, marked as ours; a file that is
#     not ours is never overwritten.
set -euo pipefail

conf=/etc/containers/containers.conf
marker="# managed by hangup.ssh lab (lab/setup-host.sh)"
packages=(podman runc debootstrap iptables shellcheck gcc libc6-dev python3-venv)

log() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (podman as root and debootstrap need it); try: sudo make setup"

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
    apt-get update -q >/dev/null || die "apt-get update failed: check the Debian mirror in /etc/apt/sources.list*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
else
    log "packages present: ${packages[*]}"
fi

want_conf() {
    cat <<EOF
$marker
# crun cannot run here (hybrid cgroups) and the sandbox cannot raise rlimits,
# so the lab uses runc and explicit ulimits. Remove this file to undo.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
# containers whose PID 1 ignores SIGTERM would otherwise delay every rm by 10 s
stop_timeout = 1
# images are built locally: a missing one must fail at once, not try a registry
pull_policy = "never"
EOF
}

if [ -e "$conf" ] && ! head -n1 "$conf" | grep -qF "$marker"; then
    # A foreign file is kept; it is acceptable when it already sets what the lab needs.
    if grep -Eq '^\s*runtime\s*=\s*"runc"' "$conf" && grep -Eq '^\s*default_ulimits' "$conf"; then
        log "keeping existing $conf (not ours; it sets runtime=runc and default_ulimits)"
    else
        die "$conf exists and is not managed by this project, and it does not set
  runtime = \"runc\" and default_ulimits, which podman needs on this machine.
  Either move it aside and run 'make setup' again (it will write its own), or add:
$(want_conf | sed -n '/^\[/,$p' | sed 's/^/    /')"
    fi
elif [ -e "$conf" ] && diff -q <(want_conf) "$conf" >/dev/null; then
    log "$conf up to date"
else
    log "writing $conf"
    mkdir -p "$(dirname "$conf")"
    tmp=$(mktemp "$conf.XXXXXX")
    want_conf > "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$conf"
fi

podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null | grep -qx runc \
    || die "podman does not use runc after configuration; see 'podman info'"
log "podman $(podman version --format '{{.Client.Version}}') with runc: ok"
