#!/usr/bin/env bash
# Creates .venv with the pinned controller tooling, the collections taken from the
# 'ansible' wheel on PyPI (never Galaxy) and the offline pieces ansible-test needs.
# Idempotent: does nothing when the stamp matches the requirement files.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$top/.venv}
state=${LAB_STATE_DIR:-$top/.lab}
python_version=${CONTROLLER_PYTHON_VERSION:-3.13}
# containers.podman ships inside this release of the 'ansible' bundle.
ansible_wheel=ansible==14.5.0
bundled_collections=(containers/podman)
# ansible-test bootstraps pip in its venvs from a script it would download.
ansible_test_pip=25.2

log() { printf 'venv: %s\n' "$*"; }
die() { printf 'venv: ERROR: %s\n' "$*" >&2; exit 1; }

find_python() {
    local p root
    # pyenv shims answer for versions that are not selected: use real binaries only.
    p=$(command -v "python$python_version" 2>/dev/null || true)
    # nor the venv being rebuilt, which make puts first on PATH
    if [ -n "$p" ] && [[ $p != */shims/* ]] && [[ $p != "$venv"/* ]] && "$p" -c '' 2>/dev/null; then echo "$p"; return; fi
    root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    for p in "$root"/versions/"$python_version".*/bin/python"$python_version"; do
        [ -x "$p" ] && "$p" -c '' 2>/dev/null && { echo "$p"; return; }
    done
    return 1
}

stamp_now() {
    cat "$top/requirements/dev.txt" "$top/requirements/constraints.txt" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16
}

# ansible.cfg finds hangup.ssh (this checkout) through this link, so that
# `ansible all -m hung_sessions` works from the repository root
link="$top/.lab/collections/ansible_collections/hangup/ssh"
mkdir -p "$(dirname "$link")"
[ "$(readlink "$link" 2>/dev/null)" = ../../../.. ] || ln -sfn ../../../.. "$link"

# ansible-test's pip bootstrap stand-in (written below), and the wheel it installs, are still there
standin_ok() {
    local script="$HOME/.ansible/test/cache/get_pip_${ansible_test_pip//./_}.py" wheel
    wheel=$(sed -n 's/^wheel = "\(.*\)"$/\1/p' "$script" 2>/dev/null)
    [ -n "$wheel" ] && [ -f "$wheel" ]
}

stamp="$venv/.hangup-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(stamp_now)" ] && [ -x "$venv/bin/ansible" ] && standin_ok; then
    log "$venv up to date"
    exit 0
fi

py=$(find_python) || die "Python $python_version not found (looked on PATH and in pyenv's versions); install it, or set CONTROLLER_PYTHON_VERSION"
log "creating $venv with $py"
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$top/requirements/dev.txt" -c "$top/requirements/constraints.txt" \
    || die "pip install failed (see above); PyPI must be reachable"

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$state/wheels"
whl=$(find "$state/wheels" -maxdepth 1 -name "ansible-${ansible_wheel#ansible==}-*.whl" | head -n1)
if [ -z "$whl" ]; then
    log "downloading $ansible_wheel (only its bundled collections are used)"
    "$venv/bin/pip" download -q --no-deps -d "$state/wheels" "$ansible_wheel"
    whl=$(find "$state/wheels" -maxdepth 1 -name "ansible-${ansible_wheel#ansible==}-*.whl" | head -n1)
fi
for c in "${bundled_collections[@]}"; do
    log "installing ${c/\//.} from $(basename "$whl")"
    "$venv/bin/python" - "$whl" "ansible_collections/$c/" "$site" <<'EOF'
import sys, zipfile
whl, prefix, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    members = [m for m in z.namelist() if m.startswith(prefix)]
    if not members:
        sys.exit(f"{prefix} not found in {whl}")
    z.extractall(dest, members)
EOF
done

# ansible-test looks for this script before trying to download one.
"$top/lab/pip-standin.sh" "$ansible_test_pip" "$venv/bin/pip"

stamp_now > "$stamp"
log "ready: ansible-core $("$venv/bin/python" -c "import ansible.release as r; print(r.__version__)"), containers.podman $("$venv/bin/python" -c "import json, sys; print(json.load(open(sys.argv[1]))[\"collection_info\"][\"version\"])" "$site/ansible_collections/containers/podman/MANIFEST.json")"
