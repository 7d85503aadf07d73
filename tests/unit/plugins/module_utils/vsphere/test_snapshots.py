"""Backup snapshots: naming, quiesce fallback, the context manager's error handling, orphans."""
import contextlib
import logging
from types import SimpleNamespace

import pytest
from pyVmomi import vim, vmodl

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import SnapshotError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import snapshots as snaps


def ok(result=None):
    return SimpleNamespace(info=SimpleNamespace(state="success", result=result, error=None, progress=None, cancelable=False))


def failed(fault):
    return SimpleNamespace(info=SimpleNamespace(state="error", result=None, error=fault, progress=None, cancelable=False))


class FakeSnapshot:
    def __init__(self, vm, moref, remove_fault=None):
        self.vm, self._moId, self.remove_fault = vm, moref, remove_fault
        self.call_faults = []          # raised by the call itself, as a SOAP fault is

    def RemoveSnapshot_Task(self, removeChildren, consolidate):
        self.vm.log.append(("remove", self._moId, removeChildren, consolidate))
        for fault in self.call_faults:
            raise fault
        if self.remove_fault:
            return failed(self.remove_fault)
        self.vm.tree = [t for t in self.vm.tree if t.snapshot is not self]
        return ok()


class FakeVM:
    def __init__(self, names=(), quiesce_fault=None, create_fault=None, remove_fault=None):
        self.name = "web01"
        self.log = []
        self.counter = 100
        self.quiesce_fault, self.create_fault, self.remove_fault = quiesce_fault, create_fault, remove_fault
        self.tree = []
        for name in names:
            self._add(name)

    def _add(self, name, description=""):
        self.counter += 1
        snap = FakeSnapshot(self, "snapshot-%d" % self.counter, self.remove_fault)
        self.tree.append(SimpleNamespace(name=name, snapshot=snap, description=description, createTime=None, quiesced=False,
                                         childSnapshotList=[]))
        return snap

    @property
    def snapshot(self):
        # nest the second snapshot under the first, like a real chain
        if not self.tree:
            return None
        roots = [SimpleNamespace(**vars(self.tree[0]))]
        roots[0].childSnapshotList = self.tree[1:]
        return SimpleNamespace(rootSnapshotList=roots)

    def CreateSnapshot_Task(self, name, description, memory, quiesce):
        self.log.append(("create", name, memory, quiesce, description))
        if quiesce and self.quiesce_fault:
            return failed(self.quiesce_fault)
        if self.create_fault:
            return failed(self.create_fault)
        return ok(self._add(name, description))


def test_create_names_describes_and_excludes_memory():
    vm = FakeVM()
    taken = snaps.create_backup_snapshot(vm, "20260101T000000-ab12", quiesce=True)
    assert (taken.name, taken.moref, taken.quiesced, taken.quiesce_error) == ("blockvault-20260101T000000-ab12", "snapshot-101", True, None)
    kind, name, memory, quiesce, description = vm.log[0]
    assert (kind, name, memory, quiesce) == ("create", "blockvault-20260101T000000-ab12", False, True)
    assert "blockvault" in description and "20260101T000000-ab12" in description


def test_quiesce_failure_without_permission_to_fall_back_raises():
    vm = FakeVM(quiesce_fault=vim.fault.ApplicationQuiesceFault(msg="An error occurred while quiescing the virtual machine."))
    with pytest.raises(SnapshotError) as caught:
        snaps.create_backup_snapshot(vm, "r1", quiesce=True)
    assert str(caught.value).startswith("Could not take a quiesced snapshot of VM web01: Create quiesced snapshot blockvault-r1 of "
                                        "VM web01 failed: An error occurred while quiescing the virtual machine (ApplicationQuiesceFault).")
    assert "crash-consistent" in str(caught.value)
    assert [entry[0] for entry in vm.log] == ["create"]


def test_quiesce_failure_falls_back_to_crash_consistent_when_allowed(caplog):
    vm = FakeVM(quiesce_fault=vim.fault.ToolsUnavailable(msg="VMware Tools is not running"))
    with caplog.at_level(logging.WARNING):
        taken = snaps.create_backup_snapshot(vm, "r1", quiesce=True, allow_crash_consistent=True)
    assert taken.quiesced is False
    assert "VMware Tools is not running (ToolsUnavailable)" in taken.quiesce_error
    assert [(e[0], e[3]) for e in vm.log] == [("create", True), ("create", False)]
    assert "taking a crash-consistent snapshot instead" in caplog.text


def test_crash_consistent_failure_is_a_snapshot_error():
    vm = FakeVM(create_fault=vim.fault.InsufficientDisks(msg="no space"))
    with pytest.raises(SnapshotError, match=r"Create crash-consistent snapshot blockvault-r1 of VM web01 failed: no space"):
        snaps.create_backup_snapshot(vm, "r1")


def test_context_manager_removes_with_consolidation():
    vm = FakeVM()
    with snaps.backup_snapshot(vm, "r1") as taken:
        assert [e.name for e in snaps.list_snapshots(vm)] == ["blockvault-r1"]
    assert vm.log[-1] == ("remove", taken.moref, False, True)
    assert snaps.list_snapshots(vm) == []


