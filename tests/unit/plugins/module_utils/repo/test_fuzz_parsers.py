"""Fuzz tests of every parser of repository objects (issue 11): config, key objects, manifests, disk indexes, chunk
envelopes, locks and status files. Valid objects are made by the real code, then damaged (fuzzing.py); whatever the
damage, only the project's typed errors (BlockvaultError) may come out, and a damaged object never stops the parser
from reading the intact ones beside it. Case counts and how to run many more: docs/testing.md, "Fuzz tests"."""
import hashlib
import json
import struct
import time

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BlockvaultError, LockError, NotFoundInBackendError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, Repository, crypto, validation
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import Backend, ObjectInfo
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import chunk_name
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.locks import EXCLUSIVE, SHARED, HeldLock, LockManager, LockSettings, describe
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.manifest import decode_manifest, encode_manifest
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import manifest_from_document
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.progress import RunProgress, StatusFile, read_status
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.fuzzing import (damaged_json, dump, fuzz_settings,
                                                                                                 mutated_bytes, mutated_document)
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import MIB, PASSPHRASE, backup, random_disk

LOCK_ID = "ef" * 16


class MemoryBackend(Backend):
    """A dict of objects (fast enough for thousands of repository opens); ``mtime`` is settable per object."""

    location = "memory:fuzz"

    def __init__(self, objects=None):
        self.objects = dict(objects or {})
        self.mtimes = {}

    def put(self, name, data, exclusive=False):
        self.objects[name] = b"".join(bytes(part) for part in data) if isinstance(data, (list, tuple)) else bytes(data)

    def get(self, name):
        try:
            return self.objects[name]
        except KeyError:
            raise NotFoundInBackendError("Object %s does not exist." % name) from None

    def exists(self, name):
        return name in self.objects

    def delete(self, name):
        self.objects.pop(name, None)

    def list(self, prefix="", limit=None):
        return [ObjectInfo(name, len(data), self.mtimes.get(name, time.time())) for name, data in sorted(self.objects.items())
                if name.startswith(prefix)][:limit]

    def list_temporary(self, prefix=""):
        return []

    def close(self):
        pass


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Valid objects of every kind, made by the real code: a plain and an encrypted repository with one restore point,
    a key-file key, a lock and a status file. scrypt is cheap here and bounded lower for the fuzzed key objects (the
    bound is what is checked, not its value)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
        made = {}
        for kind in ("plain", "encrypted"):
            backend = MemoryBackend()
            Repository.create(backend, chunk_size=MIB, encryption=kind == "encrypted", passphrase=PASSPHRASE if kind == "encrypted" else None)
            repo = Repository.open(backend, passphrase=PASSPHRASE if kind == "encrypted" else None)
            rp_id = backup(repo, "vm-a", {"2000": random_disk(MIB + 4321, 7)}, threads=1)[0]
            made[kind] = {"backend": backend, "repo": repo, "rp_id": rp_id}
        key_file = tmp_path_factory.mktemp("keyfile") / "key"
        crypto.generate_key_file(str(key_file))
        made["key_file"] = str(key_file)
        made["key_file_object"] = crypto.make_key_object(made["encrypted"]["repo"].keys.master_key, made["encrypted"]["repo"].id,
                                                         key_file_content=crypto.read_key_file(str(key_file)))
        manager = LockManager(MemoryBackend(), made["plain"]["repo"].id, LockSettings())
        made["lock"] = HeldLock(manager, EXCLUSIVE, "gc")._document()
        status = tmp_path_factory.mktemp("status") / "status.json"
        progress = RunProgress(run_id="r1", vm="vm-a", phase="transfer")
        progress.add_disk("2000", 3 * MIB)
        progress.advance("2000", MIB)
        progress.set_error(ValueError("a previous attempt failed"))
        StatusFile(str(status), progress).write("running")
        made["status"] = status.read_bytes()
        made["status_path"] = status
        patch.setattr(validation, "SCRYPT_MAX_MEMORY", 1 << 22)
        yield made


def _typed_only(call, *args, **kwargs):
    """Run ``call``; a BlockvaultError is a correct refusal, anything else fails the test (hypothesis shrinks it)."""
    try:
        return call(*args, **kwargs)
    except BlockvaultError:
        return None


def _read_everything(repo, rp_id):
    """What a restore reads after an open: the manifest, the index and every chunk."""
    manifest = repo.load_manifest(rp_id)
    index = repo.load_disk_index(rp_id, manifest.disks[0].key)
    for digest in index.referenced():
        repo.read_chunk(repo.codec.storage_id(digest))


