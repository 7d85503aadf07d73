"""Restores into VMs: a new VM and an in-place rollback give byte-identical disks; the rollback writes only the
chunks that differ; both refuse to overwrite (an existing name, a powered-on VM) unless forced."""
import json
import uuid

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ChangeTrackingError, RestoreRefusedError, VMNotFoundError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import cbt

from opslab import CHUNK, MIB  # pylint: disable=import-error
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import RunSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import DiskToVm, InPlace, NewVm

pytestmark = pytest.mark.lab


def vm_moid(env, name):
    with env.session() as session:
        from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory  # pylint: disable=import-outside-toplevel
        return inventory.find_vm(session, name=name)._moId


def first_chunk(env, rp_id, disk_key, zero):
    """The first chunk of the disk that holds zeros (zero=True) or data in the restore point."""
    repository = env.repository()
    try:
        index = repository.load_disk_index(rp_id, disk_key)
        return next(i for i in range(index.count) if (index.digest(i) == bytes(32)) == zero)
    finally:
        repository.close()


def test_restore_to_a_new_vm_is_byte_identical_and_refuses_an_existing_name(env):
    backup = env.backup("lab-vm1")
    live = env.checksums("lab-vm1")
    rp_id = backup["restore_point"]["id"]
    name = "restored-%s" % uuid.uuid4().hex[:8]
    try:
        status = env.tmp_path / "new-vm.json"
        restored = env.restore(rp_id, NewVm(name), status_file=str(status))
        document = json.loads(status.read_text())
        assert (document["state"], document["phase"], document["vm"]) == ("succeeded", "transfer", "lab-vm1")
        assert document["bytes_done"] == document["bytes_total"] == (64 + 16) * MIB
        assert restored["changed"] is True and restored["vm"]["name"] == name and restored["vm"]["powered_on"] is False
        assert env.checksums(name) == live
        assert [(d["key"], d["sha256"]) for d in restored["disks"]] == [(d["key"], d["sha256"]) for d in backup["disks"]]
        assert env.power_state(name) == "poweredOff"
        moid = restored["vm"]["moid"]

        rerun = env.restore(rp_id, NewVm(name))      # the same restore again (a DR playbook rerun): converges
        assert (rerun["changed"], rerun["vm"]["moid"]) == (False, moid)
        assert rerun["msg"] == "VM %s was restored from restore point %s already: left as it is." % (name, rp_id)
        other = env.backup("lab-vm1")["restore_point"]["id"]
        with pytest.raises(RestoreRefusedError) as refused:    # another restore point onto it: refused, untouched
            env.restore(other, NewVm(name))
        assert str(refused.value) == ("A VM named %s exists already: choose another new_name, or set force to replace it." % name)
        assert vm_moid(env, name) == moid

        env.write(name, 0, 0, 8192, seed=3)
        forced = env.restore(rp_id, NewVm(name, force=True))
        assert forced["changed"] is True and forced["vm"]["moid"] != moid
        assert env.checksums(name) == live
    finally:
        env.destroy(name)


