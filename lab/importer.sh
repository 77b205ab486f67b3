#!/usr/bin/env bash
# Runs galaxy-importer on a built collection tarball, as Galaxy and Automation Hub do on an upload:
# its ansible-lint on, its ansible-test off (make test runs sanity itself). Any warning or error fails.
#   lab/importer.sh setup              the venv .lab/importer from requirements/importer.txt (idempotent)
#   lab/importer.sh TARBALL
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$top/.lab/importer
pins=$top/requirements/importer.txt

setup() {
    local stamp py
    stamp=$(sha256sum "$pins" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.hangup-stamp" 2>/dev/null)" = "$stamp" ]; then
        echo "importer: $venv up to date"
        return
    fi
    # the same interpreter as .venv
    py=$("$top/.venv/bin/python" -c 'import sys; print(sys._base_executable)')
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$pins" 2>&1 | grep -v "^WARNING: Location" || :
    "$venv/bin/python" -c 'import galaxy_importer'
    echo "$stamp" > "$venv/.hangup-stamp"
    echo "importer: ready: galaxy-importer $("$venv/bin/pip" show galaxy-importer | sed -n 's/^Version: //p')"
}

[ "${1:?usage: lab/importer.sh setup|TARBALL}" = setup ] && { setup; exit 0; }
tarball=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = True\n' > "$work/importer.cfg"
# its ansible-lint and ansible-doc are the venv's, not .venv's
status=0
out=$(cd "$work" && GALAXY_IMPORTER_CONFIG=$work/importer.cfg PATH=$venv/bin:$PATH \
    "$venv/bin/python" -m galaxy_importer.main "$tarball" 2>&1) || status=$?
problems=$(grep -E '^(WARNING|ERROR)' <<<"$out" || :)
if [ "$status" -ne 0 ] || [ -n "$problems" ] || ! grep -q '^Importer processing completed successfully' <<<"$out"; then
    grep -v '^Loading ' <<<"$out" >&2
    echo "importer: ERROR: Galaxy would refuse or warn about $(basename "$tarball") (exit $status)" >&2
    exit 1
fi
echo "importer: galaxy-importer accepts $(basename "$tarball") with no warning ($(grep -c '^Loading ' <<<"$out") items of content)"
