"""pyVmomi in its most common style against the lab: managed object properties read one at a time (each a Fetch
call), unset ones included, datastore browsing and tasks, as scripts written for vCenter do."""
import pytest
from pyVmomi import VmomiSupport, vim, vmodl

from labkit.testing import find_vm, wait_task

pytestmark = pytest.mark.lab


def readable_properties(obj):
    """The properties of obj's type that exist in the API version the connection negotiated."""
    version = obj._stub.version  # pylint: disable=protected-access
    return [p.name for p in obj._GetPropertyList() if VmomiSupport.IsChildVersion(version, p.version)]


def inventory_objects(si):
    content = si.content
    vm = find_vm(si, "lab-vm1")
    host = vm.runtime.host
    datastore = vm.datastore[0]
    return [vm, host, host.parent, datastore, datastore.browser, vm.resourcePool, vm.parent, content.rootFolder,
            content.rootFolder.childEntity[0], content.eventManager, content.taskManager, content.sessionManager,
            content.propertyCollector, content.viewManager, content.customFieldsManager, content.searchIndex]


def test_every_property_reads_one_at_a_time(si, clients_lab):
    failures = []
    count = 0
    for obj in inventory_objects(si):
        for name in readable_properties(obj):
            count += 1
            try:
                getattr(obj, name)
            except (vmodl.MethodFault, OSError) as exc:  # a dropped connection is an OSError
                failures.append(f"{obj}.{name}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
    assert count > 150  # the walk did cover the types' properties
    assert not clients_lab.panics()


def test_unset_properties_read_as_none(si):
    vm = find_vm(si, "lab-vm2")
    assert vm.snapshot is None
    assert vm.rootSnapshot == []
    assert vm.parentVApp is None
    latest = si.content.eventManager.latestEvent  # the simulator posts none; vCenter has one
    assert latest is None or isinstance(latest, vim.event.Event)
    assert vm.config.changeTrackingEnabled is False


def test_vm_config_and_runtime(si, clients_lab):
    vm = find_vm(si, "lab-vm1")
    assert vm.config.name == "lab-vm1"
    assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == (2, 2048)
    disks = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    assert [(d.key, d.capacityInBytes, d.backing.fileName) for d in disks] == [
        (2000, 32 << 20, "[LocalDS_0] lab-vm1/lab-vm1.vmdk"),
        (2016, 8 << 20, "[LocalDS_0] lab-vm1/lab-vm1_1.vmdk")]
    assert vm.runtime.powerState == vim.VirtualMachinePowerState.poweredOn
    assert vm.runtime.host.name == "DC0_C0_H0"
    assert vm.summary.config.vmPathName.startswith("[LocalDS_0] lab-vm1")
    assert vm.capability.changeTrackingSupported is True


def browse(datastore, folder, patterns):
    spec = vim.host.DatastoreBrowser.SearchSpec(matchPattern=patterns,
                                                details=vim.host.DatastoreBrowser.FileInfo.Details(fileSize=True))
    task = datastore.browser.SearchDatastore_Task(datastorePath=f"[{datastore.name}] {folder}", searchSpec=spec)
    result = wait_task(task)
    return {f.path: f.fileSize for f in result.file}


def test_datastore_browsing_follows_snapshots(si, clients_lab):
    vm = find_vm(si, "lab-vm2")
    datastore = vm.datastore[0]
    assert datastore.summary.name == "LocalDS_0"
    assert "lab-vm2.vmx" in browse(datastore, "lab-vm2", ["*.vmx"])
    task = vm.CreateSnapshot_Task(name="browse", description="", memory=True, quiesce=False)
    snap = wait_task(task)
    # the task, read property by property
    assert task.info.state == vim.TaskInfo.State.success
    assert task.info.entity == vm
    assert task.info.result == snap
    assert task.info.error is None
    files = browse(datastore, "lab-vm2", ["*.vmsn", "*.vmem"])
    assert sorted(files) == ["lab-vm2-Snapshot1.vmem", "lab-vm2-Snapshot1.vmsn"]
    assert files["lab-vm2-Snapshot1.vmem"] == vm.config.hardware.memoryMB << 20
    wait_task(snap.RemoveSnapshot_Task(removeChildren=False))
    assert browse(datastore, "lab-vm2", ["*.vmsn", "*.vmem"]) == {}
    assert vm.snapshot is None
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        snap.config  # pylint: disable=pointless-statement


def test_cbt_enable_through_reconfigure(si, clients_lab):
    """No community.vmware module sets changeTrackingEnabled: scripts do it with ReconfigVM_Task."""
    vm = find_vm(si, "lab-vm2")
    assert vm.config.changeTrackingEnabled is False
    wait_task(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    try:
        assert vm.config.changeTrackingEnabled is True
        disk = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
        assert disk.backing.changeId
    finally:
        wait_task(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(changeTrackingEnabled=False)))
    assert vm.config.changeTrackingEnabled is False


UNSET_AND_SET_PATHS = ["snapshot", "snapshot.currentSnapshot", "parentVApp", "guest.ipAddress",
                       "config.changeTrackingEnabled", "rootSnapshot", "name"]


def vm_filter_spec(obj, select=None):
    collector = vmodl.query.PropertyCollector
    return collector.FilterSpec(
        objectSet=[collector.ObjectSpec(obj=obj, skip=select is not None, selectSet=select or [])],
        propSet=[collector.PropertySpec(type=vim.VirtualMachine, pathSet=UNSET_AND_SET_PATHS)])


def test_property_collector_leaves_unset_paths_out(si):
    """RetrievePropertiesEx and RetrieveContents over a container view (community.vmware's way of finding VMs)
    answer the set paths and leave the unset ones out, without a missingSet."""
    content = si.content
    vm = find_vm(si, "lab-vm2")
    options = vmodl.query.PropertyCollector.RetrieveOptions()
    result = content.propertyCollector.RetrievePropertiesEx([vm_filter_spec(vm)], options)
    assert [(p.name, p.val) for p in result.objects[0].propSet] == [
        ("config.changeTrackingEnabled", False), ("rootSnapshot", []), ("name", "lab-vm2")]
    assert list(result.objects[0].missingSet) == []
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        traverse = vmodl.query.PropertyCollector.TraversalSpec(name="view", path="view", skip=False,
                                                               type=vim.view.ContainerView)
        objects = content.propertyCollector.RetrieveContents([vm_filter_spec(view, [traverse])])
    finally:
        view.DestroyView()
    names = {next(p.val for p in o.propSet if p.name == "name") for o in objects}
    assert {"lab-vm1", "lab-vm2"} <= names
    assert all(sorted(p.name for p in o.propSet) == ["config.changeTrackingEnabled", "name", "rootSnapshot"]
               for o in objects)


def test_wait_for_updates_assigns_unset_paths_none(si):
    content = si.content
    vm = find_vm(si, "lab-vm2")
    collector = content.propertyCollector.CreatePropertyCollector()
    try:
        collector.CreateFilter(vm_filter_spec(vm), True)
        update = collector.WaitForUpdatesEx("", vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=5))
        changes = {c.name: (c.op, c.val) for fs in update.filterSet for o in fs.objectSet for c in o.changeSet}
    finally:
        collector.DestroyPropertyCollector()
    assert changes == {"snapshot": ("assign", None), "snapshot.currentSnapshot": ("assign", None),
                       "parentVApp": ("assign", None), "guest.ipAddress": ("assign", None),
                       "config.changeTrackingEnabled": ("assign", False), "rootSnapshot": ("assign", []),
                       "name": ("assign", "lab-vm2")}
