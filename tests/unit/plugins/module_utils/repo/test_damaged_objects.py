"""Damaged and hostile repository objects (issue 11, defects 5 and 8): every one is refused with a typed error that names
the object, and says what is wrong without blaming the passphrase or the blockvault version when they are not at fault."""
import base64
import json
import os
import time

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import (ConfigurationError, CorruptionError, LockError,
                                                                                RepositoryFormatError, WrongKeyError)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, crypto, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.locks import EXCLUSIVE, SHARED
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.manifest import decode_manifest
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.progress import read_status
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (MIB, PASSPHRASE, backup, make_repo, random_disk,
                                                                                                 reopen)

DEEP = b"[" * 200000 + b"]" * 200000
LOCK_ID = "cd" * 16


@pytest.fixture
def local(tmp_path):
    return open_backend(str(tmp_path / "repo"))


def _edit_json(backend, name, edit):
    document = json.loads(backend.get(name))
    edit(document)
    backend.put(name, json.dumps(document).encode("utf-8"))


def _only_key(backend):
    return backend.list("keys/")[0].name


def _open(backend, encrypted=True):
    return Repository.open(backend, passphrase=PASSPHRASE if encrypted else None)


# -- defect 5: untyped exceptions out of damaged or hostile objects ------------------------------------------------

@pytest.mark.parametrize("edit, why", [
    (lambda c: c.pop("id"), "id"),
    (lambda c: c.pop("compression"), "compression"),
    (lambda c: c.__setitem__("compression", "zstd"), "compression"),
    (lambda c: c.__setitem__("compression", {"algorithm": "zstd", "level": "1"}), "compression"),
    (lambda c: c.__setitem__("id", "é" * 32), "id"),
    (lambda c: c.__setitem__("chunk_size", 2.5), "chunk_size"),
    (lambda c: c.__setitem__("encryption", "yes"), "encryption"),
])
@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_a_damaged_config_is_a_corruption_error_naming_it(local, encrypted, edit, why):
    make_repo(local, encrypted=encrypted)
    _edit_json(local, "config", edit)
    with pytest.raises(CorruptionError, match="config object at .* is damaged: .*%s" % why) as caught:
        _open(local, encrypted)
    assert caught.value.object_name == "config"


def test_a_config_nested_200000_deep_is_a_corruption_error(local):
    make_repo(local, encrypted=False)
    local.put("config", DEEP)
    with pytest.raises(CorruptionError, match="config object at .* is damaged: .*nested too deep") as caught:
        _open(local, False)
    assert caught.value.object_name == "config"


@pytest.mark.parametrize("edit, why", [
    (lambda k: k.__setitem__("kdf", 7), "kdf"),
    (lambda k: k.pop("nonce"), "nonce"),
    (lambda k: k.__setitem__("nonce", "AAAA"), "nonce"),
    (lambda k: k["kdf"].__setitem__("r", -8), "scrypt"),
    (lambda k: k["kdf"].update(n=-(1 << 10), r=-8), "scrypt"),
    (lambda k: k["kdf"].__setitem__("n", 1e300), "field n is float"),
    (lambda k: k.__setitem__("wrapped", 12), "wrapped"),
])
def test_a_damaged_key_object_is_named_and_the_passphrase_not_blamed(local, edit, why):
    make_repo(local)
    name = _only_key(local)
    _edit_json(local, name, edit)
    with pytest.raises(CorruptionError, match="key object %s is damaged .*%s" % (name, why)) as caught:
        _open(local)
    assert caught.value.object_name == name
    assert "Check the passphrase" not in str(caught.value)


