"""tests/integration/adhoc.py: reading the minimal callback's ad-hoc output."""

from adhoc import parse_adhoc

OUTPUT = """[WARNING]: something the controller said
hk-a | CHANGED => {
    "changed": true,
    "msg": "a } brace and a | bar => inside",
    "rc": 0
}
hk-b | FAILED! => {
    "msg": "timeout must be a number of seconds above 0, got 0.0"
}
hk-c | SKIPPED
hk-d | UNREACHABLE! => {
    "msg": "Failed to connect to the host via ssh",
    "unreachable": true
}
hk-e | SUCCESS => {"ping": "pong"}
"""


def test_parse_adhoc_every_status():
    got = parse_adhoc(OUTPUT)
    assert {h: r["_status"] for h, r in got.items()} == {
        "hk-a": "CHANGED", "hk-b": "FAILED", "hk-c": "SKIPPED", "hk-d": "UNREACHABLE", "hk-e": "SUCCESS"}
    assert got["hk-a"]["msg"] == "a } brace and a | bar => inside" and got["hk-a"]["rc"] == 0
    assert got["hk-c"]["skipped"] is True and got["hk-e"]["ping"] == "pong"


def test_parse_adhoc_nothing():
    assert parse_adhoc("ERROR! no hosts matched\n") == {}
