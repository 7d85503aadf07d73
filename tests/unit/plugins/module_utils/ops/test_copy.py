"""ops.copy: restore points copied between repositories (local and S3), only the chunks the destination lacks,
crash safety, damaged sources, selection, check mode, the rate limiter."""
import hashlib
import os
import shutil
import threading
import uuid

import pytest

from labkit.s3servers import moto_server, seaweedfs_server  # noqa: F401  pylint: disable=unused-import

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BackendError, ConfigurationError, CorruptionError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import _engine, copy as ops_copy
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops._copy_io import RateLimiter
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import Endpoints, RestorePointQuery, RunSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import RestoreRequest, restore
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.targets import File
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import RepositorySettings, crypto, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import BackendWrapper
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import chunk_name
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    BUCKET, MIB, PASSPHRASE, CrashingBackend, backup, make_repo, random_disk)

CHUNK = 256 * 1024   # small chunks: many of them in little data
OTHER_PASSPHRASE = "another repository, another key"


@pytest.fixture(autouse=True)
def fast_kdf(monkeypatch):
    monkeypatch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})


class Recording(BackendWrapper):
    """Records (method, name) of every call: which chunks were read from the source, put in the destination."""

    def __init__(self, inner):
        super().__init__(inner)
        self.calls = []
        self._mutex = threading.Lock()

    def _call(self, method, *args, **kwargs):
        with self._mutex:
            self.calls.append((method, args[0] if args else None))
        return getattr(self.inner, method)(*args, **kwargs)

    def chunk_calls(self, method):
        return [name for called, name in self.calls if called == method and name and name.startswith("chunks/")]


class Backends:
    """Wraps the backends ops.copy opens (by location) so a test can watch or break them."""

    def __init__(self, monkeypatch):
        self.wrappers = {}
        real = _engine.open_backend

        def opened(settings, *args, **kwargs):
            backend = real(settings, *args, **kwargs)
            wrap = self.wrappers.get(settings.location)
            return wrap(backend) if wrap else backend
        monkeypatch.setattr(_engine, "open_backend", opened)

    def record(self, location):
        recorder = {}

        def wrap(backend):
            recorder["backend"] = Recording(backend)
            return recorder["backend"]
        self.wrappers[location] = wrap
        return recorder


@pytest.fixture
def backends(monkeypatch):
    return Backends(monkeypatch)


@pytest.fixture(params=["local", "moto", "seaweedfs"])
def destination_kind(request):
    return request.param


def local_settings(path, passphrase=PASSPHRASE):
    return RepositorySettings(location=str(path), passphrase=passphrase)


def s3_settings(server, passphrase=OTHER_PASSPHRASE):
    return RepositorySettings(location="s3://%s/copy-%s" % (BUCKET, uuid.uuid4().hex), passphrase=passphrase,
                              s3_endpoint_url=server.endpoint, region=server.region, access_key=server.access_key,
                              secret_key=server.secret_key)


def create(settings, encrypted=True, chunk_size=CHUNK):
    repo = make_repo(open_backend(settings), encrypted=encrypted, chunk_size=chunk_size, _allow_small_chunks=True)
    if encrypted and settings.passphrase != PASSPHRASE:
        repo.add_passphrase(settings.passphrase)
    return repo


@pytest.fixture
def destination(request, destination_kind, tmp_path):
    if destination_kind == "local":
        settings = local_settings(tmp_path / "offsite", OTHER_PASSPHRASE)
    else:
        settings = s3_settings(request.getfixturevalue(destination_kind + "_server"))
    create(settings)
    return settings


@pytest.fixture
def source(tmp_path):
    settings = local_settings(tmp_path / "source")
    return settings, create(settings)


def run_copy(source_settings, destination_settings, check=False, workers=3, **selection):
    request = ops_copy.CopyRequest(destination=destination_settings, **selection)
    return ops_copy.copy(request, source_settings, RunSettings(workers=workers, check=check,
                                                               status_file=os.path.join(os.environ["BV_COPY_STATUS"], "s.json")))


