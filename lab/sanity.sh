#!/usr/bin/env bash
# ansible-test sanity on the files git would commit (tracked, or new and not
# ignored), from a copy laid out as ansible_collections/hangup/ssh outside the
# repository: ansible-test needs that path, and inside this git tree it would
# take the copy for ignored files.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python_version=${CONTROLLER_PYTHON_VERSION:-3.13}
# one copy per checkout, so two clones on a machine do not clobber each other
root=${HANGUP_SANITY_ROOT:-$HOME/.cache/hangup-ssh/sanity-$(printf %s "$top" | sha256sum | cut -c1-10)}
dest=$root/ansible_collections/hangup/ssh

mkdir -p "$dest"
# keep tests/output: ansible-test's venvs there make the next run faster
find "$dest" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
find "$dest/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} + 2>/dev/null || true
(cd "$top" && git ls-files -z --cached --others --exclude-standard | xargs -0 -r -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' \
    | tar --null -T - -cf -) | tar -C "$dest" -xf -
cd "$dest"
exec ansible-test sanity --venv --python "$python_version" --color no "$@"