def test_body_error_is_preserved_when_removal_also_fails(caplog):
    vm = FakeVM(remove_fault=vim.fault.TaskInProgress(msg="busy"))
    with caplog.at_level(logging.ERROR), pytest.raises(KeyError, match="body failed"):
        with contextlib.ExitStack() as stack:
            stack.enter_context(snaps.backup_snapshot(vm, "r1"))
            raise KeyError("body failed")
    assert "remove backup snapshot blockvault-r1 of VM web01 failed after an earlier error" in caplog.text
    assert "busy (TaskInProgress)" in caplog.text


def test_removal_failure_after_a_good_body_raises():
    vm = FakeVM(remove_fault=vim.fault.TaskInProgress(msg="busy"))
    with pytest.raises(SnapshotError) as caught:
        with snaps.backup_snapshot(vm, "r1"):
            pass
    assert str(caught.value).startswith("Remove backup snapshot blockvault-r1 of VM web01 failed: busy (TaskInProgress).")
    assert (caught.value.vm, caught.value.run_id, caught.value.phase) == ("web01", "r1", "snapshot")


def test_orphans_are_blockvault_snapshots_of_other_runs():
    vm = FakeVM(names=["before upgrade", "blockvault-old1", "blockvault-cur", "blockvault-old2", "blockvault"])
    assert [e.name for e in snaps.user_snapshots(vm)] == ["before upgrade", "blockvault"]
    assert [e.name for e in snaps.find_orphan_snapshots(vm, ["cur"])] == ["blockvault-old1", "blockvault-old2"]
    assert [e.path for e in snaps.list_snapshots(vm)][:2] == ["before upgrade", "before upgrade/blockvault-old1"]
    assert snaps.remove_orphan_snapshots(vm, ["cur"]) == ["blockvault-old1", "blockvault-old2"]
    assert [e.name for e in snaps.list_snapshots(vm)] == ["before upgrade", "blockvault-cur", "blockvault"]


def test_orphan_removal_tries_all_then_reports_failures():
    vm = FakeVM(names=["blockvault-a", "blockvault-b"], remove_fault=vim.fault.InvalidState(msg="locked"))
    with pytest.raises(SnapshotError) as caught:
        snaps.remove_orphan_snapshots(vm)
    assert [e[1] for e in vm.log if e[0] == "remove"] == ["snapshot-101", "snapshot-102"]
    assert str(caught.value).startswith("Could not remove 2 snapshot(s) left by earlier blockvault runs on VM web01: blockvault-a (")


def gone(moref):
    """The fault vCenter answers a call on a snapshot removed from outside with."""
    return vmodl.fault.ManagedObjectNotFound(msg="The object 'vim.vm.Snapshot:%s' has already been deleted or has not been "
                                                 "completely created" % moref)


def test_a_snapshot_removed_from_outside_is_already_gone_not_a_failure():
    vm = FakeVM()
    removals = []
    with contextlib.ExitStack() as stack:      # the caller's stack: a raw fault leaving it gave AttributeError __context__
        taken = stack.enter_context(snaps.backup_snapshot(vm, "r1", on_removed=removals.append))
        taken.snapshot.call_faults.append(gone(taken.moref))
    assert removals == [snaps.SnapshotRemoval("blockvault-r1", "web01", "already_gone")]
    assert removals[0].describe() == "already_gone"
    assert removals[0].warning() == "the backup snapshot blockvault-r1 of VM web01 was already removed from outside"
    assert vm.log[-1] == ("remove", taken.moref, False, True)


def test_a_vanished_snapshot_without_a_listener_is_not_an_error_either():
    vm = FakeVM()
    with snaps.backup_snapshot(vm, "r1") as taken:
        taken.snapshot.call_faults.append(gone(taken.moref))
    assert vm.log[-1] == ("remove", taken.moref, False, True)


def test_a_task_that_finds_the_snapshot_gone_is_already_gone():
    vm = FakeVM(remove_fault=gone("snapshot-101"))
    assert snaps.remove_snapshot(vm._add("blockvault-x")) == "already_gone"
    assert snaps.remove_snapshot(FakeVM()._add("blockvault-y")) == "removed"


def test_another_removal_failure_after_the_commit_is_reported_left_with_its_reason():
    vm = FakeVM(remove_fault=vim.fault.TaskInProgress(msg="busy"))
    removals = []
    with snaps.backup_snapshot(vm, "r1", on_removed=removals.append):
        pass
    [removal] = removals
    assert removal.state == "left"
    assert removal.describe() == "left (Remove backup snapshot blockvault-r1 of VM web01 failed: busy (TaskInProgress).)"
    assert removal.warning() == (
        "the backup snapshot blockvault-r1 of VM web01 could not be removed (Remove backup snapshot blockvault-r1 of VM web01 "
        "failed: busy (TaskInProgress).); the restore point is committed, and the next backup of the VM removes the "
        "snapshot, or remove it in the vSphere client")


def test_a_fault_raised_by_the_call_becomes_a_snapshot_error_never_a_raw_fault():
    vm = FakeVM()
    with pytest.raises(SnapshotError) as caught:
        with contextlib.ExitStack() as stack:
            taken = stack.enter_context(snaps.backup_snapshot(vm, "r1"))
            taken.snapshot.call_faults.append(vim.fault.InvalidState(msg="the VM is being migrated"))
    assert str(caught.value).startswith("Remove backup snapshot blockvault-r1 of VM web01 failed: the VM is being migrated "
                                        "(InvalidState).")
    assert (caught.value.vm, caught.value.run_id) == ("web01", "r1")
