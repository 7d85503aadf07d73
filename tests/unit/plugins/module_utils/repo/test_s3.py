"""S3-only behaviour against moto and SeaweedFS: Object Lock retention, error mapping, listing pages."""
import datetime
from concurrent.futures import ThreadPoolExecutor

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, NotFoundInBackendError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import RepositorySettings, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.session import list_chunk_ids
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    LOCKED_BUCKET, MIB, CountingBackend, backup, make_repo, random_disk, s3_backend)


def test_object_lock_retention_on_backup_data_only(s3_server):
    backend = s3_backend(s3_server, bucket=LOCKED_BUCKET, object_lock_days=7)
    repo = make_repo(backend)
    rp_id = backup(repo, "vm-a", {"2000": random_disk(MIB, 3)})[0]
    client = s3_server.client()
    prefix = backend.location.split("/", 3)[3]
    now = datetime.datetime.now(datetime.timezone.utc)
    for name in ("manifests/%s" % rp_id, "indexes/%s/2000" % rp_id, backend.list("chunks/")[0].name):
        head = client.head_object(Bucket=LOCKED_BUCKET, Key=prefix + name)
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert datetime.timedelta(days=6, hours=23) < head["ObjectLockRetainUntilDate"] - now <= datetime.timedelta(days=7)
    assert "ObjectLockMode" not in client.head_object(Bucket=LOCKED_BUCKET, Key=prefix + "config")


def test_object_lock_refused_on_local(tmp_path):
    with pytest.raises(ConfigurationError, match="object_lock_days applies to S3 repositories only"):
        open_backend(RepositorySettings(str(tmp_path), object_lock_days=3))


def test_missing_object_is_not_found(s3_server):
    with pytest.raises(NotFoundInBackendError, match=r"Object config does not exist in s3://blockvault-test/t-"):
        s3_backend(s3_server).get("config")


def test_chunk_listing_pages(s3_server):
    counting = CountingBackend(s3_backend(s3_server))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: counting.put("chunks/%s/%s" % (("%064x" % i)[:2], "%064x" % i), b"x"), range(1005)))
    counting.calls.clear()
    assert len(list_chunk_ids(counting)) == 1005
    assert counting.calls == {"list": 1 + 256}  # one page first, then the prefixes in parallel
    small = CountingBackend(s3_backend(s3_server))
    small.put("chunks/00/" + "0" * 64, b"x")
    small.calls.clear()
    assert list_chunk_ids(small) == {bytes(32)}
    assert small.calls == {"list": 1}


def test_storage_class_applies_to_chunk_objects_only(moto_server):
    # moto records the class given; SeaweedFS stores every object in its own STANDARD (no tiers), so moto shows it
    backend = s3_backend(moto_server, storage_class="STANDARD_IA")
    repo = make_repo(backend)
    rp_id = backup(repo, "vm-a", {"2000": random_disk(MIB, 4)})[0]
    client = moto_server.client()
    prefix = backend.location.split("/", 3)[3]
    chunk = backend.list("chunks/")[0].name
    assert client.head_object(Bucket="blockvault-test", Key=prefix + chunk)["StorageClass"] == "STANDARD_IA"
    for name in ("config", "manifests/%s" % rp_id, "indexes/%s/2000" % rp_id, backend.list("keys/")[0].name):
        assert client.head_object(Bucket="blockvault-test", Key=prefix + name).get("StorageClass", "STANDARD") == "STANDARD"
