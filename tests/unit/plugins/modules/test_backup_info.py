"""backup_info: repository settings and restore points per VM, or the status of a run, or of the runs of a batch."""
import json

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.modules import backup_info

POINT = {"id": "r1", "vm": "web01", "vm_key": "4211", "run_id": "run-1", "created": "2026-11-25T08:30:02Z", "backup_mode": "full",
         "bytes_read": 1048576, "bytes_written": 40000,
         "disks": [{"key": "2000", "label": "Hard disk 1", "capacity": 1073741824, "mode": "full", "reason": "first",
                    "bytes_new": 1048576, "sha256": "ef" * 32}]}
LISTING = {"changed": False, "vms": {"web01": [POINT]}, "count": 1, "warnings": []}
REPOSITORY = {"location": "/srv/repo", "id": "3b2f", "format_version": 1, "chunk_size": 4194304, "encryption": True,
              "compression_level": 3, "created": "2026-11-20T10:00:00Z", "key_slots": []}
STATUS = {"format": "blockvault-status", "version": 1, "run_id": "r2", "vm": "web01", "state": "running", "phase": "transfer",
          "started": "2026-11-26T08:30:00Z", "updated": "2026-11-26T09:02:11Z", "bytes_done": 10, "bytes_total": 40,
          "mb_per_s": 1.5, "eta_seconds": 20, "disks": [], "last_error": None}
# what the module adds to the document for the roles to print
VIEW = {"label": "web01", "progress_line": "transfer 25.0%: 10 B of 40 B, 1.4 MiB/s, ETA 20s"}


EXPORT = {"name": "r1", "uris": {"2000": "nbd+unix:///?socket=/tmp/blockvault-export-x/disk-2000.sock"}, "pids": [4242]}


@pytest.fixture
def listing(ops_call):
    show = ops_call(backup_info.ops_repository, "show_repository", result={"changed": False, "repository": REPOSITORY})
    points = ops_call(backup_info.ops_info, "list_restore_points", result=LISTING)
    ops_call(backup_info.ops_export, "list_exports", result={"changed": False, "exports": [EXPORT], "cleaned": [],
                                                             "warnings": []})
    return show, points


@pytest.fixture
def status(ops_call):
    return ops_call(backup_info.ops_info, "run_status", result={"changed": False, "status": STATUS})


def test_lists_restore_points_of_one_vm(run_module, listing, status):
    show, points = listing
    outcome, result = run_module(backup_info, dict(repository="/srv/repo", passphrase="repo-pass-1", vm="web01"))
    assert outcome == "exit"
    repo = RepositorySettings(location="/srv/repo", passphrase="repo-pass-1")
    assert show.kwargs == {"repo": repo}
    assert points.kwargs == {"repo": repo, "vm": "web01"}
    assert result == {"changed": False, "repository": REPOSITORY, "vms": {"web01": [POINT]}, "count": 1,
                      "exports": [EXPORT]}
    assert status.calls == []


def test_restore_points_skipped_for_a_damaged_manifest_are_ansible_warnings(run_module, ops_call, monkeypatch):
    warned = []
    monkeypatch.setattr("ansible.module_utils.basic.AnsibleModule.warn", lambda self, text: warned.append(text))
    skipped = "restore point r0: its manifest is damaged (Manifest manifests/r0 fails its checksum: it is damaged.); skipped"
    ops_call(backup_info.ops_repository, "show_repository", result={"changed": False, "repository": REPOSITORY})
    ops_call(backup_info.ops_info, "list_restore_points", result=dict(LISTING, warnings=[skipped]))
    ops_call(backup_info.ops_export, "list_exports", result={"changed": False, "exports": [EXPORT], "cleaned": [],
                                                             "warnings": []})
    outcome, result = run_module(backup_info, dict(repository="/srv/repo"))
    assert outcome == "exit" and warned == [skipped]
    assert result == {"changed": False, "repository": REPOSITORY, "vms": {"web01": [POINT]}, "count": 1,
                      "exports": [EXPORT]}