@pytest.fixture(autouse=True)
def status_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BV_COPY_STATUS", str(tmp_path / "status"))


def restore_image(settings, rp_id, path):
    restore(RestoreRequest(RestorePointQuery(rp_id), File(path=str(path))), Endpoints(repo=settings), RunSettings(workers=2))
    with open(path, "rb") as handle:
        return handle.read()


def open_destination(settings):
    return _engine.open_repository(settings)


def image(size, seed, shared=None):
    """A disk image of random chunks with two zero chunks; ``shared`` (bytes) replaces its first chunks."""
    data = random_disk(size, seed, zero_chunks=(1, 5), chunk_size=CHUNK)
    if shared is not None:
        data[0:len(shared)] = shared
    return data


def test_copies_restore_byte_exact_from_the_destination_alone_and_send_only_new_chunks(source, destination, backends, tmp_path):
    source_settings, repo = source
    disks = {"2000": image(3 * MIB, 1), "2001": image(MIB + 4096, 2)}
    first, _stored = backup(repo, "vm-a", disks)
    result = run_copy(source_settings, destination)
    assert result["changed"] is True and [entry["id"] for entry in result["copied"]] == [first]
    unique = {hashlib.sha256(bytes(data[i:i + CHUNK])).digest() for data in disks.values()
              for i in range(0, len(data), CHUNK) if any(data[i:i + CHUNK])}
    assert result["chunks_copied"] == len(unique)

    # one more backup, with 2 changed chunks: the next copy reads and sends those 2 only
    changed = bytearray(disks["2000"])
    changed[0:10] = b"new data!!"
    changed[7 * CHUNK + 5:7 * CHUNK + 9] = b"\xff\xfe\xfd\xfc"
    second, _stored = backup(repo, "vm-a", {"2000": changed}, previous=first, changed={"2000": {0, 7}})
    src_rec = backends.record(source_settings.location)
    dst_rec = backends.record(destination.location)
    result = run_copy(source_settings, destination)
    assert [entry["id"] for entry in result["copied"]] == [second]
    assert [entry["id"] for entry in result["present"]] == [first]
    assert result["chunks_copied"] == 2 and result["bytes_copied"] == 2 * CHUNK
    assert len(src_rec["backend"].chunk_calls("get")) == 2
    assert len(dst_rec["backend"].chunk_calls("put")) == 2

    # a rerun sends nothing and reports unchanged
    src_rec = backends.record(source_settings.location)
    dst_rec = backends.record(destination.location)
    again = run_copy(source_settings, destination)
    assert again["changed"] is False and again["copied"] == [] and again["chunks_copied"] == 0
    assert src_rec["backend"].chunk_calls("get") == [] and dst_rec["backend"].chunk_calls("put") == []
    backends.wrappers.clear()

    # the destination alone restores both, byte-exact, with the same checksums; its manifests name their source
    copies = {entry["id"]: entry["destination_id"] for entry in result["copied"] + result["present"]}
    originals = {rp_id: repo.load_manifest(rp_id) for rp_id in copies}
    shutil.rmtree(source_settings.location)
    offsite = open_destination(destination)
    for rp_id, expected in ((first, disks["2000"]), (second, changed)):
        copied = offsite.load_manifest(copies[rp_id])
        assert copied.created == originals[rp_id].created and copied.run_id == originals[rp_id].run_id
        assert copied.stats["copied_from"] == {"repository": repo.id, "restore_point": rp_id}
        assert [(d.key, d.sha256, d.capacity) for d in copied.disks] == [(d.key, d.sha256, d.capacity) for d in originals[rp_id].disks]
        assert restore_image(destination, copies[rp_id], tmp_path / ("%s.raw" % rp_id)) == bytes(expected)
    assert offsite.validate(level="full")["damaged_chunks"] == []


