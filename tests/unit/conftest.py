"""Make `ansible_collections.hangup.ssh` importable from a plain checkout.

The collection's code imports itself by its full name, as Ansible loads it; the
integration helpers link ansible_collections/hangup/ssh -> this repository, and
Ansible's collection loader serves that root (as ansible-test's units do), so
nothing needs installing and the plugin loader finds the callbacks too.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

from playbook import collection_root  # noqa: E402

from ansible.plugins.loader import init_plugin_loader  # noqa: E402

init_plugin_loader([collection_root()])
# for the tests' own child processes, which import the collection without the loader
sys.path.insert(0, collection_root())

from fusetrap import stuck_exec  # noqa: E402,F401  pylint: disable=unused-import
