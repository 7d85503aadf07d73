"""Fixtures of the module functional tests: the S3 servers (moto and SeaweedFS, once per session; labkit.s3servers),
imported here so that the tests can use them; ``lab_env`` (the lab's variables in the environment, a cheap scrypt
cost) and ``repo_args`` (a local repository of the test's own). Helpers in modrun.py, importable through this file."""
import os
import sys

import pytest

from labkit.s3servers import moto_server, s3_server, seaweedfs_server  # noqa: F401  pylint: disable=unused-import

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from modrun import PASSPHRASE  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def lab_env(lab, tmp_path, monkeypatch):
    """The lab's variables (VMWARE_*, VDDK_*) in the environment, as `source .lab/env` gives a playbook; the module's
    state under tmp_path; a cheap scrypt cost. Returns the lab."""
    # imported here, not at the top: the collection must first be imported by a test module, through the collection
    # loader, or its modules cannot be found any more
    from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import crypto  # pylint: disable=import-outside-toplevel
    for name, value in lab.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
    return lab


@pytest.fixture
def repo_args(lab_env, tmp_path):
    """The options of a local repository of this test's own (not created yet)."""
    return {"repository": str(tmp_path / "repo"), "passphrase": PASSPHRASE}
