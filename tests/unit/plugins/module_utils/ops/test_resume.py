"""ops._resume: which checkpoint of a killed run the next backup adopts, why it declines one (each reason exactly),
and how an adopted checkpoint turns read chunks into carried ones (a chunk gone from the repository is read again)."""
import dataclasses
import datetime
import hashlib
import types

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops._resume import find_resumable
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, Repository, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.checkpoint import (
    Checkpoint, CheckpointDisk, list_checkpoints, write_checkpoint)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import isotime
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import DiskRecord, ManifestDraft, VmConfig, VmRecord
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.plan import CARRY, READ, plan_disk
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.snapshots import (
    FoundBackupSnapshot, LeasedSnapshot, SnapshotEntry)

MIB = 1 << 20
CAPACITY = 4 * MIB
NOW = datetime.datetime.now(datetime.timezone.utc)


def chunk(number):
    return bytes([number + 1]) * MIB


def digest(number):
    return hashlib.sha256(chunk(number)).digest()


@pytest.fixture
def repo(tmp_path):
    return Repository.create(open_backend(str(tmp_path / "repo")), chunk_size=MIB, encryption=False)


def store_checkpoint(repo, run_id, done=(0, 1), mode="full", created=None, key="2000"):
    bitmap = bytearray(1)
    for number in done:
        bitmap[0] |= 1 << number
    disk = CheckpointDisk(key=key, capacity=CAPACITY, mode=mode, reason="planned %s" % mode,
                          base_change_id="52 aa/1" if mode == "incremental" else None, done=bytes(bitmap),
                          digests=b"".join(digest(number) for number in sorted(done)))
    checkpoint = Checkpoint(run_id=run_id, vm_tag=repo.vm_tag("vm-key"), chunk_size=MIB, max_age=3600.0,
                            created=created or isotime(), updated=isotime(), disks=(disk,))
    write_checkpoint(repo, checkpoint)
    return checkpoint


class FakeVm:
    """Snapshots by run id, each taken ``ages[run_id]`` seconds ago."""

    def __init__(self, ages):
        self.ages = ages

    def find_backup_snapshot(self, run_id):
        if run_id not in self.ages:
            return None
        entry = SnapshotEntry(name="blockvault-" + run_id, moref="snapshot-1", snapshot=None)
        leased = LeasedSnapshot(entry=entry, lease=None, expired=True, why="its run %s is dead" % run_id)
        return FixedAgeSnapshot(leased=leased, created=NOW - datetime.timedelta(seconds=self.ages[run_id]))


class FixedAgeSnapshot(FoundBackupSnapshot):
    """A found snapshot whose age is measured from the module's NOW, whenever the test runs."""

    def age(self, now=None):
        return super().age(now or NOW)


def decide(repo, vm, mode="auto", max_age=3600, disks=(("2000", CAPACITY),)):
    context = types.SimpleNamespace(repository=repo, label="vm")
    request = types.SimpleNamespace(mode=mode, resume_max_age=max_age)
    snap_disks = [types.SimpleNamespace(key=key, capacity=capacity) for key, capacity in disks]
    return find_resumable(context, vm, "vm-key", request, lambda snapshot: snap_disks)


@pytest.mark.parametrize("case, reason", [
    ("disabled", "resume is disabled (resume_max_age is 0)"),
    ("gone", "its snapshot blockvault-run-1 no longer exists"),
    ("old", "its snapshot blockvault-run-1 is 7200 s old, older than resume_max_age (3600 s): its delta disk keeps "
            "growing on the datastore"),
    ("full requested", "it was an incremental backup and this run asks for a full one"),
    ("disks", "the disks to back up differ from the ones it was backing up"),
    ("parent", "the restore point 20261201T000000.000000Z-0123456789abcdef-01234567 it builds on cannot be loaded "
               "(Restore point 20261201T000000.000000Z-0123456789abcdef-01234567 does not exist in {location}.)"),
])
def test_a_checkpoint_is_declined_and_removed_with_the_reason(repo, case, reason):
    checkpoint = store_checkpoint(repo, "run-1", mode="incremental" if case in ("full requested", "parent") else "full")
    if case == "parent":
        write_checkpoint(repo, dataclasses.replace(checkpoint, parent="20261201T000000.000000Z-0123456789abcdef-01234567"))
    vm = FakeVm({} if case == "gone" else {"run-1": 7200 if case == "old" else 10})
    resume, declined = decide(repo, vm, mode="full" if case == "full requested" else "auto",
                              max_age=0 if case == "disabled" else 3600,
                              disks=(("2000", CAPACITY), ("2001", MIB)) if case == "disks" else (("2000", CAPACITY),))
    assert resume is None and declined == {"from_run": "run-1", "reason": reason.format(location=repo.location)}
    assert list_checkpoints(repo) == []


