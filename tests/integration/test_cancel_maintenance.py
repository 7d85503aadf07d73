"""Cancel means cancel for the runs that work on the repository alone (issue 19): the prune playbook (with its garbage
collection), the validate playbook and a restore to a file, each cancelled through ansible-runner (as AWX cancels a
job: it SIGKILLs ansible-playbook's process group) at a random moment of its work on an S3 repository.

Each request to the repository costs 60 ms more through a latency proxy (labkit.latency) in front of moto, as an
object store across a WAN would (for the restore, replies are paced too), so that the runs last long enough to be
cancelled in their middle; the rerun goes straight to moto. A cancelled restore to a file leaves neither the file nor
its partial copy. The module runs under ansible's worker (no ``async``), which ansible-runner's kill leaves running:
it notices that the ansible processes that started it ended (``controller gone``) and stops. Then, within 10 s, no
module process of the job is left, the repository holds no lock, it validates clean (what a prune cut short left is
reported as an unfinished removal, never as damage), and an immediate rerun succeeds and finishes the work.

Run: .venv/bin/python -m pytest -q tests/integration/test_cancel_maintenance.py
"""
import json
import random
import time
import uuid

import pytest

from labkit.latency import LatencyProxy
from labkit.s3servers import PLAIN_BUCKET, moto_server  # noqa: F401  pylint: disable=unused-import

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import NotFoundInBackendError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, RepositorySettings, open_backend
from ansible_collections.blockvault.vsphere.tests.integration.test_cancel import (
    PASSPHRASE, CancelAfter, Job, cancel_direct_restore)
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import backup

pytestmark = pytest.mark.lab

# enough restore points that a prune's removals, or a validation's reads, last tens of seconds through the proxy
POINTS = 100
DELAY = 0.06


class S3Job(Job):
    """A Job (test_cancel) whose repository is on moto, reached by the playbooks through the latency proxy."""

    def __init__(self, lab, tmp_path, server):
        super().__init__(lab, tmp_path)
        self.server = server
        self.proxy = LatencyProxy(int(server.endpoint.rsplit(":", 1)[1]), DELAY)
        self.location = "s3://%s/cancel-%s" % (PLAIN_BUCKET, uuid.uuid4().hex[:12])
        self.through(self.proxy.endpoint)

    def through(self, endpoint):
        """The playbooks' repository options from now on: by way of ``endpoint``."""
        self.vars["blockvault_repository"] = {
            "repository": self.location, "s3_endpoint_url": endpoint, "region": self.server.region,
            "aws_access_key": self.server.access_key, "aws_secret_key": self.server.secret_key, "passphrase": PASSPHRASE}

    def backend(self):
        """Straight to moto (the test's own reads do not go through the proxy)."""
        return open_backend(RepositorySettings(self.location, s3_endpoint_url=self.server.endpoint, region=self.server.region,
                                               access_key=self.server.access_key, secret_key=self.server.secret_key))

    def open_repository(self):
        return Repository.open(self.backend(), passphrase=PASSPHRASE)

    def populate(self, count):
        """``count`` restore points of one VM, each with a disk of its own data (so GC has chunks to free)."""
        backend = self.backend()
        Repository.create(backend, chunk_size=1 << 20, passphrase=PASSPHRASE)
        repository = Repository.open(backend, passphrase=PASSPHRASE)
        generator = random.Random(count)
        for _number in range(count):
            backup(repository, "vm-cancel", {"2000": generator.randbytes(64 << 10)})
        repository.close()

    def lock_purposes(self):
        backend = self.backend()
        purposes = []
        for info in backend.list("locks/"):
            try:
                purposes.append(json.loads(backend.get(info.name))["purpose"])
            except NotFoundInBackendError:
                continue    # released meanwhile
        return purposes

    def removal_markers(self):
        return [info.name for info in self.backend().list("removals/")]