def _flip_base64(document, field):
    raw = bytearray(base64.b64decode(document[field]))
    raw[len(raw) // 2] ^= 0x10
    document[field] = base64.b64encode(bytes(raw)).decode("ascii")


@pytest.mark.parametrize("edit", [
    lambda k: _flip_base64(k, "wrapped"),
    lambda k: _flip_base64(k, "nonce"),
    lambda k: _flip_base64(k["kdf"], "salt"),
    lambda k: k.__setitem__("label", "changed"),
], ids=["wrapped", "nonce", "salt", "label"])
def test_a_changed_byte_of_a_key_object_is_damage_not_a_wrong_passphrase(local, edit):
    # every field still well-formed: only the key object's digest tells this from a passphrase that is not the
    # repository's (AES-GCM fails the same way for both)
    make_repo(local)
    name = _only_key(local)
    _edit_json(local, name, edit)
    with pytest.raises(CorruptionError, match="key object %s is damaged .*does not match its digest" % name) as caught:
        _open(local)
    assert caught.value.object_name == name and "Check the passphrase" not in str(caught.value)


def test_a_wrong_passphrase_on_intact_key_objects_is_still_a_wrong_passphrase(local):
    make_repo(local)
    with pytest.raises(WrongKeyError, match="1 passphrase key"):
        Repository.open(local, passphrase="not the passphrase")


def test_a_key_object_without_a_digest_still_opens(local):
    # key objects written before the digest existed carry none: their fields alone are checked
    make_repo(local)
    name = _only_key(local)
    _edit_json(local, name, lambda k: k.pop("digest"))
    _open(local).close()


def test_an_unparsable_key_object_is_named_and_the_passphrase_not_blamed(local):
    make_repo(local)
    name = _only_key(local)
    local.put(name, DEEP)
    with pytest.raises(CorruptionError, match="key object %s is damaged" % name) as caught:
        _open(local)
    assert caught.value.object_name == name and "passphrase" not in caught.value.hint.split(".")[0]


def test_a_damaged_key_object_beside_a_good_one_does_not_prevent_opening(local):
    make_repo(local).add_passphrase("second one")
    first = sorted(info.name for info in local.list("keys/"))[0]
    local.put(first, b"{not json")
    outcomes = []
    for passphrase in (PASSPHRASE, "second one"):
        try:
            Repository.open(local, passphrase=passphrase).close()
            outcomes.append("opened")
        except CorruptionError as exc:  # the damaged key was this passphrase's: named, and said so
            assert exc.object_name == first and "may be the one for this passphrase" in str(exc)
            outcomes.append("damaged")
    assert sorted(outcomes) == ["damaged", "opened"]


def test_a_key_object_of_a_newer_format_asks_for_an_upgrade(local):
    make_repo(local)
    name = _only_key(local)
    _edit_json(local, name, lambda k: k.__setitem__("version", 2))
    with pytest.raises(RepositoryFormatError, match="Key object %s has format version 2; .*upgrade blockvault" % name):
        _open(local)
    _edit_json(local, name, lambda k: k.__setitem__("version", "2"))
    with pytest.raises(CorruptionError, match="key object %s is damaged \\(field version is str '2'\\)" % name):
        _open(local)


def test_a_damaged_key_object_can_be_removed(local):
    repo = make_repo(local)
    repo.add_passphrase("second one")
    damaged = sorted(info.name for info in local.list("keys/") if info.name != "keys/" + repo.opened_key_id)[0]
    local.put(damaged, b"garbage")
    repo.remove_key(damaged[len("keys/"):])
    assert [info.name for info in local.list("keys/")] == ["keys/" + repo.opened_key_id]


def test_missing_key_objects_are_reported_as_missing(local):
    make_repo(local)
    local.delete(_only_key(local))
    with pytest.raises(CorruptionError, match="has no key objects") as caught:
        _open(local)
    assert caught.value.object_name == "keys/"


def test_a_passphrase_for_a_repository_with_only_key_file_keys_asks_for_the_key_file(local, tmp_path):
    key_file = crypto.generate_key_file(str(tmp_path / "key"))
    Repository.create(local, encryption=True, key_file=key_file)
    with pytest.raises(WrongKeyError, match=r"has no passphrase key \(it has 1 key-file key\(s\) only\)\. Give key_file instead\."):
        _open(local)


def test_a_manifest_nested_200000_deep_is_a_corruption_error(local):
    repo = make_repo(local, encrypted=False)
    rp_id = backup(repo, "vm-a", {"2000": random_disk(MIB, 1)})[0]
    name = "manifests/" + rp_id
    with pytest.raises(CorruptionError, match="Manifest %s is not valid JSON" % name):
        decode_manifest(name, DEEP, None)
    wrapper = json.loads(local.get(name))
    wrapper["manifest"]["stats"] = "DEEP"
    blob = json.dumps(wrapper).encode().replace(b'"DEEP"', DEEP)  # a valid wrapper around a value nested 200,000 deep
    with pytest.raises(CorruptionError, match="Manifest %s is not valid JSON: it is damaged" % name) as caught:
        decode_manifest(name, blob, None)
    assert caught.value.object_name == name
    with pytest.raises(CorruptionError, match="has a damaged format version True"):
        decode_manifest(name, json.dumps(dict(wrapper, version=True)).encode(), None)
    with pytest.raises(RepositoryFormatError, match="format version 2; .*upgrade blockvault"):
        decode_manifest(name, json.dumps(dict(wrapper, version=2)).encode(), None)


@pytest.mark.parametrize("field, value", [("refreshed_epoch", "yesterday"), ("refreshed_epoch", [1])])
def test_a_lock_with_a_hostile_field_does_not_break_later_acquisitions(local, field, value):
    repo = make_repo(local, encrypted=False)
    lock = {"format": "blockvault-lock", "version": 1, "id": LOCK_ID, "kind": SHARED, "purpose": "backup of x",
            "host": "elsewhere", "pid": 12, "created": "2020-01-01T00:00:00.000000Z", "refreshed": "2020-01-01T00:00:00.000000Z",
            field: value}
    local.put("locks/" + LOCK_ID, json.dumps(lock).encode())
    assert [(lk["id"], lk["stale"]) for lk in repo.list_locks()] == [(LOCK_ID, True)]
    with repo.locks.acquire(EXCLUSIVE, "gc", wait=0):
        pass
    assert backup(repo, "vm-a", {"2000": random_disk(MIB, 2)})[0]


@pytest.mark.parametrize("document", [
    {"kind": SHARED, "refreshed": 12},
    {"kind": 3, "refreshed": "2020-01-01T00:00:00.000000Z"},
    {"kind": SHARED, "refreshed": "2020-01-01T00:00:00.000000Z", "pid": "12"},
    ["not", "an", "object"],
    {"kind": SHARED, "refreshed": "2026-13-45T00:00:00.000000Z"},
    {"kind": EXCLUSIVE, "refreshed": "2999-01-01T00:00:00.000000Z"},
], ids=["refreshed-number", "kind-number", "pid-string", "list", "refreshed-impossible", "refreshed-future"])
def test_a_lock_with_wrong_types_is_reported_damaged(local, document):
    repo = make_repo(local, encrypted=False)
    local.put("locks/" + LOCK_ID, json.dumps(document).encode())
    [lock] = repo.list_locks()
    assert (lock["id"], lock["stale"]) == (LOCK_ID, False) and lock["damaged"]


def test_a_lock_nested_200000_deep_is_reported_damaged(local):
    repo = make_repo(local, encrypted=False)
    local.put("locks/" + LOCK_ID, DEEP)
    [lock] = repo.list_locks()
    assert lock["id"] == LOCK_ID and "nested too deep" in lock["damaged"]


# -- defect 8: messages that mislead ---------------------------------------------------------------------------------

def test_an_unparsable_lock_is_named_with_its_id_and_how_to_remove_it(local, caplog):
    repo = make_repo(local, encrypted=False)
    local.put("locks/" + LOCK_ID, b"\x00garbage")
    other = reopen(repo)
    other.lock_settings.backup_wait = 0.1
    with pytest.raises(LockError) as caught:
        other.validate("quick")
    assert str(caught.value).endswith(
        "held by: damaged lock locks/%s (not valid JSON). A damaged lock is held until its object is 60s old (a live owner "
        "rewrites its lock long before); if no blockvault operation is running on this repository, remove it now with "
        "break_lock (lock_id %s)." % (LOCK_ID, LOCK_ID))
    # said at once in the run log, not only when the wait ends
    assert [r.getMessage().startswith("Waiting for damaged lock locks/%s" % LOCK_ID) for r in caplog.records] == [True]


def test_an_unparsable_lock_stops_blocking_once_its_object_is_older_than_the_stale_time(local, tmp_path):
    repo = make_repo(local, encrypted=False)
    local.put("locks/" + LOCK_ID, b"{\"kind\": \"excl")
    path = tmp_path / "repo" / "locks" / LOCK_ID
    old = time.time() - repo.lock_settings.stale_after - 60
    os.utime(path, (old, old))
    [lock] = repo.list_locks()
    assert lock["stale"] and lock["damaged"]
    assert repo.validate("quick")["ok"]
    report = repo.gc()
    assert report["stale_locks_removed"] == ["damaged lock locks/%s (not valid JSON)" % LOCK_ID]
    assert local.list("locks/") == []


def test_a_chunk_with_a_damaged_version_byte_is_called_damaged():
    codec = crypto.ChunkCodec(MIB, level=1)
    data = b"chunk data" * 100
    storage_id = codec.storage_id(__import__("hashlib").sha256(data).digest())
    blob = bytearray(b"".join(bytes(part) for part in codec.encode(storage_id, data)))
    blob[0] = 0
    with pytest.raises(CorruptionError, match="damaged") as caught:
        codec.decode(storage_id, bytes(blob), "chunks/x")
    assert caught.value.object_name == "chunks/x" and "upgrade" not in str(caught.value)
    blob[0] = 0x81
    with pytest.raises(CorruptionError, match="damaged"):
        codec.decode(storage_id, bytes(blob), "chunks/x")
    blob[0] = 2  # plausibly written by a newer blockvault
    with pytest.raises(RepositoryFormatError, match="format version 2; .*upgrade blockvault"):
        codec.decode(storage_id, bytes(blob), "chunks/x")


def test_an_encrypted_chunk_with_another_version_byte_is_damaged_unless_it_authenticates():
    keys = crypto.RepositoryKeys(b"k" * 32, "ab" * 16)
    codec = crypto.ChunkCodec(MIB, level=1, keys=keys)
    data = b"chunk data" * 100
    storage_id = codec.storage_id(__import__("hashlib").sha256(data).digest())
    blob = bytearray(b"".join(bytes(part) for part in codec.encode(storage_id, data)))
    blob[0] = 2  # the header is authenticated: a real version-2 chunk would pass, this one fails
    with pytest.raises(CorruptionError, match="damaged"):
        codec.decode(storage_id, bytes(blob), "chunks/x")


def test_compression_level_zero_is_refused_with_the_range(local):
    with pytest.raises(ConfigurationError, match="compression_level must be an integer from 1 to 22 .*got 0"):
        Repository.create(local, compression_level=0, encryption=False)
    Repository.create(local, encryption=False)
    with pytest.raises(ConfigurationError, match="compression_level must be an integer from 1 to 22 .*got 0"):
        Repository.open(local, compression_level=0)


def test_a_stored_compression_level_out_of_range_is_damage(local):
    make_repo(local, encrypted=False)
    _edit_json(local, "config", lambda c: c["compression"].__setitem__("level", 0))
    with pytest.raises(CorruptionError, match="config object at .* is damaged: compression"):
        _open(local, False)


# -- status files ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"\xff\xfe", b"[1, 2]", DEEP, b'{"format": "blockvault-status", "version": 1}',
                                     b'{"format": "blockvault-status", "version": 1, "state": 3}'])
def test_a_damaged_status_file_is_a_corruption_error_naming_it(tmp_path, content):
    path = tmp_path / "status.json"
    path.write_bytes(content)
    with pytest.raises(CorruptionError, match="status file %s" % path) as caught:
        read_status(str(path))
    assert caught.value.object_name == str(path)


# -- found by the fuzz campaign and its review (beyond the list) ------------------------------------------------

def test_a_manifest_name_with_an_impossible_date_does_not_break_listing(local):
    repo = make_repo(local, encrypted=False)
    rp_id = backup(repo, "vm-a", {"2000": random_disk(MIB, 3)})[0]
    impossible = "20261399T250000.000000Z-0123456789abcdef-01234567"  # matches the id pattern, but month 13, hour 25
    local.put("manifests/" + impossible, local.get("manifests/" + rp_id))
    assert [point.id for point in repo.list_restore_points()] == [rp_id]
    with pytest.raises(ConfigurationError, match="is not a restore point id"):
        repo.load_manifest(impossible)
