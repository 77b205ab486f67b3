#!/usr/bin/env bash
# Builds the lab images from Debian packages (debootstrap), no registry involved.
#
#   lab/images.sh [VARIANT...]     build what is missing (default: all variants)
#   lab/images.sh --list           print "variant image" for every variant
#
# Debian variants come from the distribution's packages: d11 (OpenSSH 8.4), d12 (9.2),
# d13 (10.0), d14 (forky, 10.6) and d12s (d12 under systemd). Upstream variants (u80 ...
# u105) are OpenSSH release tags compiled in the builder image from the sources that
# lab/openssh-sources.sh verifies, then installed over d12 (d12s for the systemd layouts)
# in the layout of a distribution that ships that release (see layout_of); without
# sources they are skipped with one line.
#
# Each image is tagged localhost/hangup-lab:VARIANT-HASH, HASH being a digest of
# this recipe (and, upstream, of the source tarball and the images it builds on), and
# aliased as localhost/hangup-lab:VARIANT. A present tag is reused; an image is tagged
# only after a smoke test inside it passed.
set -euo pipefail

repo=localhost/hangup-lab
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${LAB_STATE_DIR:-$here/../.lab}
debian_variants=(d11 d12 d13 d14 d12s)
upstream_variants=(u80 u87 u89 u94 u96 u99 u105)
variants=("${debian_variants[@]}" "${upstream_variants[@]}")
base_packages=openssh-server,openssh-client,openssh-sftp-server,python3,procps,iproute2,sudo,tini
systemd_packages=systemd,systemd-sysv,dbus
# what compiling OpenSSH takes (8.0's configure wants OpenSSL's headers even --without-openssl;
# PAM as every distribution has it, which also lets key logins into accounts without a password)
builder_packages=autoconf,automake,gcc,make,libc6-dev,zlib1g-dev,libssl-dev,libpam0g-dev

suite_of() {
    case $1 in
        d11) echo bullseye ;;
        d12 | d12s) echo bookworm ;;
        d13) echo trixie ;;
        d14) echo forky ;;
        builder) echo bookworm ;;
        *) return 1 ;;
    esac
}

# The upstream release each u variant builds, and the distribution layout it gets:
# where sshd_config reads drop-ins, the service's name and manager, the libexec and
# privilege separation paths, and what /etc/os-release says (so that Ansible, and the
# role's vars files, see the distribution that ships the release).
tag_of() {
    case $1 in
        u80) echo V_8_0_P1 ;; u87) echo V_8_7_P1 ;; u89) echo V_8_9_P1 ;; u94) echo V_9_4_P1 ;;
        u96) echo V_9_6_P1 ;; u99) echo V_9_9_P1 ;; u105) echo V_10_5_P1 ;;
        *) return 1 ;;
    esac
}

# 8.0's seccomp filter predates Debian 12's glibc, whose calls kill its pre-auth child (RHEL 8
# patches the filter); the rlimit sandbox is upstream's portable one.
sandbox_of() {
    case $1 in
        V_8_0_P1) echo rlimit ;;
        *) echo seccomp_filter ;;
    esac
}

layout_of() {
    case $1 in
        u80) echo rhel8 ;; u87) echo rhel9 ;; u99) echo rhel10 ;;
        u89) echo ubuntu22 ;; u96) echo ubuntu24 ;;
        u94 | u105) echo debian12 ;;
        *) return 1 ;;
    esac
}

log() { printf 'images: %s\n' "$*"; }
die() { printf 'images: ERROR: %s\n' "$*" >&2; exit 1; }