def test_in_place_rollback_writes_only_the_differing_chunks(env, scratch_vm):
    backup = env.backup(scratch_vm)
    live = env.checksums(scratch_vm)
    rp_id = backup["restore_point"]["id"]
    keys = [d["key"] for d in backup["disks"]]
    zero_chunk = first_chunk(env, rp_id, keys[0], zero=True)
    data_chunk = first_chunk(env, rp_id, keys[0], zero=False)
    env.write(scratch_vm, 0, data_chunk * CHUNK + 4096, 4096, seed=21)    # a chunk of data changes
    env.write(scratch_vm, 0, zero_chunk * CHUNK + 512, 8192, seed=22)      # a chunk of zeros gets data
    assert env.checksums(scratch_vm)[0] != live[0]
    assert env.power_state(scratch_vm) == "poweredOff"

    stats = env.new_stats()
    rolled_back = env.restore(rp_id, InPlace())
    assert rolled_back["changed"] is True
    assert [(d["key"], d["chunks_written"], d["chunks_zeroed"], d["bytes_written"]) for d in rolled_back["disks"]] == [
        (keys[0], 1, 1, CHUNK), (keys[1], 0, 0, 0)]
    assert [d["sha256"] for d in rolled_back["disks"]] == [d["sha256"] for d in backup["disks"]]
    counted = env.read_stats(stats)
    assert (counted["writes"], counted["bytes_written"]) == (2, 2 * CHUNK)
    assert env.checksums(scratch_vm) == live

    assert rolled_back["cbt_reset"] is True

    again = env.restore(rp_id, InPlace())
    assert again["changed"] is False and again["cbt_reset"] is False
    assert [(d["chunks_written"], d["chunks_zeroed"]) for d in again["disks"]] == [(0, 0), (0, 0)]
    assert env.checksums(scratch_vm) == live

    # the rollback's writes bypassed the guest: CBT was switched off, so the next backup cannot trust the old change
    # ids and reads in full (then incremental again)
    after = env.backup(scratch_vm)
    assert [(d["mode"], d["reason"]) for d in after["disks"]] == [
        ("full", "Changed Block Tracking was enabled by this run: changes before it are unknown")] * 2
    assert [d["sha256"] for d in after["disks"]] == [d["sha256"] for d in backup["disks"]]
    assert after["bytes_written"] == 0
    env.write(scratch_vm, 1, 0, 4096, seed=23)
    assert [d["mode"] for d in env.backup(scratch_vm)["disks"]] == ["incremental", "incremental"]


def test_in_place_refuses_a_powered_on_vm_unless_forced(env, scratch_vm):
    backup = env.backup(scratch_vm)
    live = env.checksums(scratch_vm)
    rp_id = backup["restore_point"]["id"]
    env.power(scratch_vm, True)
    env.write(scratch_vm, 1, 0, 4096, seed=31)
    dirty = env.checksums(scratch_vm)
    assert dirty != live

    stats = env.new_stats()
    with pytest.raises(RestoreRefusedError) as refused:
        env.restore(rp_id, InPlace())
    assert str(refused.value) == ("VM %s is powered on: an in-place restore would overwrite the disks of a running VM. Power it "
                                  "off first, or set force to have it powered off." % scratch_vm)
    assert refused.value.phase == "restore"
    assert not stats.exists()            # no VDDK connection was even made
    assert env.checksums(scratch_vm) == dirty and env.power_state(scratch_vm) == "poweredOn"

    forced = env.restore(rp_id, InPlace(force=True))
    assert forced["changed"] is True and forced["cbt_reset"] is True
    second = backup["disks"][1]["key"]
    was_zero = first_chunk(env, rp_id, second, zero=True) == 0   # chunk 0 held zeros at backup time: zeroed, else written
    assert [(d["key"], d["chunks_written"], d["chunks_zeroed"]) for d in forced["disks"]] == [
        (backup["disks"][0]["key"], 0, 0), (second, 0 if was_zero else 1, 1 if was_zero else 0)]
    assert env.power_state(scratch_vm) == "poweredOff"
    assert env.checksums(scratch_vm) == live

    env.power(scratch_vm, True)
    env.write(scratch_vm, 1, 0, 4096, seed=32)
    back_on = env.restore(rp_id, InPlace(force=True, power_on=True))      # the VM is back in service after the rollback
    assert back_on["changed"] is True and back_on["vm"]["powered_on"] is True
    assert env.power_state(scratch_vm) == "poweredOn"
    env.power(scratch_vm, False)
    assert env.checksums(scratch_vm) == live


def test_restore_one_disk_into_another_vm_and_latest_by_name(env, scratch_vm):
    backup = env.backup("lab-vm1")
    live = env.checksums("lab-vm1")
    before = env.lab.disks(scratch_vm)
    restored = env.restore("latest", DiskToVm(vm={"name": scratch_vm}, disk="2016"), vm_name="lab-vm1")
    assert restored["restore_point"]["id"] == backup["restore_point"]["id"]
    assert restored["changed"] is True and [d["key"] for d in restored["disks"]] == ["2016"]
    after = env.lab.disks(scratch_vm)
    assert len(after) == len(before) + 1 and after[-1]["capacity"] == 16 << 20
    assert env.lab.checksum(scratch_vm, len(after) - 1) == live[1]
    again = env.restore("latest", DiskToVm(vm={"name": scratch_vm}, disk="2016"), vm_name="lab-vm1")
    assert again["changed"] is False and again["disks"][0]["file_name"] == after[-1]["fileName"]
    assert len(env.lab.disks(scratch_vm)) == len(after)        # no second copy of the disk


