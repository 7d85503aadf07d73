"""changed_areas paging/merging/fault translation and ensure_cbt decisions."""
from types import SimpleNamespace

import pytest
from pyVmomi import vim, vmodl

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ChangeTrackingError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.cbt import (
    CbtReasonError, CbtStatus, ChangedArea, changed_areas, ensure_cbt, merge_areas)
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.snapshots import BackupSnapshot

MIB = 1 << 20


class PagingVM:
    """Answers QueryChangedDiskAreas from a list of changed areas, ``page`` areas per call (like the lab and ESXi)."""

    def __init__(self, areas, capacity, page=2, fault=None):
        self.areas = sorted(areas)
        self.capacity = capacity
        self.page = page
        self.fault = fault
        self.calls = []

    def QueryChangedDiskAreas(self, snapshot, deviceKey, startOffset, changeId):
        self.calls.append(startOffset)
        if self.fault is not None:
            raise self.fault
        if startOffset >= self.capacity:
            raise vim.fault.InvalidArgument(msg="startOffset beyond the disk", invalidProperty="startOffset")
        hits = [a for a in self.areas if a[0] + a[1] > startOffset][:self.page]
        hits = [(max(s, startOffset), s + n - max(s, startOffset)) for s, n in hits]
        more = len([a for a in self.areas if a[0] + a[1] > startOffset]) > self.page
        end = hits[-1][0] + hits[-1][1] if more else self.capacity
        return SimpleNamespace(startOffset=startOffset, length=end - startOffset,
                               changedArea=[SimpleNamespace(start=s, length=n) for s, n in hits])


def test_pages_until_capacity_and_never_asks_at_capacity():
    areas = [(0, 4096), (MIB, 65536), (2 * MIB, 512), (5 * MIB, 3 * MIB)]
    vm = PagingVM(areas, capacity=8 * MIB, page=1)
    result = changed_areas(vm, "snap", 2000, 8 * MIB, "52 aa/3")
    assert result == [ChangedArea(0, 4096), ChangedArea(MIB, 65536), ChangedArea(2 * MIB, 512), ChangedArea(5 * MIB, 3 * MIB)]
    assert vm.calls == [0, 4096, MIB + 65536, 2 * MIB + 512]  # the last page reached the capacity: no call at 8 MiB
    assert 8 * MIB not in vm.calls


def test_single_answer_covering_the_disk_needs_one_call():
    vm = PagingVM([(0, 10)], capacity=MIB, page=100)
    assert changed_areas(vm, "snap", 2000, MIB, "*") == [ChangedArea(0, 10)]
    assert vm.calls == [0]


def test_backup_snapshot_is_accepted_for_the_snapshot():
    seen = []

    class VM:
        def QueryChangedDiskAreas(self, snapshot, deviceKey, startOffset, changeId):
            seen.append(snapshot)
            return SimpleNamespace(startOffset=0, length=MIB, changedArea=[])

    raw = object()
    taken = BackupSnapshot(snapshot=raw, moref="snapshot-1", name="blockvault-r", run_id="r", quiesced=False)
    assert changed_areas(VM(), taken, 2000, MIB, "c/1") == []
    assert seen == [raw]


def test_empty_disk_and_no_changes():
    assert changed_areas(PagingVM([], capacity=0), "s", 1, 0, "c/1") == []
    vm = PagingVM([], capacity=MIB)
    assert changed_areas(vm, "s", 1, MIB, "c/1") == []
    assert vm.calls == [0]


def test_areas_are_merged_sorted_and_clipped_to_capacity():
    class Unsorted:
        def QueryChangedDiskAreas(self, snapshot, deviceKey, startOffset, changeId):
            return SimpleNamespace(startOffset=0, length=1000, changedArea=[
                SimpleNamespace(start=500, length=100), SimpleNamespace(start=0, length=100), SimpleNamespace(start=100, length=50),
                SimpleNamespace(start=550, length=10), SimpleNamespace(start=900, length=500), SimpleNamespace(start=1200, length=5)])
    assert changed_areas(Unsorted(), "s", 1, 1000, "c/1") == [ChangedArea(0, 150), ChangedArea(500, 100), ChangedArea(900, 100)]


def test_merge_areas_drops_empty_and_joins_touching():
    assert merge_areas([(10, 0), (0, 5), (5, 5), (20, 5), (22, 1)]) == [ChangedArea(0, 10), ChangedArea(20, 5)]
    assert merge_areas([]) == []


