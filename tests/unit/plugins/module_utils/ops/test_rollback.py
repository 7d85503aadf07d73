"""ops._rollback: which disks an in-place rollback rewrites from CBT (and which chunks), which it compares, and why."""
import contextlib
import types

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ChangeTrackingError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import _rollback
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import DiskEntry, DiskKey, DiskRecord
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import cbt

MIB = 1024 * 1024
CHUNK = MIB


class FakeVm:
    """The VmHandle verbs plan_rollback uses; snapshots and changed-area answers come from the ``lab`` fixture."""

    name = "vm-a"

    def __init__(self, lab, cbt_on=True):
        self.lab = lab
        self.cbt_on = cbt_on

    def cbt_enabled(self):
        return self.cbt_on

    @contextlib.contextmanager
    def backup_snapshot(self, run_id, quiesce=False):
        self.lab.taken.append((run_id, quiesce, self.name))
        yield "snapshot"

    def changed_areas(self, snapshot, disk, change_id):
        self.lab.queries.append((snapshot, disk.key, disk.capacity, change_id, disk.label))
        answer = self.lab.answers[disk.key]
        if isinstance(answer, Exception):
            raise answer
        return answer


def disk(key, capacity=8 * MIB, uuid="uuid-%s", file_name="[ds] vm-a/vm-a_%s.vmdk"):
    return types.SimpleNamespace(key=key, label="Hard disk %s" % key, capacity=capacity, uuid=uuid % key,
                                 file_name=file_name % key)


def entry(key, change_id="52 aa/7", capacity=8 * MIB):
    record = DiskRecord(key=str(key), capacity=capacity, mode="full", change_id=change_id, uuid="uuid-%s" % key,
                        file_name="[ds] vm-a/vm-a_%s.vmdk" % key)
    return DiskEntry(record=record, sha256="0" * 64, sha256_block_size=CHUNK, index="indexes/x/%s" % key, index_sha256="0" * 64)


@pytest.fixture
def lab():
    """Fake snapshot and changed-area answers: {disk key: areas or a ChangeTrackingError}; records the calls."""
    state = types.SimpleNamespace(answers={}, taken=[], queries=[])
    state.vm = lambda cbt_on=True: FakeVm(state, cbt_on)
    return state


def test_changed_areas_become_the_chunks_to_rewrite(lab):
    lab.answers = {1: [cbt.ChangedArea(CHUNK - 512, 1024), cbt.ChangedArea(5 * CHUNK, 64)], 2: []}
    plans = _rollback.plan_rollback(lab.vm(), [(entry(1), disk(1)), (entry(2), disk(2))], "r1", CHUNK)
    assert [(p.key, p.method, p.changed_chunks, p.reason) for p in plans] == [
        (DiskKey("1"), "cbt", frozenset({0, 1, 5}), "CBT reports 3 chunk(s) changed since the restore point's change id 52 aa/7"),
        (DiskKey("2"), "cbt", frozenset(), "CBT reports 0 chunk(s) changed since the restore point's change id 52 aa/7")]
    write = plans[0].disk_write(entry(1), disk(1))
    assert (write.changed_chunks, write.compare) == (frozenset({0, 1, 5}), False)
    assert lab.taken == [("rollback-r1", False, "vm-a")]       # one snapshot for all disks
    assert lab.queries == [("snapshot", 1, 8 * MIB, "52 aa/7", "Hard disk 1"), ("snapshot", 2, 8 * MIB, "52 aa/7", "Hard disk 2")]


def test_a_refused_query_compares_that_disk_only(lab):
    error = cbt.CbtReasonError("Changed areas of Hard disk 1 are unavailable.", reason="CBT was reset since the last backup")
    lab.answers = {1: error, 2: [cbt.ChangedArea(0, 1)]}
    plans = _rollback.plan_rollback(lab.vm(), [(entry(1), disk(1)), (entry(2), disk(2))], "r2", CHUNK)
    assert [(p.method, p.reason) for p in plans] == [
        ("compare", "every chunk is read and compared: CBT was reset since the last backup"),
        ("cbt", "CBT reports 1 chunk(s) changed since the restore point's change id 52 aa/7")]
    write = plans[0].disk_write(entry(1), disk(1))
    assert (write.changed_chunks, write.compare) == (None, True)


def test_a_plain_change_tracking_error_gives_its_message(lab):
    lab.answers = {1: ChangeTrackingError("CBT is off for this disk.")}
    plans = _rollback.plan_rollback(lab.vm(), [(entry(1), disk(1))], "r3", CHUNK)
    assert [(p.method, p.reason) for p in plans] == [("compare", "every chunk is read and compared: CBT is off for this disk.")]


def test_cbt_off_compares_every_disk_without_a_snapshot(lab):
    plans = _rollback.plan_rollback(lab.vm(cbt_on=False), [(entry(1), disk(1)), (entry(2), disk(2))], "r4", CHUNK)
    assert [(p.method, p.reason) for p in plans] == [
        ("compare", "every chunk is read and compared: Changed Block Tracking is off on VM vm-a")] * 2
    assert lab.taken == [] and lab.queries == []


@pytest.mark.parametrize("recorded, live, reason", [
    (entry(1, change_id=None), disk(1), "the restore point stored no change id for the disk"),
    (entry(1), disk(1, uuid="other-%s"), "the disk's uuid changed since the restore point (a different disk)"),
    (entry(1, capacity=4 * MIB), disk(1), "the disk's size changed from %d to %d bytes" % (4 * MIB, 8 * MIB)),
    (entry(1), disk(1, file_name="[ds2] vm-a/vm-a_%s.vmdk"),
     "the disk's file moved from [ds] vm-a/vm-a_1.vmdk to [ds2] vm-a/vm-a_1.vmdk"),
])
def test_a_disk_the_change_id_cannot_describe_is_compared_without_a_query(lab, recorded, live, reason):
    plans = _rollback.plan_rollback(lab.vm(), [(recorded, live)], "r5", CHUNK)
    assert [(p.method, p.reason) for p in plans] == [("compare", "every chunk is read and compared: " + reason)]
    assert lab.taken == [] and lab.queries == []
