#!/usr/bin/env bash
# A second ansible-core for sanity, in .lab/core-VERSION: ansible-test of each supported release
# checks the collection. Pins in requirements/core-VERSION.txt. Idempotent.
#   lab/venv-core.sh 2.20
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
core=${1:?usage: lab/venv-core.sh CORE_VERSION}
pins=$top/requirements/core-$core.txt
venv=$top/.lab/core-$core
python=$top/.venv/bin/python
[ -f "$pins" ] || { echo "venv-core: no $pins" >&2; exit 1; }
stamp=$(sha256sum "$pins" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
if [ -x "$venv/bin/ansible-test" ] && [ "$(cat "$venv/.hangup-stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "venv-core: $venv up to date"
    exit 0
fi
rm -rf "$venv"
# the same interpreter as .venv (pyenv's Python 3.13), never a shim
"$("$python" -c 'import sys; print(sys._base_executable)')" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$pins" 2>&1 | grep -v "^WARNING: Location" || true
"$venv/bin/ansible-test" --version >/dev/null
echo "$stamp" > "$venv/.hangup-stamp"
echo "venv-core: ready: $("$venv/bin/ansible-test" --version)"
