#!/usr/bin/env bash
# make demo / make demo-clean: the lab over real SSH from the controller.
#   lab/demo.sh up     start the demo lab, then harden it and show hung sessions ended, over SSH
#   lab/demo.sh down   remove the demo containers, their network and key
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$top/.lab/demo
cd "$top"

# Runs a step quietly, showing only the lines that match $1; a failed step shows all it printed and fails the demo.
quiet() {
    local show=$1 out
    shift
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "demo: FAILED: $*" >&2
        exit 1
    fi
    grep -E "$show" <<<"$out" || :
}

case ${1:-up} in
up)
    quiet '^(PLAY RECAP|localhost)' ansible-playbook lab/demo-lab.yml
    mkdir -p "$dir"
    [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C hangup-demo -f "$dir/id_ed25519"
    : > "$dir/known_hosts"
    for name in hangup-demo-d11 hangup-demo-d12 hangup-demo-d13 hangup-demo-client; do
        podman exec -i "$name" sh -c 'mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys' < "$dir/id_ed25519.pub"
    done
    # ansible.cfg: hangup.ssh from this checkout, inventory lab/inventory.ini
    export ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_DEPRECATION_WARNINGS=false
    echo "demo: inventory lab/inventory.ini (the default in ansible.cfg)"
    echo "demo: 1/5 what the servers do today with a dead peer (lab/demo-report.yml, over SSH)"
    ansible-playbook lab/demo-report.yml | sed -n '/TASK \[Summarize\]/,/PLAY RECAP/p'
    echo "demo: 2/5 ansible-playbook playbooks/harden-ssh.yml (hangup.ssh.keepalive, 60 s both ends, then a hung-session report)"
    ansible-playbook playbooks/harden-ssh.yml -e harden_ssh_hosts=servers -e harden_ssh_dead_peer_timeout=60 \
        | sed -n '/TASK \[Find hung SSH sessions/,$p'
    echo "demo: 3/5 the same report, read back from sshd -T and ssh -G"
    ansible-playbook lab/demo-report.yml | sed -n '/TASK \[Summarize\]/,/PLAY RECAP/p'
    echo "demo: 4/5 a hang: the client host freezes while each server streams output to it"
    python lab/demo_hang.py freeze
    echo "demo:   waiting 30 s (TCP backoff passes hung_sessions' max_backoff of 6 after about 25 s; sshd would give up at 60 s)"
    sleep 30
    # ansible.cfg: the stdout callback hangup.ssh.fleet prints a line per host and the fleet table;
    # HANGUP_FLEET_FILE also writes the table, which `demo_hang.py check` reads to fail the demo when a step did not work
    echo "demo: \$ ansible all -m hung_sessions"
    HANGUP_FLEET_FILE=$dir/report.json ansible all -m hung_sessions
    python lab/demo_hang.py check "$dir/report.json" HUNG
    echo "demo: \$ ansible all -m hung_sessions -a kill=true"
    HANGUP_FLEET_FILE=$dir/kill.json ansible all -m hung_sessions -a kill=true
    python lab/demo_hang.py check "$dir/kill.json" ENDED
    echo "demo: 5/5 a deadline across the fleet: \$ ansible all -m hangup.ssh.hard_timeout -a \"cmd='sleep 40' timeout=5\""
    # rc 124 is a failed task, so ansible exits 2 here by design; the table judges the step
    rc=0
    HANGUP_FLEET_FILE=$dir/deadline.json ansible all -m hangup.ssh.hard_timeout -a "cmd='sleep 40' timeout=5" || rc=$?
    [ "$rc" = 2 ] || { echo "demo: FAILED: ansible exited $rc, not 2 (timed-out tasks)" >&2; exit 1; }
    python lab/demo_hang.py check "$dir/deadline.json" "TIMED OUT"
    ;;
down)
    quiet '^(PLAY RECAP|localhost)' ansible-playbook lab/demo-lab.yml -e lab_state=absent
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
