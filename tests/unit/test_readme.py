"""README.md's role-variable table is the one the argument specs give."""

import os
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "lab"))

import role_variables  # noqa: E402


def test_readme_lists_every_role_variable_as_the_specs_say():
    assert role_variables.readme_table() == role_variables.table(), "run: python lab/role_variables.py --write"


def test_table_covers_every_option():
    with open(role_variables.SPECS) as f:
        names = set(yaml.safe_load(f)["argument_specs"]["main"]["options"])
    assert {line.split("`")[1] for line in role_variables.table().splitlines()[2:]} == names
