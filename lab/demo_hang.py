"""The demo's hangs, made with the hang kit: lab/demo.sh calls it.

    python lab/demo_hang.py freeze    from hangup-demo-client, one session into each server that
                                      streams output, then the client is frozen (SIGSTOP)
    python lab/demo_hang.py check FILE NEED
                                      fails unless every server's row in the fleet callback's JSON file
                                      (HANGUP_FLEET_FILE) has that need (HUNG, ENDED, TIMED OUT)
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from hangkit import Lab  # noqa: E402

SERVERS = ("hangup-demo-d11", "hangup-demo-d12", "hangup-demo-d13")
CLIENT = "hangup-demo-client"


def freeze():
    lab = Lab([*SERVERS, CLIENT])
    sessions = [lab.open_session(CLIENT, s, "notty", command="while :; do date; head -c 20000 /dev/zero; done")
                for s in SERVERS]
    lab.wait_established(sessions)
    for sess in sessions:
        lab.freeze_client(sess)
        print(f"demo:   {CLIENT} port {sess.client_port} -> {sess.server.name}: streaming output, client frozen")


def check(path, need):
    with open(path) as f:
        rows = {row["host"]: row for row in json.load(f)}
    wrong = [f"{host}: {rows[host]['need'] if host in rows else 'no row'}" for host in SERVERS
             if rows.get(host, {}).get("need") != need]
    if wrong:
        sys.exit(f"demo: FAILED: expected {need} on every server in {path}, found " + "; ".join(wrong))
    print(f"demo:   every server is {need} in {os.path.relpath(path)}")


if __name__ == "__main__":
    {"freeze": freeze, "check": check}[sys.argv[1]](*sys.argv[2:])
