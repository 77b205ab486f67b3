#!/usr/bin/env bash
# make demo / make demo-clean: the lab over real SSH from the controller.
#   lab/demo.sh up     start the demo containers, then run lab/demo-report.yml over SSH
#   lab/demo.sh down   remove the demo containers and their key and inventory
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
    {
        echo "# written by lab/demo.sh: the demo lab, reached over SSH"
        echo "[servers]"
        for name in hangup-demo-d11 hangup-demo-d12 hangup-demo-d13; do
            podman exec -i "$name" sh -c 'mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys' < "$dir/id_ed25519.pub"
            echo "$name ansible_host=$(podman inspect -f '{{.NetworkSettings.IPAddress}}' "$name")"
        done
        echo "[servers:vars]"
        echo "ansible_connection=ansible.builtin.ssh"
        echo "ansible_user=root"
        echo "ansible_python_interpreter=auto_silent"
        echo "ansible_ssh_private_key_file=$dir/id_ed25519"
        # the controller's own connections keep alive too, so a dead host cannot hang the play
        echo "ansible_ssh_common_args='-o UserKnownHostsFile=$dir/known_hosts -o StrictHostKeyChecking=accept-new -o ServerAliveInterval=5 -o ServerAliveCountMax=3'"
    } > "$dir/inventory.ini"
    # hangup.ssh from this checkout, as the tests use it
    export ANSIBLE_COLLECTIONS_PATH ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_DEPRECATION_WARNINGS=false
    ANSIBLE_COLLECTIONS_PATH=$(python tests/integration/playbook.py)
    echo "demo: inventory $dir/inventory.ini"
    echo "demo: 1/3 what the servers do today with a dead peer (lab/demo-report.yml, over SSH)"
    ansible-playbook -i "$dir/inventory.ini" lab/demo-report.yml | sed -n '/TASK \[Summarize\]/,/PLAY RECAP/p'
    echo "demo: 2/3 applying hangup.ssh.keepalive with 30 s on both ends (lab/demo-harden.yml)"
    ansible-playbook -i "$dir/inventory.ini" lab/demo-harden.yml | sed -n '/PLAY RECAP/,$p'
    echo "demo: 3/3 the same report, read back from sshd -T and ssh -G"
    ansible-playbook -i "$dir/inventory.ini" lab/demo-report.yml | sed -n '/TASK \[Summarize\]/,/PLAY RECAP/p'
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
