#!/usr/bin/env bash
# lab/molecule.sh SCENARIO...: molecule test of each scenario in turn, each timed (lab/stage).
# A scenario that needs upstream OpenSSH images is skipped, with one line, only where the lab has
# no upstream sources (lab/openssh-sources.sh); with sources, a missing image is an error.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
# images.sh has verified them already; here only whether there are any matters
have_sources=$(lab/openssh-sources.sh 2>/dev/null || true)
for s in "$@"; do
    [ -f "extensions/molecule/$s/molecule.yml" ] || { echo "molecule.sh: no scenario $s" >&2; exit 1; }
    if [ -z "$have_sources" ] && grep -q 'image: localhost/hangup-lab:u' "extensions/molecule/$s/molecule.yml"; then
        echo "molecule.sh: $s skipped: it runs upstream OpenSSH builds and this lab has no sources for them (see lab/openssh-sources.sh)"
        continue
    fi
    lab/stage "molecule $s" molecule test -s "$s"
done
