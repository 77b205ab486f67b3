#!/usr/bin/env bash
# make demo / make demo-clean: the lab over real SSH from the controller.
#   lab/demo.sh up     start the demo containers, then run lab/demo-report.yml over SSH
#   lab/demo.sh down   remove the demo containers, their network and key
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$top/.lab/demo
cd "$top"

case ${1:-up} in
up)
    ansible-playbook lab/demo-lab.yml | grep -E '^(PLAY RECAP|localhost)' || true
    mkdir -p "$dir"
    [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C hangup-demo -f "$dir/id_ed25519"
    : > "$dir/known_hosts"
    for name in hangup-demo-d11 hangup-demo-d12 hangup-demo-d13; do
        podman exec -i "$name" sh -c 'mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys' < "$dir/id_ed25519.pub"
    done
    # ansible.cfg: hangup.ssh from this checkout, inventory lab/inventory.ini
    export ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_DEPRECATION_WARNINGS=false
    echo "demo: inventory lab/inventory.ini (the default in ansible.cfg)"
    echo "demo: 1/3 what the servers do today with a dead peer (lab/demo-report.yml, over SSH)"
    ansible-playbook lab/demo-report.yml | sed -n '/TASK \[Summarize\]/,/PLAY RECAP/p'
    echo "demo: 2/3 applying hangup.ssh.keepalive with 30 s on both ends (lab/demo-harden.yml)"
    ansible-playbook lab/demo-harden.yml | sed -n '/PLAY RECAP/,$p'
    echo "demo: 3/3 the same report, read back from sshd -T and ssh -G"
    ansible-playbook lab/demo-report.yml | sed -n '/TASK \[Summarize\]/,/PLAY RECAP/p'
    ;;
down)
    ansible-playbook lab/demo-lab.yml -e lab_state=absent | grep -E '^(PLAY RECAP|localhost)' || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
