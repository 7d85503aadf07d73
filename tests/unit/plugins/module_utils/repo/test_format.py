"""Format pieces that need no backend: disk index, chunk codec, key wrapping, schema file, retention calendar."""
import datetime
import hashlib
import json
import os
import pathlib

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, CorruptionError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, crypto
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import ZERO_SENTINEL, check_chunk_size, parse_restore_point_id
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.manifest_schema import MANIFEST_SCHEMA
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.retention import apply_policy

ROOT = pathlib.Path(__file__).resolve().parents[5]
MIB = 1 << 20


def test_schema_file_identical_to_python_dict():
    assert json.loads((ROOT / "docs" / "schemas" / "manifest.schema.json").read_text()) == MANIFEST_SCHEMA


def test_chunk_size_range():
    assert check_chunk_size(MIB) == MIB and check_chunk_size(16 * MIB) == 16 * MIB
    for bad in (MIB // 2, 32 * MIB, 3 * MIB, "4M"):
        with pytest.raises(ConfigurationError, match="power of two from 1 MiB to 16 MiB"):
            check_chunk_size(bad)


def test_index_round_trip_and_blocksum_matches_file_blocksum(tmp_path):
    capacity = 3 * 65536 + 100
    image = bytearray(os.urandom(capacity))
    image[65536:131072] = bytes(65536)
    index = DiskIndex(capacity, 65536)
    for i in range(index.count):
        block = bytes(image[i * 65536:(i + 1) * 65536])
        index.set(i, hashlib.sha256(block).digest())  # the zero block's real digest becomes the sentinel
    assert index.get(1) == ZERO_SENTINEL and index.count == 4
    path = tmp_path / "disk.raw"
    path.write_bytes(image)
    data = path.read_bytes()                # the blocksum's definition, spelled out over the file's bytes
    definition = hashlib.sha256(b"".join(hashlib.sha256(data[i:i + 65536]).digest()
                                         for i in range(0, len(data), 65536))).hexdigest()
    assert index.blocksum() == definition
    blob = index.to_bytes()
    assert len(blob) == 28 + 4 * 32 + 32
    again = DiskIndex.from_bytes(blob)
    assert (again.capacity, again.chunk_size, bytes(again.digests)) == (capacity, 65536, bytes(index.digests))
    damaged = bytearray(blob)
    damaged[30] ^= 1
    with pytest.raises(CorruptionError, match="fails its checksum"):
        DiskIndex.from_bytes(bytes(damaged), "indexes/x/2000")
    with pytest.raises(CorruptionError, match="truncated"):
        DiskIndex.from_bytes(blob[:20])


def test_zero_tail_chunk_blocksum():
    index = DiskIndex(MIB + 10, MIB)
    index.set(0, hashlib.sha256(b"\1" * MIB).digest())
    index.set_zero(1)
    expected = hashlib.sha256(hashlib.sha256(b"\1" * MIB).digest() + hashlib.sha256(bytes(10)).digest()).hexdigest()
    assert index.blocksum() == expected


@pytest.mark.parametrize("encrypted", [True, False])
def test_chunk_codec(encrypted):
    keys = crypto.RepositoryKeys(os.urandom(32), os.urandom(16).hex()) if encrypted else None
    codec = crypto.ChunkCodec(MIB, level=3, keys=keys)
    compressible = b"abc" * 100000
    random_data = os.urandom(MIB)
    for data, encoding in ((compressible, 1), (random_data, 0)):
        digest = hashlib.sha256(data).digest()
        storage_id = codec.storage_id(digest)
        assert (storage_id != digest) == encrypted
        blob = b"".join(codec.encode(storage_id, data))
        assert blob[:3] == bytes((1, encoding, 1 if encrypted else 0))
        assert codec.decode(storage_id, blob) == data
        assert codec.verify_digest(storage_id, data, digest)
        flipped = bytearray(blob)
        flipped[len(blob) // 2] ^= 4
        with pytest.raises(CorruptionError):
            codec.decode(storage_id, bytes(flipped))
        if encrypted:  # a chunk cannot be moved to another id
            with pytest.raises(CorruptionError, match="fails authentication"):
                codec.decode(hashlib.sha256(b"x").digest(), blob)
    assert len(b"".join(codec.encode(codec.storage_id(b"x" * 32), compressible))) < 2000


class _SpyCompressor:
    """Records the length of everything the codec compresses."""

    def __init__(self, real, seen):
        self.real, self.seen = real, seen

    def compress(self, data):
        self.seen.append(len(data))
        return self.real.compress(data)


def _spied_codec(monkeypatch, seen):
    real_class = crypto.zstandard.ZstdCompressor
    monkeypatch.setattr(crypto.zstandard, "ZstdCompressor", lambda **kwargs: _SpyCompressor(real_class(**kwargs), seen))
    return crypto.ChunkCodec(4 * MIB, level=1)


def test_an_incompressible_chunk_is_stored_raw_after_compressing_samples_only(monkeypatch):
    seen = []
    codec = _spied_codec(monkeypatch, seen)
    data = os.urandom(4 * MIB)
    blob = b"".join(codec.encode(hashlib.sha256(data).digest(), data))
    assert blob[1] == 0 and blob[3:] == data              # raw
    assert seen == [4 * 16 * 1024]                          # the four 16 KiB samples, never the 4 MiB


def test_a_chunk_whose_samples_compress_is_compressed_whole(monkeypatch):
    seen = []
    codec = _spied_codec(monkeypatch, seen)
    data = os.urandom(MIB) + b"log line 42 INFO ok\n" * (3 * MIB // 20) + os.urandom(3 * MIB - 20 * (3 * MIB // 20))
    blob = b"".join(codec.encode(hashlib.sha256(data).digest(), data))
    assert seen == [4 * 16 * 1024, 4 * MIB]                 # samples 1-3 fall in the text: the whole chunk is tried
    assert blob[1] == 1 and len(blob) < 2 * MIB
    assert codec.decode(hashlib.sha256(data).digest(), blob) == data


def test_small_chunks_are_compressed_without_a_probe(monkeypatch):
    seen = []
    codec = _spied_codec(monkeypatch, seen)
    data = os.urandom(100 * 1024)
    blob = b"".join(codec.encode(hashlib.sha256(data).digest(), data))
    assert seen == [100 * 1024] and blob[1] == 0


def test_key_object_wraps_and_refuses_wrong_secrets(monkeypatch):
    repository_id = os.urandom(16).hex()
    master = os.urandom(32)
    key_object = crypto.make_key_object(master, repository_id, passphrase="pass")
    assert crypto.unwrap_key_object(key_object, repository_id, passphrase="pass") == master
    assert crypto.unwrap_key_object(key_object, repository_id, passphrase="other") is None
    assert crypto.unwrap_key_object(key_object, os.urandom(16).hex(), passphrase="pass") is None
    assert "pass" not in json.dumps(key_object).replace("passphrase", "")
    key_object["kdf"]["n"] = 1 << 30
    with pytest.raises(CorruptionError, match="unreasonable scrypt parameters"):
        crypto.unwrap_key_object(key_object, repository_id, passphrase="pass")


class _Point:
    def __init__(self, moment):
        self.created = moment
        self.id = moment.strftime("%Y%m%dT%H%M%S.%fZ")


def _calendar():
    """One restore point every 6 hours for 400 days back from 2026-06-30 18:00 UTC."""
    end = datetime.datetime(2026, 6, 30, 18, tzinfo=datetime.timezone.utc)
    return [_Point(end - datetime.timedelta(hours=6 * i)) for i in range(400 * 4)]


def _kept(policy):
    keep, remove = apply_policy(_calendar(), policy)
    assert len(keep) + len(remove) == 1600
    return [p.created.strftime("%Y-%m-%d %H") for p, _reasons in keep]


def test_retention_keep_last_and_daily():
    assert _kept({"keep_last": 3}) == ["2026-06-30 18", "2026-06-30 12", "2026-06-30 06"]
    assert _kept({"keep_daily": 3}) == ["2026-06-30 18", "2026-06-29 18", "2026-06-28 18"]
    assert _kept({"keep_last": 2, "keep_daily": 2}) == ["2026-06-30 18", "2026-06-30 12", "2026-06-29 18"]
    assert _kept({"keep_hourly": 2}) == ["2026-06-30 18", "2026-06-30 12"]


def test_retention_weekly_monthly_yearly():
    # 2026-06-28 is a Sunday: ISO weeks end on Sundays
    assert _kept({"keep_weekly": 3}) == ["2026-06-30 18", "2026-06-28 18", "2026-06-21 18"]
    assert _kept({"keep_monthly": 3}) == ["2026-06-30 18", "2026-05-31 18", "2026-04-30 18"]
    assert _kept({"keep_yearly": 5}) == ["2026-06-30 18", "2025-12-31 18"]
    combined = _kept({"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12, "keep_yearly": -1})
    assert len(combined) == len(set(combined))
    assert combined[:8] == ["2026-06-30 18", "2026-06-29 18", "2026-06-28 18", "2026-06-27 18", "2026-06-26 18",
                            "2026-06-25 18", "2026-06-24 18", "2026-06-21 18"]
    assert "2025-12-31 18" in combined and "2025-06-30 18" not in combined and combined[-1] == "2025-07-31 18"


def test_retention_reasons_and_refusals():
    keep = apply_policy(_calendar()[:10], {"keep_last": 1, "keep_daily": 1})[0]
    assert keep[0][1] == ["last", "daily"]
    with pytest.raises(ConfigurationError, match="keeps nothing"):
        apply_policy([], {"keep_last": 0})
    with pytest.raises(ConfigurationError, match="Unknown retention rule"):
        apply_policy([], {"keep_forever": 1})


def test_restore_point_id_parsing():
    created, tag = parse_restore_point_id("20261126T083000.123456Z-3f2a9c0d11e2b4a7-9c1e2f30")
    assert created == datetime.datetime(2026, 11, 26, 8, 30, 0, 123456, tzinfo=datetime.timezone.utc) and tag == "3f2a9c0d11e2b4a7"
    with pytest.raises(ConfigurationError, match="is not a restore point id"):
        parse_restore_point_id("../x")


def test_retention_days_in_a_time_zone():
    # 23:30 UTC on the 1st is already the 2nd in Sydney (UTC+11 in January): two distinct Sydney days
    moments = [datetime.datetime(2026, 1, 1, h, 30, tzinfo=datetime.timezone.utc) for h in (10, 12, 23)]
    points = [_Point(m) for m in moments]
    utc_keep = [p.created.hour for p, _reasons in apply_policy(points, {"keep_daily": 5})[0]]
    sydney_keep = [p.created.hour for p, _reasons in apply_policy(points, {"keep_daily": 5, "timezone": "Australia/Sydney"})[0]]
    assert utc_keep == [23] and sydney_keep == [23, 12]
    with pytest.raises(ConfigurationError, match="Unknown retention time zone 'Mars/Olympus'"):
        apply_policy(points, {"keep_daily": 1, "timezone": "Mars/Olympus"})
