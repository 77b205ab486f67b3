#!/usr/bin/env bash
# Builds the lab images from Debian packages (debootstrap), no registry involved.
#
#   lab/images.sh [VARIANT...]     build what is missing (default: all variants)
#   lab/images.sh --list           print "variant image" for every variant
#
# Each image is tagged localhost/hangup-lab:VARIANT-HASH, HASH being a digest of
# this recipe, and aliased as localhost/hangup-lab:VARIANT. A present tag is
# reused; an image is tagged only after a smoke test inside it passed.
set -euo pipefail

repo=localhost/hangup-lab
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${LAB_STATE_DIR:-$here/../.lab}
variants=(d11 d12 d13 d12s)
base_packages=openssh-server,openssh-client,openssh-sftp-server,python3,procps,iproute2,sudo,tini
systemd_packages=systemd,systemd-sysv,dbus

suite_of() {
    case $1 in
        d11) echo bullseye ;;
        d12 | d12s) echo bookworm ;;
        d13) echo trixie ;;
        *) return 1 ;;
    esac
}

log() { printf 'images: %s\n' "$*"; }
die() { printf 'images: ERROR: %s\n' "$*" >&2; exit 1; }

recipe_hash() {
    # The recipe: package lists, suite, and the functions that build and customize
    # the root; a change to any of them rebuilds, housekeeping changes do not.
    { declare -f suite_of customize build; echo "$base_packages|$systemd_packages|$1"; } | sha256sum | cut -c1-12
}

mirror() {
    if [ -n "${LAB_DEBIAN_MIRROR:-}" ]; then echo "$LAB_DEBIAN_MIRROR"; return; fi
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -oE '(https?|file)://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

image_exists() { podman image exists "$1"; }

unmount_under() {
    # debootstrap mounts proc and sys inside the target; an aborted run can leave them.
    local dir=$1 m
    awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
}

clean_stale() {
    local d t
    for d in "$state"/build/*; do
        [ -e "$d" ] || continue
        log "removing leftover build directory $d"
        unmount_under "$d"
        rm -rf --one-file-system "$d"
    done
    for t in $(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$repo" | grep -- '-incomplete$' || true); do
        log "removing half-built image $t"
        podman rmi -f "$t" >/dev/null || true
    done
}

customize() {
    local root=$1 variant=$2
    rm -f "$root"/etc/ssh/ssh_host_*
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    mkdir -p "$root/run/sshd"
    # Host keys are made per container at start, so no two lab hosts share them.
    cat > "$root/usr/local/sbin/lab-init" <<'EOF'
#!/bin/sh
set -e
ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1 || ssh-keygen -A >/dev/null
/etc/init.d/ssh start
exec sleep infinity
EOF
    chmod 0755 "$root/usr/local/sbin/lab-init"
    if [ "$variant" = d12s ]; then
        mkdir -p "$root/etc/systemd/system/ssh.service.d"
        cat > "$root/etc/systemd/system/ssh.service.d/hostkeys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
        # Units that cannot work in a container only slow the boot down.
        for u in systemd-resolved.service systemd-timesyncd.service getty@tty1.service \
            systemd-networkd.service apt-daily.timer apt-daily-upgrade.timer; do
            ln -sf /dev/null "$root/etc/systemd/system/$u"
        done
    fi
}

build() {
    local variant=$1 suite hash tag alias tmp dir start include cmd
    suite=$(suite_of "$variant") || die "unknown variant '$variant' (known: ${variants[*]})"
    hash=$(recipe_hash "$variant")
    tag="$repo:$variant-$hash"
    alias="$repo:$variant"
    start=$(date +%s)
    if image_exists "$tag"; then
        podman tag "$tag" "$alias"
        log "$variant: reused $tag (0 s)"
        prune_old "$variant" "$hash"
        return
    fi
    include=$base_packages
    cmd='CMD ["/usr/bin/tini", "--", "/usr/local/sbin/lab-init"]'
    if [ "$variant" = d12s ]; then
        include="$include,$systemd_packages"
        cmd='CMD ["/lib/systemd/systemd"]'
    fi
    mkdir -p "$state/build"
    dir=$(mktemp -d "$state/build/$variant.XXXXXX")
    trap 'unmount_under "$dir"; rm -rf --one-file-system "$dir"' EXIT
    log "$variant: debootstrap $suite from $(mirror)"
    if ! debootstrap --variant=minbase --include="$include" "$suite" "$dir/root" "$(mirror)" > "$dir/debootstrap.log" 2>&1; then
        tail -n 20 "$dir/debootstrap.log" >&2
        die "$variant: debootstrap failed (log above); check the mirror (LAB_DEBIAN_MIRROR) and disk space"
    fi
    customize "$dir/root" "$variant"
    tar -C "$dir/root" --numeric-owner -cf "$dir/rootfs.tar" .
    tmp="$tag-incomplete"
    podman import --change "$cmd" \
        --change "LABEL org.hangup.lab.variant=$variant org.hangup.lab.recipe=$hash" \
        "$dir/rootfs.tar" "$tmp" >/dev/null
    if ! podman run --rm --network none "$tmp" sh -ec \
        'ssh-keygen -A >/dev/null; /usr/sbin/sshd -t; python3 -c "import sys; assert sys.version_info >= (3, 9)"; ssh -V'; then
        podman rmi -f "$tmp" >/dev/null || true
        die "$variant: smoke test failed inside the new image; nothing was tagged"
    fi
    podman tag "$tmp" "$tag"
    podman untag "$tmp" "$tmp"
    podman tag "$tag" "$alias"
    unmount_under "$dir"
    rm -rf --one-file-system "$dir"
    trap - EXIT
    log "$variant: built $tag in $(($(date +%s) - start)) s"
    prune_old "$variant" "$hash"
}

prune_old() {
    # Images of an older recipe; one still used by a container stays.
    local variant=$1 hash=$2 t
    for t in $(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$repo:$variant-*"); do
        [[ $t == "$repo:$variant-$hash" || ! $t =~ ^$repo:$variant-[0-9a-f]{12}$ ]] && continue
        if podman rmi "$t" >/dev/null 2>&1; then log "$variant: removed old $t"; fi
    done
}

if [ "${1:-}" = --list ]; then
    for v in "${variants[@]}"; do echo "$v $repo:$v"; done
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and podman import)"
command -v debootstrap >/dev/null || die "debootstrap missing: run 'make setup'"
mkdir -p "$state"
exec 9> "$state/images.lock"
flock -n 9 || { log "another build is running; waiting"; flock 9; }
clean_stale
total=$(date +%s)
for v in "${@:-${variants[@]}}"; do
    build "$v"
done
log "all images ready in $(($(date +%s) - total)) s"