def test_server_that_does_not_advance_is_an_error_not_a_loop():
    class Stuck:
        def QueryChangedDiskAreas(self, snapshot, deviceKey, startOffset, changeId):
            return SimpleNamespace(startOffset=startOffset, length=0, changedArea=[])
    with pytest.raises(CbtReasonError, match="without advancing"):
        changed_areas(Stuck(), "s", 1, MIB, "c/1")


@pytest.mark.parametrize("fault, fault_name, reason_part", [
    (vim.fault.FileFault(msg="Error caused by file /vmfs/volumes/ds/vm/vm-ctk.vmdk", file="x"), "FileFault", "change log"),
    (vmodl.fault.InvalidArgument(msg="A specified parameter was not correct: changeId", invalidProperty="changeId"),
     "InvalidArgument", "CBT was reset"),
    (vim.fault.NotFound(msg="gone"), "NotFound", "no longer knows"),
    (vim.fault.InvalidState(msg="odd"), "InvalidState", "QueryChangedDiskAreas failed (InvalidState: odd)"),
])
def test_faults_become_change_tracking_errors_with_a_reason(fault, fault_name, reason_part):
    vm = PagingVM([], capacity=MIB, fault=fault)
    with pytest.raises(ChangeTrackingError) as caught:
        changed_areas(vm, "s", 2000, MIB, "52 aa/3", disk_label="Hard disk 1")
    err = caught.value
    assert err.fault == fault_name
    assert reason_part in err.reason
    assert str(err) == "Changed areas of Hard disk 1 are unavailable: %s. It is read in full." % err.reason
    assert err.phase == "cbt" and err.disk == "Hard disk 1"


def test_missing_change_id_is_an_error_without_a_call():
    vm = PagingVM([], capacity=MIB)
    with pytest.raises(CbtReasonError, match="No change id is known for disk 2000"):
        changed_areas(vm, "s", 2000, MIB, None)
    assert vm.calls == []


def test_non_vsphere_errors_propagate():
    vm = PagingVM([], capacity=MIB, fault=ConnectionResetError("reset"))
    with pytest.raises(ConnectionResetError):
        changed_areas(vm, "s", 1, MIB, "c/1")


# -- ensure_cbt ------------------------------------------------------------------------------

class Task:
    def __init__(self, result=None):
        self.info = SimpleNamespace(state="success", result=result, error=None, progress=None, cancelable=False)


class CbtVM:
    def __init__(self, enabled=False, supported=True, snapshot_names=()):
        self.name = "web01"
        self.config = SimpleNamespace(changeTrackingEnabled=enabled)
        self.capability = SimpleNamespace(changeTrackingSupported=supported)
        self.snapshot = SimpleNamespace(rootSnapshotList=[
            SimpleNamespace(name=n, snapshot=SimpleNamespace(_moId="snapshot-%d" % i), childSnapshotList=[])
            for i, n in enumerate(snapshot_names)]) if snapshot_names else None
        self.events = []

    def ReconfigVM_Task(self, spec):
        self.events.append(("reconfig", spec.changeTrackingEnabled))
        return Task()

    def CreateSnapshot_Task(self, name, description, memory, quiesce):
        self.events.append(("create", name.startswith("blockvault-cbt-enable-"), memory, quiesce))
        vm = self

        class Snap:
            def RemoveSnapshot_Task(self, removeChildren, consolidate):
                vm.events.append(("remove", removeChildren, consolidate))
                return Task()
        return Task(Snap())


def test_enabled_already():
    vm = CbtVM(enabled=True)
    assert ensure_cbt(vm) == CbtStatus(enabled=True)
    assert vm.events == []


def test_not_supported():
    status = ensure_cbt(CbtVM(supported=False))
    assert not status.enabled and "does not support CBT" in status.reason


def test_user_snapshots_prevent_enabling():
    vm = CbtVM(snapshot_names=["before upgrade"])
    status = ensure_cbt(vm)
    assert status == CbtStatus(enabled=False, reason="VM web01 has user snapshots (before upgrade): CBT cannot be enabled; "
                                                     "this backup reads in full.")
    assert vm.events == []


def test_enables_then_stuns_with_a_snapshot():
    vm = CbtVM()
    assert ensure_cbt(vm) == CbtStatus(enabled=True, enabled_now=True)
    assert vm.events == [("reconfig", True), ("create", True, False, False), ("remove", False, True)]
