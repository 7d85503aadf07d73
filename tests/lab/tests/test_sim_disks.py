"""Disks made through the simulator's API get real sparse files, uuids and CBT logs; labctl works on any VM."""
import hashlib
import json
import os
import re
import struct
import subprocess
import sys

import pytest
from pyVmomi import vim, vmodl

from labkit import LABCTL

from labkit.testing import changed_areas, disks_of, find_vm, read_flat, set_cbt, snapshot, wait_task, write_pattern

pytestmark = pytest.mark.lab

MiB = 1 << 20
UUID_RE = re.compile(r"^6000C29[0-9a-f]-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def find_vm_or_none(si, name):
    try:
        return find_vm(si, name)
    except LookupError:
        return None


def cbt_header(flat):
    with open(flat + ".cbt", "rb") as log:
        header = log.read(32)
        records = len(log.read()) // 16
    assert header[:8] == b"LABCBT01" and header[16:] == bytes(16)
    return struct.unpack("<Q", header[8:16])[0], records


@pytest.fixture
def restored_vm(si):
    """A VM created like a restore does: CreateVM_Task with a pvscsi controller and a new 8 MiB disk."""
    content = si.content
    dc = content.rootFolder.childEntity[0]
    pool = si.content.searchIndex.FindByInventoryPath("DC0/host/DC0_C0/Resources")
    ctrl = vim.vm.device.ParaVirtualSCSIController(key=-100, busNumber=0, sharedBus="noSharing")
    disk = vim.vm.device.VirtualDisk(
        key=-101, controllerKey=-100, unitNumber=0, capacityInKB=8 * 1024, capacityInBytes=8 * MiB,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName="", diskMode="persistent",
                                                              thinProvisioned=True))
    spec = vim.vm.ConfigSpec(
        name="lab-restored", guestId="otherLinux64Guest", numCPUs=1, memoryMB=512,
        files=vim.vm.FileInfo(vmPathName="[LocalDS_0]"),
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=ctrl),
                      vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)])
    vm = wait_task(dc.vmFolder.CreateVM_Task(config=spec, pool=pool))
    yield vm
    try:
        wait_task(vm.Destroy_Task())
    except vmodl.fault.ManagedObjectNotFound:
        pass  # the test destroyed it


def test_createvm_disk_gets_a_sparse_file_of_its_capacity_uuid_and_cbt_log(lab, restored_vm):
    disk = disks_of(restored_vm)[0]
    assert disk.capacityInBytes == 8 * MiB and disk.capacityInKB == 8 * 1024
    assert UUID_RE.match(disk.backing.uuid)
    assert disk.backing.changeId is None
    listed = lab.disks("lab-restored")
    assert [(d["fileName"], d["capacity"], d["uuid"]) for d in listed] == [
        (disk.backing.fileName, 8 * MiB, disk.backing.uuid)]
    flat = listed[0]["flat"]
    assert flat == os.path.join(lab.info["datastores"]["LocalDS_0"], "lab-restored", "lab-restored-flat.vmdk")
    assert os.path.getsize(flat) == 8 * MiB
    assert os.stat(flat).st_blocks == 0
    epoch, records = cbt_header(flat)
    assert epoch != 0 and records == 0


def test_labctl_writes_and_checksums_any_vm(lab, labctl, restored_vm):
    labctl("write", "--vm", "lab-restored", "--disk", 0, "--offset", 12345, "--length", 70000, "--seed", 9)
    flat = lab.disks("lab-restored")[0]["flat"]
    image = bytearray(8 * MiB)
    image[12345:12345 + 70000] = write_pattern(9, 12345, 70000)
    assert read_flat(flat) == bytes(image)
    assert labctl("checksum", "--vm", "lab-restored", "--disk", 0).stdout.strip() == hashlib.sha256(image).hexdigest()
    assert cbt_header(flat)[1] == 1


def test_grow_disk_grows_the_file_and_starts_a_new_epoch(lab, si, labctl, restored_vm):
    set_cbt(restored_vm, True)
    before = snapshot(restored_vm, "before-grow")
    old_id = disks_of(before)[0].backing.changeId
    flat = lab.disks("lab-restored")[0]["flat"]
    old_epoch = cbt_header(flat)[0]
    grown = json.loads(labctl("grow-disk", "--vm", "lab-restored", "--disk", 0, "--size", "12M").stdout)
    assert grown["capacity"] == 12 * MiB
    assert os.path.getsize(flat) == 12 * MiB
    new_epoch, records = cbt_header(flat)
    assert new_epoch != old_epoch and records == 0
    disk = disks_of(restored_vm)[0]
    assert (disk.capacityInBytes, disk.capacityInKB) == (12 * MiB, 12 * 1024)
    assert disk.backing.changeId == f"{new_epoch:016x}/0"
    after = snapshot(restored_vm, "after-grow")
    with pytest.raises(vim.fault.FileFault):
        restored_vm.QueryChangedDiskAreas(snapshot=after, deviceKey=disk.key, startOffset=0, changeId=old_id)
    assert changed_areas(restored_vm, after, disk.key, "*") == ([], 1)
    labctl("write", "--vm", "lab-restored", "--disk", 0, "--offset", 11 * MiB, "--length", MiB)  # the new tail works
    shrink = labctl("grow-disk", "--vm", "lab-restored", "--disk", 0, "--size", "4M", check=False)
    assert shrink.returncode == 1
    assert "at least the current 12582912" in shrink.stderr


