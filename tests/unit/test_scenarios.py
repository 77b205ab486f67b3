"""The Makefile runs every molecule scenario: each in make test or in make test-matrix, none in both."""

import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def listed(name):
    with open(os.path.join(REPO, "Makefile")) as f:
        match = re.search(r"^%s := (.*)$" % name, f.read(), re.M)
    return match.group(1).split()


def test_every_scenario_runs_in_exactly_one_target():
    root = os.path.join(REPO, "extensions", "molecule")
    scenarios = {d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "molecule.yml"))}
    test, matrix = listed("SCENARIOS"), listed("MATRIX_SCENARIOS")
    assert not set(test) & set(matrix)
    assert sorted(test + matrix) == sorted(scenarios)


def test_the_edge_releases_are_in_make_test():
    # the edges: 8.0, 9.4, 9.6, 10.5 and forky, for the role and for the module
    edges = {"u80", "u94", "u96", "u105", "d14"}
    for scenario in ("keepalive_versions", "hung_sessions_versions"):
        assert scenario in listed("SCENARIOS")
        with open(os.path.join(REPO, "extensions", "molecule", scenario, "molecule.yml")) as f:
            images = set(re.findall(r"image: localhost/hangup-lab:(\w+)", f.read()))
        assert edges <= images, scenario
