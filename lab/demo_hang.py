"""The demo's hangs, made with the hang kit: lab/demo.sh calls it.

    python lab/demo_hang.py freeze    from hangup-demo-client, one session into each server that
                                      streams output, then the client is frozen (SIGSTOP)
    python lab/demo_hang.py summary   read `ansible ...` output on stdin; one line per host
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from adhoc import parse_adhoc  # noqa: E402
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


def summary():
    for host, result in sorted(parse_adhoc(sys.stdin.read()).items()):
        if result["_status"] in ("FAILED", "UNREACHABLE") and "sessions" not in result and "rc" not in result:
            print(f"  {host}: {result['_status']}: {result.get('msg')}")
        elif "sessions" in result:
            hung = [s for s in result["sessions"] if s["hung"]]
            line = f"  {host}: {len(result['sessions'])} sessions, {len(hung)} hung"
            for s in hung:
                line += f"; {s['kind']} {s['user']}@{s['tty']} from {s['peer_address']}:{s['peer_port']} ({', '.join(s['why'])})"
            for s in result["killed"]:
                line += f"; KILLED {s['user']}@{s['tty']} from {s['peer_address']}:{s['peer_port']} ({'+'.join(s['signals'])})"
            print(line)
        else:
            print(f"  {host}: rc {result.get('rc')}, timed_out {result.get('timed_out')}, "
                  f"signals at {result.get('signal_times')} s, stdout {result.get('stdout')!r}")


if __name__ == "__main__":
    {"freeze": freeze, "summary": summary}[sys.argv[1]]()