def test_reconfig_refuses_to_shrink_a_disk(si, restored_vm):
    disk = disks_of(restored_vm)[0]
    disk.capacityInBytes = 4 * MiB
    disk.capacityInKB = 4 * 1024
    change = vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)
    with pytest.raises(vmodl.fault.InvalidArgument) as exc:
        restored_vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change]))
    assert "shrinking a virtual disk" in exc.value.msg
    assert disks_of(restored_vm)[0].capacityInBytes == 8 * MiB


def test_add_disk_adds_a_sparse_disk_after_the_others(lab, labctl, restored_vm):
    added = json.loads(labctl("add-disk", "--vm", "lab-restored", "--size", "2M").stdout)
    listed = lab.disks("lab-restored")
    assert [d["index"] for d in listed] == [0, 1]
    assert listed[1] == added
    assert added["capacity"] == 2 * MiB and UUID_RE.match(added["uuid"])
    assert added["fileName"] == "[LocalDS_0] lab-restored/lab-restored_1.vmdk"
    assert os.path.getsize(added["flat"]) == 2 * MiB and os.stat(added["flat"]).st_blocks == 0
    disks = disks_of(restored_vm)
    assert [(d.key, d.unitNumber) for d in disks] == [(listed[0]["key"], 0), (added["key"], 1)]

    removal = vim.vm.device.VirtualDeviceSpec(operation="remove", fileOperation="destroy", device=disks[1])
    wait_task(restored_vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[removal])))
    assert [d["key"] for d in lab.disks("lab-restored")] == [listed[0]["key"]]
    assert not os.path.exists(added["flat"]) and not os.path.exists(added["flat"] + ".cbt")


def test_destroy_deletes_the_vm_files(lab, si, restored_vm):
    flat = lab.disks("lab-restored")[0]["flat"]
    wait_task(restored_vm.Destroy_Task())
    assert not os.path.exists(os.path.dirname(flat))
    assert find_vm_or_none(si, "lab-restored") is None


def test_create_virtual_disk_makes_a_sparse_flat_file(lab, si):
    dc = si.content.rootFolder.childEntity[0]
    spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(diskType="thin", adapterType="lsiLogic",
                                                            capacityKb=3 * 1024)
    name = "[LocalDS_0] lab-vm2/extra.vmdk"
    task = si.content.virtualDiskManager.CreateVirtualDisk_Task(name=name, datacenter=dc, spec=spec)
    assert wait_task(task) == name
    flat = os.path.join(lab.info["datastores"]["LocalDS_0"], "lab-vm2", "extra-flat.vmdk")
    try:
        assert os.path.getsize(flat) == 3 * MiB and os.stat(flat).st_blocks == 0
        assert cbt_header(flat)[1] == 0
    finally:
        wait_task(si.content.virtualDiskManager.DeleteVirtualDisk_Task(name=name, datacenter=dc))
        for leftover in (flat + ".cbt",):
            if os.path.exists(leftover):
                os.unlink(leftover)


def test_labctl_reports_clear_errors(labctl, lab):
    missing_vm = labctl("disks", "--vm", "no-such-vm", check=False)
    assert (missing_vm.returncode, missing_vm.stderr) == (
        1, 'labctl: error: /lab/disks: virtual machine "no-such-vm" not found (HTTP 404)\n')
    missing_disk = labctl("checksum", "--vm", "lab-vm2", "--disk", 3, check=False)
    assert missing_disk.stderr == ('labctl: error: /lab/checksum: virtual machine "lab-vm2" has 1 disk(s); '
                                   'disk 3 does not exist (HTTP 404)\n')
    past_end = labctl("write", "--vm", "lab-vm2", "--disk", 0, "--offset", "16M", "--length", 1, check=False)
    assert past_end.returncode == 1 and "goes past the end of disk 0 (capacity 16777216)" in past_end.stderr
    no_snap = labctl("checksum", "--vm", "lab-vm2", "--disk", 0, "--snapshot", "nope", check=False)
    assert no_snap.stderr == 'labctl: error: /lab/checksum: virtual machine "lab-vm2" has no snapshot "nope" (HTTP 404)\n'
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMWARE_")}
    unset = subprocess.run([sys.executable, str(LABCTL), "disks", "--vm", "lab-vm1"], env=env, capture_output=True,
                           text=True, check=False)
    assert unset.returncode == 1
    assert unset.stderr == ("labctl: error: VMWARE_HOST, VMWARE_PORT, VMWARE_USER, VMWARE_PASSWORD, VMWARE_CA_BUNDLE "
                            "not set: start the lab (`make lab`) and run `. .lab/env`\n")
