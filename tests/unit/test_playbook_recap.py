"""The integration tests read ansible-playbook's PLAY RECAP; the parser is tested here."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

from playbook import parse_recap  # noqa: E402

RECAP = """
TASK [Show] ********
ok: [a] => {"msg": "PLAY RECAP"}

PLAY RECAP *********************************************************************
hk-ka-d11                  : ok=33   changed=0    unreachable=0    failed=0    skipped=10   rescued=0    ignored=0
hk-ka-d12s                 : ok=12   changed=2    unreachable=0    failed=1    skipped=3    rescued=0    ignored=0
"""


def test_parse_recap():
    got = parse_recap(RECAP)
    assert set(got) == {"hk-ka-d11", "hk-ka-d12s"}
    assert got["hk-ka-d12s"]["changed"] == 2 and got["hk-ka-d12s"]["failed"] == 1
    assert got["hk-ka-d11"]["skipped"] == 10


def test_parse_recap_without_recap():
    assert parse_recap("ERROR! the playbook could not be found") == {}