def test_two_vms_sharing_chunks_share_them_on_the_destination(source, tmp_path, backends):
    source_settings, repo = source
    template = bytes(image(2 * MIB, 7))
    backup(repo, "vm-a", {"2000": image(3 * MIB, 8, shared=template)})
    backup(repo, "vm-b", {"2000": image(3 * MIB, 9, shared=template)})
    destination = local_settings(tmp_path / "offsite", OTHER_PASSPHRASE)
    create(destination)
    first = run_copy(source_settings, destination, vm="vm vm-a")
    second = run_copy(source_settings, destination, vm="vm vm-b")
    template_chunks = 2 * MIB // CHUNK - 2      # the template has two zero chunks
    own = (3 * MIB - 2 * MIB) // CHUNK
    assert first["chunks_copied"] == template_chunks + own
    assert second["chunks_copied"] == own
    assert open_destination(destination).stats()["chunks"] == template_chunks + 2 * own


def test_unencrypted_source_to_encrypted_destination(tmp_path):
    source_settings = RepositorySettings(location=str(tmp_path / "plain"))
    repo = create(source_settings, encrypted=False)
    data = image(2 * MIB, 3)
    rp_id, _stored = backup(repo, "vm-a", {"2000": data})
    destination = local_settings(tmp_path / "offsite", OTHER_PASSPHRASE)
    create(destination)
    result = run_copy(source_settings, destination)
    assert restore_image(destination, result["copied"][0]["destination_id"], tmp_path / "r.raw") == bytes(data)
    assert rp_id.split("-")[2] == result["copied"][0]["destination_id"].split("-")[2]


@pytest.mark.parametrize("fail_at", [1, 4, 9])
def test_a_copy_killed_midway_leaves_nothing_visible_and_the_next_run_completes_it(source, tmp_path, backends, fail_at):
    source_settings, repo = source
    data = image(4 * MIB, 4)
    rp_id, _stored = backup(repo, "vm-a", {"2000": data})
    destination = local_settings(tmp_path / "offsite", OTHER_PASSPHRASE)
    create(destination)
    crashed = {}

    def crash(backend):
        crashed["backend"] = CrashingBackend(backend, fail_at)
        return crashed["backend"]
    backends.wrappers[destination.location] = crash
    with pytest.raises(BackendError, match="injected crash"):
        run_copy(source_settings, destination, workers=1)
    backends.wrappers.clear()
    offsite = open_destination(destination)
    assert offsite.list_restore_points() == []
    report = offsite.validate(level="full")
    assert report["damaged_chunks"] == [] and report["errors"] == []
    arrived = len(offsite.backend.list("chunks/"))
    assert arrived == max(0, fail_at - 2)       # the lock was the first write
    dst_rec = backends.record(destination.location)
    result = run_copy(source_settings, destination)
    puts = dst_rec["backend"].chunk_calls("put")
    assert result["chunks_copied"] == len(puts) == 14 - arrived     # 16 chunks, 2 of them zero
    assert restore_image(destination, result["copied"][0]["destination_id"], tmp_path / "r.raw") == bytes(data)
    assert rp_id == result["copied"][0]["id"]


def test_a_damaged_source_chunk_is_named_and_nothing_half_copied_is_visible(source, tmp_path):
    source_settings, repo = source
    data = image(2 * MIB, 5)
    rp_id, _stored = backup(repo, "vm-a", {"2000": data})
    digest = repo.load_disk_index(rp_id, "2000").get(3)
    name = chunk_name(repo.codec.storage_id(digest))
    path = os.path.join(source_settings.location, name)
    with open(path, "r+b") as handle:
        handle.seek(40)
        byte = handle.read(1)
        handle.seek(40)
        handle.write(bytes([byte[0] ^ 0x55]))
    destination = local_settings(tmp_path / "offsite", OTHER_PASSPHRASE)
    create(destination)
    with pytest.raises(CorruptionError) as caught:
        run_copy(source_settings, destination)
    assert caught.value.object_name == name
    assert name in str(caught.value) and rp_id in str(caught.value) and "was not copied" in str(caught.value)
    offsite = open_destination(destination)
    assert offsite.list_restore_points() == []
    assert offsite.backend.list("indexes/") == []


