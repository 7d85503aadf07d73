"""list_disks / list_controllers on real pyVmomi device objects."""
from types import SimpleNamespace

from pyVmomi import vim

from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.disks import (
    ControllerInfo, DiskInfo, datastore_name_of, list_controllers, list_disks)

dev = vim.vm.device


def make_disk(key, controller_key, unit, file_name, capacity_bytes=None, capacity_kb=0, backing_class=None, **backing):
    backing_class = backing_class or dev.VirtualDisk.FlatVer2BackingInfo
    return dev.VirtualDisk(key=key, controllerKey=controller_key, unitNumber=unit, capacityInBytes=capacity_bytes,
                           capacityInKB=capacity_kb, deviceInfo=vim.Description(label="Hard disk %d" % (key - 1999), summary=""),
                           backing=backing_class(fileName=file_name, **backing))


def devices():
    return [
        dev.VirtualIDEController(key=200, busNumber=0),
        dev.ParaVirtualSCSIController(key=1000, busNumber=0, sharedBus="noSharing"),
        dev.VirtualLsiLogicSASController(key=1001, busNumber=1, sharedBus="physicalSharing"),
        dev.VirtualAHCIController(key=15000, busNumber=0),
        dev.VirtualNVMEController(key=31000, busNumber=2),
        dev.VirtualBusLogicController(key=1002, busNumber=2),
        dev.VirtualLsiLogicController(key=1003, busNumber=3),
        make_disk(2001, 1001, 3, "[ds2] web/web_1.vmdk", capacity_bytes=3 * 2**30, diskMode="persistent", thinProvisioned=False,
                  uuid="6000C29a-1", changeId="52 aa/7"),
        dev.VirtualVmxnet3(key=4000),
        make_disk(2000, 1000, 0, "[LocalDS_0] web/web.vmdk", capacity_kb=1024, diskMode="independent_persistent", thinProvisioned=True),
        make_disk(2002, 15000, 0, "[LocalDS_0] web/rdm.vmdk", capacity_bytes=512, backing_class=dev.VirtualDisk.RawDiskMappingVer1BackingInfo,
                  diskMode="persistent", changeId="rdm/1"),
        make_disk(2003, 31000, 0, "[NVMe DS (1)] web/n.vmdk", capacity_bytes=1 << 40, diskMode="persistent"),
    ]


def test_controllers_with_types_and_sharing():
    assert list_controllers(devices()) == {
        200: ControllerInfo(200, "ide", 0, None),
        1000: ControllerInfo(1000, "pvscsi", 0, "noSharing"),
        1001: ControllerInfo(1001, "lsilogicsas", 1, "physicalSharing"),
        15000: ControllerInfo(15000, "sata", 0, None),
        31000: ControllerInfo(31000, "nvme", 2, None),
        1002: ControllerInfo(1002, "buslogic", 2, None),
        1003: ControllerInfo(1003, "lsilogic", 3, None),
    }


def test_disks_in_device_order_with_all_fields():
    disks = list_disks(devices())
    assert [d.key for d in disks] == [2001, 2000, 2002, 2003]
    assert disks[0] == DiskInfo(key=2001, label="Hard disk 2", controller=ControllerInfo(1001, "lsilogicsas", 1, "physicalSharing"),
                                unit_number=3, capacity=3 * 2**30, file_name="[ds2] web/web_1.vmdk", datastore="ds2",
                                disk_mode="persistent", thin=False, uuid="6000C29a-1", change_id="52 aa/7",
                                backing_type="VirtualDiskFlatVer2BackingInfo")
    # capacityInKB fallback, no change id
    assert (disks[1].capacity, disks[1].change_id, disks[1].thin, disks[1].disk_mode) == (1024 * 1024, None, True, "independent_persistent")
    assert (disks[2].backing_type, disks[2].change_id, disks[2].controller.type) == ("VirtualDiskRawDiskMappingVer1BackingInfo", "rdm/1", "sata")
    assert (disks[3].datastore, disks[3].capacity) == ("NVMe DS (1)", 1 << 40)


def test_sources_vm_snapshot_and_config_info_give_the_same_disks():
    config = vim.vm.ConfigInfo(hardware=vim.vm.VirtualHardware(device=devices()))
    vm = SimpleNamespace(config=config)
    snapshot = SimpleNamespace(config=config)
    assert list_disks(vm) == list_disks(snapshot) == list_disks(config) == list_disks(devices())


def test_datastore_from_backing_object_when_file_name_has_no_brackets():
    assert datastore_name_of(SimpleNamespace(fileName="", datastore=SimpleNamespace(name="ds9"))) == "ds9"
    assert datastore_name_of(SimpleNamespace(fileName="[a b] x/y.vmdk", datastore=SimpleNamespace(name="other"))) == "a b"
    assert datastore_name_of(SimpleNamespace(fileName="", datastore=None)) is None


def test_skip_reason_for_independent_disks_and_physical_rdms():
    disks = list_disks(devices())
    assert disks[0].skip_reason is None
    assert disks[1].skip_reason == "the disk is independent_persistent: snapshots do not include independent disks"
    rdm = make_disk(2009, 1000, 5, "[ds] web/rdm.vmdk", capacity_bytes=512, backing_class=dev.VirtualDisk.RawDiskMappingVer1BackingInfo,
                    diskMode="persistent", compatibilityMode="physicalMode")
    physical = list_disks([dev.ParaVirtualSCSIController(key=1000, busNumber=0), rdm])[0]
    assert (physical.compatibility_mode, physical.skip_reason) == ("physicalMode", "the disk is a physical-mode RDM: vSphere cannot snapshot it")


def test_dict_round_trip():
    disk = list_disks(devices())[0]
    assert DiskInfo.from_dict(disk.to_dict()) == disk