recipe_hash() {
    # The recipe: package lists, suite, and the functions that build and customize
    # the root; a change to any of them rebuilds, housekeeping changes do not.
    local packages="$base_packages|$systemd_packages"
    [ "$1" != builder ] || packages=$builder_packages
    { declare -f suite_of customize build begin finish; echo "$packages|$1"; } | sha256sum | cut -c1-12
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

begin() {
    # Reuses the image of this recipe when it exists (returns 1); else says that a build starts.
    local variant=$1 hash=$2
    if image_exists "$repo:$variant-$hash"; then
        podman tag "$repo:$variant-$hash" "$repo:$variant"
        log "$variant: reused $repo:$variant-$hash (0 s)"
        prune_old "$variant" "$hash"
        return 1
    fi
    mkdir -p "$state/build"
}

finish() {
    # Tags the image built as TMP once SMOKE passed inside it; else removes it and fails.
    local variant=$1 hash=$2 tmp=$3 smoke=$4 start=$5 tag="$repo:$1-$2"
    if ! podman run --rm --network none --entrypoint '' "$tmp" sh -ec "$smoke"; then
        podman rmi -f "$tmp" >/dev/null || true
        die "$variant: smoke test failed inside the new image; nothing was tagged"
    fi
    podman tag "$tmp" "$tag"
    podman untag "$tmp" "$tmp"
    podman tag "$tag" "$repo:$variant"
    log "$variant: built $tag in $(($(date +%s) - start)) s"
    prune_old "$variant" "$hash"
}

build() {
    local variant=$1 suite hash dir start include cmd script smoke
    case $variant in u*) build_upstream "$variant"; return ;; esac
    suite=$(suite_of "$variant") || die "unknown variant '$variant' (known: ${variants[*]})"
    hash=$(recipe_hash "$variant")
    start=$(date +%s)
    begin "$variant" "$hash" || return 0
    include=$base_packages
    cmd='CMD ["/usr/bin/tini", "--", "/usr/local/sbin/lab-init"]'
    smoke='ssh-keygen -A >/dev/null; /usr/sbin/sshd -t; python3 -c "import sys; assert sys.version_info >= (3, 9)"; ssh -V'
    case $variant in
        d12s) include="$include,$systemd_packages"; cmd='CMD ["/lib/systemd/systemd"]' ;;
        builder) include=$builder_packages; cmd='CMD ["/bin/sh"]'; smoke='autoconf --version >/dev/null; cc --version' ;;
    esac
    # debootstrap has no script of its own for a testing release that is younger than it
    script=/usr/share/debootstrap/scripts/$suite
    [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
    dir=$(mktemp -d "$state/build/$variant.XXXXXX")
    trap 'unmount_under "$dir"; rm -rf --one-file-system "$dir"' EXIT
    log "$variant: debootstrap $suite from $(mirror)"
    if ! debootstrap --variant=minbase --include="$include" "$suite" "$dir/root" "$(mirror)" "$script" > "$dir/debootstrap.log" 2>&1; then
        tail -n 20 "$dir/debootstrap.log" >&2
        die "$variant: debootstrap failed (log above); check the mirror (LAB_DEBIAN_MIRROR) and disk space"
    fi
    customize "$dir/root" "$variant"
    tar -C "$dir/root" --numeric-owner -cf "$dir/rootfs.tar" .
    podman import --change "$cmd" \
        --change "LABEL org.hangup.lab.variant=$variant org.hangup.lab.recipe=$hash" \
        "$dir/rootfs.tar" "$repo:$variant-$hash-incomplete" >/dev/null
    unmount_under "$dir"
    rm -rf --one-file-system "$dir"
    trap - EXIT
    finish "$variant" "$hash" "$repo:$variant-$hash-incomplete" "$smoke" "$start"
}

# Runs in the builder, the sources at /src/openssh.tar.gz (a git tree: configure is made here,
# with aclocal for the m4/ macros of 8.7 on).
# shellcheck disable=SC2016  # expanded inside the builder, not here
compile_openssh='
mkdir /build && cd /build && tar -xzf /src/openssh.tar.gz --strip-components=1
autoreconf
./configure --without-openssl --with-pam --with-sandbox="$SANDBOX" --prefix=/usr --sysconfdir=/etc/ssh \
    --libexecdir="$LIBEXEC" --with-privsep-path="$PRIVSEP" >/dev/null
make -j"$(nproc)" >/dev/null
make install-nokeys DESTDIR=/dist >/dev/null
rm -rf /dist/usr/share/man
'