def test_different_chunk_sizes_are_refused_before_anything_is_written(source, tmp_path):
    source_settings, repo = source
    backup(repo, "vm-a", {"2000": image(MIB, 6)})
    destination = local_settings(tmp_path / "offsite", OTHER_PASSPHRASE)
    create(destination, chunk_size=2 * CHUNK)
    with pytest.raises(ConfigurationError, match=r"has 262144-byte chunks and the destination .* has 524288-byte chunks"):
        run_copy(source_settings, destination)
    offsite = open_destination(destination)
    assert offsite.backend.list("chunks/") == [] and offsite.backend.list("locks/") == []


def test_the_same_repository_is_refused(source):
    source_settings, _repo = source
    with pytest.raises(ConfigurationError, match="are the same repository"):
        run_copy(source_settings, source_settings)


def test_selection_and_check_mode(source, tmp_path):
    source_settings, repo = source
    ids = {}
    for vm, seed in (("vm-a", 10), ("vm-b", 20)):
        for number in range(3):
            disk = image(MIB, seed + number)
            ids.setdefault(vm, []).append(backup(repo, vm, {"2000": disk})[0])
    destination = local_settings(tmp_path / "offsite", OTHER_PASSPHRASE)
    create(destination)
    plan = run_copy(source_settings, destination, check=True, last=1)
    assert [entry["id"] for entry in plan["copied"]] == sorted([ids["vm-a"][-1], ids["vm-b"][-1]])
    assert plan["changed"] is True and plan["chunks_copied"] == 2 * 3 and plan["bytes_copied"] == 6 * CHUNK
    assert plan["bytes_sent"] is None and plan["diff"]["before"] == {"restore_points": []}
    assert open_destination(destination).list_restore_points() == []       # check mode wrote nothing
    assert not os.path.exists(os.path.join(os.environ["BV_COPY_STATUS"], "s.json"))
    done = run_copy(source_settings, destination, last=1)
    assert [entry["id"] for entry in done["copied"]] == [entry["id"] for entry in plan["copied"]]
    assert sorted(done["diff"]["after"]["restore_points"]) == sorted(e["destination_id"] for e in done["copied"])
    assert os.path.exists(os.path.join(os.environ["BV_COPY_STATUS"], "s.json"))
    picked = run_copy(source_settings, destination, check=True, vm="vm vm-a", restore_points=[ids["vm-a"][0]])
    assert [entry["id"] for entry in picked["copied"]] == [ids["vm-a"][0]]
    newest = repo.load_manifest(ids["vm-b"][1]).created
    newer = run_copy(source_settings, destination, check=True, newer_than=newest)
    assert [entry["id"] for entry in newer["copied"]] == [] and [e["id"] for e in newer["present"]] == [ids["vm-b"][2]]
    assert newer["changed"] is False
    with pytest.raises(ConfigurationError, match="are not in the source repository"):
        run_copy(source_settings, destination, restore_points=["20260101T000000.000000Z-0123456789abcdef-01234567"])
    with pytest.raises(ConfigurationError, match="No restore point of a VM named ghost"):
        run_copy(source_settings, destination, vm="ghost")


def test_request_checks():
    destination = RepositorySettings(location="/srv/offsite")
    with pytest.raises(ConfigurationError, match="last is 0"):
        ops_copy.CopyRequest(destination=destination, last=0)
    with pytest.raises(ConfigurationError, match="newer_than 'yesterday' is neither"):
        ops_copy.CopyRequest(destination=destination, newer_than="yesterday")
    with pytest.raises(ConfigurationError, match="rate_limit_mbps must be more than 0"):
        ops_copy.CopyRequest(destination=destination, rate_limit_mbps=0)
    import datetime
    now = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)
    assert ops_copy.parse_newer_than("36h", now) == datetime.datetime(2026, 12, 3, 0, 0, tzinfo=datetime.timezone.utc)
    assert ops_copy.parse_newer_than("2026-11-01", now) == datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)


