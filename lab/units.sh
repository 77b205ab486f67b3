#!/usr/bin/env bash
# Unit tests: fast, no containers. pytest's exit 5 ("no tests collected") is
# an error here with its own message: an empty run must never pass for green.
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top" || exit 1
python -m pytest -p no:cacheprovider -q tests/unit "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "units: ERROR: pytest collected no tests under tests/unit; a run that tests nothing is a failure" >&2
fi
exit "$rc"