def test_lists_every_vm_by_default(run_module, listing):
    run_module(backup_info, dict(repository="/srv/repo"))
    assert listing[1].kwargs["vm"] is None


def test_status_of_a_run_needs_no_repository(run_module, listing, status, tmp_path):
    path = str(tmp_path / "status.json")
    outcome, result = run_module(backup_info, dict(status_file=path))
    assert outcome == "exit"
    assert status.kwargs == {"status_file": path}
    assert result == {"changed": False, "status": dict(STATUS, **VIEW)}
    assert listing[0].calls == [] and listing[1].calls == []


def test_check_mode_reads_the_same(run_module, status, tmp_path):
    outcome, result = run_module(backup_info, dict(status_file=str(tmp_path / "s.json")), check_mode=True)
    assert outcome == "exit" and result["status"] == dict(STATUS, **VIEW) and result["changed"] is False


def test_vm_and_status_file_are_mutually_exclusive(run_module, listing, status, tmp_path):
    outcome, result = run_module(backup_info, dict(repository="/srv/repo", vm="web01", status_file=str(tmp_path / "s.json")))
    assert outcome == "fail"
    assert result["msg"] == "parameters are mutually exclusive: vm|status_file|status_files"


def test_status_files_give_every_run_of_a_batch_and_one_line(run_module, listing, tmp_path):
    running = tmp_path / "run-web01.json"
    running.write_text(json.dumps(STATUS))
    done = tmp_path / "run-db01.json"
    done.write_text(json.dumps(dict(STATUS, vm="db01", run_id="r3", state="succeeded", bytes_done=40, eta_seconds=0)))
    missing = tmp_path / "run-app01.json"
    damaged = tmp_path / "run-x.json"
    damaged.write_text("{not json")
    outcome, result = run_module(backup_info, dict(status_files=[str(running), str(done), str(missing), str(damaged)]))
    assert outcome == "exit" and result["changed"] is False
    assert result["progress_line"] == (
        "web01: transfer 25.0%: 10 B of 40 B, 1.4 MiB/s, ETA 20s | db01: succeeded 100.0%: 40 B of 40 B, 1.4 MiB/s"
        " | run-app01.json: no status yet | run-x.json: status unreadable: The status file " + str(damaged)
        + " is damaged or not a blockvault status file: not UTF-8 JSON. Give the status_file of a blockvault run; it is"
        " rewritten whole while the run goes on.")
    assert [(run["label"], run["found"], run["ended"]) for run in result["runs"]] == [
        ("web01", True, False), ("db01", True, True), ("run-app01.json", False, False), ("run-x.json", False, False)]
    assert result["runs"][0]["status"] == dict(STATUS, **VIEW)
    assert result["all_ended"] is False
    assert "leases_renewed" not in result
    assert listing[0].calls == [] and listing[1].calls == []     # the repository is not opened


def test_status_files_renew_the_leases_of_the_runs_that_run(run_module, tmp_path, monkeypatch):
    renewed = []
    monkeypatch.setattr(backup_info.ops_cancel, "renew_lease",
                        lambda path, seconds: renewed.append((path, seconds)) or path.endswith("a.json"))
    paths = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    outcome, result = run_module(backup_info, dict(status_files=paths, renew_leases=paths, lease_seconds=45))
    assert outcome == "exit"
    assert renewed == [(paths[0], 45), (paths[1], 45)] and result["leases_renewed"] == [paths[0]]
    assert result["progress_line"] == "a.json: no status yet | b.json: no status yet"


def test_status_files_and_status_file_are_mutually_exclusive(run_module, tmp_path):
    outcome, result = run_module(backup_info, dict(status_file=str(tmp_path / "a.json"), status_files=[str(tmp_path / "b.json")]))
    assert outcome == "fail" and result["msg"] == "parameters are mutually exclusive: vm|status_file|status_files"