def test_rate_limiter_waits_for_the_bytes_sent():
    clock = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds
    limiter = RateLimiter(2, clock=lambda: clock[0], sleep=sleep)   # 2 MB/s, bucket of 1 s
    limiter.wait()
    limiter.consume(3_000_000)       # 1 MB of debt after the 1 s of tokens
    assert slept == []
    limiter.wait()
    assert slept == [pytest.approx(0.5)]
    limiter.consume(1_000_000)
    limiter.wait()
    assert slept[1:] == [pytest.approx(0.5)] and clock[0] == pytest.approx(1.0)


def test_progress_in_the_status_file_and_every_sent_byte_through_the_rate_limit(source, tmp_path, monkeypatch):
    import json
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import _copy_io

    source_settings, repo = source
    rp_id, _stored = backup(repo, "vm-a", {"2000": image(2 * MIB, 11)})
    destination = local_settings(tmp_path / "offsite", OTHER_PASSPHRASE)
    create(destination)
    consumed = []
    real_consume = _copy_io.RateLimiter.consume

    def consume(self, nbytes):
        consumed.append(nbytes)
        return real_consume(self, nbytes)
    monkeypatch.setattr(_copy_io.RateLimiter, "consume", consume)
    result = run_copy(source_settings, destination, rate_limit_mbps=1000)
    assert len(consumed) == result["chunks_copied"] == 6 and sum(consumed) == result["bytes_sent"] > 0
    with open(os.path.join(os.environ["BV_COPY_STATUS"], "s.json")) as handle:
        status = json.load(handle)
    assert status["state"] == "succeeded" and status["run_id"] == result["run_id"]
    assert status["disks"] == [{"key": rp_id, "phase": "done", "bytes_done": 6 * CHUNK, "bytes_total": 6 * CHUNK}]


def test_a_copy_killed_at_every_write_completes_on_the_next_run(source, tmp_path, backends):
    """Two restore points (a full, then an incremental): the copy is killed at each of its destination writes in turn
    (lock, chunks, index, manifest, unlock of each); every time the destination validates clean, shows complete
    restore points only, and the next run sends exactly the chunks that had not arrived."""
    source_settings, repo = source
    first_image = image(MIB, 12)
    first, _stored = backup(repo, "vm-a", {"2000": first_image})
    second_image = bytearray(first_image)
    second_image[2 * CHUNK:2 * CHUNK + 3] = b"new"
    second, _stored = backup(repo, "vm-a", {"2000": second_image}, previous=first, changed={"2000": {2}})
    expected = {first: bytes(first_image), second: bytes(second_image)}
    total_chunks = 3 + 1          # three non-zero chunks, then one changed

    counted = local_settings(tmp_path / "count", OTHER_PASSPHRASE)
    create(counted)
    recorder = backends.record(counted.location)
    run_copy(source_settings, counted, workers=1)
    writes = len([1 for method, _name in recorder["backend"].calls if method in ("put", "delete")])
    backends.wrappers.clear()
    assert writes >= 12

    for fail_at in range(1, writes + 1):
        destination = local_settings(tmp_path / ("kill%d" % fail_at), OTHER_PASSPHRASE)
        create(destination)
        backends.wrappers[destination.location] = lambda backend, fail_at=fail_at: CrashingBackend(backend, fail_at)
        try:
            run_copy(source_settings, destination, workers=1)
        except BackendError as exc:
            assert "injected crash" in str(exc)
        backends.wrappers.clear()
        offsite = open_destination(destination)
        report = offsite.validate(level="full")
        assert (report["damaged_chunks"], report["errors"]) == ([], []), fail_at
        visible = [point.id for point in offsite.list_restore_points()]
        arrived = len(offsite.backend.list("chunks/"))
        recorder = backends.record(destination.location)
        result = run_copy(source_settings, destination, workers=1)
        backends.wrappers.clear()
        assert len(recorder["backend"].chunk_calls("put")) == result["chunks_copied"] == total_chunks - arrived, fail_at
        assert len(visible) + len(result["copied"]) == 2
        for entry in result["copied"] + result["present"]:
            assert read_all(offsite, entry["destination_id"]) == expected[entry["id"]], fail_at


