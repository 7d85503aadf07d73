# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keys, sealed objects and the chunk codec (docs/repository-format.md sections 4, 5, 7.1).

zstandard, hashlib and cryptography release the GIL on large buffers, so ``ChunkCodec.encode``/``decode``
run truly in parallel from several threads: the codec keeps per-thread zstd contexts and holds no lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading

from ..errors import ConfigurationError, CorruptionError, MissingDependencyError, RepositoryFormatError, WrongKeyError
from . import validation
from .format import FORMAT_VERSION, canonical_json, isotime
from .kdf import scrypt

try:
    import zstandard
    HAS_ZSTD = True
except ImportError:  # pragma: no cover
    HAS_ZSTD = False

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover
    HAS_CRYPTOGRAPHY = False

NONCE_SIZE = 12
TAG_SIZE = 16
SEAL_MAGIC = b"BVS1"
ENCODING_RAW = 0
ENCODING_ZSTD = 1
#: scrypt cost of new passphrase keys (0.25-0.4 s, 128 MiB: see kdf.py). Tests lower it through this module attribute only.
SCRYPT_PARAMS = {"n": 1 << 17, "r": 8, "p": 1}


def require_crypto():
    if not HAS_CRYPTOGRAPHY:
        raise MissingDependencyError("Encrypted repositories need the cryptography Python library (pip install cryptography).",
                                     library="cryptography")


def require_zstd():
    if not HAS_ZSTD:
        raise MissingDependencyError("The repository needs the zstandard Python library (pip install zstandard).",
                                     library="zstandard")


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def hkdf(ikm, salt, info, length=32):
    require_crypto()
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


