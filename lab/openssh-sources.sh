#!/usr/bin/env bash
# The upstream OpenSSH sources the lab builds images from: openssh-portable-TAG.tar.gz files (git
# archives of openssh-portable's release tags) beside a SHA256SUMS file, in LAB_OPENSSH_SOURCES
# (default: ../shared/openssh beside this checkout, or beside the local repository this checkout
# was cloned from, the first that exists).
#   lab/openssh-sources.sh [TAG...]     (default: every tag SHA256SUMS lists)
# Prints "TAG PATH" for each tarball that SHA256SUMS lists and that matches its sum; nothing it could
# not verify. With no sources it prints nothing, says on stderr that the upstream images are skipped
# and how to provide them, and exits 0. A listed tarball that is missing or does not match its sum,
# or a tag asked for that SHA256SUMS does not list, is an error (exit 1): nothing is built from it.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
default_dir() {
    local origin
    origin=$(git -C "$top" config --get remote.origin.url 2>/dev/null || true)
    # a clone of a local repository (git clone . /tmp/x) finds the sources beside its origin
    for d in "$top/../shared/openssh" ${origin:+"$origin/../shared/openssh"}; do
        if [ -f "$d/SHA256SUMS" ]; then echo "$d"; return; fi
    done
    echo "$top/../shared/openssh"
}
dir=${LAB_OPENSSH_SOURCES:-$(default_dir)}
die() { printf 'openssh-sources: ERROR: %s\n' "$*" >&2; exit 1; }

if [ ! -f "$dir/SHA256SUMS" ]; then
    printf 'openssh-sources: no upstream OpenSSH sources in %s: the upstream images are skipped (set LAB_OPENSSH_SOURCES to a directory with openssh-portable-TAG.tar.gz files and their SHA256SUMS)\n' "$dir" >&2
    exit 0
fi
declare -A sums=()
while read -r sum name; do
    [ -n "${sum:-}" ] || continue
    [[ $sum =~ ^[0-9a-f]{64}$ ]] || die "$dir/SHA256SUMS: not a sha256 line: $sum $name"
    [[ $name =~ ^openssh-portable-(V_[0-9]+_[0-9]+_P[0-9]+)\.tar\.gz$ ]] || die "$dir/SHA256SUMS: not a release tarball name: $name"
    sums[${BASH_REMATCH[1]}]=$sum
done < "$dir/SHA256SUMS"
tags=("$@")
[ ${#tags[@]} -gt 0 ] || mapfile -t tags < <(printf '%s\n' "${!sums[@]}" | sort -V)
for tag in "${tags[@]}"; do
    [ -n "${sums[$tag]:-}" ] || die "$tag: not listed in $dir/SHA256SUMS"
    file=$dir/openssh-portable-$tag.tar.gz
    [ -f "$file" ] || die "$file: listed in SHA256SUMS but missing"
    [ "$(sha256sum < "$file" | cut -d' ' -f1)" = "${sums[$tag]}" ] || die "$file: does not match its sum in SHA256SUMS; nothing is built from it"
    printf '%s %s\n' "$tag" "$(cd "$(dirname "$file")" && pwd)/$(basename "$file")"
done
