"""In-place rollback with CBT: the chunks changed since the restore point are rewritten without reading the disk;
when CBT cannot answer (a reset since the restore point, CBT off) the rollback reads and compares every chunk,
and says why."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import SnapshotError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import snapshots

from opslab import CHUNK, MIB  # pylint: disable=import-error
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import InPlace

pytestmark = pytest.mark.lab

COMPARE_PREFIX = "every chunk is read and compared: "


def index_digests(env, rp_id, disk_key):
    repository = env.repository()
    try:
        index = repository.load_disk_index(rp_id, disk_key)
        return [index.digest(i) for i in range(index.count)]
    finally:
        repository.close()


def manifest_disks(env, rp_id):
    repository = env.repository()
    try:
        return repository.load_manifest(rp_id).to_json()["disks"]
    finally:
        repository.close()


def written_and_zeroed(digests, chunks):
    """(chunks written, chunks zeroed) of rewriting ``chunks``: data where the restore point has data, else zeros."""
    zeroed = sum(1 for i in chunks if digests[i] == bytes(32))
    return len(chunks) - zeroed, zeroed


def test_rollback_with_cbt_reads_nothing_and_writes_exactly_the_changed_chunks(env, scratch_vm):
    backup = env.backup(scratch_vm)        # a first backup switches CBT on: its change ids are the rollback's base
    live = env.checksums(scratch_vm)
    rp_id = backup["restore_point"]["id"]
    keys = [d["key"] for d in backup["disks"]]
    first, second = index_digests(env, rp_id, keys[0]), index_digests(env, rp_id, keys[1])
    data_chunk = next(i for i, digest in enumerate(first) if digest != bytes(32))
    zero_chunk = next(i for i, digest in enumerate(first) if digest == bytes(32))
    env.write(scratch_vm, 0, data_chunk * CHUNK + 4096, 4096, seed=41)          # data changes
    env.write(scratch_vm, 0, zero_chunk * CHUNK + 512, 8192, seed=42)           # zeros get data
    env.write(scratch_vm, 1, 5 * CHUNK - 2048, 4096, seed=43)                   # across the border of chunks 4 and 5
    assert env.checksums(scratch_vm) != live and env.power_state(scratch_vm) == "poweredOff"

    stats = env.new_stats()
    rolled_back = env.restore(rp_id, InPlace())
    changed_first = sorted({data_chunk, zero_chunk})
    expected = [written_and_zeroed(first, changed_first), written_and_zeroed(second, [4, 5])]
    assert [(d["key"], d["method"], d["reason"]) for d in rolled_back["disks"]] == [
        (d["key"], "cbt", "CBT reports 2 chunk(s) changed since the restore point's change id %s" % d["change_id"])
        for d in manifest_disks(env, rp_id)]
    assert [(d["chunks_written"], d["chunks_zeroed"], d["chunks_unchanged"]) for d in rolled_back["disks"]] == [
        expected[0] + (len(first) - 2,), expected[1] + (len(second) - 2,)]
    assert [d["sha256"] for d in rolled_back["disks"]] == [d["sha256"] for d in backup["disks"]]
    assert rolled_back["changed"] is True and rolled_back["cbt_reset"] is True
    counted = env.read_stats(stats)
    assert (counted["reads"], counted["bytes_read"]) == (0, 0)       # not one byte of the target disks was read
    assert (counted["writes"], counted["bytes_written"]) == (4, 4 * CHUNK)
    assert env.checksums(scratch_vm) == live
    assert env.blockvault_snapshots(scratch_vm) == []                 # the query's snapshot is gone


def test_rollback_with_nothing_changed_writes_nothing_and_keeps_cbt(env, scratch_vm):
    backup = env.backup(scratch_vm)
    live = env.checksums(scratch_vm)
    stats = env.new_stats()
    rolled_back = env.restore(backup["restore_point"]["id"], InPlace())
    assert [(d["method"], d["chunks_written"], d["chunks_zeroed"]) for d in rolled_back["disks"]] == [("cbt", 0, 0)] * 2
    assert rolled_back["changed"] is False and rolled_back["cbt_reset"] is False
    assert (env.read_stats(stats)["bytes_read"], env.read_stats(stats)["writes"]) == (0, 0)
    assert env.checksums(scratch_vm) == live
    # CBT stayed on with its epoch: the next backup is incremental
    assert [d["mode"] for d in env.backup(scratch_vm)["disks"]] == ["incremental", "incremental"]


def test_rollback_after_a_cbt_reset_reads_and_compares_and_says_why(env, scratch_vm):
    backup = env.backup(scratch_vm)
    live = env.checksums(scratch_vm)
    rp_id = backup["restore_point"]["id"]
    keys = [d["key"] for d in backup["disks"]]
    first = index_digests(env, rp_id, keys[0])
    data_chunk = next(i for i, digest in enumerate(first) if digest != bytes(32))
    env.write(scratch_vm, 0, data_chunk * CHUNK, 4096, seed=44)
    env.labctl("reset-cbt", "--vm", scratch_vm)       # as after a power loss: the restore point's change ids are stale

    stats = env.new_stats()
    rolled_back = env.restore(rp_id, InPlace())
    reasons = [d["reason"] for d in rolled_back["disks"]]
    assert [d["method"] for d in rolled_back["disks"]] == ["compare", "compare"]
    for disk, reason in zip(manifest_disks(env, rp_id), reasons):
        # the lab answers a change id of an earlier epoch as ESXi does: a FileFault naming the disk and the change id
        assert reason.startswith(COMPARE_PREFIX + "vSphere could not read the CBT change log of the disk (FileFault: Error caused "
                                 "by file %s: vim.hostd.vmsvc.cbt.cannotGetChanges: vim.hostd.vmsvc.cbt.noEpoch: cannot compute "
                                 "changes since change ID %s: it is not of the change tracking epoch of snapshot snapshot-"
                                 % (disk["file_name"], disk["change_id"]))
        assert reason.endswith(" (change tracking was reset, switched or the disk was resized in between)): it was reset or lost")
    assert [(d["chunks_written"], d["chunks_zeroed"]) for d in rolled_back["disks"]] == [(1, 0), (0, 0)]
    counted = env.read_stats(stats)
    assert counted["bytes_read"] == (64 + 16) * MIB                   # compare reads every chunk of both disks
    assert (counted["writes"], counted["bytes_written"]) == (1, CHUNK)
    assert env.checksums(scratch_vm) == live
    assert env.blockvault_snapshots(scratch_vm) == []


def test_rollback_of_a_vm_without_cbt_compares(env, scratch_vm):
    backup = env.backup(scratch_vm)
    env.write(scratch_vm, 1, 0, 4096, seed=45)
    first = env.restore(backup["restore_point"]["id"], InPlace())   # switches CBT off before writing
    assert [d["method"] for d in first["disks"]] == ["cbt", "cbt"] and first["cbt_reset"] is True
    again = env.restore(backup["restore_point"]["id"], InPlace())
    assert [(d["method"], d["reason"]) for d in again["disks"]] == [
        ("compare", COMPARE_PREFIX + "Changed Block Tracking is off on VM %s" % scratch_vm)] * 2
    assert again["changed"] is False


def test_rollback_compares_when_the_query_snapshot_cannot_be_taken(env, scratch_vm, monkeypatch):
    backup = env.backup(scratch_vm)
    live = env.checksums(scratch_vm)
    env.write(scratch_vm, 1, 0, 4096, seed=46)

    asked = []

    def refuse(vm, run_id, **_kwargs):
        asked.append(run_id)
        raise SnapshotError("Snapshot %s of VM %s: the lab's datastore is full." % (snapshots.snapshot_name(run_id), vm.name))

    monkeypatch.setattr(snapshots, "create_backup_snapshot", refuse)
    rolled_back = env.restore(backup["restore_point"]["id"], InPlace())
    assert [(d["method"], d["reason"], d["chunks_written"] + d["chunks_zeroed"]) for d in rolled_back["disks"]] == [
        ("compare", COMPARE_PREFIX + "the snapshot CBT is queried with could not be taken (Snapshot blockvault-%s of VM %s: the "
                                     "lab's datastore is full.)" % (asked[0], scratch_vm), count)
        for count in (0, 1)]
    assert asked[0].startswith("rollback-")
    assert env.checksums(scratch_vm) == live


def test_rollback_writes_nothing_when_the_query_snapshot_cannot_be_removed(env, scratch_vm, monkeypatch):
    backup = env.backup(scratch_vm)
    env.write(scratch_vm, 1, 0, 4096, seed=47)
    dirty = env.checksums(scratch_vm)

    def refuse(snapshot, what=None, **_kwargs):
        raise SnapshotError("%s failed: the lab says no." % what)

    monkeypatch.setattr(snapshots, "remove_snapshot", refuse)
    stats = env.new_stats()
    with pytest.raises(SnapshotError) as failed:
        env.restore(backup["restore_point"]["id"], InPlace())
    name = env.blockvault_snapshots(scratch_vm)[0]
    assert str(failed.value) == (
        "VM %s: the snapshot %s taken to ask CBT what changed since the restore point could not be removed, so the in-place "
        "restore wrote nothing: remove backup snapshot %s of VM %s failed: the lab says no. Remove the snapshot in the vSphere "
        "client (the next backup also removes it), then restore again." % (scratch_vm, name, name, scratch_vm))
    assert not stats.exists()            # no VDDK connection was even made
    assert env.checksums(scratch_vm) == dirty
