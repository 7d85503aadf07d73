"""Where moto and SeaweedFS differ from AWS S3, and that the product behaves as it must on AWS on both.

Each test states AWS's behaviour (from its S3 API reference) and what each server does.
"""
import datetime
import traceback
import uuid

import botocore.exceptions
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BackendError, RepositoryNotFoundError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, RepositorySettings, open_backend
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import LOCKED_BUCKET, PASSPHRASE, make_repo, s3_backend


def _missing_bucket():
    return "blockvault-missing-%s" % uuid.uuid4().hex[:8]


def _bucket_exists(server, bucket):
    return bucket in {b["Name"] for b in server.client().list_buckets()["Buckets"]}


def test_put_object_to_a_missing_bucket(s3_server):
    """AWS (and moto): PutObject to a missing bucket fails with NoSuchBucket. SeaweedFS creates the bucket instead
    (its -s3.autoCreateBucket, on by default for admin identities), so the product must not rely on the failure."""
    bucket = _missing_bucket()
    client = s3_server.client()
    if s3_server.name == "seaweedfs":
        client.put_object(Bucket=bucket, Key="x", Body=b"1")
        assert _bucket_exists(s3_server, bucket)
    else:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            client.put_object(Bucket=bucket, Key="x", Body=b"1")
        assert info.value.response["Error"]["Code"] == "NoSuchBucket" and not _bucket_exists(s3_server, bucket)


def test_creating_a_repository_in_a_missing_bucket_is_refused_and_creates_nothing(s3_server):
    bucket = _missing_bucket()
    backend = s3_backend(s3_server, bucket=bucket)
    with pytest.raises(BackendError, match=r"S3 could not write keys/\w+ in s3://%s/t-\w+/: NoSuchBucket \(404\): bucket %s does "
                                           r"not exist\. Create the bucket first or fix its name\." % (bucket, bucket)):
        make_repo(backend)
    assert not _bucket_exists(s3_server, bucket)
    with pytest.raises(BackendError, match="NoSuchBucket"):
        make_repo(backend, encrypted=False)   # the failed check is not remembered as a success
    assert not _bucket_exists(s3_server, bucket)


def test_opening_a_repository_in_a_missing_bucket_says_there_is_no_repository(s3_server):
    """AWS answers GetObject in a missing bucket with NoSuchBucket (404) and HeadObject with a bare 404, as both
    servers do: the product reports RepositoryNotFoundError, as for an empty prefix."""
    bucket = _missing_bucket()
    backend = s3_backend(s3_server, bucket=bucket)
    with pytest.raises(RepositoryNotFoundError, match=r"No blockvault repository at s3://%s/t-\w+/ \(no config object\)" % bucket):
        Repository.open(backend, passphrase=PASSPHRASE)
    assert backend.exists("config") is False
    assert not _bucket_exists(s3_server, bucket)


def _backend_at(location, server, **credentials):
    return open_backend(RepositorySettings(location, s3_endpoint_url=server.endpoint, region=server.region, **credentials))


def _full_text(exc):
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(getattr(exc, "__context__", None))


@pytest.mark.parametrize("wrong", ["secret", "access_key"])
def test_wrong_credentials_are_refused_by_seaweedfs_with_a_clear_error_and_no_secret(seaweedfs_server, wrong):
    """SeaweedFS checks signatures against its identity file as AWS does: a wrong secret key gives
    SignatureDoesNotMatch (403), an unknown access key InvalidAccessKeyId (403). Not retried (not transient)."""
    good = s3_backend(seaweedfs_server)
    make_repo(good)
    wrong_secret = "sw-Wrong-Secret-8812"
    credentials = {"access_key": seaweedfs_server.access_key, "secret_key": wrong_secret}
    if wrong == "access_key":
        credentials = {"access_key": "AKIA-NOT-KNOWN-HERE", "secret_key": seaweedfs_server.secret_key}
    backend = _backend_at(good.location, seaweedfs_server, **credentials)  # the very repository, wrong credentials
    code = "SignatureDoesNotMatch" if wrong == "secret" else "InvalidAccessKeyId"
    with pytest.raises(BackendError) as info:
        Repository.open(backend, passphrase=PASSPHRASE)
    assert str(info.value) == ("S3 could not read config in %s: %s (403). Check the S3 credentials and the bucket "
                               "policy." % (good.location, code))
    assert info.value.transient is False
    text = _full_text(info.value)
    for secret in (wrong_secret, seaweedfs_server.secret_key, PASSPHRASE):
        assert secret not in text
    with pytest.raises(BackendError, match="%s \\(403\\)" % code):
        backend.put("locks/x", b"")


def test_moto_does_not_check_signatures(moto_server):
    """moto accepts any secret key (AWS would answer SignatureDoesNotMatch): credentials are tested on SeaweedFS."""
    backend = _backend_at("s3://blockvault-test/t-%s" % uuid.uuid4().hex, moto_server, access_key=moto_server.access_key,
                          secret_key="anything")
    backend.put("config", b"{}")
    assert backend.get("config") == b"{}"


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_shortening_a_retention(s3_server, mode):
    """AWS refuses to shorten a retention (AccessDenied; GOVERNANCE only with BypassGovernanceRetention), as SeaweedFS
    does; moto accepts it. The product never shortens one: Object Lock is tested on SeaweedFS."""
    client = s3_server.client()
    now = datetime.datetime.now(datetime.timezone.utc)
    key = "retention-%s" % uuid.uuid4().hex
    version = client.put_object(Bucket=LOCKED_BUCKET, Key=key, Body=b"x", ObjectLockMode=mode,
                                ObjectLockRetainUntilDate=now + datetime.timedelta(days=2))["VersionId"]
    shorter = dict(Bucket=LOCKED_BUCKET, Key=key, VersionId=version,
                   Retention={"Mode": mode, "RetainUntilDate": now + datetime.timedelta(days=1)})
    if s3_server.name == "moto":
        client.put_object_retention(**shorter)
        return
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        client.put_object_retention(**shorter)
