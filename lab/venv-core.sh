#!/usr/bin/env bash
# Another ansible-core, in .lab/core-VERSION, on the Python given (default: .venv's): ansible-test of
# each supported release checks the collection, and the oldest runs a scenario's checks. Pins in
# requirements/core-VERSION.txt. Idempotent.
#   lab/venv-core.sh 2.20
#   lab/venv-core.sh 2.19 3.11
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
core=${1:?usage: lab/venv-core.sh CORE_VERSION [PYTHON_VERSION]}
python_version=${2:-}
pins=$top/requirements/core-$core.txt
venv=$top/.lab/core-$core
[ -f "$pins" ] || { echo "venv-core: no $pins" >&2; exit 1; }

find_python() {
    local p root
    if [ -z "$python_version" ]; then
        # the same interpreter as .venv, never a shim
        "$top/.venv/bin/python" -c 'import sys; print(sys._base_executable)'
        return
    fi
    for p in "$(command -v "python$python_version" 2>/dev/null || true)" "/usr/bin/python$python_version"; do
        # pyenv shims answer for versions that are not selected: real binaries only
        if [ -n "$p" ] && [[ $p != */shims/* ]] && "$p" -c 'import venv' 2>/dev/null; then echo "$p"; return; fi
    done
    root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    for p in "$root"/versions/"$python_version".*/bin/python"$python_version"; do
        [ -x "$p" ] && "$p" -c 'import venv' 2>/dev/null && { echo "$p"; return; }
    done
    return 1
}

stamp=$(sha256sum "$pins" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)-$python_version
if [ -x "$venv/bin/ansible-test" ] && [ "$(cat "$venv/.hangup-stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "venv-core: $venv up to date"
else
    py=$(find_python) || { echo "venv-core: Python $python_version not found (PATH, /usr/bin, pyenv)" >&2; exit 1; }
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$pins" 2>&1 | grep -v "^WARNING: Location" || true
    "$venv/bin/ansible-test" --version >/dev/null
    echo "$stamp" > "$venv/.hangup-stamp"
    echo "venv-core: ready: $("$venv/bin/ansible-test" --version) on $("$venv/bin/python" --version)"
fi
# the pip this release's ansible-test bootstraps into its venvs (get_venv_packages), offline
reqs=$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py
pip_version=$(sed -n "s/^ *pip='\([0-9.]*\)',*$/\1/p" "$reqs" | head -n1)
[ -n "$pip_version" ] || { echo "venv-core: no pip version found in $reqs" >&2; exit 1; }
"$top/lab/pip-standin.sh" "$pip_version" "$venv/bin/pip"
