#!/usr/bin/env bash
# ansible-test sanity on the files git would commit (tracked, or new and not
# ignored), from a copy laid out as ansible_collections/hangup/ssh outside the
# repository: ansible-test needs that path, and inside this git tree it would
# take the copy for ignored files.
#   lab/sanity.sh                   with the ansible-core of .venv
#   lab/sanity.sh --core 2.20       with the ansible-core of .lab/core-2.20 (lab/venv-core.sh)
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python_version=${CONTROLLER_PYTHON_VERSION:-3.13}
ansible_test=ansible-test
core=default
if [ "${1:-}" = --core ]; then
    core=$2
    shift 2
    ansible_test=$top/.lab/core-$core/bin/ansible-test
    [ -x "$ansible_test" ] || { echo "sanity: $ansible_test missing: run make setup" >&2; exit 1; }
fi
echo "sanity: $("$ansible_test" --version)"
# one copy per checkout and ansible-core, so two clones on a machine do not clobber each other
root=${HANGUP_SANITY_ROOT:-$HOME/.cache/hangup-ssh/sanity-$(printf %s "$top" | sha256sum | cut -c1-10)-$core}
dest=$root/ansible_collections/hangup/ssh

mkdir -p "$dest"
# keep tests/output: ansible-test's venvs there make the next run faster
find "$dest" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
find "$dest/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} + 2>/dev/null || true
(cd "$top" && git ls-files -z --cached --others --exclude-standard | xargs -0 -r -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' \
    | tar --null -T - -cf -) | tar -C "$dest" -xf -
cd "$dest"
exec "$ansible_test" sanity --venv --python "$python_version" --color no "$@"
