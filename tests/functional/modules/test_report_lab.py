"""backup_report end to end against the lab: backups by vm_backup (a full, an incremental after guest writes, another
VM), a full validation by backup_validate, then the report through the module as Ansible runs it; its CSV and JSON
figures are the ones vm_backup returned for each restore point (both come from the manifests), a rerun changes
nothing, check mode writes nothing, a validation changes the report.
"""
import csv
import json

import pytest

from ansible_collections.blockvault.vsphere.plugins.modules import backup_report, backup_repository, backup_validate, vm_backup

from modrun import run

pytestmark = pytest.mark.lab


def _backup(repo_args, name):
    result = run(vm_backup, dict(repo_args, name=name, quiesce=False))
    assert result.get("failed") is not True, result.get("msg")
    return result


def _csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_report_of_lab_backups_through_the_module(lab, labctl, repo_args, tmp_path):
    run(backup_repository, dict(repo_args, chunk_size=1 << 20))
    first = _backup(repo_args, "lab-vm1")
    other = _backup(repo_args, "lab-vm2")
    labctl("write", "--vm", "lab-vm1", "--disk", 0, "--offset", 4 << 20, "--length", 2 << 20, "--seed", 4242)
    second = _backup(repo_args, "lab-vm1")
    assert {d["mode"] for d in second["disks"]} == {"incremental"}
    backups = {b["restore_point"]["id"]: b for b in (first, other, second)}

    dest = tmp_path / "report"
    planned = run(backup_report, dict(repo_args, dest=str(dest)), check_mode=True)
    assert planned["changed"] is True and len(planned["updated"]) == 4 and not dest.exists()
    written = run(backup_report, dict(repo_args, dest=str(dest), title="Lab report"))
    assert written.get("failed") is not True, written.get("msg")
    assert written["changed"] is True and written["summary"]["restore_points"] == 3 and written["summary"]["vms"] == 2
    assert written["summary"]["bytes_read"] == sum(b["bytes_read"] for b in backups.values())
    assert written["summary"]["bytes_stored"] == sum(b["bytes_written"] for b in backups.values())
    assert written["summary"]["validated_restore_points"] == 0

    points = {row["restore_point"]: row for row in _csv(written["files"]["restore_points_csv"])}
    assert sorted(points) == sorted(backups)
    for rp_id, backup in backups.items():
        row = points[rp_id]
        assert row["vm"] == backup["restore_point"]["vm"] and row["run_id"] == backup["run_id"]
        assert int(row["bytes_read"]) == backup["bytes_read"] and int(row["bytes_stored"]) == backup["bytes_written"]
        assert float(row["duration_seconds"]) == backup["duration"] and row["quiesced"] == "false"
        assert row["transports"] == ";".join("%s:%s" % (d["key"], d["transport"]) for d in backup["disks"])
        assert row["disk_modes"] == ";".join("%s:%s" % (d["key"], d["mode"]) for d in backup["disks"])
        assert row["bytes_new"] == str(sum(d["bytes_new"] for d in backup["disks"]))
    disks = _csv(written["files"]["disks_csv"])
    assert len(disks) == sum(len(b["disks"]) for b in backups.values())
    for row in disks:
        disk = [d for d in backups[row["restore_point"]]["disks"] if d["key"] == row["disk_key"]][0]
        assert (row["mode"], row["reason"], row["transport"]) == (disk["mode"], disk["reason"], disk["transport"])
        assert (int(row["bytes_read"]), int(row["bytes_new"]), int(row["bytes_stored"])) == (
            disk["bytes_read"], disk["bytes_new"], disk["bytes_stored"])
    with open(written["files"]["json"], encoding="utf-8") as handle:
        document = json.load(handle)
    assert [vm["name"] for vm in document["vms"]] == ["lab-vm1", "lab-vm2"] and document["title"] == "Lab report"
    page = open(written["files"]["html"], encoding="utf-8").read()
    assert all('data-restore-point="%s"' % rp_id in page for rp_id in backups) and page.count("<svg") == 4

    again = run(backup_report, dict(repo_args, dest=str(dest), title="Lab report"))
    assert again["changed"] is False and again["updated"] == []

    checked = run(backup_validate, dict(repo_args, level="full"))
    assert checked["ok"] is True
    would = run(backup_report, dict(repo_args, dest=str(dest), title="Lab report"), check_mode=True)
    assert would["changed"] is True and would["summary"]["validated_restore_points"] == 3
    assert _csv(written["files"]["restore_points_csv"])[0]["validated"] == ""          # check mode wrote nothing
    validated = run(backup_report, dict(repo_args, dest=str(dest), title="Lab report"))
    assert validated["changed"] is True and validated["summary"]["validated_restore_points"] == 3
    assert {row["validation_level"] for row in _csv(written["files"]["restore_points_csv"])} == {"full"}

    one = run(backup_report, dict(repo_args, dest=str(tmp_path / "vm2"), vm="lab-vm2"))
    assert one["summary"]["restore_points"] == 1 and [row["vm"] for row in _csv(one["files"]["restore_points_csv"])] == ["lab-vm2"]
    missing = run(backup_report, dict(repo_args, dest=str(tmp_path / "none"), vm="no-such-vm"))
    assert missing["failed"] is True and missing["error_class"] == "ConfigurationError"
