"""backup_validate: levels, scope, on_damage, never changed."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import errors
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import RunSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.validate import ValidateRequest
from ansible_collections.blockvault.vsphere.plugins.modules import backup_validate

CHECKED = {"restore_points": 2, "chunks_referenced": 40, "chunks_read": 40}
GOOD = {"changed": False, "ok": True, "level": "full", "checked": CHECKED, "damaged": [], "errors": []}
DAMAGED = [{"chunk": "5a1c", "object": "chunks/5a/5a1c", "problem": "missing",
            "affects": [{"restore_point": "r1", "vm": "k1", "vm_name": "web01", "disk": "2000", "ranges": [[8388608, 12582912]]},
                        {"restore_point": "r2", "vm": "k1", "vm_name": "web01", "disk": "2000", "ranges": [[8388608, 12582912]]}]}]
ERRORS = [{"restore_point": "r3", "disk": None, "object": "manifests/r3", "error_class": "CorruptionError", "error": "bad tag"}]
BAD = {"changed": False, "ok": False, "level": "full", "checked": CHECKED, "damaged": DAMAGED, "errors": ERRORS}


def test_quick_check_of_the_whole_repository(run_module, ops_call):
    call = ops_call(backup_validate.ops_validate, "validate", result=GOOD)
    outcome, result = run_module(backup_validate, dict(repository="/srv/repo", passphrase="repo-pass-1"))
    assert outcome == "exit"
    assert call.kwargs == {"request": ValidateRequest(level="quick", restore_point=None, vm=None, scratch_path=None),
                           "repo": RepositorySettings(location="/srv/repo", passphrase="repo-pass-1"),
                           "settings": RunSettings(workers=2, memory_budget=256 * 1024 * 1024, check=False)}
    assert result == GOOD


def test_restore_level_of_the_latest_restore_point_of_a_vm(run_module, ops_call, tmp_path):
    call = ops_call(backup_validate.ops_validate, "validate", result=GOOD)
    scratch = str(tmp_path / "scratch")
    run_module(backup_validate, dict(repository="/srv/repo", level="restore", vm="web01", restore_point="latest",
                                     scratch_path=scratch, workers=3, memory_budget_mb=32))
    kwargs = call.kwargs
    assert kwargs["request"] == ValidateRequest(level="restore", vm="web01", restore_point="latest", scratch_path=scratch)
    assert (kwargs["settings"].workers, kwargs["settings"].memory_budget) == (3, 32 * 1024 * 1024)


def test_latest_needs_a_vm(run_module, ops_call):
    call = ops_call(backup_validate.ops_validate, "validate", result=GOOD)
    outcome, result = run_module(backup_validate, dict(repository="/srv/repo", restore_point="latest"))
    assert outcome == "fail"
    assert result["msg"] == "restore_point=latest needs vm: the name of the VM whose newest restore point to check."
    assert call.calls == []


def test_damage_fails_the_task_with_the_damage(run_module, ops_call):
    ops_call(backup_validate.ops_validate, "validate", result=BAD)
    outcome, result = run_module(backup_validate, dict(repository="/srv/repo", vm="web01", level="full"))
    assert outcome == "fail"
    assert result["msg"] == ("Validation found 1 damaged chunk(s) and 1 error(s), affecting restore point(s) r1, r2, r3. See 'damaged' "
                             "and 'errors'; restore from an intact restore point, and take a new full backup (mode=full) of the VMs "
                             "affected.")
    assert (result["error_class"], result["phase"], result["ok"], result["level"]) == ("ValidationFailedError", "validate", False, "full")
    assert (result["damaged"], result["errors"], result["checked"], result["changed"]) == (DAMAGED, ERRORS, CHECKED, False)


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
    assert outcome == "exit" and call.kwargs["settings"].check is True


@pytest.mark.parametrize("option, value", [("level", "deep"), ("on_damage", "ignore")])
def test_choices(run_module, ops_call, option, value):
    ops_call(backup_validate.ops_validate, "validate", result=GOOD)
    outcome, result = run_module(backup_validate, {"repository": "/srv/repo", option: value})
    assert outcome == "fail" and result["msg"].startswith("value of %s must be one of:" % option)


def test_vsphere_options_from_module_defaults_are_accepted_and_not_passed_on(run_module, ops_call):
    call = ops_call(backup_validate.ops_validate, "validate", result=GOOD)
    outcome, result = run_module(backup_validate, dict(repository="/srv/repo", hostname="vc", password="vc-secret-9",
                                                       vddk_libdir="/opt/vddk"))
    assert outcome == "exit"
    assert not {"vsphere", "vddk", "hostname"} & set(call.kwargs)
    assert "vc-secret-9" not in repr(result)
