"""An independent reader written from docs/repository-format.md alone (no engine code) restores what the engine wrote.

If the spec and the implementation drift apart, this test fails: it only uses hashlib, hmac, json, zstandard and
cryptography on the files of a local repository.
"""
import base64
import hashlib
import hmac
import json
import pathlib
import struct

import pytest
import zstandard
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import open_backend
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    MIB, PASSPHRASE, backup, make_repo, random_disk, structured_disk)


def _hkdf(master, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(master)


def _canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class SpecReader:
    """Section numbers refer to docs/repository-format.md."""

    def __init__(self, root, passphrase=None):
        self.root = pathlib.Path(root)
        self.config = json.loads((self.root / "config").read_text())  # section 3
        assert self.config["format"] == "blockvault-repository" and self.config["version"] == 1
        self.aes = self.id_key = None
        if self.config["encryption"]:
            master = self._unwrap(passphrase)
            salt = bytes.fromhex(self.config["id"])
            self.aes = AESGCM(_hkdf(master, salt, b"blockvault/v1/aes-256-gcm"))
            self.id_key = _hkdf(master, salt, b"blockvault/v1/chunk-id")
            config_key = _hkdf(master, salt, b"blockvault/v1/config-mac")
            body = {k: v for k, v in self.config.items() if k != "mac"}
            assert hmac.new(config_key, _canonical(body), hashlib.sha256).hexdigest() == self.config["mac"]

    def _unwrap(self, passphrase):  # section 4
        for path in sorted((self.root / "keys").iterdir()):
            key = json.loads(path.read_text())
            if key["type"] != "passphrase":
                continue
            kdf = key["kdf"]
            kek = hashlib.scrypt(passphrase.encode(), salt=base64.b64decode(kdf["salt"]), n=kdf["n"], r=kdf["r"], p=kdf["p"], dklen=32)
            aad = ("blockvault/v1/key/%s/%s" % (self.config["id"], key["id"])).encode("ascii")
            return AESGCM(kek).decrypt(base64.b64decode(key["nonce"]), base64.b64decode(key["wrapped"]), aad)
        raise AssertionError("no passphrase key")

    def _unseal(self, name, blob):  # section 7.1
        assert blob[:4] == b"BVS1"
        return self.aes.decrypt(blob[4:16], blob[16:], b"BVS1" + name.encode("utf-8"))

    def restore_points(self):  # section 7: names alone give id, time and vm tag
        return sorted(p.name for p in (self.root / "manifests").iterdir() if not p.name.startswith("."))

    def vm_tag(self, vm_key):
        text = ("blockvault/v1/vm/" + vm_key).encode("utf-8")
        if self.id_key:
            return hmac.new(self.id_key, text, hashlib.sha256).hexdigest()[:16]
        return hashlib.sha256(text).hexdigest()[:16]

    def manifest(self, rp_id):
        name = "manifests/" + rp_id
        blob = (self.root / name).read_bytes()
        if self.aes:
            return json.loads(self._unseal(name, blob))
        wrapper = json.loads(blob)
        assert hashlib.sha256(_canonical(wrapper["manifest"])).hexdigest() == wrapper["sha256"]
        return wrapper["manifest"]

    def index(self, disk):  # section 6
        blob = (self.root / disk["index"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == disk["index_sha256"]
        plain = self._unseal(disk["index"], blob) if self.aes else blob
        magic, version, _flags, chunk_size, capacity, count = struct.unpack_from("<4sHHIQQ", plain)
        assert (magic, version, capacity) == (b"BVIX", 1, disk["capacity"])
        assert hashlib.sha256(plain[:-32]).digest() == plain[-32:]
        return chunk_size, capacity, [plain[28 + 32 * i:60 + 32 * i] for i in range(count)]

    def chunk(self, digest):  # sections 2 and 5
        storage_id = hmac.new(self.id_key, digest, hashlib.sha256).digest() if self.id_key else digest
        hexid = storage_id.hex()
        blob = (self.root / "chunks" / hexid[:2] / hexid).read_bytes()
        version, encoding, encrypted = blob[0], blob[1], blob[2]
        assert version == 1 and encrypted == (1 if self.aes else 0)
        payload = self.aes.decrypt(blob[3:15], blob[15:], blob[:3] + storage_id) if self.aes else blob[3:]
        plain = zstandard.ZstdDecompressor().decompress(payload) if encoding == 1 else payload
        assert hashlib.sha256(plain).digest() == digest
        return plain

    def disk_image(self, disk):
        chunk_size, capacity, digests = self.index(disk)
        parts, sums = [], []
        for number, digest in enumerate(digests):
            length = min(chunk_size, capacity - number * chunk_size)
            data = bytes(length) if digest == bytes(32) else self.chunk(digest)
            parts.append(data)
            sums.append(hashlib.sha256(data).digest())  # section 8
        assert hashlib.sha256(b"".join(sums)).hexdigest() == disk["sha256"]
        return b"".join(parts)


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_independent_reader_restores_what_the_engine_wrote(tmp_path, encrypted):
    backend = open_backend(str(tmp_path / "repo"))
    repo = make_repo(backend, encrypted=encrypted)
    disks = {"2000": random_disk(3 * MIB + 999, 5, zero_chunks=(1,)), "2001": structured_disk(4 * MIB, 6)}
    rp_id = backup(repo, "vm-spec", disks)[0]
    reader = SpecReader(tmp_path / "repo", PASSPHRASE if encrypted else None)
    assert reader.restore_points() == [rp_id]
    assert rp_id.split("-")[1] == reader.vm_tag("vm-spec")
    manifest = reader.manifest(rp_id)
    assert manifest["id"] == rp_id and manifest["vm"]["key"] == "vm-spec"
    for disk in manifest["disks"]:
        assert reader.disk_image(disk) == bytes(disks[disk["key"]])
