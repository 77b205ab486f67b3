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
        echo "ansible_ssh_private_key_file=$dir/id_ed25519"
        # the controller's own connections keep alive too, so a dead host cannot hang the play
        echo "ansible_ssh_common_args='-o UserKnownHostsFile=$dir/known_hosts -o StrictHostKeyChecking=accept-new -o ServerAliveInterval=5 -o ServerAliveCountMax=3'"
    } > "$dir/inventory.ini"
    echo "demo: inventory $dir/inventory.ini; running lab/demo-report.yml over SSH"
    ANSIBLE_STDOUT_CALLBACK=ansible.builtin.default ANSIBLE_DISPLAY_SKIPPED_HOSTS=false \
        ansible-playbook -i "$dir/inventory.ini" lab/demo-report.yml
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
