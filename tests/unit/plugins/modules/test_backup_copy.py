"""backup_copy: the request reaches the operation exactly, check and diff mode, secrets masked, a real copy end to end."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import copy as ops_copy
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import RunSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import crypto, open_backend
from ansible_collections.blockvault.vsphere.plugins.modules import backup_copy
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    MIB, PASSPHRASE, backup, make_repo, random_disk)

COPIED = {"id": "20261126T083127.123456Z-5f2c0a1b2c3d4e5f-9a8b7c6d", "vm": "web01", "created": "2026-11-26T08:31:27.123456Z",
          "destination_id": "20261126T083127.123456Z-0e1d2c3b4a596877-9a8b7c6d", "chunks": 3, "bytes": 3 * MIB}
RESULT = {"changed": True, "run_id": "r1", "destination": "s3://offsite/vsphere/", "copied": [COPIED], "present": [],
          "chunks_copied": 3, "bytes_copied": 3 * MIB, "bytes_sent": 1234, "duration": 1.5, "throughput_mbps": 2.1,
          "diff": {"before": {"restore_points": []}, "after": {"restore_points": [COPIED["destination_id"]]}}}
DESTINATION = dict(repository="s3://offsite/vsphere", passphrase="offsite-secret-1", region="eu-west-3", aws_access_key="AK",
                   aws_secret_key="offsite-secret-2", object_lock_days=30, storage_class="STANDARD_IA")


@pytest.fixture
def copy(ops_call):
    return ops_call(backup_copy.ops_copy, "copy", result=RESULT)


def test_request_reaches_the_operation_exactly(run_module, copy):
    outcome, result = run_module(backup_copy, dict(repository="/srv/repo", passphrase="repo-pass-1", destination=DESTINATION,
                                                   vm="web01", last=2, newer_than="7d", restore_points=["a", "b"], workers=6,
                                                   rate_limit_mbps=12.5, status_file="/tmp/s.json"))
    assert outcome == "exit", result
    assert copy.kwargs == {
        "request": ops_copy.CopyRequest(
            destination=RepositorySettings(location="s3://offsite/vsphere", passphrase="offsite-secret-1", region="eu-west-3",
                                           access_key="AK", secret_key="offsite-secret-2", object_lock_days=30,
                                           storage_class="STANDARD_IA"),
            vm="web01", restore_points=("a", "b"), last=2, newer_than="7d", rate_limit_mbps=12.5),
        "repo": RepositorySettings(location="/srv/repo", passphrase="repo-pass-1"),
        "settings": RunSettings(workers=6, status_file="/tmp/s.json", check=False)}
    assert result == dict((key, value) for key, value in RESULT.items() if key != "diff")


def test_check_and_diff_mode(run_module, copy):
    outcome, result = run_module(backup_copy, dict(repository="/srv/repo", destination=dict(repository="/mnt/offsite")),
                                 check_mode=True, diff=True)
    assert outcome == "exit" and copy.kwargs["settings"].check is True
    assert result == RESULT


def test_destination_secrets_never_reach_the_output(run_module, ops_call):
    ops_call(backup_copy.ops_copy, "copy", result=dict(RESULT, destination="offsite-secret-1 offsite-secret-2"))
    result = run_module(backup_copy, dict(repository="/srv/repo", destination=DESTINATION))[1]
    assert "offsite-secret" not in repr(result)


@pytest.mark.parametrize("destination, message", [
    (dict(passphrase="x"), "missing required arguments: repository found in destination"),
    (dict(repository="/mnt/o", passphrase="x", key_file="/k"), "parameters are mutually exclusive: passphrase|key_file found in destination"),
    (dict(repository="/mnt/o", storage_class="DEEP_ARCHIVE"), "value of storage_class must be one of"),
])
def test_destination_options_are_checked(run_module, copy, destination, message):
    outcome, result = run_module(backup_copy, dict(repository="/srv/repo", destination=destination))
    assert outcome == "fail" and message in result["msg"]
    assert copy.calls == []


def test_a_real_copy_then_a_rerun_that_changes_nothing(run_module, tmp_path, monkeypatch):
    monkeypatch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
    source = make_repo(open_backend(str(tmp_path / "source")))
    rp_id = backup(source, "vm-a", {"2000": random_disk(2 * MIB, 1)})[0]
    make_repo(open_backend(str(tmp_path / "offsite")), encrypted=False)
    args = dict(repository=str(tmp_path / "source"), passphrase=PASSPHRASE, destination=dict(repository=str(tmp_path / "offsite")),
                status_file=str(tmp_path / "status.json"))
    outcome, first = run_module(backup_copy, args)
    assert outcome == "exit", first
    assert first["changed"] is True and [entry["id"] for entry in first["copied"]] == [rp_id] and first["chunks_copied"] == 2
    outcome, again = run_module(backup_copy, args)
    assert outcome == "exit" and again["changed"] is False and again["copied"] == []
    assert [entry["id"] for entry in again["present"]] == [rp_id]
    outcome, refused = run_module(backup_copy, dict(args, destination=dict(repository=str(tmp_path / "nowhere"))))
    assert outcome == "fail" and refused["error_class"] == "RepositoryNotFoundError"
