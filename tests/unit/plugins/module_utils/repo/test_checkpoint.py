"""Checkpoints of running backups (repo/checkpoint.py): write-then-record, sealing, damage, adoption, and GC keeping
a live checkpoint's chunks and removing an expired one."""
import datetime
import hashlib

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import CorruptionError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.checkpoint import (
    Checkpoint, CheckpointRecorder, checkpoint_name, gc_checkpoints, list_checkpoints, load_checkpoint)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import ZERO_SENTINEL, isotime
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import MIB, make_repo

CAPACITY = 5 * MIB + 100            # 6 chunks, the last one short


def chunk(number):
    return bytes([number + 1]) * MIB


def digest(number):
    return hashlib.sha256(chunk(number)).digest()


@pytest.fixture(params=[True, False], ids=["encrypted", "plain"])
def repo(request, backend_factory):
    """A repository on each backend (local, moto, SeaweedFS), encrypted or not."""
    return make_repo(backend_factory(), encrypted=request.param)


def template(repo, run_id="run-1", created=None, max_age=3600.0):
    return Checkpoint(run_id=run_id, vm_tag=repo.vm_tag("vm-a"), chunk_size=MIB, max_age=max_age,
                      created=created or isotime(), updated="", parent=None)


def recorder_with(repo, session, stored, recorded, adopted=None):
    """A recorder of one disk whose transfer stored chunks ``stored`` and recorded ``recorded`` as done."""
    index = DiskIndex(CAPACITY, MIB)
    done = bytearray(1)
    for number in stored:
        session.put_chunk(digest(number), chunk(number))
    for number in recorded:
        index.set(number, digest(number))
        done[0] |= 1 << number
    return CheckpointRecorder(repo, session, template(repo), [("2000", CAPACITY, "full", "a full backup was requested",
                                                               None, index, done)], interval=0, adopted=adopted)


def test_a_checkpoint_lists_only_the_recorded_chunks_that_are_stored_and_reads_back(repo):
    with repo.begin_backup("vm-a", "run-1") as session:
        # chunk 4 is recorded done but its put has not finished (a duplicate stored by another worker): not listed
        written = recorder_with(repo, session, stored=[0, 1, 3], recorded=[0, 1, 3, 4]).write_now()
    name = checkpoint_name(repo.vm_tag("vm-a"), "run-1")
    assert written.name == name and list_checkpoints(repo, "vm-a") == [name] == list_checkpoints(repo)
    loaded = load_checkpoint(repo, name)
    assert loaded == written
    assert loaded.disk("2000").done_chunks() == {0: digest(0), 1: digest(1), 3: digest(3)}
    assert (loaded.run_id, loaded.disk("2000").mode, loaded.disk("2000").reason) == ("run-1", "full", "a full backup was requested")
    raw = repo.backend.get(name)
    assert (raw[:4] == b"BVCP") is (not repo.encrypted)     # sealed like an index when the repository is encrypted


def test_an_adopted_checkpoint_keeps_its_stored_chunks_and_drops_the_missing_ones(repo):
    with repo.begin_backup("vm-a", "run-1") as session:
        first = recorder_with(repo, session, stored=[0, 1], recorded=[0, 1]).write_now()
    repo.backend.delete(repo.chunk_object_name(repo.codec.storage_id(digest(1))))     # as a GC would
    with repo.begin_backup("vm-a", "run-2") as session:
        resumed = recorder_with(repo, session, stored=[2], recorded=[2], adopted=first).write_now()
    assert resumed.run_id == "run-1"          # the checkpoint stays the snapshot's run's
    assert resumed.disk("2000").done_chunks() == {0: digest(0), 2: digest(2)}


def test_zero_chunks_are_listed_with_the_sentinel(repo):
    with repo.begin_backup("vm-a", "run-1") as session:
        index = DiskIndex(CAPACITY, MIB)
        index.set_zero(2)
        recorder = CheckpointRecorder(repo, session, template(repo), [("2000", CAPACITY, "full", "r", None, index,
                                                                       bytearray([1 << 2]))], interval=0)
        assert recorder.write_now().disk("2000").done_chunks() == {2: ZERO_SENTINEL}


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_checkpoint_is_a_corruption_error_naming_it(repo, damage):
    plain = Checkpoint(run_id="run-1", vm_tag="0123456789abcdef", chunk_size=MIB, max_age=60.0, created=isotime(),
                       updated=isotime()).to_bytes()
    broken = plain[:10] + bytes([plain[10] ^ 1]) + plain[11:] if damage == "flip" else plain[:-5]
    with pytest.raises(CorruptionError) as raised:
        Checkpoint.from_bytes(broken, "checkpoints/x/run-1")
    assert raised.value.message == "Checkpoint checkpoints/x/run-1 is damaged (checksum mismatch)."


def test_an_unsafe_run_id_gets_a_hashed_object_name():
    assert checkpoint_name("0123456789abcdef", "a/b c") == "checkpoints/0123456789abcdef/x" + hashlib.sha256(
        b"a/b c").hexdigest()[:32]
    assert checkpoint_name("0123456789abcdef", "20261204T135400Z-1a2b3c4d") == "checkpoints/0123456789abcdef/20261204T135400Z-1a2b3c4d"


def test_gc_keeps_the_chunks_of_a_live_checkpoint_and_removes_an_expired_one(repo):
    with repo.begin_backup("vm-a", "run-1") as session:          # a killed run: chunks stored, no restore point
        live = recorder_with(repo, session, stored=[0, 1], recorded=[0, 1]).write_now()
    report = repo.gc()
    assert (report["chunks_removed"], report["checkpoints_removed"]) == (0, 0)
    assert load_checkpoint(repo, live.name) == live
    assert gc_checkpoints(repo)[0] == {repo.codec.storage_id(digest(0)), repo.codec.storage_id(digest(1))}

    two_hours_ago = isotime(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2))
    expired = Checkpoint(**dict(live.__dict__, created=two_hours_ago))
    repo.backend.put(live.name, repo.keys.seal(live.name, expired.to_bytes()) if repo.encrypted else expired.to_bytes())
    report = repo.gc()
    assert (report["chunks_removed"], report["checkpoints_removed"]) == (2, 1)
    assert list_checkpoints(repo) == [] and repo.backend.list("chunks/") == []
