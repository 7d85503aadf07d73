"""vm_restore: restore point selection, targets, overrides, check and diff mode."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import errors
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import Endpoints, RunSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import (
    DiskToVm, File, InPlace, NewVm, Placement, RestorePointQuery, RestoreRequest,
)
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import (
    RepositorySettings, VddkSettings, VSphereSettings,
)
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.vm import VmSelector
from ansible_collections.blockvault.vsphere.plugins.modules import vm_restore

RESULT = {
    "changed": True,
    "restore_point": {"id": "r1", "vm": "web01", "created": "2026-11-26T08:31:27Z"},
    "vm": {"name": "web01-restored", "moid": "vm-77", "powered_on": False},
    "disks": [{"key": "2000", "label": "Hard disk 1", "sha256": "cd" * 32, "bytes_written": 4194304, "chunks_written": 1,
               "chunks_zeroed": 0, "bytes_zeroed": 0, "chunks_unchanged": 0}],
    "diff": {"before": {"vm": "web01-restored", "exists": False}, "after": {"vm": "web01-restored", "power_on": False}},
}


@pytest.fixture
def args(vddk_dir):
    return dict(hostname="vc.example.com", username="restore@vsphere.local", password="vc-pass-1", vddk_libdir=vddk_dir,
                repository="/srv/repo", passphrase="repo-pass-1")


@pytest.fixture
def restore(ops_call):
    return ops_call(vm_restore.ops_restore, "restore", result=RESULT)


def test_latest_to_a_new_vm_reaches_the_operation_exactly(run_module, restore, args, vddk_dir):
    outcome, result = run_module(vm_restore, dict(args, name="web01", new_name="web01-restored"))
    assert outcome == "exit"
    assert restore.kwargs == {
        "request": RestoreRequest(source=RestorePointQuery(restore_point="latest", vm_name="web01", before=None),
                                  target=NewVm(name="web01-restored", placement=Placement(), network_mapping=None,
                                               disk_format="same", power_on=False, force=False)),
        "endpoints": Endpoints(
            repo=RepositorySettings(location="/srv/repo", passphrase="repo-pass-1"),
            vsphere=VSphereSettings(host="vc.example.com", username="restore@vsphere.local", password="vc-pass-1"),
            vddk=VddkSettings(libdir=vddk_dir)),
        "settings": RunSettings(workers=4, memory_budget=256 * 1024 * 1024, status_file=None, check=False),
    }
    assert result == {"changed": True, "restore_point": RESULT["restore_point"], "vm": RESULT["vm"], "disks": RESULT["disks"],
                      "msg": "Restored restore point r1 of VM web01 into the new VM web01-restored (vm-77): 1 disk(s), "
                             "4.00 MiB written."}


def test_overrides_set_are_passed_and_unset_ones_left_out(run_module, restore, args):
    overrides = {"datacenter": "dc1", "cluster": "c2", "datastore": "ds2", "network_mapping": {"VM Network": "Isolated"},
                 "disk_format": "eagerzeroedthick", "power_on": True}
    run_module(vm_restore, dict(args, name="web01", new_name="copy", overrides=overrides, memory_budget_mb=64, workers=2))
    # the module's option names become the engine's: cluster is where the VM runs, network_mapping maps networks
    assert restore.kwargs["request"].target == NewVm(
        name="copy", placement=Placement(datacenter="dc1", resource_pool="c2", datastore="ds2"),
        network_mapping={"VM Network": "Isolated"}, disk_format="eagerzeroedthick", power_on=True)
    settings = restore.kwargs["settings"]
    assert (settings.memory_budget, settings.workers) == (64 * 1024 * 1024, 2)


def test_unknown_override_is_refused(run_module, restore, args):
    outcome, result = run_module(vm_restore, dict(args, name="web01", new_name="copy", overrides={"memory_mb": 4096}))
    assert outcome == "fail" and "memory_mb" in result["msg"]
    assert restore.calls == []


def test_restore_point_by_id_in_place_with_force(run_module, restore, args):
    run_module(vm_restore, dict(args, restore_point="r42", target="in_place", force=True))
    request = restore.kwargs["request"]
    assert request == RestoreRequest(RestorePointQuery(restore_point="r42"), InPlace(vm=None, force=True))


def test_in_place_to_another_vm(run_module, restore, args):
    run_module(vm_restore, dict(args, restore_point="r42", target="in_place", target_vm={"moid": "vm-9"}))
    assert restore.kwargs["request"].target == InPlace(vm=VmSelector(moid="vm-9"), force=False)


def test_target_vm_takes_one_identifier(run_module, restore, args):
    outcome, result = run_module(vm_restore, dict(args, restore_point="r42", target="in_place", target_vm={"name": "a", "moid": "vm-9"}))
    assert outcome == "fail"
    assert result["msg"] == "parameters are mutually exclusive: name|uuid|moid found in target_vm"
    assert restore.calls == []


def test_latest_before_a_time_one_disk_to_another_vm(run_module, restore, args):
    run_module(vm_restore, dict(args, name="web01", before="2026-11-26T00:00:00Z", target="disk", disk=2001,
                                target_vm={"name": "helper"}))
    assert restore.kwargs["request"] == RestoreRequest(
        RestorePointQuery(restore_point="latest", vm_name="web01", before="2026-11-26T00:00:00Z"),
        DiskToVm(vm=VmSelector(name="helper"), disk="2001", disk_format="same"))


def test_before_needs_latest(run_module, restore, args):
    outcome, result = run_module(vm_restore, dict(args, restore_point="r42", before="2026-11-26T00:00:00Z", new_name="x"))
    assert outcome == "fail"
    assert result["msg"] == "before applies to restore_point=latest only, not to restore point r42."
    assert restore.calls == []


def test_file_target_needs_neither_vsphere_nor_vddk(run_module, restore, tmp_path):
    path = str(tmp_path / "disk.raw")
    outcome = run_module(vm_restore, dict(repository="/srv/repo", restore_point="r42", target="file", disk="Hard disk 2", path=path))[0]
    assert outcome == "exit"
    kwargs = restore.kwargs
    assert (kwargs["endpoints"].vsphere, kwargs["endpoints"].vddk) == (None, None)
    assert kwargs["request"].target == File(path=path, disk="Hard disk 2", force=False)


def test_vm_targets_need_vsphere(run_module, restore, vddk_dir):
    outcome, result = run_module(vm_restore, dict(repository="/srv/repo", vddk_libdir=vddk_dir, name="web01", new_name="copy"))
    assert outcome == "fail"
    assert result["msg"] == "hostname is empty: give the vCenter host name (or set VMWARE_HOST)."


@pytest.mark.parametrize("extra, message", [
    ({"new_name": "copy"}, "restore_point is latest but all of the following are missing: name"),
    ({"name": "web01"}, "target is new_vm but all of the following are missing: new_name"),
    ({"name": "web01", "target": "disk"}, "target is disk but all of the following are missing: target_vm"),
    ({"name": "web01", "target": "file"}, "target is file but all of the following are missing: path"),
])
def test_required_if(run_module, restore, args, extra, message):
    outcome, result = run_module(vm_restore, dict(args, **extra))
    assert outcome == "fail"
    assert result["msg"] == message


def test_diff_only_in_diff_mode(run_module, restore, args):
    plain = run_module(vm_restore, dict(args, name="web01", new_name="copy"))[1]
    with_diff = run_module(vm_restore, dict(args, name="web01", new_name="copy"), diff=True)[1]
    assert "diff" not in plain
    assert with_diff["diff"] == RESULT["diff"]


def test_check_mode(run_module, restore, args):
    outcome, result = run_module(vm_restore, dict(args, name="web01", new_name="copy"), check_mode=True)
    assert outcome == "exit" and restore.kwargs["settings"].check is True
    assert result["msg"].startswith("Would restore restore point r1 of VM web01 into the new VM ")


def test_the_msg_of_the_operation_is_kept(run_module, ops_call, args):
    # a rerun of a restore that succeeded says why it left the VM as it is: that is the msg
    rerun = dict(RESULT, changed=False, msg="VM web01-restored was restored from restore point r1 already: left as it is.")
    ops_call(vm_restore.ops_restore, "restore", result=rerun)
    result = run_module(vm_restore, dict(args, name="web01", new_name="web01-restored"))[1]
    assert result["msg"] == rerun["msg"]


def test_a_restore_to_a_file_says_which_disk_went_where(run_module, ops_call, tmp_path):
    path = str(tmp_path / "disk.raw")
    ops_call(vm_restore.ops_restore, "restore", result={
        "changed": True, "restore_point": RESULT["restore_point"], "path": path, "format": "raw",
        "disks": [{"key": "2001", "label": "Hard disk 2", "sha256": "ab" * 32, "bytes_written": 1536}]})
    result = run_module(vm_restore, dict(repository="/srv/repo", restore_point="r1", target="file", disk="Hard disk 2",
                                         path=path))[1]
    assert result["msg"] == "Restored disk Hard disk 2 of restore point r1 of VM web01 to %s (raw): 1.50 KiB written." % path


def test_refused_restore_is_a_failure_with_context(run_module, ops_call, args):
    ops_call(vm_restore.ops_restore, "restore",
             error=errors.RestoreRefusedError("VM web01 is powered on: set force to power it off and overwrite it.", vm="web01"))
    outcome, result = run_module(vm_restore, dict(args, name="web01", target="in_place"))
    assert outcome == "fail"
    assert (result["error_class"], result["phase"], result["vm"]) == ("RestoreRefusedError", "restore", "web01")
