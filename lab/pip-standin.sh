#!/usr/bin/env bash
# ansible-test bootstraps pip into its venvs with a get-pip.py it downloads from a host this lab
# cannot reach; it first looks for one in its cache. This writes that script, which installs the
# pip wheel fetched from PyPI instead. Idempotent.
#   lab/pip-standin.sh PIP_VERSION PIP   (PIP: the pip of a venv that can download from PyPI)
set -euo pipefail
version=${1:?usage: lab/pip-standin.sh PIP_VERSION PIP}
pip=${2:?usage: lab/pip-standin.sh PIP_VERSION PIP}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wheels=${LAB_STATE_DIR:-$top/.lab}/wheels/pip
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache" "$wheels"
whl=$(find "$wheels" -maxdepth 1 -name "pip-$version-*.whl" | head -n1)
if [ -z "$whl" ]; then
    "$pip" download -q --no-deps --disable-pip-version-check -d "$wheels" "pip==$version" 2>&1 | grep -v "^WARNING: Location" || true
    whl=$(find "$wheels" -maxdepth 1 -name "pip-$version-*.whl" | head -n1)
fi
[ -n "$whl" ] || { echo "pip-standin: could not download pip $version" >&2; exit 1; }
# beside the script, not in this checkout: the cache is shared, and a checkout (a CI clone) may go away
cp "$whl" "$cache/"
whl="$cache/$(basename "$whl")"
cat > "$cache/get_pip_${version//./_}.py" <<EOF
# Written by hangup.ssh lab/pip-standin.sh: stands in for get-pip.py, offline.
# Called as get-pip.py is (pip==X --no-setuptools --no-wheel ...); installs the
# pip wheel fetched from PyPI instead of downloading one.
import runpy, sys
wheel = "$whl"
drop = {"--no-setuptools", "--no-wheel"}
args = [a for a in sys.argv[1:] if a not in drop and not a.startswith("pip==")]
sys.path.insert(0, wheel)
sys.argv = ["pip", "install", "--no-cache-dir", "--no-index", *args, wheel]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
EOF
