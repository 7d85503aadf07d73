"""backup_report: options become a ReportRequest, check mode reaches the engine, the engine's result is the module's."""
from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.modules import backup_report

SUMMARY = {"vms": 2, "restore_points": 5, "validated_restore_points": 1, "bytes_read": 100, "bytes_stored": 40,
           "logical_bytes": 4000, "repository_bytes": 38, "repository_chunks": 3, "as_of": "2026-11-26T08:31:27.412093Z"}
FILES = {"html": "/srv/reports/report.html", "json": "/srv/reports/report.json",
         "restore_points_csv": "/srv/reports/restore_points.csv", "disks_csv": "/srv/reports/disks.csv"}
RESULT = {"changed": True, "dest": "/srv/reports", "files": FILES, "updated": [FILES["html"]], "summary": SUMMARY,
          "warnings": [], "msg": "report of 5 restore points of 2 VMs: wrote report.html"}


def test_options_become_the_request(run_module, ops_call):
    write = ops_call(backup_report.ops_report, "write_report", result=RESULT)
    outcome, result = run_module(backup_report, dict(repository="/srv/repo", passphrase="repo-pass-1", dest="/srv/reports",
                                                     vm="web01", title="Nightly"))
    assert outcome == "exit"
    assert write.kwargs == {"request": backup_report.ops_report.ReportRequest(dest="/srv/reports", vm="web01", title="Nightly"),
                            "repo": RepositorySettings(location="/srv/repo", passphrase="repo-pass-1"), "check": False}
    assert result == {"changed": True, "dest": "/srv/reports", "files": FILES, "updated": [FILES["html"]],
                      "summary": SUMMARY, "msg": RESULT["msg"]}


def test_defaults_and_check_mode(run_module, ops_call):
    write = ops_call(backup_report.ops_report, "write_report", result=dict(RESULT, changed=False, updated=[]))
    outcome, result = run_module(backup_report, dict(repository="/srv/repo", dest="/srv/reports"), check_mode=True)
    assert outcome == "exit" and result["changed"] is False
    assert write.kwargs["request"] == backup_report.ops_report.ReportRequest(dest="/srv/reports", vm=None, title="Backup report")
    assert write.kwargs["check"] is True


def test_dest_is_required(run_module, ops_call):
    write = ops_call(backup_report.ops_report, "write_report", result=RESULT)
    outcome, result = run_module(backup_report, dict(repository="/srv/repo"))
    assert outcome == "fail" and result["msg"] == "missing required arguments: dest" and write.calls == []


def test_an_engine_error_is_a_failure_with_its_class(run_module, ops_call):
    ops_call(backup_report.ops_report, "write_report", error=ConfigurationError("No restore point of VM nope in the repository."))
    outcome, result = run_module(backup_report, dict(repository="/srv/repo", dest="/srv/reports", vm="nope"))
    assert outcome == "fail" and result["error_class"] == "ConfigurationError" and "VM nope" in result["msg"]


def test_a_bad_title_fails_before_the_repository_is_opened(run_module, ops_call):
    write = ops_call(backup_report.ops_report, "write_report", result=RESULT)
    outcome, result = run_module(backup_report, dict(repository="/srv/repo", dest="/srv/reports", title="x" * 201))
    assert outcome == "fail" and "title must be" in result["msg"] and write.calls == []