def test_in_place_rollback_stops_before_writing_when_cbt_cannot_be_switched_off(env, scratch_vm, monkeypatch):
    backup = env.backup(scratch_vm)
    env.write(scratch_vm, 0, 0, 4096, seed=24)
    dirty = env.checksums(scratch_vm)

    def refuse(vm, **_kwargs):
        raise ChangeTrackingError("Disabling CBT on VM %s failed: the lab says no." % vm.name)

    monkeypatch.setattr(cbt, "disable_cbt", refuse)
    stats = env.new_stats()
    with pytest.raises(ChangeTrackingError) as failed:
        env.restore(backup["restore_point"]["id"], InPlace())
    assert str(failed.value) == (
        "VM %s: switching Changed Block Tracking off before the in-place restore failed, so nothing was written (the "
        "restore's writes would make the change ids of earlier backups wrong): Disabling CBT on VM %s failed: the lab says "
        "no. Fix the cause (a VM with snapshots cannot always be reconfigured), or restore to a new VM." % (scratch_vm, scratch_vm))
    assert env.read_stats(stats)["writes"] == 0
    assert env.checksums(scratch_vm) == dirty


def test_a_new_vm_defaults_to_where_the_backed_up_vm_lives(env):
    backup = env.backup("lab-vm2")
    manifest = env.repository().load_manifest(backup["restore_point"]["id"])
    assert manifest.vm.config.placement == {"datacenter": "DC0", "compute": "DC0_C0", "folder": "DC0/vm"}
    name = "placed-%s" % uuid.uuid4().hex[:8]
    try:
        # no placement options at all: the lab's datacenter has two compute resources, so only the recorded
        # placement can make this work
        from opslab import ops_restore  # pylint: disable=import-error,import-outside-toplevel
        request = ops_restore.RestoreRequest(ops_restore.RestorePointQuery(backup["restore_point"]["id"]), NewVm(name))
        restored = ops_restore.restore(request, env.endpoints, RunSettings(status_file=str(env.tmp_path / "placed.json")))
        with env.session() as session:
            from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory  # pylint: disable=import-outside-toplevel
            vm = inventory.find_vm(session, name=name)
            assert (vm.resourcePool.owner.name, vm.parent.name) == ("DC0_C0", "vm")
        assert restored["vm"]["moid"] == vm._moId  # pylint: disable=protected-access
        assert env.checksums(name) == env.checksums("lab-vm2")
    finally:
        env.destroy(name)


def test_a_dr_restore_keeps_the_identity_only_where_nothing_clashes(env):
    backup = env.backup("lab-vm2")
    clash = "clash-%s" % uuid.uuid4().hex[:8]
    with pytest.raises(RestoreRefusedError) as refused:          # lab-vm2 itself still has its UUIDs
        env.restore(backup["restore_point"]["id"], NewVm(clash, keep_identity=True))
    assert str(refused.value).startswith("VM %s cannot keep the identity of the backed-up VM lab-vm2: VM lab-vm2 (" % clash)
    assert "has the BIOS UUID" in str(refused.value) and "has the instance UUID" in str(refused.value)
    with pytest.raises(VMNotFoundError):                           # nothing was created
        vm_moid(env, clash)

    first, second = "origin-%s" % uuid.uuid4().hex[:8], "dr-%s" % uuid.uuid4().hex[:8]
    try:
        env.restore(backup["restore_point"]["id"], NewVm(first))
        origin = env.backup(first)
        with env.session() as session:
            from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory  # pylint: disable=import-outside-toplevel
            vm = inventory.find_vm(session, name=first)
            identity = (vm.config.uuid, vm.config.instanceUuid)
        env.destroy(first)                                        # the site is lost
        env.restore(origin["restore_point"]["id"], NewVm(second, keep_identity=True))
        with env.session() as session:
            from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory  # pylint: disable=import-outside-toplevel
            vm = inventory.find_vm(session, name=second)
            assert (vm.config.uuid, vm.config.instanceUuid) == identity
        assert env.checksums(second) == env.checksums("lab-vm2")
    finally:
        env.destroy(first)
        env.destroy(second)