# Runs in a container of the base image, the compiled tree at /dist: replaces Debian's OpenSSH
# and lays the configuration out as LAYOUT's distribution does.
# shellcheck disable=SC2016  # expanded inside the container, not here
install_layout='
dpkg --remove --force-depends openssh-server openssh-sftp-server openssh-client >/dev/null 2>&1
rm -rf /etc/ssh && cp -a /dist/. /
rm -f /etc/ssh/ssh_host_*
id sshd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir "$PRIVSEP" --shell /usr/sbin/nologin sshd
mkdir -p "$PRIVSEP" /etc/ssh/ssh_config.d && chmod 0755 "$PRIVSEP"
settings="UsePAM yes
AuthorizedKeysFile .ssh/authorized_keys
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp $LIBEXEC/sftp-server"
printf "Include /etc/ssh/ssh_config.d/*.conf\n\nHost *\n    SendEnv LANG LC_*\n" > /etc/ssh/ssh_config
case $LAYOUT in
rhel8)
    # RHEL 8: no sshd_config.d, no Include; the settings in sshd_config itself
    printf "HostKey /etc/ssh/ssh_host_ed25519_key\nSyslogFacility AUTHPRIV\n%s\n" "$settings" > /etc/ssh/sshd_config ;;
rhel*)
    # RHEL 9 and 10: Include first, the vendor drop-in 50-redhat.conf sorting after 00-... ones
    mkdir -p /etc/ssh/sshd_config.d
    printf "Include /etc/ssh/sshd_config.d/*.conf\n\nHostKey /etc/ssh/ssh_host_ed25519_key\nAuthorizedKeysFile .ssh/authorized_keys\nUsePAM yes\nSubsystem sftp %s/sftp-server\n" "$LIBEXEC" > /etc/ssh/sshd_config
    printf "SyslogFacility AUTHPRIV\nKbdInteractiveAuthentication no\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\n" > /etc/ssh/sshd_config.d/50-redhat.conf
    printf "Match final all\n    ForwardX11Trusted yes\n" > /etc/ssh/ssh_config.d/50-redhat.conf ;;
*)
    # Debian and Ubuntu: Include first, no vendor drop-in; the init script of Debian (dpkg --remove
    # keeps it, not executable) starts and reloads the upstream sshd
    chmod 0755 /etc/init.d/ssh
    mkdir -p /etc/ssh/sshd_config.d
    printf "Include /etc/ssh/sshd_config.d/*.conf\n\nKbdInteractiveAuthentication no\n%s\n" "$settings" > /etc/ssh/sshd_config ;;
