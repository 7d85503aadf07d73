"""backup_restore_point: options to ops.restore_points, check and diff mode."""
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore_points import RestorePointChange
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.modules import backup_restore_point

RP = "20261204T091500.123456Z-8c1f2e3d4a5b6c7d-1a2b3c4d"
RESULT = {"changed": True, "restore_point": {"id": RP, "vm": "web01", "created": "2026-12-04T09:15:00Z", "pinned": True,
                                             "note": "before the upgrade"},
          "diff": {"before": {"pinned": False}, "after": {"pinned": True}}}


def test_pin_and_note_reach_the_operation(run_module, ops_call):
    call = ops_call(backup_restore_point.ops_restore_points, "manage_restore_point", result=RESULT)
    outcome, result = run_module(backup_restore_point, dict(repository="/srv/repo", passphrase="repo-pass-1", restore_point=RP,
                                                            pinned=True, note="before the upgrade"))
    assert outcome == "exit"
    assert call.kwargs == {"change": RestorePointChange(RP, state="present", pinned=True, note="before the upgrade"),
                           "repo": RepositorySettings(location="/srv/repo", passphrase="repo-pass-1"), "check": False}
    assert result == {"changed": True, "restore_point": RESULT["restore_point"]}


def test_delete_in_check_and_diff_mode(run_module, ops_call):
    call = ops_call(backup_restore_point.ops_restore_points, "manage_restore_point", result=RESULT)
    result = run_module(backup_restore_point, dict(repository="/srv/repo", restore_point=RP, state="absent"),
                        check_mode=True, diff=True)[1]
    assert call.kwargs["change"].state == "absent" and call.kwargs["check"] is True
    assert result["diff"] == RESULT["diff"]


def test_absent_with_a_pin_is_refused(run_module, ops_call):
    call = ops_call(backup_restore_point.ops_restore_points, "manage_restore_point", result=RESULT)
    outcome, result = run_module(backup_restore_point, dict(repository="/srv/repo", restore_point=RP, state="absent", pinned=True))
    assert outcome == "fail" and result["msg"] == "state absent deletes restore point %s: pinned and note do not apply." % RP
    assert call.calls == []
