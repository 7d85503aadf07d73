"""Fixtures of the repository tests: a backend on local disk and on a real moto S3 server, fast keys."""
import os
import socket
import subprocess
import sys
import time

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import crypto, open_backend
# Imported here, before pytest-ansible installs its collection finder, like the repository itself: the finder fails
# to find modules first imported after it (transfer's status file reader, the fuzzing strategies) when the tests of
# this directory run on their own.
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer import progress  # noqa: F401  pylint: disable=unused-import
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo import fuzzing  # noqa: F401  pylint: disable=unused-import
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import BUCKET, LOCKED_BUCKET, s3_backend


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real moto S3 server (``moto_server``) on a free loopback port, for the whole session."""
    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    endpoint = "http://127.0.0.1:%d" % port
    deadline = time.time() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto_server did not start on port %d" % port)
            time.sleep(0.1)
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.create_bucket(Bucket=LOCKED_BUCKET, ObjectLockEnabledForBucket=True)
    yield endpoint
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(params=["local", "s3"])
def backend_factory(request, tmp_path):
    """A function returning a fresh, empty backend of the parametrized kind (several per test if needed)."""
    if request.param == "local":
        counter = iter(range(1000))
        return lambda: open_backend(str(tmp_path / ("repo%d" % next(counter))))
    endpoint = request.getfixturevalue("moto_endpoint")
    return lambda: s3_backend(endpoint)


@pytest.fixture
def backend(backend_factory):
    return backend_factory()


@pytest.fixture(autouse=True)
def fast_kdf(monkeypatch):
    """Cheap scrypt for tests (key objects record their own parameters, so opening still works)."""
    monkeypatch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