@pytest.fixture
def s3_job(lab, tmp_path, moto_server):  # noqa: F811  pylint: disable=redefined-outer-name
    job = S3Job(lab, tmp_path, moto_server)
    yield job
    job.proxy.stop()


def test_cancelled_prune_stops_and_its_rerun_finishes(s3_job):
    job = s3_job
    job.populate(POINTS)
    before = job.restore_points()
    newest = before[-1]
    # cancelled once the prune has begun removing restore points (its first removal marker is written)
    cancel = CancelAfter(lambda: bool(job.removal_markers()), seed=len(job.tmp_path.name), spread=1.5)
    runner = job.playbook("prune.yml", {"blockvault_keep": {"keep_last": 1}}, cancel_when=cancel)
    since = time.monotonic()
    assert runner.status == "canceled" and cancel.cancelled_at is not None
    job.wait_until_no_module_process(since)
    assert job.lock_purposes() == []
    after = job.restore_points()
    # stopped in its middle: the newest is kept, some of the others are still there
    assert newest in after and set(after) <= set(before) and len(after) > 1, (len(before), len(after))
    report = job.open_repository().validate("quick")
    assert report["ok"], report
    assert set(report["unfinished_removals"]) <= set(before) - set(after)

    # an immediate rerun (straight to the store) removes the rest and frees every chunk no restore point uses
    job.through(job.server.endpoint)
    rerun = job.playbook("prune.yml", {"blockvault_keep": {"keep_last": 1}})
    assert rerun.status == "successful", rerun.stdout.read()
    assert job.restore_points() == [newest]
    final = job.open_repository().validate("full")
    assert final["ok"] and final["unfinished_removals"] == [] and final["chunks_unreferenced"] == 0, final
    assert job.removal_markers() == [] and job.lock_purposes() == []


def test_cancelled_restore_to_a_file_leaves_no_file_and_its_rerun_restores(s3_job):
    job = s3_job
    disk = random.Random(7).randbytes(24 << 20)
    backend = job.backend()
    Repository.create(backend, chunk_size=1 << 20, passphrase=PASSPHRASE)
    backup(Repository.open(backend, passphrase=PASSPHRASE), "vm-cancel", {"2000": disk})
    points = job.restore_points()
    # replies paced at 512 KiB/s a connection: the 24 MiB take several seconds to read, even with parallel reads
    job.proxy.bandwidth = 512 << 10
    target = job.tmp_path / "disk-2000.raw"
    restore, status = cancel_direct_restore(job, {"name": "vm vm-cancel", "target": "file", "path": str(target),
                                                  "memory_budget_mb": 8}, points)
    assert status["phase"] == "transfer" and 0 < status["bytes_done"] < status["bytes_total"], status
    assert sorted(path.name for path in job.tmp_path.iterdir() if path.name.startswith("disk-")) == []

    job.through(job.server.endpoint)
    rerun = job.playbook("run_directly.yml", restore)
    assert rerun.status == "successful", rerun.stdout.read()
    assert target.read_bytes() == disk


def test_cancelled_validation_stops_and_its_rerun_succeeds(s3_job):
    job = s3_job
    job.populate(POINTS)
    before = job.restore_points()
    # cancelled once the validation holds its lock (it reads every manifest and index after taking it)
    cancel = CancelAfter(lambda: "validate" in job.lock_purposes(), seed=len(job.tmp_path.name), spread=1.5)
    runner = job.playbook("validate.yml", {"blockvault_validate_level": "quick"}, cancel_when=cancel)
    since = time.monotonic()
    assert runner.status == "canceled" and cancel.cancelled_at is not None
    job.wait_until_no_module_process(since)
    assert job.lock_purposes() == []
    assert job.restore_points() == before

    job.through(job.server.endpoint)
    rerun = job.playbook("validate.yml", {"blockvault_validate_level": "quick"})
    assert rerun.status == "successful", rerun.stdout.read()
