"""Object Lock on SeaweedFS, a server that enforces it: retention modes and periods, what prune and GC may delete.

SeaweedFS behaves here as AWS S3 documents (each point was checked against it): a bucket created with Object Lock is
versioned; a DeleteObject without a version id adds a delete marker and succeeds even when the current version is
locked; a DeleteObject of a locked version is refused (AccessDenied) until its retain-until date, unless the mode is
GOVERNANCE and the caller bypasses it with s3:BypassGovernanceRetention; a COMPLIANCE retention can be neither
bypassed, nor shortened, nor turned into GOVERNANCE, only extended; a bucket's default retention applies to every new
version written without one. Retention that runs out (days at the least in the product) is not waited for here.
"""
import datetime
import uuid

import botocore.exceptions
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    BUCKET, LOCKED_BUCKET, MIB, PASSPHRASE, backup, make_repo, random_disk, read_disk, reopen, s3_backend)

RETAINED = ("chunks/", "indexes/", "manifests/")


def _prefix(backend):
    return backend.location.split("/", 3)[3]


def _versions(client, bucket, prefix):
    """{key: [version dicts, newest first]} and the delete markers {key: [version ids]} under ``prefix``."""
    versions, markers = {}, {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", ()):
            versions.setdefault(version["Key"][len(prefix):], []).append(version)
        for marker in page.get("DeleteMarkers", ()):
            markers.setdefault(marker["Key"][len(prefix):], []).append(marker["VersionId"])
    return versions, markers


def _refused(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"]


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_backup_data_is_retained_for_the_days_asked_and_cannot_be_destroyed(seaweedfs_server, mode):
    backend = s3_backend(seaweedfs_server, bucket=LOCKED_BUCKET, object_lock_days=3, object_lock_mode=mode)
    repo = make_repo(backend)
    rp_id = backup(repo, "vm-a", {"2000": random_disk(2 * MIB, 5)})[0]
    client, prefix = seaweedfs_server.client(), _prefix(backend)
    now = datetime.datetime.now(datetime.timezone.utc)
    versions = _versions(client, LOCKED_BUCKET, prefix)[0]
    retained = sorted(name for name in versions if name.startswith(RETAINED))
    assert retained == sorted(["manifests/%s" % rp_id, "indexes/%s/2000" % rp_id] + [i.name for i in backend.list("chunks/")])
    assert len(retained) == 4
    for name in versions:
        head = client.head_object(Bucket=LOCKED_BUCKET, Key=prefix + name, VersionId=versions[name][0]["VersionId"])
        if name.startswith(RETAINED):
            assert head["ObjectLockMode"] == mode
            assert datetime.timedelta(days=2, hours=23) < head["ObjectLockRetainUntilDate"] - now <= datetime.timedelta(days=3)
        else:  # config, keys and (released) locks stay mutable so locks can be released and keys changed
            assert "ObjectLockMode" not in head, name

    manifest = versions["manifests/%s" % rp_id][0]
    delete = dict(Bucket=LOCKED_BUCKET, Key=prefix + "manifests/%s" % rp_id, VersionId=manifest["VersionId"])
    assert _refused(client.delete_object, **delete) == "AccessDenied"   # what someone holding the keys cannot do
    shorter = dict(delete, Retention={"Mode": mode, "RetainUntilDate": now + datetime.timedelta(days=1)})
    assert _refused(client.put_object_retention, **shorter) == "AccessDenied"
    longer = dict(delete, Retention={"Mode": mode, "RetainUntilDate": now + datetime.timedelta(days=4)})
    client.put_object_retention(**longer)   # extending is always allowed
    assert client.get_object_retention(**delete)["Retention"]["RetainUntilDate"] > now + datetime.timedelta(days=3, hours=23)
    if mode == "COMPLIANCE":  # not even an administrator who may bypass governance
        assert _refused(client.delete_object, BypassGovernanceRetention=True, **delete) == "AccessDenied"
        assert _refused(client.put_object_retention, BypassGovernanceRetention=True, **shorter) == "AccessDenied"
        assert read_disk(reopen(repo), rp_id, "2000") == bytes(random_disk(2 * MIB, 5))
    else:  # governance: an identity with s3:BypassGovernanceRetention (our admin) may destroy it
        client.delete_object(BypassGovernanceRetention=True, **delete)
        assert reopen(repo).list_restore_points() == []


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_prune_and_delete_keep_what_object_lock_protects_and_say_until_when(seaweedfs_server, mode):
    backend = s3_backend(seaweedfs_server, bucket=LOCKED_BUCKET, object_lock_days=2, object_lock_mode=mode)
    repo = make_repo(backend)
    old = backup(repo, "vm-a", {"2000": random_disk(MIB, 21)})[0]
    new = backup(repo, "vm-a", {"2000": random_disk(MIB, 22)})[0]
    head = seaweedfs_server.client().head_object(Bucket=LOCKED_BUCKET, Key=_prefix(backend) + "manifests/" + old)
    until = head["ObjectLockRetainUntilDate"].astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for dry_run in (True, False):
        report = reopen(repo).prune({"keep_last": 1}, dry_run=dry_run)
        assert report["remove"] == []
        assert [(k["id"], k["reasons"]) for k in report["keep"]] == [(old, ["object lock until %s" % until]),
                                                                     (new, ["last"])]
    with pytest.raises(ConfigurationError) as refused:
        reopen(repo).delete_restore_point(old)
    assert str(refused.value) == ("Restore point %s is under S3 Object Lock until %s: it cannot be deleted before then "
                                  "(a delete would only hide it; its data stays in the bucket)." % (old, until))
    assert [p.id for p in reopen(repo).list_restore_points()] == [old, new]
    # a repository without retention on its objects prunes as usual
    plain = make_repo(s3_backend(seaweedfs_server))
    first = backup(plain, "vm-a", {"2000": random_disk(MIB, 23)})[0]
    backup(plain, "vm-a", {"2000": random_disk(MIB, 24)})
    assert plain.prune({"keep_last": 1}, dry_run=False)["remove"] == [first]


def test_data_hidden_by_deletes_stays_recoverable(seaweedfs_server):
    # what prune and GC would do without the retention check, and what anyone holding the credentials can do: delete
    # the objects of a restore point, which on a locked bucket only adds delete markers
    backend = s3_backend(seaweedfs_server, bucket=LOCKED_BUCKET, object_lock_days=1, object_lock_mode="COMPLIANCE")
    repo = make_repo(backend)
    old_disk, new_disk = random_disk(2 * MIB, 11), random_disk(2 * MIB, 12)
    old = backup(repo, "vm-a", {"2000": old_disk})[0]
    new = backup(repo, "vm-a", {"2000": new_disk})[0]
    for name in ("manifests/%s" % old, "indexes/%s/2000" % old):
        backend.delete(name)
    report = reopen(repo).gc()
    assert (report["chunks_removed"], report["chunks_referenced"]) == (2, 2)
    assert [p.id for p in reopen(repo).list_restore_points()] == [new] and len(backend.list("chunks/")) == 2

    # every delete of prune and GC was a delete marker: the locked versions are all still there
    client, prefix = seaweedfs_server.client(), _prefix(backend)
    versions, markers = _versions(client, LOCKED_BUCKET, prefix)
    hidden = sorted(name for name in markers if name.startswith(RETAINED))
    assert hidden == sorted(["manifests/%s" % old, "indexes/%s/2000" % old] + [
        name for name in versions if name.startswith("chunks/") and not backend.exists(name)])
    assert len(hidden) == 4 and all(len(versions[name]) == 1 for name in hidden)
    for name in hidden:  # and the server refuses to destroy them
        assert _refused(client.delete_object, Bucket=LOCKED_BUCKET, Key=prefix + name,
                        VersionId=versions[name][0]["VersionId"], BypassGovernanceRetention=True) == "AccessDenied"
    # lock objects carry no retention: their old versions can be cleaned (by a lifecycle rule, or by hand)
    lock_name = next(name for name in versions if name.startswith("locks/"))
    client.delete_object(Bucket=LOCKED_BUCKET, Key=prefix + lock_name, VersionId=versions[lock_name][0]["VersionId"])

    # recovery after a malicious or mistaken prune: remove the delete markers, the restore point is whole again
    for name in hidden:
        for marker in markers[name]:
            client.delete_object(Bucket=LOCKED_BUCKET, Key=prefix + name, VersionId=marker)
    recovered = reopen(repo)
    assert [p.id for p in recovered.list_restore_points()] == sorted([old, new])
    assert read_disk(recovered, old, "2000") == bytes(old_disk)
    assert recovered.validate("full")["ok"]


def test_bucket_default_retention_covers_every_object_and_the_repository_still_works(seaweedfs_server):
    """A bucket whose default retention locks every new version, config and locks included (AWS applies it the same
    way): locks are still released (a delete marker needs no permission over the locked version), prune keeps what the
    retention protects, GC runs, and the locked config cannot be destroyed."""
    bucket = "blockvault-default-%s" % uuid.uuid4().hex[:8]
    client = seaweedfs_server.client()
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    backend = s3_backend(seaweedfs_server, bucket=bucket)
    repo = make_repo(backend)
    first = backup(repo, "vm-a", {"2000": random_disk(MIB, 1)})[0]
    second = backup(repo, "vm-a", {"2000": random_disk(MIB, 2)})[0]
    assert repo.list_locks() == [] and backend.list("locks/") == []
    report = repo.prune({"keep_last": 1}, dry_run=False)
    assert report["remove"] == [] and report["keep"][0]["reasons"][0].startswith("object lock until ")
    assert reopen(repo).gc()["chunks_removed"] == 0
    assert [p.id for p in reopen(repo).list_restore_points()] == [first, second]
    prefix = _prefix(backend)
    config = client.head_object(Bucket=bucket, Key=prefix + "config")
    assert config["ObjectLockMode"] == "COMPLIANCE"
    assert _refused(client.delete_object, Bucket=bucket, Key=prefix + "config", VersionId=config["VersionId"]) == "AccessDenied"
    assert Repository.open(backend, passphrase=PASSPHRASE).id == repo.id


def test_retention_asked_on_a_bucket_without_object_lock_is_refused_before_writing(s3_server):
    """AWS refuses a PutObject with retention headers to a bucket without Object Lock (InvalidRequest); the product
    checks the bucket first and says what to do, on both servers."""
    backend = s3_backend(s3_server, bucket=BUCKET, object_lock_days=7)
    with pytest.raises(ConfigurationError, match="object_lock_days is set but bucket blockvault-test has no Object Lock: "
                                                 "create the bucket with Object Lock enabled"):
        make_repo(backend)
    assert backend.list("") == []