esac
case $LAYOUT in
rhel*)
    version=${LAYOUT#rhel}.0
    rm -rf /etc/init.d/ssh /etc/systemd/system/sshd.service /etc/systemd/system/ssh.service.d \
        /etc/systemd/system/multi-user.target.wants/ssh.service /etc/debian_version
    printf "[Unit]\nDescription=OpenSSH server daemon\nAfter=network.target\n\n[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\nExecStart=/usr/sbin/sshd -D\nExecReload=/bin/kill -HUP \$MAINPID\nKillMode=process\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n" > /lib/systemd/system/sshd.service
    ln -sf /lib/systemd/system/sshd.service /etc/systemd/system/multi-user.target.wants/sshd.service
    printf "Red Hat Enterprise Linux release %s\n" "$version" > /etc/redhat-release
    rm -f /etc/os-release
    printf "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"%s\"\nPRETTY_NAME=\"Red Hat Enterprise Linux %s (lab: upstream OpenSSH on Debian 12)\"\n" "$version" "$version" > /etc/os-release ;;
ubuntu*)
    version=${LAYOUT#ubuntu}.04
    rm -f /etc/os-release
    printf "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"%s\"\nPRETTY_NAME=\"Ubuntu %s (lab: upstream OpenSSH on Debian 12)\"\n" "$version" "$version" > /etc/os-release ;;
esac
'

build_upstream() {
    local variant=$1 otag layout src base hash start dir libexec privsep cmd want started
    otag=$(tag_of "$variant") || die "unknown variant '$variant' (known: ${variants[*]})"
    layout=$(layout_of "$variant")
    src=${sources[$otag]:-}
    if [ -z "$src" ]; then
        log "$variant: skipped, no verified sources of $otag (see lab/openssh-sources.sh)"
        return
    fi
    case $layout in
        rhel*) base=d12s libexec=/usr/libexec/openssh privsep=/usr/share/empty.sshd cmd='CMD ["/lib/systemd/systemd"]' ;;
        *) base=d12 libexec=/usr/lib/openssh privsep=/run/sshd cmd='CMD ["/usr/bin/tini", "--", "/usr/local/sbin/lab-init"]' ;;
    esac
    build builder
    build "$base"
    hash=$({ declare -f tag_of layout_of sandbox_of build_upstream; echo "$compile_openssh$install_layout$cmd"
             sha256sum < "$src"; podman image inspect --format '{{.Id}}' "$repo:builder" "$repo:$base"; } | sha256sum | cut -c1-12)
    start=$(date +%s)
    begin "$variant" "$hash" || return 0
    dir=$(mktemp -d "$state/build/$variant.XXXXXX")
    trap 'podman rm -f "hk-build-$variant" >/dev/null 2>&1; rm -rf --one-file-system "$dir"' EXIT
    mkdir "$dir/dist"
    log "$variant: compiling $otag ($(basename "$src")) in the builder"
    if ! podman run --rm --network none -e LIBEXEC="$libexec" -e PRIVSEP="$privsep" \
        -e SANDBOX="$(sandbox_of "$otag")" -v "$src:/src/openssh.tar.gz:ro" -v "$dir/dist:/dist" "$repo:builder" sh -ec "$compile_openssh" > "$dir/build.log" 2>&1; then
        tail -n 30 "$dir/build.log" >&2
        die "$variant: $otag did not build (log above)"
    fi
    log "$variant: installing it over $base in the $layout layout"
    podman rm -f "hk-build-$variant" >/dev/null 2>&1 || true
    podman run --name "hk-build-$variant" --network none --entrypoint '' \
        -e LAYOUT="$layout" -e LIBEXEC="$libexec" -e PRIVSEP="$privsep" \
        -v "$dir/dist:/dist:ro" "$repo:$base" sh -ec "$install_layout" || die "$variant: the $layout layout failed (above)"
    podman commit -q --change "$cmd" --change 'ENTRYPOINT []' \
        --change "LABEL org.hangup.lab.variant=$variant org.hangup.lab.recipe=$hash org.hangup.lab.openssh=$otag org.hangup.lab.layout=$layout" \
        "hk-build-$variant" "$repo:$variant-$hash-incomplete" >/dev/null
    podman rm -f "hk-build-$variant" >/dev/null
    rm -rf --one-file-system "$dir"
    trap - EXIT
    # the service the layout names must start sshd
    case $layout in
        rhel*) started='systemd-analyze verify /lib/systemd/system/sshd.service' ;;
        *) started='/etc/init.d/ssh start >/dev/null; for i in 1 2 3 4 5 6 7 8 9 10; do test -e /run/sshd.pid && break; sleep 0.3; done; test -e /run/sshd.pid' ;;
    esac
    want=$(echo "$otag" | sed -E 's/^V_([0-9]+)_([0-9]+)_P([0-9]+)$/OpenSSH_\1.\2p\3/')
    finish "$variant" "$hash" "$repo:$variant-$hash-incomplete" \
        "ssh-keygen -A >/dev/null; /usr/sbin/sshd -t; python3 -c 'import sys'; ssh -V 2>&1 | grep -q '^$want'; $started" "$start"
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
declare -A sources=()
wanted=("${@:-${variants[@]}}")
if printf '%s\n' "${wanted[@]}" | grep -q '^u'; then
    # one verification of every tarball, and one line when there are none
    listing=$("$here/openssh-sources.sh") || die "the upstream OpenSSH sources did not verify (above); nothing is built from them"
    while read -r t p; do [ -z "$t" ] || sources[$t]=$p; done <<< "$listing"
fi
total=$(date +%s)
for v in "${wanted[@]}"; do
    build "$v"
done
log "all images ready in $(($(date +%s) - total)) s"
