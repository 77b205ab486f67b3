#!/usr/bin/env bash
# Builds the collection tarball, installs it into a temporary path and asks
# ansible-doc about it there, as a user of the released collection would.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$top"
ansible-galaxy collection build --force --output-path "$work" . >/dev/null
tarball=$(ls "$work"/hangup-ssh-*.tar.gz)
echo "collection: built $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB, $(tar -tzf "$tarball" | wc -l) entries)"
leaked=$(tar -tzf "$tarball" | grep -E '^(\.venv|\.lab|lab|bench|requirements|\.git|ansible\.cfg)(/|$)' || true)
[ -z "$leaked" ] || { echo "collection: ERROR: build_ignore let these in:" >&2; echo "$leaked" >&2; exit 1; }
ansible-galaxy collection install --offline --force -p "$work/installed" "$tarball" >/dev/null
export ANSIBLE_COLLECTIONS_PATH=$work/installed
ansible-galaxy collection list hangup.ssh -p "$work/installed" 2>/dev/null | grep hangup.ssh
echo "collection: ansible-doc against the installed copy:"
for type in module filter role callback; do
    echo "  $type:"
    ansible-doc -t "$type" -l hangup.ssh | sed 's/^/    /'
done
# every documented plugin renders its page, not just its line in the list
ansible-doc -t filter hangup.ssh.keepalive_timing >/dev/null
ansible-doc -t role hangup.ssh.keepalive >/dev/null
ansible-doc -t module hangup.ssh.hung_sessions >/dev/null
ansible-doc -t module hangup.ssh.hard_timeout >/dev/null
ansible-doc -t module hangup.ssh.user_ssh_config >/dev/null
ansible-doc -t callback hangup.ssh.fleet >/dev/null
ansible-doc -t callback hangup.ssh.fleet_table >/dev/null
# the playbook by its FQCN, from the installed copy
(cd "$work" && ansible-playbook hangup.ssh.harden_ssh --syntax-check >/dev/null)
echo "collection: ansible-playbook hangup.ssh.harden_ssh resolves in the installed copy"
# what ansible-builder reads from meta/execution-environment.yml for an AWX execution environment
deps=$(ansible-builder introspect "$work/installed")
echo "collection: ansible-builder introspect:"
while IFS= read -r line; do echo "    $line"; done <<<"$deps"
grep -q "openssh-client \[platform:dpkg\].*hangup.ssh" <<<"$deps" || { echo "collection: ERROR: the execution-environment dependencies were not found" >&2; exit 1; }
# what Galaxy and Automation Hub check on an upload, so that a release is never refused there
"$top/lab/importer.sh" "$tarball"
