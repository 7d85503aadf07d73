"""The simulator where govmomi 0.24.2 differed from vCenter (PROTOCOL.md section 6): unset properties read through
Fetch, RenameSnapshot, reverts that bring disk content back, removeChildren, snapshot state and memory files,
changeTrackingEnabled false by default. Each test failed against the unextended simulator."""
import os

import pytest
from pyVmomi import vim, vmodl
from pyVmomi.VmomiSupport import Object

from labkit.testing import find_vm, set_cbt, wait_task

pytestmark = pytest.mark.lab


@pytest.fixture
def vm2(si):
    """lab-vm2 powered on without snapshots before and after the test."""
    vm = find_vm(si, "lab-vm2")
    assert vm.snapshot is None
    assert vm.runtime.powerState == "poweredOn"
    yield vm
    if vm.snapshot is not None:
        wait_task(vm.RemoveAllSnapshots_Task())
    if vm.runtime.powerState != "poweredOn":
        wait_task(vm.PowerOnVM_Task())


def vm_files(lab, vm_name):
    """Names of the files in the VM's datastore directory (the lab's own .cbt/.snap bookkeeping left out)."""
    directory = lab.datastore_path() / vm_name
    return sorted(p.name for p in directory.iterdir() if p.is_file() and not p.name.endswith(".cbt"))


def tree_names(nodes):
    """{name: [child names]} of a snapshot tree, depth first."""
    out = {}
    for node in nodes:
        out[node.name] = [c.name for c in node.childSnapshotList]
        out.update(tree_names(node.childSnapshotList))
    return out


def test_unset_properties_read_as_none_through_fetch(si, lab):
    vm = find_vm(si, "lab-vm2")
    # pyVmomi reads each property with Fetch; govmomi 0.24.2 panicked on these and dropped the connection
    assert vm.snapshot is None
    assert vm.parentVApp is None
    assert si.content.eventManager.latestEvent is None
    assert vm.name == "lab-vm2"  # the connection still works
    assert not lab.panics()


def test_fetch_of_an_invalid_property_is_a_fault(si):
    vm = find_vm(si, "lab-vm2")
    stub = vm._stub  # pylint: disable=protected-access
    bogus = Object(name="noSuchProperty", type=str, version=stub.version, flags=0)
    with pytest.raises(vmodl.query.InvalidProperty):
        stub.InvokeAccessor(vm, bogus)


def test_change_tracking_reads_false_before_cbt_is_enabled(si):
    vm = find_vm(si, "lab-vm2")
    assert vm.config.changeTrackingEnabled is False
    set_cbt(vm, True)
    try:
        assert vm.config.changeTrackingEnabled is True
    finally:
        set_cbt(vm, False)
    assert vm.config.changeTrackingEnabled is False


def test_rename_snapshot_changes_name_and_description(vm2):
    snap = wait_task(vm2.CreateSnapshot_Task(name="before", description="d0", memory=False, quiesce=False))
    snap.RenameSnapshot(name="after")
    node = vm2.snapshot.rootSnapshotList[0]
    assert (node.name, node.description) == ("after", "d0")
    snap.RenameSnapshot(description="d1")
    node = vm2.snapshot.rootSnapshotList[0]
    assert (node.name, node.description) == ("after", "d1")


def test_rename_of_a_removed_snapshot_is_managed_object_not_found(vm2):
    snap = wait_task(vm2.CreateSnapshot_Task(name="gone", memory=False, quiesce=False))
    wait_task(snap.RemoveSnapshot_Task(removeChildren=False))
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        snap.RenameSnapshot(name="x")


def test_revert_to_snapshot_brings_the_disk_content_back(lab, vm2):
    original = lab.checksum("lab-vm2", 0)
    snap = wait_task(vm2.CreateSnapshot_Task(name="base", memory=False, quiesce=False))
    lab.write("lab-vm2", 0, 4096, 200000, seed=11)
    changed = lab.checksum("lab-vm2", 0)
    assert changed != original
    wait_task(snap.RevertToSnapshot_Task())
    assert lab.checksum("lab-vm2", 0) == original
    # the snapshot still sees its content, and a second write after the revert is undone again
    assert lab.checksum("lab-vm2", 0, snapshot="base") == original
    lab.write("lab-vm2", 0, 0, 65536, seed=12)
    wait_task(vm2.RevertToCurrentSnapshot_Task())
    assert lab.checksum("lab-vm2", 0) == original


def test_revert_gives_the_vm_the_snapshot_power_state(vm2):
    disk_only = wait_task(vm2.CreateSnapshot_Task(name="disk-only", memory=False, quiesce=False))
    with_memory = wait_task(vm2.CreateSnapshot_Task(name="with-memory", memory=True, quiesce=False))
    wait_task(disk_only.RevertToSnapshot_Task())
    assert vm2.runtime.powerState == "poweredOff"
    assert vm2.summary.runtime.powerState == "poweredOff"
    wait_task(with_memory.RevertToSnapshot_Task())
    assert vm2.runtime.powerState == "poweredOn"
    wait_task(disk_only.RevertToSnapshot_Task())
    wait_task(with_memory.RevertToSnapshot_Task(suppressPowerOn=True))
    assert vm2.runtime.powerState == "suspended"


