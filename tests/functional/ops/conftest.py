"""Fixtures of the ops functional tests (helpers in opslab.py, importable from the tests through this conftest).

Every test is independent of the others and of their order: each has its own repository (tmp_path) and its
own VDDK stats file; tests that change a VM's disks (add, grow, reset CBT, roll back) work on a scratch VM made
by restoring lab-vm1 into a new VM (``scratch_vm``), destroyed at the end.
"""
import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from opslab import LABVDDK_VARS, Env  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import NewVm
# imported here with the rest of the engine, before pytest-ansible's collection loader takes over the imports of the
# test modules (it knows only what was imported before it)
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import file_restore  # noqa: F401  pylint: disable=unused-import


@pytest.fixture
def env(lab, tmp_path, monkeypatch):
    for name, value in lab.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    made = Env(lab, tmp_path, monkeypatch)
    made.knobs()
    yield made
    for name in LABVDDK_VARS:
        os.environ.pop(name, None)


@pytest.fixture
def scratch_vm(env):
    """A new VM restored from a backup of lab-vm1 (name returned), destroyed after the test."""
    name = "scratch-%s" % uuid.uuid4().hex[:8]
    base = env.backup("lab-vm1")
    env.restore(base["restore_point"]["id"], NewVm(name))
    yield name
    env.destroy(name)
