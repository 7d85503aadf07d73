"""file_restore: options to ops.file_restore's request, check and diff mode, refusals before anything starts."""
from ansible_collections.blockvault.vsphere.plugins.module_utils.guest import GuestSettings, parse_guest_path
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import RestorePointQuery
from ansible_collections.blockvault.vsphere.plugins.modules import file_restore

RP = "20261204T091500.123456Z-8c1f2e3d4a5b6c7d-1a2b3c4d"
RESULT = {"changed": True, "restore_point": {"id": RP, "vm": "web01", "created": "2026-12-04T09:15:00Z"},
          "operation": "restore", "dest": "/var/tmp/r", "files": [], "updated": ["app.conf"], "skipped": [],
          "diff": {"before": {"dest": "/var/tmp/r", "updated": []}, "after": {"dest": "/var/tmp/r", "updated": ["app.conf"]}}}


def test_options_become_the_request(run_module, ops_call):
    call = ops_call(file_restore.ops_file_restore, "file_restore", result=RESULT)
    outcome, result = run_module(file_restore, dict(
        repository="/srv/repo", passphrase="repo-pass-1", name="web01", before="2026-12-03T22:00:00Z",
        operation="restore", paths=["/etc/app/app.conf", "C:\\Users\\alice"], dest="/var/tmp/r", disks=["2000"],
        filesystem="DATA", preserve_owner=True, appliance_accel="tcg"))
    assert outcome == "exit" and result["updated"] == ["app.conf"] and "diff" not in result
    request = call.kwargs["request"]
    assert request.source == RestorePointQuery("latest", "web01", "2026-12-03T22:00:00Z")
    assert request.paths == (parse_guest_path("/etc/app/app.conf"), parse_guest_path("C:\\Users\\alice"))
    assert (request.operation, request.dest, request.disks, request.filesystem) == ("restore", "/var/tmp/r", ("2000",), "DATA")
    assert (request.keep_owner, request.keep_times) == (True, True)
    assert request.guest == GuestSettings(accel="tcg")
    assert call.kwargs["endpoints"].vsphere is None and call.kwargs["settings"].check is False


def test_check_and_diff_mode_reach_the_operation_and_the_diff_is_shown(run_module, ops_call):
    call = ops_call(file_restore.ops_file_restore, "file_restore", result=RESULT)
    result = run_module(file_restore, dict(repository="/srv/repo", restore_point=RP, operation="restore",
                                           paths=["/etc/app/app.conf"], dest="/var/tmp/r"), check_mode=True, diff=True)[1]
    assert call.kwargs["settings"].check is True and result["diff"] == RESULT["diff"]


def test_hostile_paths_and_a_missing_dest_fail_before_the_operation(run_module, ops_call):
    call = ops_call(file_restore.ops_file_restore, "file_restore", result=RESULT)
    outcome, result = run_module(file_restore, dict(repository="/srv/repo", restore_point=RP, operation="restore",
                                                    paths=["/etc/../../root/.ssh/id_rsa"], dest="/var/tmp/r"))
    assert outcome == "fail" and "contains '..'" in result["msg"] and "id_rsa" in result["msg"]
    outcome, result = run_module(file_restore, dict(repository="/srv/repo", restore_point=RP, operation="restore",
                                                    paths=["/etc/hosts"]))
    assert outcome == "fail" and "dest" in result["msg"]
    assert call.calls == []
