"""vm_backup: options to ops.backup.backup_vm, check mode, results passed through."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import BackupRequest, Endpoints, RunSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import (
    RepositorySettings, VddkSettings, VSphereSettings,
)
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.vm import VmSelector
from ansible_collections.blockvault.vsphere.plugins.modules import vm_backup

RESULT = {
    "changed": True,
    "restore_point": {"id": "20261126T083000Z-5f2c", "vm": "web01", "created": "2026-11-26T08:30:02Z"},
    "disks": [{"key": "2000", "label": "Hard disk 1", "mode": "incremental", "reason": "changed blocks since r0",
               "bytes_read": 1048576, "bytes_new": 65536, "sha256": "ab" * 32}],
    "bytes_read": 1048576, "bytes_written": 40000, "duration": 2.5, "throughput_mbps": 0.42,
}


@pytest.fixture
def args(vddk_dir):
    return dict(hostname="vc.example.com", username="backup@vsphere.local", password="vc-pass-1", vddk_libdir=vddk_dir,
                repository="/srv/repo", passphrase="repo-pass-1")


@pytest.fixture
def backup_vm(ops_call):
    return ops_call(vm_backup.ops_backup, "backup_vm", result=RESULT)


def test_defaults_reach_the_operation_exactly(run_module, backup_vm, args, vddk_dir):
    outcome, result = run_module(vm_backup, dict(args, name="web01"))
    assert outcome == "exit"
    assert backup_vm.kwargs == {
        "request": BackupRequest(vm=VmSelector(name="web01"), mode="auto", quiesce=True, allow_crash_consistent=False,
                                 include_disks=(), exclude_disks=(), run_id=None),
        "endpoints": Endpoints(
            repo=RepositorySettings(location="/srv/repo", passphrase="repo-pass-1"),
            vsphere=VSphereSettings(host="vc.example.com", username="backup@vsphere.local", password="vc-pass-1"),
            vddk=VddkSettings(libdir=vddk_dir, transports="nbdssl:nbd")),
        "settings": RunSettings(workers=4, memory_budget=256 * 1024 * 1024, status_file=None, check=False),
    }
    assert result == RESULT


def test_every_option_reaches_the_operation(run_module, backup_vm, args, tmp_path):
    status = str(tmp_path / "status.json")
    run_module(vm_backup, dict(args, moid="vm-42", mode="incremental", quiesce=False, allow_crash_consistent=True,
                               include_disks=["Hard disk 1", "2001", 2002], workers=8, memory_budget_mb=64,
                               run_id="run-1", status_file=status))
    request, settings = backup_vm.kwargs["request"], backup_vm.kwargs["settings"]
    assert request == BackupRequest(vm=VmSelector(moid="vm-42"), mode="incremental", quiesce=False, allow_crash_consistent=True,
                                    include_disks=("Hard disk 1", "2001", "2002"), run_id="run-1")
    assert settings == RunSettings(workers=8, memory_budget=64 * 1048576, status_file=status, check=False)


def test_vm_by_uuid_and_excluded_disks(run_module, backup_vm, args):
    run_module(vm_backup, dict(args, uuid="4211-abcd", exclude_disks=[2001]))
    request = backup_vm.kwargs["request"]
    assert request.vm == VmSelector(uuid="4211-abcd")
    assert request.exclude_disks == ("2001",) and request.include_disks == ()


def test_check_mode_asks_for_the_plan(run_module, ops_call, args):
    plan = {"changed": True, "plan": {"disks": [], "skipped": {}, "previous_restore_point": None}, "vm": "web01", "run_id": "run-9"}
    call = ops_call(vm_backup.ops_backup, "backup_vm", result=plan)
    outcome, result = run_module(vm_backup, dict(args, name="web01"), check_mode=True)
    assert outcome == "exit" and call.kwargs["settings"].check is True
    assert result == plan


def test_repeated_run_id_is_not_a_change(run_module, ops_call, args):
    ops_call(vm_backup.ops_backup, "backup_vm", result=dict(RESULT, changed=False))
    outcome, result = run_module(vm_backup, dict(args, name="web01", run_id="20261126T083000Z-5f2c"))
    assert outcome == "exit" and result["changed"] is False


def test_one_vm_identifier_is_required(run_module, backup_vm, args):
    outcome, result = run_module(vm_backup, args)
    assert outcome == "fail"
    assert result["msg"] == "one of the following is required: name, uuid, moid"
    assert backup_vm.calls == []


def test_vm_identifiers_are_mutually_exclusive(run_module, backup_vm, args):
    outcome, result = run_module(vm_backup, dict(args, name="web01", moid="vm-42"))
    assert outcome == "fail"
    assert result["msg"] == "parameters are mutually exclusive: name|uuid|moid"


def test_include_and_exclude_are_mutually_exclusive(run_module, backup_vm, args):
    outcome, result = run_module(vm_backup, dict(args, name="web01", include_disks=[2000], exclude_disks=[2001]))
    assert outcome == "fail"
    assert result["msg"] == "parameters are mutually exclusive: include_disks|exclude_disks"


def test_mode_choices(run_module, backup_vm, args):
    outcome, result = run_module(vm_backup, dict(args, name="web01", mode="differential"))
    assert outcome == "fail"
    assert result["msg"].startswith("value of mode must be one of: auto, full, incremental, got: differential")


@pytest.mark.parametrize("option, message", [
    ("workers", "workers is 0: give 1 or more."),
    ("memory_budget_mb", "memory_budget_mb is 0: give 1 or more MiB."),
])
def test_counts_must_be_positive(run_module, backup_vm, args, option, message):
    outcome, result = run_module(vm_backup, dict(args, name="web01", **{option: 0}))
    assert outcome == "fail"
    assert (result["msg"], result["error_class"]) == (message, "ConfigurationError")
    assert backup_vm.calls == []


FALLBACK = ("Disk Hard disk 1 (key 2000) was read with transport nbd although hotadd was asked for first (transports "
            "hotadd:nbd): VDDK could not use hotadd for it, ...")
DIFF = {"before": {}, "after": {"restore_point": "(new, of this run)", "vm": "web01", "transports_requested": "hotadd:nbd",
                                "disks": [{"key": "2000", "label": "Hard disk 1", "mode": "full", "reason": "first"}]}}


def test_the_operations_warnings_become_ansible_warnings(run_module, ops_call, args, monkeypatch):
    from ansible.module_utils import basic
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, warning, **kwargs: warned.append(warning))
    ops_call(vm_backup.ops_backup, "backup_vm", result=dict(RESULT, warnings=[FALLBACK]))
    outcome, result = run_module(vm_backup, dict(args, name="web01", transports="hotadd:nbd"))
    assert outcome == "exit" and warned == [FALLBACK]
    assert "warnings" not in result and result["disks"] == RESULT["disks"]


@pytest.mark.parametrize("diff", [True, False])
def test_the_diff_is_returned_in_diff_mode_only(run_module, ops_call, args, diff):
    plan = {"changed": True, "plan": {"disks": [], "skipped": {}, "previous_restore_point": None}, "vm": "web01",
            "run_id": "run-9", "diff": DIFF}
    ops_call(vm_backup.ops_backup, "backup_vm", result=plan)
    outcome, result = run_module(vm_backup, dict(args, name="web01"), check_mode=True, diff=diff)
    assert outcome == "exit"
    assert result.get("diff") == (DIFF if diff else None)