def _parsed(samples, kind, name):
    return json.loads(samples[kind]["backend"].objects[name])


# -- config ----------------------------------------------------------------------------------------------------------

@st.composite
def _config_case(draw, samples):
    kind = draw(st.sampled_from(["plain", "encrypted"]))
    raw = samples[kind]["backend"].objects["config"]
    return kind, draw(damaged_json(json.loads(raw), raw))


@given(data=st.data())
@fuzz_settings("config")
def test_fuzzed_configs_give_only_typed_errors(samples, data):
    kind, blob = data.draw(_config_case(samples))
    backend = MemoryBackend(samples[kind]["backend"].objects)
    backend.objects["config"] = blob
    repo = _typed_only(Repository.open, backend, passphrase=PASSPHRASE if kind == "encrypted" else None)
    if repo is not None:
        _typed_only(_read_everything, repo, samples[kind]["rp_id"])


# -- key objects -----------------------------------------------------------------------------------------------------

@given(data=st.data())
@fuzz_settings("key_object")
def test_fuzzed_key_objects_give_only_typed_errors(samples, data):
    source = samples["encrypted"]["backend"]
    name = [n for n in source.objects if n.startswith("keys/")][0]
    use_key_file = data.draw(st.booleans())
    original = samples["key_file_object"] if use_key_file else json.loads(source.objects[name])
    raw = json.dumps(original).encode()
    blob = data.draw(damaged_json(original, raw))
    backend = MemoryBackend({n: b for n, b in source.objects.items() if not n.startswith("keys/")})
    backend.objects["keys/" + original["id"]] = blob
    secret = {"key_file": samples["key_file"]} if use_key_file else {"passphrase": PASSPHRASE}
    _typed_only(Repository.open, backend, **secret)
    try:
        parsed = json.loads(blob)
    except (ValueError, RecursionError):
        return
    _typed_only(crypto.unwrap_key_object, parsed, samples["encrypted"]["repo"].id, passphrase=PASSPHRASE,
                key_file_content=crypto.read_key_file(samples["key_file"]) if use_key_file else None)


# -- manifests -------------------------------------------------------------------------------------------------------

@given(data=st.data())
@fuzz_settings("manifest")
def test_fuzzed_manifests_give_only_typed_errors(samples, data):
    kind = data.draw(st.sampled_from(["plain", "encrypted"]))
    repo, rp_id = samples[kind]["repo"], samples[kind]["rp_id"]
    name = "manifests/" + rp_id
    stored = samples[kind]["backend"].objects[name]
    how = data.draw(st.sampled_from(["bytes", "fields", "fields"] + (["wrapper"] if kind == "plain" else [])))
    if how == "bytes":
        blob = data.draw(mutated_bytes(stored))
    elif how == "fields":  # a well-formed envelope (checksum or seal) around a damaged manifest: reaches the schema check
        manifest = data.draw(mutated_document(repo.load_manifest(rp_id).to_json()))
        body = dump(manifest)
        if kind == "encrypted":
            blob = repo.keys.seal(name, body)
        else:
            try:
                blob = encode_manifest(name, json.loads(body), None)
            except (ValueError, RecursionError):  # not JSON any more (deep or long markers): damage the wrapper text
                blob = b'{"format": "blockvault-manifest", "version": 1, "sha256": "0", "manifest": ' + body + b"}"
    else:
        blob = data.draw(damaged_json(json.loads(stored), stored))
    _typed_only(lambda *args: manifest_from_document(name, decode_manifest(*args)), name, blob, repo.keys)


# -- disk indexes ----------------------------------------------------------------------------------------------------

@st.composite
def _index_blob(draw, valid):
    how = draw(st.sampled_from(["bytes", "header", "header"]))
    if how == "bytes":
        return draw(mutated_bytes(valid))
    # any header fields and body length, with a correct checksum: reaches the consistency checks
    header = struct.pack("<4sHHIQQ", draw(st.sampled_from([b"BVIX", b"BVIY", b"\x00" * 4])), draw(st.sampled_from([0, 1, 2, 65535])),
                         draw(st.integers(0, 65535)), draw(st.sampled_from([0, 1, 3, 4096, MIB, 2 ** 32 - 1]) | st.integers(0, 2 ** 32 - 1)),
                         draw(st.sampled_from([0, 1, MIB, MIB + 4321, 2 ** 64 - 1]) | st.integers(0, 2 ** 64 - 1)),
                         draw(st.sampled_from([0, 1, 2, 3, 2 ** 64 - 1]) | st.integers(0, 2 ** 64 - 1)))
    body = header + bytes(32 * draw(st.integers(0, 4))) + draw(st.binary(max_size=40))
    return body + hashlib.sha256(body).digest()