def read_all(repository, rp_id):
    reader = repository.open_disk_reader(rp_id, "2000")
    return reader.read(0, reader.capacity)


def test_local_to_an_object_locked_bucket_and_back_to_local(seaweedfs_server, tmp_path):
    """Local -> SeaweedFS with Object Lock (the copy's objects carry the retention) -> a new local repository; the last
    one restores byte-exact with the first two deleted."""
    from labkit.s3servers import LOCKED_BUCKET

    source_settings = local_settings(tmp_path / "source")
    repo = create(source_settings)
    data = image(2 * MIB, 13)
    rp_id, _stored = backup(repo, "vm-a", {"2000": data})
    locked = RepositorySettings(location="s3://%s/copy-%s" % (LOCKED_BUCKET, uuid.uuid4().hex), passphrase=OTHER_PASSPHRASE,
                                s3_endpoint_url=seaweedfs_server.endpoint, region=seaweedfs_server.region,
                                access_key=seaweedfs_server.access_key, secret_key=seaweedfs_server.secret_key, object_lock_days=1)
    create(locked)
    offsite_id = run_copy(source_settings, locked)["copied"][0]["destination_id"]
    prefix = locked.location.split("/", 3)[3] + "/"
    head = seaweedfs_server.client().head_object(Bucket=LOCKED_BUCKET, Key=prefix + "manifests/" + offsite_id)
    assert head["ObjectLockMode"] == "GOVERNANCE"

    back = local_settings(tmp_path / "back")
    create(back)
    result = run_copy(locked, back)
    assert [entry["id"] for entry in result["copied"]] == [offsite_id]
    shutil.rmtree(source_settings.location)
    copied_back = open_destination(back).load_manifest(result["copied"][0]["destination_id"])
    assert copied_back.stats["copied_from"]["restore_point"] == offsite_id
    assert rp_id.split("-")[::2] == copied_back.id.split("-")[::2]
    assert restore_image(back, copied_back.id, tmp_path / "back.raw") == bytes(data)


def test_validated_only_copies_what_a_full_validation_passed(source, tmp_path):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import validate as ops_validate

    source_settings, repo = source
    good = backup(repo, "vm-a", {"2000": image(MIB, 31)})[0]
    damaged = backup(repo, "vm-a", {"2000": image(MIB, 32)})[0]
    destination = local_settings(tmp_path / "offsite", OTHER_PASSPHRASE)
    create(destination)
    # nothing validated yet: nothing is copied, and the result says why
    plan = run_copy(source_settings, destination, validated_only=True)
    assert plan["copied"] == [] and plan["skipped_unvalidated"] == [good, damaged] and plan["changed"] is False
    assert plan["msg"].endswith("; 2 not copied because no full validation passed them yet (%s, %s)" % (good, damaged))

    # a flipped byte in a chunk only the second restore point uses
    digest = repo.load_disk_index(damaged, "2000").get(0)
    path = os.path.join(source_settings.location, chunk_name(repo.codec.storage_id(digest)))
    with open(path, "r+b") as handle:
        handle.seek(40)
        byte = handle.read(1)
        handle.seek(40)
        handle.write(bytes([byte[0] ^ 0x55]))
    quick = ops_validate.validate(ops_validate.ValidateRequest(level="quick"), source_settings)
    assert "recorded_as_validated" not in quick["checked"]      # a quick validation reads no chunk: it vouches for none
    report = ops_validate.validate(ops_validate.ValidateRequest(level="full"), source_settings)
    assert not report["ok"] and report["checked"]["recorded_as_validated"] == [good]
    assert sorted(open_destination(source_settings).validated_ids()) == [good]

    done = run_copy(source_settings, destination, validated_only=True)
    assert [entry["id"] for entry in done["copied"]] == [good] and done["skipped_unvalidated"] == [damaged]
    assert restore_image(destination, done["copied"][0]["destination_id"], tmp_path / "good.raw") == bytes(image(MIB, 31))
    # deleting a restore point forgets that it was validated
    open_destination(source_settings).delete_restore_point(good)
    assert open_destination(source_settings).validated_ids() == set()