@pytest.mark.parametrize("committed_by", ["run-1", "run-2"])
def test_the_checkpoint_of_a_committed_run_is_declined(repo, committed_by):
    """Killed between the commit and the removal of the checkpoint: by the run itself, or by the run resuming it."""
    store_checkpoint(repo, "run-1")
    with repo.begin_backup("vm-key", committed_by) as session:
        session.add_disk_index("2000", DiskIndex(CAPACITY, MIB))
        record = DiskRecord(key="2000", capacity=CAPACITY, mode="full", reason="r")
        stats = {"resumed": {"from_run": "run-1"}} if committed_by == "run-2" else {}
        rp_id = session.commit(ManifestDraft.build(committed_by, VmRecord(key="vm-key", name="vm", config=VmConfig("vm")),
                                                   [record], stats=stats)).id
    assert decide(repo, FakeVm({"run-1": 10})) == (None, {"from_run": "run-1",
                                                          "reason": "its restore point %s was committed" % rp_id})
    assert list_checkpoints(repo) == []


def test_a_damaged_checkpoint_is_declined_and_removed(repo):
    checkpoint = store_checkpoint(repo, "run-1")
    repo.backend.put(checkpoint.name, b"BVCP garbage")
    resume, declined = decide(repo, FakeVm({"run-1": 10}))
    assert resume is None and declined == {"from_run": None,
                                           "reason": "Checkpoint %s is damaged (bad magic or truncated)" % checkpoint.name}
    assert list_checkpoints(repo) == []


def test_the_newest_checkpoint_is_adopted_and_older_ones_removed(repo):
    store_checkpoint(repo, "run-old", created=isotime(NOW - datetime.timedelta(minutes=30)))
    newest = store_checkpoint(repo, "run-new")
    resume, declined = decide(repo, FakeVm({"run-old": 1800, "run-new": 10}))
    assert declined is None and resume.run_id == "run-new" and resume.checkpoint == newest
    assert list_checkpoints(repo) == [newest.name]
    assert resume.planned("2000") == ("full", "planned full", None)


def test_the_checkpoint_of_a_run_whose_lock_is_live_is_neither_adopted_nor_removed(repo):
    with repo.begin_backup("vm-key", "run-1") as running:
        checkpoint = dataclasses.replace(store_checkpoint(repo, "run-1"), lock_id=running.lock_id)
        write_checkpoint(repo, checkpoint)
        assert decide(repo, FakeVm({"run-1": 10})) == (None, None)
        assert list_checkpoints(repo) == [checkpoint.name]
    resume, declined = decide(repo, FakeVm({"run-1": 10}))     # its lock released: the run is over
    assert declined is None and resume.checkpoint == checkpoint


def test_an_adopted_checkpoint_carries_its_stored_chunks_and_reads_a_missing_one_again(repo):
    store_checkpoint(repo, "run-1", done=(0, 1, 3))
    with repo.begin_backup("vm-key", "run-2") as session:
        for number in (0, 3):                       # chunk 1 is gone (a GC after the checkpoint expired)
            session.put_chunk(digest(number), chunk(number))
        resume = decide(repo, FakeVm({"run-1": 10}))[0]
        plan, previous = resume.apply("2000", plan_disk(CAPACITY, MIB), None, session)
    assert plan.actions() == [CARRY, READ, READ, CARRY]
    assert [previous.get(number) for number in (0, 3)] == [digest(0), digest(3)]
    assert (resume.bytes_total, resume.bytes_left, resume.chunks_missing) == (4 * MIB, 2 * MIB, 1)
    assert resume.result() == {"from_run": "run-1", "bytes_left": 2 * MIB, "bytes_total": 4 * MIB}
    assert resume.message() == "resumed from checkpoint of run run-1, %d of %d bytes left" % (2 * MIB, 4 * MIB)


def test_a_found_snapshot_knows_its_age():
    assert FoundBackupSnapshot(leased=None, created=NOW - datetime.timedelta(seconds=90)).age(NOW) == 90.0
    naive = (NOW - datetime.timedelta(seconds=30)).replace(tzinfo=None)       # vSphere times are UTC
    assert FoundBackupSnapshot(leased=None, created=naive).age(NOW) == 30.0
    assert FoundBackupSnapshot(leased=None, created=None).age(NOW) is None