class RepositoryKeys:
    """The working keys derived from the master key (immutable; thread-safe)."""

    def __init__(self, master_key, repository_id):
        salt = bytes.fromhex(repository_id)
        self.master_key = master_key  # kept to wrap new key objects (add/change passphrase)
        self.aes_key = hkdf(master_key, salt, b"blockvault/v1/aes-256-gcm")
        self.id_key = hkdf(master_key, salt, b"blockvault/v1/chunk-id")
        self.config_key = hkdf(master_key, salt, b"blockvault/v1/config-mac")
        self.aead = AESGCM(self.aes_key)

    def chunk_id(self, digest):
        return hmac.new(self.id_key, digest, hashlib.sha256).digest()

    def vm_tag(self, vm_key):
        return hmac.new(self.id_key, ("blockvault/v1/vm/" + vm_key).encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    def config_mac(self, config):
        body = {k: v for k, v in config.items() if k != "mac"}
        return hmac.new(self.config_key, canonical_json(body), hashlib.sha256).hexdigest()

    def seal(self, name, plaintext):
        nonce = os.urandom(NONCE_SIZE)
        return SEAL_MAGIC + nonce + self.aead.encrypt(nonce, bytes(plaintext), SEAL_MAGIC + name.encode("utf-8"))

    def unseal(self, name, blob):
        if bytes(blob[:4]) != SEAL_MAGIC or len(blob) < 4 + NONCE_SIZE + TAG_SIZE:
            raise CorruptionError("Object %s is not a sealed object (bad magic or truncated)." % name, object_name=name)
        try:
            return self.aead.decrypt(bytes(blob[4:4 + NONCE_SIZE]), bytes(blob[4 + NONCE_SIZE:]), SEAL_MAGIC + name.encode("utf-8"))
        except InvalidTag:
            raise CorruptionError("Object %s fails authentication: it is damaged or was tampered with." % name, object_name=name) from None


def plain_vm_tag(vm_key):
    return hashlib.sha256(("blockvault/v1/vm/" + vm_key).encode("utf-8")).hexdigest()[:16]


# -- key objects -----------------------------------------------------------------------------

def _scrypt(passphrase, salt, n, r, p):
    try:
        validation.check_scrypt_parameters(n, r, p)
    except validation.Damaged as exc:
        raise ConfigurationError("Refusing %s." % exc) from None
    return scrypt(passphrase.encode("utf-8"), salt, n, r, p, dklen=32)


def _key_file_kek(key_file_content, salt):
    return hkdf(key_file_content, salt, b"blockvault/v1/keyfile")


def read_key_file(path):
    try:
        with open(path, "rb") as handle:
            content = handle.read(1 << 20)
    except OSError as exc:
        raise ConfigurationError("Cannot read the key file %s: %s." % (path, exc.strerror or exc)) from None
    if len(content) < 32:
        raise ConfigurationError("The key file %s is too short (%d bytes; at least 32 needed)." % (path, len(content)))
    return content


def generate_key_file(path):
    """Write a new key file (32 random bytes, base64, mode 0600); refuses to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(secrets.token_bytes(32)) + b"\n")
    return path


def _wrap_aad(repository_id, key_id):
    return ("blockvault/v1/key/%s/%s" % (repository_id, key_id)).encode("ascii")


def make_key_object(master_key, repository_id, passphrase=None, key_file_content=None, label=None):
    """A new key object dict wrapping ``master_key`` with a passphrase or a key file's content."""
    require_crypto()
    key_id = secrets.token_hex(8)
    salt = os.urandom(16)
    if passphrase is not None:
        kdf = dict(name="scrypt", salt=_b64(salt), **SCRYPT_PARAMS)
        kek = _scrypt(passphrase, salt, SCRYPT_PARAMS["n"], SCRYPT_PARAMS["r"], SCRYPT_PARAMS["p"])
        key_type = "passphrase"
    else:
        kdf = {"name": "hkdf-sha256", "salt": _b64(salt)}
        kek = _key_file_kek(key_file_content, salt)
        key_type = "keyfile"
    nonce = os.urandom(NONCE_SIZE)
    wrapped = AESGCM(kek).encrypt(nonce, master_key, _wrap_aad(repository_id, key_id))
    key_object = {"format": "blockvault-key", "version": FORMAT_VERSION, "id": key_id, "type": key_type, "created": isotime(),
                  "label": label or "", "kdf": kdf, "nonce": _b64(nonce), "wrapped": _b64(wrapped)}
    return dict(key_object, digest=validation.key_object_digest(key_object))


def unwrap_key_object(key_object, repository_id, passphrase=None, key_file_content=None):
    """The master key, or None when this secret does not open this key object (or is not of its type).

    CorruptionError naming the object when it is damaged (validation.check_key_object), RepositoryFormatError when
    it is of a newer format.
    """
    require_crypto()
    key_id = key_object.get("id") if isinstance(key_object, dict) else None
    name = "keys/%s" % (key_id if isinstance(key_id, str) else "?")
    try:
        if not isinstance(key_object, dict):
            raise validation.Damaged("not a JSON object")
        key_type, params, salt, nonce, wrapped = validation.check_key_object(key_object, key_id)
    except validation.Damaged as exc:
        raise key_object_damaged(name, str(exc)) from None
    if key_type == "passphrase" and passphrase is not None:
        kek = _scrypt(passphrase, salt, *params)
    elif key_type == "keyfile" and key_file_content is not None:
        kek = _key_file_kek(key_file_content, salt)
    else:
        return None
    try:
        master = AESGCM(kek).decrypt(nonce, wrapped, _wrap_aad(repository_id, key_id))
    except InvalidTag:
        return None
    if len(master) != 32:  # cannot happen with a 48-byte wrapped field; kept as the last line of defence
        raise CorruptionError("Key object %s holds a master key of the wrong size." % name, object_name=name)
    return master


def key_object_damaged(name, reason):
    return CorruptionError("Key object %s is damaged: %s." % (name, reason), object_name=name,
                           hint="Open the repository with another of its keys and remove this one (remove_key), or put "
                                "back a copy of the key object.")


def wrong_key_error(location, passphrase, key_file, tried):
    what = "passphrase" if passphrase is not None else "key file"
    return WrongKeyError("The %s does not open the repository at %s (%d %s key(s) tried)." % (what, location, tried, what),
                         hint="Check the %s; a repository keeps its keys in keys/ and any one of them opens it." % what)


# -- chunks ----------------------------------------------------------------------------------

# The incompressibility probe of ChunkCodec.encode: 4 samples of 16 KiB, from chunks of 256 KiB and more; a chunk
# whose samples shrink by less than 2 % is stored raw.
_PROBE_MIN_CHUNK = 256 * 1024
_PROBE_SAMPLES = 4
_PROBE_SAMPLE_SIZE = 16 * 1024
_PROBE_INCOMPRESSIBLE_RATIO = 0.98
# The highest chunk version byte of a plain chunk taken for a newer format rather than for damage (ChunkCodec._refuse_version).
_PLAUSIBLE_VERSIONS = 15


class ChunkCodec:
    """Encodes and decodes chunk objects (format section 5). Thread-safe, lock-free.

    ``keys`` is RepositoryKeys (encrypted repository) or None. ``encode`` returns a list of buffer parts
    (header, payload[, ...]) so a backend can write them without concatenating.
    """

    def __init__(self, chunk_size, level=3, keys=None):
        require_zstd()
        if keys is not None:
            require_crypto()
        self.chunk_size = chunk_size
        self.level = level
        self.keys = keys
        self._local = threading.local()

    def _compressor(self):
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = zstandard.ZstdCompressor(level=self.level, write_content_size=True)
        return compressor

    def _decompressor(self):
        decompressor = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = self._local.decompressor = zstandard.ZstdDecompressor()
        return decompressor

    def storage_id(self, digest):
        return self.keys.chunk_id(digest) if self.keys is not None else bytes(digest)

    def _incompressible(self, data):
        """True when samples spread over ``data`` do not compress: the chunk is then stored raw without running zstd
        over all of it (OpenZFS's zstd "early abort" makes the same bet). On the benchmark disk this saves the
        compression attempt on a fifth of the data (2 ms per 4 MiB) for 0.2 ms per compressible chunk. A chunk
        whose samples all miss its compressible parts is stored raw: correct, only larger."""
        if len(data) < _PROBE_MIN_CHUNK:
            return False
        step = len(data) // _PROBE_SAMPLES
        samples = b"".join(data[i * step:i * step + _PROBE_SAMPLE_SIZE] for i in range(_PROBE_SAMPLES))
        return len(self._compressor().compress(samples)) >= len(samples) * _PROBE_INCOMPRESSIBLE_RATIO

    def encode(self, storage_id, data):
        data = memoryview(data).cast("B")
        compressed = None if self._incompressible(data) else self._compressor().compress(data)
        if compressed is not None and len(compressed) < len(data):
            encoding, payload = ENCODING_ZSTD, compressed
        else:
            encoding, payload = ENCODING_RAW, data
        if self.keys is None:
            return [bytes((FORMAT_VERSION, encoding, 0)), payload]
        header = bytes((FORMAT_VERSION, encoding, 1))
        nonce = os.urandom(NONCE_SIZE)
        return [header, nonce, self.keys.aead.encrypt(nonce, payload, header + storage_id)]

    def decode(self, storage_id, blob, name=None):
        """The verified plaintext of a chunk object (CorruptionError when it fails verification)."""
        name = name or "chunk %s" % storage_id.hex()
        blob = memoryview(blob)
        if len(blob) < 3:
            raise CorruptionError("Chunk %s is truncated." % name, object_name=name)
        version, encoding, encrypted = blob[0], blob[1], blob[2]
        if version != FORMAT_VERSION:
            self._refuse_version(storage_id, blob, name, version)
        if encoding not in (ENCODING_RAW, ENCODING_ZSTD) or encrypted != (1 if self.keys is not None else 0):
            raise CorruptionError("Chunk %s has an invalid header." % name, object_name=name)
        if self.keys is not None:
            if len(blob) < 3 + NONCE_SIZE + TAG_SIZE:
                raise CorruptionError("Chunk %s is truncated." % name, object_name=name)
            try:
                payload = self.keys.aead.decrypt(bytes(blob[3:3 + NONCE_SIZE]), blob[3 + NONCE_SIZE:], bytes(blob[:3]) + storage_id)
            except InvalidTag:
                raise CorruptionError("Chunk %s fails authentication: it is damaged or was tampered with." % name,
                                      object_name=name) from None
        else:
            payload = blob[3:]
        if encoding == ENCODING_ZSTD:
            try:
                if not 0 < zstandard.frame_content_size(payload) <= self.chunk_size:  # no allocation bomb
                    raise CorruptionError("Chunk %s declares an invalid length." % name, object_name=name)
                plain = self._decompressor().decompress(payload, max_output_size=self.chunk_size)
            except zstandard.ZstdError:
                raise CorruptionError("Chunk %s does not decompress: it is damaged." % name, object_name=name) from None
        else:
            plain = bytes(payload) if not isinstance(payload, bytes) else payload
        if not 0 < len(plain) <= self.chunk_size:
            raise CorruptionError("Chunk %s has an invalid length %d." % (name, len(plain)), object_name=name)
        if self.keys is None and hashlib.sha256(plain).digest() != storage_id:
            raise CorruptionError("Chunk %s fails its SHA-256 check: it is damaged." % name, object_name=name)
        return plain

    def _refuse_version(self, storage_id, blob, name, version):
        """A chunk whose version byte is not ours: damaged, unless it may really come from a newer blockvault.

        Encrypted: the header is authenticated, so a newer chunk is one that passes authentication with it. Plain:
        versions 2 to _PLAUSIBLE_VERSIONS are taken for newer (a flipped bit of 1 can give 3, 5 or 9 too, which the
        message admits); 0 and anything larger is damage.
        """
        newer = RepositoryFormatError(
            "Chunk %s has format version %d; this blockvault reads version %d: upgrade blockvault (if no newer blockvault "
            "wrote to this repository, the chunk is damaged: validate it)." % (name, version, FORMAT_VERSION))
        if self.keys is not None and len(blob) >= 3 + NONCE_SIZE + TAG_SIZE and version > FORMAT_VERSION:
            try:
                self.keys.aead.decrypt(bytes(blob[3:3 + NONCE_SIZE]), bytes(blob[3 + NONCE_SIZE:]), bytes(blob[:3]) + storage_id)
            except InvalidTag:
                pass
            else:
                raise newer
        elif self.keys is None and FORMAT_VERSION < version <= _PLAUSIBLE_VERSIONS:
            raise newer
        raise CorruptionError("Chunk %s is damaged: its version byte is %d (this format writes %d)." % (name, version, FORMAT_VERSION),
                              object_name=name)

    def verify_digest(self, storage_id, plain, digest=None):
        """Full check: SHA-256(plain) equals ``digest`` (when known) and maps to ``storage_id``."""
        actual = hashlib.sha256(plain).digest()
        if digest is not None and actual != digest:
            return False
        return self.storage_id(actual) == storage_id
