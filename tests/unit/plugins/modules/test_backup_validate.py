"""backup_validate: levels, scope, on_damage, never changed."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import errors
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import (
    RepositorySettings, VddkSettings, VSphereSettings,
)
from ansible_collections.blockvault.vsphere.plugins.modules import backup_validate

CHECKED = {"restore_points": 2, "disks": 3, "chunks": 40, "bytes": 167772160}
GOOD = {"changed": False, "ok": True, "checked": CHECKED, "damaged": []}
DAMAGED = [{"restore_point": "r1", "vm": "web01", "disk": 2000, "ranges": [[8388608, 4194304]]},
           {"restore_point": "r2", "vm": "web01", "disk": 2000, "ranges": [[8388608, 4194304]]}]
BAD = {"changed": False, "ok": False, "checked": CHECKED, "damaged": DAMAGED}


def test_quick_check_of_the_whole_repository(run_module, ops_call):
    call = ops_call(backup_validate.ops_validate, "validate", result=GOOD)
    outcome, result = run_module(backup_validate, dict(repository="/srv/repo", passphrase="repo-pass-1"))
    assert outcome == "exit"
    assert call.kwargs == {"repo": RepositorySettings(location="/srv/repo", passphrase="repo-pass-1"), "level": "quick",
                           "restore_point": None, "vm": None, "vsphere": None, "vddk": None, "scratch_path": None, "check": False}
    assert result == GOOD


def test_restore_level_with_vsphere_and_scratch(run_module, ops_call, vddk_dir, tmp_path):
    call = ops_call(backup_validate.ops_validate, "validate", result=GOOD)
    scratch = str(tmp_path / "scratch")
    run_module(backup_validate, dict(repository="/srv/repo", level="restore", restore_point="r1", scratch_path=scratch,
                                     hostname="vc", username="u", password="vc-pass-1", vddk_libdir=vddk_dir))
    kwargs = call.kwargs
    assert (kwargs["level"], kwargs["restore_point"], kwargs["scratch_path"]) == ("restore", "r1", scratch)
    assert kwargs["vsphere"] == VSphereSettings(host="vc", username="u", password="vc-pass-1")
    assert kwargs["vddk"] == VddkSettings(libdir=vddk_dir)


def test_damage_fails_the_task_with_the_damaged_restore_points(run_module, ops_call):
    ops_call(backup_validate.ops_validate, "validate", result=BAD)
    outcome, result = run_module(backup_validate, dict(repository="/srv/repo", vm="web01", level="full"))
    assert outcome == "fail"
    assert result["msg"] == ("Validation found damage in 2 disk(s) of 2 restore point(s): r1, r2. See 'damaged' for the ranges; "
                             "restore from another restore point and run a new full backup.")
    assert (result["error_class"], result["phase"], result["ok"]) == ("ValidationFailedError", "validate", False)
    assert (result["damaged"], result["checked"], result["changed"]) == (DAMAGED, CHECKED, False)


def test_damage_is_reported_when_asked(run_module, ops_call):
    ops_call(backup_validate.ops_validate, "validate", result=BAD)
    outcome, result = run_module(backup_validate, dict(repository="/srv/repo", on_damage="report"))
    assert outcome == "exit"
    assert result == BAD


def test_validation_error_from_the_operation_is_reported_when_asked(run_module, ops_call):
    ops_call(backup_validate.ops_validate, "validate",
             error=errors.ValidationFailedError("2 disks damaged.", report={"checked": CHECKED, "damaged": DAMAGED}))
    outcome, result = run_module(backup_validate, dict(repository="/srv/repo", on_damage="report"))
    assert outcome == "exit"
    assert result == {"changed": False, "ok": False, "checked": CHECKED, "damaged": DAMAGED}


def test_validation_error_from_the_operation_fails_by_default(run_module, ops_call):
    ops_call(backup_validate.ops_validate, "validate",
             error=errors.ValidationFailedError("2 disks damaged.", report={"ok": False, "checked": CHECKED, "damaged": DAMAGED}))
    outcome, result = run_module(backup_validate, dict(repository="/srv/repo"))
    assert outcome == "fail"
    assert (result["msg"], result["damaged"], result["ok"]) == ("2 disks damaged.", DAMAGED, False)


def test_never_changed_even_if_the_operation_says_so(run_module, ops_call):
    ops_call(backup_validate.ops_validate, "validate", result=dict(GOOD, changed=True))
    result = run_module(backup_validate, dict(repository="/srv/repo"))[1]
    assert result["changed"] is False


def test_check_mode(run_module, ops_call):
    call = ops_call(backup_validate.ops_validate, "validate", result=GOOD)
    outcome = run_module(backup_validate, dict(repository="/srv/repo"), check_mode=True)[0]
    assert outcome == "exit" and call.kwargs["check"] is True


def test_restore_point_and_vm_are_mutually_exclusive(run_module, ops_call):
    ops_call(backup_validate.ops_validate, "validate", result=GOOD)
    outcome, result = run_module(backup_validate, dict(repository="/srv/repo", vm="web01", restore_point="r1"))
    assert outcome == "fail"
    assert result["msg"] == "parameters are mutually exclusive: restore_point|vm"


@pytest.mark.parametrize("option, value", [("level", "deep"), ("on_damage", "ignore")])
def test_choices(run_module, ops_call, option, value):
    ops_call(backup_validate.ops_validate, "validate", result=GOOD)
    outcome, result = run_module(backup_validate, {"repository": "/srv/repo", option: value})
    assert outcome == "fail" and result["msg"].startswith("value of %s must be one of:" % option)
