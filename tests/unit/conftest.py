"""Make `ansible_collections.hangup.ssh` importable from a plain checkout.

The collection's code imports itself by its full name, as Ansible loads it; the
integration helpers link ansible_collections/hangup/ssh -> this repository, and
that root goes on sys.path, so nothing needs installing.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

from playbook import collection_root  # noqa: E402

sys.path.insert(0, collection_root())

from fusetrap import stuck_exec  # noqa: E402,F401  pylint: disable=unused-import
