"""Fixtures of the repository tests: a backend on local disk, on moto and on SeaweedFS (both on loopback), fast keys.

The S3 servers are started once per test session by labkit.s3servers (see its docstring).
"""
import pytest

from labkit.s3servers import moto_server, s3_server, seaweedfs_server  # noqa: F401  pylint: disable=unused-import

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import crypto, open_backend
# Imported here, before pytest-ansible installs its collection finder, like the repository itself: the finder fails
# to find modules first imported after it (transfer's status file reader, the fuzzing strategies, the listing views) when the tests of
# this directory run on their own.
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer import progress  # noqa: F401  pylint: disable=unused-import
# the views test_catalog.py runs on catalog summaries
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import info, report  # noqa: F401  pylint: disable=unused-import
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo import fuzzing  # noqa: F401  pylint: disable=unused-import
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import s3_backend


@pytest.fixture(params=["local", "moto", "seaweedfs"])
def backend_factory(request, tmp_path):
    """A function returning a fresh, empty backend of the parametrized kind (several per test if needed); its
    ``server`` attribute is the S3 server (labkit.s3servers.S3Server), None for local."""
    if request.param == "local":
        counter = iter(range(1000))

        def factory():
            return open_backend(str(tmp_path / ("repo%d" % next(counter))))
        factory.server = None
        return factory
    server = request.getfixturevalue(request.param + "_server")

    def s3_factory():
        return s3_backend(server)
    s3_factory.server = server
    return s3_factory


@pytest.fixture
def backend(backend_factory):
    return backend_factory()


@pytest.fixture(autouse=True)
def fast_kdf(monkeypatch):
    """Cheap scrypt for tests (key objects record their own parameters, so opening still works)."""
    monkeypatch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
