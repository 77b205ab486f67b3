"""Record what each OpenSSH of the lab prints, for the unit tests of _openssh.

For each lab image: `sshd -T` and `ssh -G example.invalid` with the image's own
configuration, `ssh -V` and `sshd -V` (before 9.0 sshd has no -V: its usage
message names the version), into tests/unit/fixtures/openssh/VERSION/.

    .venv/bin/python tests/integration/record_openssh.py [VARIANT...]   (as root, after make setup)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hangkit import VARIANTS, built, podman, run_containers  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit", "fixtures", "openssh")
COMMANDS = {"sshd-T.txt": "/usr/sbin/sshd -T", "ssh-G.txt": "ssh -G example.invalid",
            "ssh-V.txt": "ssh -V 2>&1", "sshd-V.txt": "/usr/sbin/sshd -V 2>&1; true"}


def main(variants):
    names = {f"hk-recssh-{v}": v for v in variants}
    run_containers(names)
    try:
        for name in names:
            out = {f: podman("exec", name, "sh", "-c", cmd).stdout for f, cmd in COMMANDS.items()}
            version = out["ssh-V.txt"].split("_", 1)[1].split("p", 1)[0]
            os.makedirs(os.path.join(OUT, version), exist_ok=True)
            for f, text in out.items():
                with open(os.path.join(OUT, version, f), "w") as fh:
                    fh.write(text)
            print(f"{name}: OpenSSH {version} recorded")
    finally:
        for name in names:
            podman("rm", "-f", name, check=False)


if __name__ == "__main__":
    main(sys.argv[1:] or [v for v in VARIANTS if built(v)])
