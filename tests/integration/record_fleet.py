"""Record the demo's ad-hoc results, for the unit tests of the fleet callbacks (and the README's output).

Needs the demo lab (make demo). Freezes the client's sessions into each server as the demo does,
waits until they are hung, then runs each command of the demo over SSH with the minimal callback
and keeps every host's whole result in tests/unit/fixtures/fleet/NAME.json. The inventory adds a
host at an address of the demo's network that nothing answers, so each command also has an
unreachable host.

    .venv/bin/python tests/integration/record_fleet.py   (as root, after make demo)
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(TOP, "lab"))

from adhoc import parse_adhoc  # noqa: E402
from demo_hang import freeze  # noqa: E402

OUT = os.path.join(HERE, "..", "unit", "fixtures", "fleet")
GONE = "[servers]\nhangup-demo-gone ansible_host=10.89.60.99\n"
COMMANDS = {  # name: (module, args, check)
    "report": ("hangup.ssh.hung_sessions", "", False),
    "check": ("hangup.ssh.hung_sessions", "kill=true", True),
    "kill": ("hangup.ssh.hung_sessions", "kill=true", False),
    "deadline": ("hangup.ssh.hard_timeout", "cmd='sleep 40' timeout=5", False),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    gone = os.path.join(TOP, ".lab", "demo", "gone.ini")
    with open(gone, "w") as f:
        f.write(GONE)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal", ANSIBLE_TIMEOUT="3")
    freeze()
    time.sleep(30)
    for name, (module, args, check) in COMMANDS.items():
        argv = ["ansible", "all", "-i", "lab/inventory.ini", "-i", gone, "-m", module, "-a", args] + \
            (["--check"] if check else [])
        out = subprocess.run(argv, cwd=TOP, env=env, capture_output=True, text=True, check=False).stdout
        results = parse_adhoc(out)
        shown = "ansible all -m %s%s%s" % (module, " -a \"%s\"" % args if args else "", " --check" if check else "")
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump({"command": shown, "results": results}, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"{name}: {shown}: " + ", ".join(f"{h} {r['_status']}" for h, r in sorted(results.items())))


if __name__ == "__main__":
    main()
