"""Hang kit: real SSH sessions between lab containers, and real ways to hang them.

Everything here drives podman and the containers' own sshd/ssh; nothing is mocked.
The parsing helpers are pure and unit-tested in tests/unit/test_hangkit.py.

    lab = Lab(["hk-d11", "hk-d12"])
    s = lab.open_session("hk-d12", "hk-d11", kind="pty", options=KEEPALIVE_3x2)
    lab.cut(s)                       # or lab.freeze_server(s), lab.pause(host) ...
    lab.wait_ended([s], timeout=30)  # {id: seconds since the fault, or None}
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field

STATE_DIR = "/tmp/hangkit"
KEEPALIVE_3x2 = ("-o", "ServerAliveInterval=3", "-o", "ServerAliveCountMax=2")
# A client with no keepalive of its own: what ssh does unless configured.
NO_KEEPALIVE = ("-o", "ServerAliveInterval=0", "-o", "TCPKeepAlive=yes")
BASE_SSH_OPTIONS = (
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "ConnectTimeout=10",
)
# pty: login shell on a pty; notty: `ssh host cmd`; stream: `ssh host cmd` fed on stdin;
# forward: `ssh -N` (tunnels come as options); sftp: an sftp client waiting for commands;
# password: a client on a pty (script(1)) waiting at the password prompt, never authenticated
SESSION_KINDS = ("pty", "notty", "stream", "forward", "sftp", "password")
PASSWORD_ONLY = ("-o", "BatchMode=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
                 "-o", "PubkeyAuthentication=no")

_SS_USER = re.compile(r'\("([^"]+)",pid=(\d+),fd=\d+\)')
_ids = itertools.count(1)
# an authenticated session's sshd process: "sshd: alice@pts/0", "sshd-session: bob", not "[priv]"
_SESSION_TITLE = re.compile(r"^sshd(-session)?: [^\s\[]+$")


# ---------------------------------------------------------------- pure helpers

def split_hostport(text):
    """'10.0.0.1:22' or '[::1]:22' or '[::ffff:10.0.0.1]:22' -> (address, port)."""
    addr, port = text.rsplit(":", 1)
    return addr.strip("[]"), int(port)


def parse_ss(output):
    """Parse `ss -Htnp` lines into dicts with local/peer (addr, port) and processes.

    The state column is absent when ss was given a state filter; both forms parse.
    """
    rows = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        if not fields[0].isdigit():
            fields = fields[1:]
        try:
            local, peer = split_hostport(fields[2]), split_hostport(fields[3])
        except ValueError:
            continue
        procs = [(name, int(pid)) for name, pid in _SS_USER.findall(line)]
        rows.append({"local": local, "peer": peer, "procs": procs})
    return rows


def pids_of(conn):
    return [proc[1] for proc in conn["procs"]]


def parse_end(text):
    """The end record a session leaves: '<rc> <epoch seconds>' -> (rc, float)."""
    rc, stamp = text.split()
    return int(rc), float(stamp)


def ssh_argv(kind, target, options=(), command="sleep 86400", port=22):
    """argv of a client session of `kind` (see SESSION_KINDS)."""
    if kind not in SESSION_KINDS:
        raise ValueError(f"kind must be one of {SESSION_KINDS}, not {kind!r}")
    if kind == "sftp":
        return ["sftp", *BASE_SSH_OPTIONS, *options, *(["-P", str(port)] if port != 22 else []), target]
    if kind == "password":
        # the prompt needs a terminal and no BatchMode (the first -o of a keyword wins)
        base = [o for pair in zip(BASE_SSH_OPTIONS[::2], BASE_SSH_OPTIONS[1::2]) if pair[1] != "BatchMode=yes"
                for o in pair]
        argv = ["ssh", *base, *PASSWORD_ONLY, *options, *(["-p", str(port)] if port != 22 else []), "-tt", target]
        return ["script", "-qfec", shlex.join(argv), "/dev/null"]
    argv = ["ssh", *BASE_SSH_OPTIONS, *options]
    if port != 22:
        argv += ["-p", str(port)]
    if kind == "pty":
        return [*argv, "-tt", target]
    if kind == "forward":
        return [*argv, "-N", "-n", target]
    if kind == "stream":
        return [*argv, "-T", target, command]
    return [*argv, "-T", "-n", target, command]


def session_script(sid, argv, state_dir=STATE_DIR, feed=None):
    """Shell script that runs one session and records its pid, output and end.

    With `feed` (a shell command), its output is the session's input. Otherwise
    a pty or sftp session reads from a FIFO the script holds open and never
    writes to, so the remote side waits for input like an idle user.
    """
    base = f"{state_dir}/{sid}"
    cmd = shlex.join(argv)
    end = f"wait $!; echo \"$? $(date +%s.%N)\" >{base}.end"
    if feed:
        return (f"mkdir -p {state_dir}; rm -f {base}.*; "
                f"{{ {feed}; }} | {cmd} >{base}.out 2>{base}.err & echo $! >{base}.pid; {end}")
    if "-tt" in argv or argv[0] in ("sftp", "script"):
        return (
            f"mkdir -p {state_dir}; rm -f {base}.*; mkfifo {base}.in; "
            f"{cmd} <{base}.in >{base}.out 2>{base}.err & echo $! >{base}.pid; "
            f"exec 3>{base}.in; {end}"
        )
    return (
        f"mkdir -p {state_dir}; rm -f {base}.*; "
        f"{cmd} >{base}.out 2>{base}.err & echo $! >{base}.pid; {end}"
    )


# ---------------------------------------------------------------- podman side

def podman(*args, check=True, timeout=60, input=None):
    return subprocess.run(
        ["podman", *args], check=check, timeout=timeout, input=input,
        capture_output=True, text=True,
    )


LAB_IMAGES = "localhost/hangup-lab"
# every OpenSSH the lab builds (lab/images.sh): Debian 11 to forky, then the upstream releases
VARIANTS = ("d11", "d12", "d13", "d14", "u80", "u87", "u89", "u94", "u96", "u99", "u105")


def lab_image(variant):
    return f"{LAB_IMAGES}:{variant}"


def built(variant):
    """True when lab/images.sh built this variant here (the upstream ones need the OpenSSH sources)."""
    return podman("image", "exists", lab_image(variant), check=False).returncode == 0


def run_containers(names, *extra):
    """Start one container per {name: lab variant} (replacing any of that name), and wait for sshd in each.

    The images in a systemd layout (lab/images.sh: RHEL's) boot systemd as PID 1.
    """
    for name, variant in names.items():
        podman("rm", "-f", name, check=False)
        layout = podman("image", "inspect", "--format", '{{ index .Labels "org.hangup.lab.layout" }}',
                        lab_image(variant)).stdout.strip()
        systemd = ("--systemd=always",) if layout.startswith("rhel") or variant.endswith("s") else ()
        podman("run", "-d", "--name", name, "--hostname", name, *systemd, *extra, lab_image(variant))
    for name in names:
        for _attempt in range(120):
            if podman("exec", name, "sh", "-c", "ss -Htln 'sport = :22' | grep -q .", check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"sshd did not start in {name}")


@dataclass
class Host:
    name: str

    def sh(self, script, check=True, timeout=60, input=None):
        flags = ["-i"] if input is not None else []
        return podman("exec", *flags, self.name, "sh", "-c", script,
                      check=check, timeout=timeout, input=input)

    def inspect(self):
        return json.loads(podman("inspect", self.name).stdout)[0]

    @property
    def ip(self):
        nets = self.inspect()["NetworkSettings"]["Networks"]
        return next(n["IPAddress"] for n in nets.values() if n.get("IPAddress"))

    @property
    def ip6(self):
        """The container's global IPv6 address, or None on an IPv4-only network."""
        nets = self.inspect()["NetworkSettings"]["Networks"]
        return next((n["GlobalIPv6Address"] for n in nets.values() if n.get("GlobalIPv6Address")), None)

    @property
    def pid(self):
        """PID of the container's init on the host, for nsenter."""
        return self.inspect()["State"]["Pid"]

    def alive(self, pid):
        return self.sh(f"kill -0 {int(pid)}", check=False).returncode == 0

    def openssh_version(self):
        """(major, minor) of the container's ssh client, the same package as its sshd."""
        text = self.sh("ssh -V 2>&1").stdout
        major, minor = text.split("OpenSSH_", 1)[1].split("p", 1)[0].split(",", 1)[0].split(".")[:2]
        return int(major), int(minor)

    def connections(self):
        return parse_ss(self.sh("ss -Htnp state established").stdout)


@dataclass
class Session:
    id: str
    kind: str
    client: Host
    server: Host
    options: tuple
    client_pid: int = 0
    client_port: int = 0
    server_pids: list = field(default_factory=list)
    port: int = 22
    fault_at: float = 0.0
    fault: str = ""
    label: str = ""
    planned: str = ""
    keepalive: str = ""

    def __str__(self):
        return f"{self.id}({self.kind} {self.client.name}->{self.server.name} {self.fault})"

    def messages(self):
        """What the client printed; on a pty ssh reports through the terminal (stdout)."""
        return self.client.sh(f"cat {STATE_DIR}/{self.id}.out {STATE_DIR}/{self.id}.err 2>/dev/null",
                              check=False).stdout

    def server_alive(self):
        return any(self.server.alive(p) for p in self.server_pids)


class Lab:
    """The lab's containers, by name, and the faults the kit can inject."""

    def __init__(self, names, user="root"):
        self.hosts = {n: Host(n) for n in names}
        self.user = user
        self._cuts = []
        self._paused = set()
        self._disconnected = {}
        self._frozen = []
        self._trusted = set()
        self.sessions = []

    def host(self, name):
        return self.hosts[name]

    # -- set-up
    def trust(self, client, server):
        """Let root on `client` log in to `server` with a key made for the lab."""
        if (client, server) in self._trusted:
            return
        c, s = self.host(client), self.host(server)
        c.sh("test -f /root/.ssh/id_ed25519 || "
             "{ mkdir -p -m 700 /root/.ssh && ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519; }")
        pub = c.sh("cat /root/.ssh/id_ed25519.pub").stdout.strip()
        s.sh("mkdir -p -m 700 /root/.ssh && touch /root/.ssh/authorized_keys && "
             "chmod 600 /root/.ssh/authorized_keys && "
             f"grep -qxF {shlex.quote(pub)} /root/.ssh/authorized_keys || "
             f"echo {shlex.quote(pub)} >> /root/.ssh/authorized_keys")
        self._trusted.add((client, server))

    def share_key(self, server, user):
        """Let root's lab key log in to `server` as `user` too (the user must exist)."""
        self.host(server).sh(
            f"home=$(getent passwd {shlex.quote(user)} | cut -d: -f6) && mkdir -p -m 700 $home/.ssh && "
            f"cp /root/.ssh/authorized_keys $home/.ssh/ && chown -R {shlex.quote(user)}: $home/.ssh")

    def open_session(self, client, server, kind="notty", options=(), port=22, user=None,
                     command="sleep 86400", feed=None, address=None, client_user=None):
        """Start a session from `client` to `server` as `user` (the lab's user by default).

        A user other than root must exist on the server and accept root's key
        (see share_key). `address` picks one of the server's addresses (an IPv6
        one, say) or a name the client's ssh config knows, instead of its first
        IPv4 address. `client_user` runs the client as that user of `client`,
        with root's lab key copied to it.
        """
        c, s = self.host(client), self.host(server)
        self.trust(client, server)
        as_user = []
        if client_user:
            q = shlex.quote(client_user)
            c.sh(f"mkdir -p {STATE_DIR} && chmod 1777 {STATE_DIR} && "
                 f"home=$(getent passwd {q} | cut -d: -f6) && mkdir -p -m 700 $home/.ssh && "
                 f"cp /root/.ssh/id_ed25519 $home/.ssh/ && chown {q}: $home/.ssh $home/.ssh/id_ed25519")
            as_user = ["--user", client_user]
        # unique across test processes: an old session's late files must never match
        sid = f"s{os.getpid()}x{next(_ids)}-{kind}"
        argv = ssh_argv(kind, f"{user or self.user}@{address or s.ip}", options, command=command, port=port)
        podman("exec", "-d", *as_user, c.name, "sh", "-c", session_script(sid, argv, feed=feed))
        sess = Session(sid, kind, c, s, tuple(options), port=port)
        self.sessions.append(sess)
        return sess

    def wait_established(self, sessions, timeout=20):
        """Fill in client pid/port and the server's session pids, or fail."""
        deadline = time.monotonic() + timeout
        pending = list(sessions)
        while pending and time.monotonic() < deadline:
            for sess in list(pending):
                if self._resolve(sess):
                    pending.remove(sess)
            if pending:
                time.sleep(0.3)
        if pending:
            details = "; ".join(f"{s}: {s.messages().strip()[-300:]!r}" for s in pending)
            raise AssertionError(f"sessions not established in {timeout} s: {details}")

    def _resolve(self, sess):
        r = sess.client.sh(f"cat {STATE_DIR}/{sess.id}.pid", check=False)
        if r.returncode or not r.stdout.strip():
            return False
        sess.client_pid = int(r.stdout)
        # sftp talks through an ssh child of its own, script(1) through a shell and its ssh
        owners = {sess.client_pid}
        for _generation in range(2):
            kids = sess.client.sh("pgrep -P " + ",".join(map(str, owners)), check=False).stdout.split()
            owners.update(map(int, kids))
        port = next((c["local"][1] for c in sess.client.connections()
                     if owners.intersection(pids_of(c)) and c["peer"][1] == sess.port), 0)
        if not port:
            return False
        pids = [p for c in sess.server.connections() if c["local"][1] == sess.port and c["peer"][1] == port
                for p in pids_of(c)]
        # the session is fully set up once a user-side process holds the socket
        if not pids or not self._logged_in(sess, pids):
            return False
        sess.client_port, sess.server_pids = port, sorted(set(pids))
        return True

    def _logged_in(self, sess, pids):
        if sess.kind == "password":
            return True  # it never logs in: the connection is all there is
        titles = sess.server.sh("ps -o args= -p " + ",".join(map(str, pids)), check=False).stdout
        return any(_SESSION_TITLE.match(t) for t in titles.splitlines())

    # -- faults; each records when it was applied
    def cut(self, sess, side="server"):
        """Drop this one connection's packets both ways inside the server's (or the client's) netns.

        Dropped on the server's side, the server's own sends fail locally and
        wait in its queue (zero-window-like probing); dropped on the client's
        side, they leave and go unanswered, as on a real dead link.
        """
        if side not in ("server", "client"):
            raise ValueError(f"side must be server or client, not {side!r}")
        ip = (sess.client if side == "server" else sess.server).ip
        near, far = (str(sess.port), str(sess.client_port)) if side == "server" else (str(sess.client_port), str(sess.port))
        rules = [
            ["INPUT", "-p", "tcp", "-s", ip, "--sport", far, "--dport", near, "-j", "DROP"],
            ["OUTPUT", "-p", "tcp", "-d", ip, "--dport", far, "--sport", near, "-j", "DROP"],
        ]
        host = sess.server if side == "server" else sess.client
        pid = host.pid
        for rule in rules:
            subprocess.run(["nsenter", "-t", str(pid), "-n", "iptables", "-I", *rule], check=True)
            self._cuts.append((host, rule))
        self.mark(sess, "cut")

    def freeze_server(self, sess):
        """SIGSTOP the server's processes of this session; the kernel still ACKs."""
        sess.server.sh("kill -STOP " + " ".join(map(str, sess.server_pids)))
        self._frozen.append((sess.server, sess.server_pids))
        self.mark(sess, "server-frozen")

    def freeze_client(self, sess):
        sess.client.sh(f"kill -STOP {sess.client_pid}")
        self._frozen.append((sess.client, [sess.client_pid]))
        self.mark(sess, "client-frozen")

    def pause(self, name, sessions=()):
        podman("pause", name)
        self._paused.add(name)
        for sess in sessions:
            self.mark(sess, "paused")

    def disconnect(self, name, sessions=(), network="podman"):
        podman("network", "disconnect", network, name)
        self._disconnected[name] = network
        for sess in sessions:
            self.mark(sess, "disconnected")

    @staticmethod
    def mark(sess, what):
        """Record that `what` happened to the session now (faults call this themselves)."""
        sess.fault_at, sess.fault = time.time(), what

    def watch_server(self, sessions):
        """Start, inside each server, a watcher that stamps when a session's processes are gone.

        Polling from the host costs a podman exec per check; the watcher is
        precise to 0.1 s however many sessions there are.
        """
        for sess in sessions:
            pids = " ".join(map(str, sess.server_pids))
            base = f"{STATE_DIR}/{sess.id}"
            podman("exec", "-d", sess.server.name, "sh", "-c",
                   f"mkdir -p {STATE_DIR}; rm -f {base}.gone; "
                   f"while :; do up=0; for p in {pids}; do kill -0 $p 2>/dev/null && up=1; done; "
                   f"[ $up = 0 ] && break; sleep 0.1; done; date +%s.%N > {base}.gone")

    # -- measuring
    def ends(self, sessions, side="client"):
        """{session id: (rc, epoch)} for sessions that ended; one exec per host.

        side="client": the client exited (rc is ssh's); side="server": the
        server's processes of the session are gone (needs watch_server; rc 0).
        """
        suffix = ".end" if side == "client" else ".gone"
        found = {}
        for name in {(s.client if side == "client" else s.server).name for s in sessions}:
            out = self.host(name).sh(
                f"for f in {STATE_DIR}/*{suffix}; do [ -s \"$f\" ] && echo \"$f $(cat \"$f\")\"; done; true").stdout
            for line in out.splitlines():
                path, rest = line.split(" ", 1)
                sid = path.rsplit("/", 1)[-1][:-len(suffix)]
                found[sid] = parse_end(rest) if side == "client" else (0, float(rest))
        return {s.id: found[s.id] for s in sessions if s.id in found}

    def wait_ended(self, sessions, timeout, side="client"):
        """Poll until every session ended on `side`, or `timeout` s passed since its fault.

        Returns {session id: seconds from fault to end, or None if it never ended}.
        Both ends are stamped inside the containers (see ends()), not when polled.
        """
        result = {s.id: None for s in sessions}
        while True:
            now = time.time()
            open_ = [s for s in sessions if result[s.id] is None and now < s.fault_at + timeout]
            if not open_:
                return result
            for sid, end in self.ends(open_, side).items():
                sess = next(s for s in open_ if s.id == sid)
                result[sid] = round(end[1] - sess.fault_at, 2)
            time.sleep(0.5)

    def elapsed(self, sessions, side="client"):
        """{session id: seconds from fault to end on `side`, or None}; reads the stamps once.

        The stamps are written inside the containers when the end happens, so this
        can be read any time later, for both sides, without polling.
        """
        ended = self.ends(sessions, side)
        return {s.id: round(ended[s.id][1] - s.fault_at, 2) if s.id in ended else None for s in sessions}

    @staticmethod
    def sleep_until_after_faults(sessions, seconds):
        time.sleep(max(0.0, max(s.fault_at for s in sessions) + seconds - time.time()))

    def still_hung_after(self, sessions, seconds, side="client"):
        """Wait until `seconds` after each fault; return the sessions still up on `side`."""
        self.sleep_until_after_faults(sessions, seconds)
        ended = self.ends(sessions, side)
        if side == "client":
            return [s for s in sessions if s.id not in ended and s.client.alive(s.client_pid)]
        return [s for s in sessions if s.id not in ended and s.server_alive()]

    # -- undo everything, so the next test starts clean
    def heal(self):
        for name in list(self._paused):
            podman("unpause", name, check=False)
        self._paused.clear()
        for name, network in self._disconnected.items():
            podman("network", "connect", network, name, check=False)
        self._disconnected.clear()
        for host, rule in self._cuts:
            subprocess.run(["nsenter", "-t", str(host.pid), "-n", "iptables", "-D", *rule], check=False)
        self._cuts.clear()
        for host, pids in self._frozen:
            host.sh("kill -CONT " + " ".join(map(str, pids)) + " 2>/dev/null; true", check=False)
        self._frozen.clear()
        for sess in self.sessions:
            if sess.client_pid:
                sess.client.sh(f"kill -KILL {sess.client_pid} 2>/dev/null; true", check=False)
            if sess.server_pids:
                sess.server.sh("kill -KILL " + " ".join(map(str, sess.server_pids)) + " 2>/dev/null; true",
                               check=False)
        self.sessions.clear()
