"""Fixtures shared by the scenario checks: the lab's containers and the hang kit.

The containers come from testinfra's --hosts (podman://NAME,...), as molecule's
shared verify.yml passes them, so the same tests run by hand against any lab.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from hangkit import Lab  # noqa: E402
from playbook import collection_root  # noqa: E402

# the collection's pure code, importable by its full name as Ansible loads it
sys.path.insert(0, collection_root())


def pytest_configure(config):
    config.addinivalue_line("markers", "every_version: a claim proven on every OpenSSH of the lab "
                            "(the *_versions scenarios run only these)")


def pytest_report_header(config):
    # the checks run `ansible` from beside this interpreter: say which release that is
    import ansible.release
    return "ansible-core %s (%s)" % (ansible.release.__version__, os.path.dirname(sys.executable))


def lab_names(config):
    hosts = config.getoption("hosts", default=None) or os.environ.get("HANGUP_LAB_HOSTS", "")
    return [h.split("://", 1)[-1] for h in hosts.split(",") if h.strip()]


@pytest.fixture(scope="module")
def lab(request):
    names = lab_names(request.config)
    if not names:
        pytest.fail("no lab hosts: pass --hosts=podman://NAME,... (molecule verify does)")
    kit = Lab(names)
    yield kit
    kit.heal()