def test_revert_to_current_snapshot_without_one_is_not_found(vm2):
    with pytest.raises(vim.fault.NotFound):
        wait_task(vm2.RevertToCurrentSnapshot_Task())


def test_revert_to_an_older_snapshot_keeps_the_newer_one_intact(lab, vm2):
    first = wait_task(vm2.CreateSnapshot_Task(name="first", memory=False, quiesce=False))
    content_first = lab.checksum("lab-vm2", 0)
    lab.write("lab-vm2", 0, 1 << 20, 100000, seed=21)
    content_second = lab.checksum("lab-vm2", 0)
    wait_task(vm2.CreateSnapshot_Task(name="second", memory=False, quiesce=False))
    wait_task(first.RevertToSnapshot_Task())
    assert lab.checksum("lab-vm2", 0) == content_first
    assert lab.checksum("lab-vm2", 0, snapshot="second") == content_second


def test_remove_with_children_removes_the_children_and_their_files(lab, vm2):
    before = vm_files(lab, "lab-vm2")
    parent = wait_task(vm2.CreateSnapshot_Task(name="parent", memory=True, quiesce=False))
    child = wait_task(vm2.CreateSnapshot_Task(name="child", memory=True, quiesce=False))
    wait_task(vm2.CreateSnapshot_Task(name="grandchild", memory=False, quiesce=False))
    expected_tree = {"parent": ["child"], "child": ["grandchild"], "grandchild": []}
    assert tree_names(vm2.snapshot.rootSnapshotList) == expected_tree
    added = sorted(set(vm_files(lab, "lab-vm2")) - set(before))
    assert added == ["lab-vm2-Snapshot1.vmem", "lab-vm2-Snapshot1.vmsn", "lab-vm2-Snapshot2.vmem",
                     "lab-vm2-Snapshot2.vmsn", "lab-vm2-Snapshot3.vmsn"]
    wait_task(parent.RemoveSnapshot_Task(removeChildren=True))
    assert vm2.snapshot is None
    assert vm_files(lab, "lab-vm2") == before
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        child.config  # pylint: disable=pointless-statement
    flat = lab.datastore_path() / "lab-vm2" / "lab-vm2-flat.vmdk.snap"
    assert not flat.exists()


def test_removing_one_snapshot_removes_its_files_only(lab, vm2):
    before = vm_files(lab, "lab-vm2")
    snaps = [wait_task(vm2.CreateSnapshot_Task(name=f"s{i}", memory=True, quiesce=False)) for i in range(3)]
    wait_task(snaps[1].RemoveSnapshot_Task(removeChildren=False))
    added = sorted(set(vm_files(lab, "lab-vm2")) - set(before))
    assert added == ["lab-vm2-Snapshot1.vmem", "lab-vm2-Snapshot1.vmsn", "lab-vm2-Snapshot3.vmem",
                     "lab-vm2-Snapshot3.vmsn"]
    # layoutEx names the right files after the simulator renumbered them
    files = {f.key: f.name for f in vm2.layoutEx.file}
    keys = {s.key: (files.get(s.dataKey), files.get(s.memoryKey)) for s in vm2.layoutEx.snapshot}
    assert keys == {snaps[0]: ("[LocalDS_0] lab-vm2/lab-vm2-Snapshot1.vmsn", "[LocalDS_0] lab-vm2/lab-vm2-Snapshot1.vmem"),
                    snaps[2]: ("[LocalDS_0] lab-vm2/lab-vm2-Snapshot3.vmsn", "[LocalDS_0] lab-vm2/lab-vm2-Snapshot3.vmem")}
    wait_task(vm2.RemoveAllSnapshots_Task())
    assert vm_files(lab, "lab-vm2") == before
    assert list(vm2.layoutEx.snapshot) == []


def test_snapshot_without_memory_of_a_running_vm_is_powered_off(vm2):
    assert vm2.runtime.powerState == "poweredOn"
    wait_task(vm2.CreateSnapshot_Task(name="disk-only", memory=False, quiesce=False))
    wait_task(vm2.CreateSnapshot_Task(name="with-memory", memory=True, quiesce=False))
    root = vm2.snapshot.rootSnapshotList[0]
    assert (root.name, root.state) == ("disk-only", "poweredOff")
    assert (root.childSnapshotList[0].name, root.childSnapshotList[0].state) == ("with-memory", "poweredOn")


def test_vm_files_in_layout_ex_exist(lab, vm2):
    wait_task(vm2.CreateSnapshot_Task(name="s", memory=False, quiesce=False))
    wait_task(vm2.RemoveAllSnapshots_Task())
    root = lab.datastore_path()
    names = [f.name for f in vm2.layoutEx.file]
    assert names, "layoutEx lists no file"
    for name in names:
        assert name.startswith("[LocalDS_0] lab-vm2/"), name
        assert os.path.exists(root / name.split("] ", 1)[1]), name
