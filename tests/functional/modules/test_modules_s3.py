"""The modules with an S3 repository, against the lab and each S3 server: moto and SeaweedFS (which checks signatures
and enforces Object Lock). Where the servers differ from AWS, see tests/unit/.../repo/test_s3_servers_vs_aws.py.
"""
import datetime
import hashlib
import json
import uuid

import pytest

from ansible_collections.blockvault.vsphere.plugins.modules import (
    backup_info, backup_prune, backup_repository, backup_validate, vm_backup, vm_restore,
)
from labkit.s3servers import LOCKED_BUCKET, PLAIN_BUCKET

from modrun import PASSPHRASE, run

pytestmark = pytest.mark.lab


def _s3_args(server, bucket=PLAIN_BUCKET, **extra):
    return dict({"repository": "s3://%s/modules-%s" % (bucket, uuid.uuid4().hex[:12]), "s3_endpoint_url": server.endpoint,
                 "region": server.region, "aws_access_key": server.access_key, "aws_secret_key": server.secret_key,
                 "passphrase": PASSPHRASE}, **extra)


def _ok(result):
    assert result.get("failed") is not True, result.get("msg")
    return result


def test_backup_validate_restore_prune_on_s3(lab_env, s3_server, tmp_path):
    args = _s3_args(s3_server)
    assert _ok(run(backup_repository, dict(args, chunk_size=1 << 20)))["changed"] is True
    first = _ok(run(vm_backup, dict(args, name="lab-vm2", quiesce=False)))
    second = _ok(run(vm_backup, dict(args, name="lab-vm2", quiesce=False)))
    assert second["restore_point"]["id"] != first["restore_point"]["id"]
    assert [d["sha256"] for d in second["disks"]] == [d["sha256"] for d in first["disks"]]
    listing = _ok(run(backup_info, dict(args, vm="lab-vm2")))
    assert [p["id"] for p in listing["vms"]["lab-vm2"]] == [first["restore_point"]["id"], second["restore_point"]["id"]]
    checked = _ok(run(backup_validate, dict(args, level="full")))
    assert checked["ok"] is True and checked["checked"]["restore_points"] == 2

    image = str(tmp_path / "disk0.raw")
    disk = first["disks"][0]
    restored = _ok(run(vm_restore, dict(args, restore_point=first["restore_point"]["id"], target="file", disk=disk["key"], path=image)))
    assert restored["disks"][0]["sha256"] == disk["sha256"]
    with open(image, "rb") as raw:
        assert hashlib.file_digest(raw, "sha256").hexdigest() == lab_env.checksum("lab-vm2", 0)

    pruned = _ok(run(backup_prune, dict(args, keep_last=1)))
    assert [p["id"] for p in pruned["removed"]] == [first["restore_point"]["id"]]
    assert pruned["gc"]["chunks_removed"] == 0    # the second restore point uses every chunk of the first
    assert [p["id"] for p in _ok(run(backup_info, dict(args, vm="lab-vm2")))["vms"]["lab-vm2"]] == [second["restore_point"]["id"]]


def test_object_lock_through_the_modules_on_seaweedfs(lab_env, seaweedfs_server, capsys):
    """object_lock_days (GOVERNANCE) on a bucket with Object Lock: the backup data is retained, and prune keeps what the
    retention protects, saying until when."""
    args = _s3_args(seaweedfs_server, bucket=LOCKED_BUCKET, object_lock_days=2)
    _ok(run(backup_repository, dict(args, chunk_size=1 << 20)))
    first = _ok(run(vm_backup, dict(args, name="lab-vm2", quiesce=False)))
    _ok(run(vm_backup, dict(args, name="lab-vm2", quiesce=False)))
    prefix = args["repository"].split("/", 3)[3] + "/"
    manifest = prefix + "manifests/" + first["restore_point"]["id"]
    client = seaweedfs_server.client()
    head = client.head_object(Bucket=LOCKED_BUCKET, Key=manifest)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    pruned = _ok(run(backup_prune, dict(args, keep_last=1)))
    until = head["ObjectLockRetainUntilDate"].astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert pruned["removed"] == [] and pruned["kept"][0]["reasons"] == ["object lock until %s" % until]
    assert ("Kept 1 restore point(s) that the policy would remove, because S3 Object Lock still protects them: %s (until "
            "%s). A prune after their retention has passed removes them." % (first["restore_point"]["id"], until)
            in capsys.readouterr().err)      # the module's warning
    versions = client.list_object_versions(Bucket=LOCKED_BUCKET, Prefix=manifest)
    assert [v["VersionId"] for v in versions["Versions"]] == [head["VersionId"]] and "DeleteMarkers" not in versions
    with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
        client.delete_object(Bucket=LOCKED_BUCKET, Key=manifest, VersionId=head["VersionId"])


def test_missing_bucket_and_wrong_secret_fail_clearly_through_the_modules(lab_env, seaweedfs_server):
    bucket = "blockvault-missing-%s" % uuid.uuid4().hex[:8]
    missing = run(backup_repository, _s3_args(seaweedfs_server, bucket=bucket))
    assert missing["failed"] is True and missing["error_class"] == "BackendError"
    assert "NoSuchBucket (404): bucket %s does not exist. Create the bucket first" % bucket in missing["msg"]
    assert bucket not in {b["Name"] for b in seaweedfs_server.client().list_buckets()["Buckets"]}

    args = _s3_args(seaweedfs_server)
    _ok(run(backup_repository, args))
    wrong_secret = "sw-Wrong-Secret-5530"
    refused = run(backup_info, dict(args, aws_secret_key=wrong_secret))
    assert refused["failed"] is True and refused["error_class"] == "BackendError"
    assert "SignatureDoesNotMatch (403). Check the S3 credentials" in refused["msg"]
    text = json.dumps(refused)
    assert wrong_secret not in text and seaweedfs_server.secret_key not in text and PASSPHRASE not in text
