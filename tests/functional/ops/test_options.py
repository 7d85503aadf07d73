"""Backup and restore options against the lab: disk selection, forced modes, a user snapshot that keeps CBT off,
restore check mode and new-VM overrides."""
import uuid

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, VMNotFoundError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory, snapshots
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.tasks import wait_for_task

from opslab import sha256_file  # pylint: disable=import-error
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import File, NewVm

pytestmark = pytest.mark.lab


def test_excluded_disk_then_included_is_read_in_full(env):
    partial = env.backup("lab-vm1", exclude_disks=["2016"])
    assert [(d["key"], d["mode"]) for d in partial["disks"]] == [("2000", "full")]
    assert partial["skipped_disks"] == {"disk-1001-0": "in exclude_disks"}
    whole = env.backup("lab-vm1")
    assert [(d["key"], d["mode"], d["reason"]) for d in whole["disks"]] == [
        ("2000", "incremental", "changed areas since restore point %s" % partial["restore_point"]["id"]),
        ("2016", "full", "the previous restore point has no disk with key 2016")]
    only = env.backup("lab-vm1", include_disks=["disk-1001-0"])
    assert [(d["key"], d["mode"]) for d in only["disks"]] == [("2016", "incremental")]
    assert only["skipped_disks"] == {"disk-1000-0": "not in include_disks"}
    with pytest.raises(ConfigurationError) as unknown:
        env.backup("lab-vm1", include_disks=["9999"])
    assert str(unknown.value) == ("include_disks/exclude_disks name disk(s) 9999 that the VM does not have; its disks are "
                                  "disk-1000-0 (key 2000), disk-1001-0 (key 2016).")
    assert env.blockvault_snapshots("lab-vm1") == []


def test_forced_modes(env):
    with pytest.raises(ConfigurationError) as nothing:
        env.backup("lab-vm1", mode="incremental")
    assert str(nothing.value) == ("VM lab-vm1 has no restore point yet, so an incremental backup has nothing to build on: run "
                                  "with mode auto (or full) first.")
    first = env.backup("lab-vm1", mode="auto")
    full = env.backup("lab-vm1", mode="full")
    assert [(d["mode"], d["reason"]) for d in full["disks"]] == [("full", "a full backup was requested")] * 2
    assert full["bytes_written"] == 0 and [d["sha256"] for d in full["disks"]] == [d["sha256"] for d in first["disks"]]
    assert [d["mode"] for d in env.backup("lab-vm1", mode="incremental")["disks"]] == ["incremental"] * 2


def test_user_snapshot_keeps_cbt_off_and_survives(env, scratch_vm):
    with env.session() as session:
        vm = inventory.find_vm(session, name=scratch_vm)
        assert vm.config.changeTrackingEnabled is not True
        wait_for_task(vm.CreateSnapshot_Task(name="before-upgrade", description="the user's", memory=False, quiesce=False),
                      what="user snapshot")
    first = env.backup(scratch_vm)
    env.write(scratch_vm, 0, 0, 4096, seed=71)
    second = env.backup(scratch_vm)
    reason = ("VM %s has user snapshots (before-upgrade): CBT cannot be enabled; this backup reads in full." % scratch_vm)
    assert [(d["mode"], d["reason"]) for d in first["disks"]] == [("full", "this is the VM's first restore point")] * 2
    assert [(d["mode"], d["reason"]) for d in second["disks"]] == [("full", reason)] * 2
    with env.session() as session:
        assert [entry.name for entry in snapshots.list_snapshots(inventory.find_vm(session, name=scratch_vm))] == ["before-upgrade"]
    live = env.checksums(scratch_vm)
    for position, disk in enumerate(second["disks"]):
        assert sha256_file(env.restore_file(second["restore_point"]["id"], disk["key"])) == live[position]


def test_restore_check_mode_and_new_vm_overrides(env):
    backup = env.backup("lab-vm1")
    rp_id = backup["restore_point"]["id"]
    name = "overrides-%s" % uuid.uuid4().hex[:8]
    planned = env.restore(rp_id, NewVm(name, config_overrides={"num_cpus": 2, "memory_mb": 256}), check=True)
    assert planned["changed"] is True and planned["diff"]["before"] == {"vm": name, "exists": False}
    assert (planned["diff"]["after"]["num_cpus"], planned["diff"]["after"]["memory_mb"]) == (2, 256)
    with env.session() as session:
        with pytest.raises(VMNotFoundError):
            inventory.find_vm(session, name=name)
    path = env.tmp_path / "planned.raw"
    planned_file = env.restore(rp_id, File(path=str(path), disk="2000"), check=True)
    assert planned_file["disks"] == [{"key": "2000", "sha256": backup["disks"][0]["sha256"]}] and not path.exists()
    try:
        made = env.restore(rp_id, NewVm(name, power_on=True, config_overrides={"num_cpus": 2, "memory_mb": 256}))
        assert made["vm"]["powered_on"] is True and env.power_state(name) == "poweredOn"
        with env.session() as session:
            hardware = inventory.find_vm(session, name=name).config.hardware
            assert (hardware.numCPU, hardware.memoryMB) == (2, 256)
        assert sha256_file(env.restore_file(rp_id, "2016")) == env.lab.checksum(name, 1)
    finally:
        env.destroy(name)