@given(data=st.data())
@fuzz_settings("index")
def test_fuzzed_disk_indexes_give_only_typed_errors(samples, data):
    kind = data.draw(st.sampled_from(["plain", "encrypted"]))
    repo, rp_id = samples[kind]["repo"], samples[kind]["rp_id"]
    name = "indexes/%s/2000" % rp_id
    stored = samples[kind]["backend"].objects[name]
    plain = repo.keys.unseal(name, stored) if repo.keys is not None else stored
    if kind == "encrypted" and data.draw(st.booleans()):
        _typed_only(lambda: DiskIndex.from_bytes(repo.keys.unseal(name, data.draw(mutated_bytes(stored))), name))
        return
    index = _typed_only(DiskIndex.from_bytes, data.draw(_index_blob(plain)), name)
    if index is not None:
        index.blocksum()
        list(index)


# -- chunk envelopes -------------------------------------------------------------------------------------------------

@st.composite
def _chunk_case(draw, samples):
    kind = draw(st.sampled_from(["plain", "encrypted"]))
    repo = samples[kind]["repo"]
    names = sorted(n for n in samples[kind]["backend"].objects if n.startswith("chunks/"))
    name = draw(st.sampled_from(names))
    storage_id = bytes.fromhex(name.rpartition("/")[2])
    how = draw(st.sampled_from(["bytes", "bytes", "forged"]))
    if how == "bytes":
        return repo, storage_id, draw(mutated_bytes(samples[kind]["backend"].objects[name]))
    # a forged envelope: any header and payload (a zstd frame of any content and declared size, or random bytes),
    # authenticated with the repository's key when encrypted, so decompression and the length checks are reached
    header = bytes([draw(st.sampled_from([0, 1, 2, 255])), draw(st.sampled_from([0, 1, 2])), draw(st.sampled_from([0, 1]))])
    if draw(st.booleans()):
        content = draw(st.binary(max_size=64)) * draw(st.sampled_from([1, 1000, 20000]))
        payload = zstandard.ZstdCompressor(write_content_size=draw(st.booleans())).compress(content)
        payload = draw(mutated_bytes(payload)) if draw(st.booleans()) else payload
    else:
        payload = draw(st.binary(max_size=64))
    if kind == "encrypted" and header[2] == 1:
        nonce = bytes(12)
        return repo, storage_id, header + nonce + repo.keys.aead.encrypt(nonce, payload, header + storage_id)
    return repo, storage_id, header + payload


@given(data=st.data())
@fuzz_settings("chunk")
def test_fuzzed_chunk_envelopes_give_only_typed_errors(samples, data):
    repo, storage_id, blob = data.draw(_chunk_case(samples))
    _typed_only(repo.codec.decode, storage_id, blob, chunk_name(storage_id))


# -- locks -----------------------------------------------------------------------------------------------------------

@given(data=st.data())
@fuzz_settings("lock")
def test_fuzzed_locks_give_only_typed_errors_and_never_block_for_good(samples, data):
    backend = MemoryBackend()
    blob = data.draw(damaged_json(json.loads(samples["lock"]), samples["lock"]))
    backend.objects["locks/" + LOCK_ID] = blob
    backend.mtimes["locks/" + LOCK_ID] = time.time() - data.draw(st.sampled_from([0, 10, 4000]))
    manager = LockManager(backend, samples["plain"]["repo"].id, LockSettings(stale_after=1800.0))
    [lock] = manager.list_locks()
    describe(lock)
    for kind in (SHARED, EXCLUSIVE):
        try:
            manager.acquire(kind, "fuzz", wait=0).release()
        except LockError as exc:
            assert LOCK_ID in str(exc)  # the lock in the way is named, with the id break_lock needs
    if lock["damaged"] and time.time() - backend.mtimes["locks/" + LOCK_ID] > 1800:
        assert lock["stale"]  # a damaged lock older than the stale time blocks nothing
    manager.remove_stale()


# -- status files ----------------------------------------------------------------------------------------------------

@given(data=st.data())
@fuzz_settings("status")
def test_fuzzed_status_files_give_only_typed_errors(samples, data):
    path = samples["status_path"]
    path.write_bytes(data.draw(damaged_json(json.loads(samples["status"]), samples["status"])))
    _typed_only(read_status, str(path))
