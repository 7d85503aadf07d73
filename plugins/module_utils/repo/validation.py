# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of the JSON objects read from a repository: the config, key objects and locks (format sections 3, 4, 9.1).

Anything read from a backend may be damaged or forged, so every field the engine uses is checked for type and range
before use, and whatever is wrong becomes one ``Damaged`` reason (a short phrase naming the field) that the caller
turns into a CorruptionError naming the object. Explicit checks rather than jsonschema: these objects are read on
every open, before the key derivation starts, and jsonschema's imports cost 50 ms there (manifest.py imports it
lazily for manifests). Stateless and thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

from ..errors import RepositoryFormatError
from .format import FORMAT_VERSION, MAX_CHUNK_SIZE, canonical_json

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")

#: The bound readers put on scrypt memory, 128 * n * r * p bytes (format section 4).
SCRYPT_MAX_MEMORY = 1 << 30
SALT_SIZE = 16
NONCE_SIZE = 12
WRAPPED_SIZE = 48
MIN_COMPRESSION_LEVEL = 1
MAX_COMPRESSION_LEVEL = 22


class Damaged(Exception):
    """Why an object is damaged: ``str()`` is a phrase such as "field id is missing". Internal to this package."""


def is_int(value):
    """A JSON integer (bool is not one, though Python says it is)."""
    return isinstance(value, int) and not isinstance(value, bool)


def load_json(blob):
    """The JSON value of ``blob`` (UTF-8 bytes); Damaged when it is not UTF-8, not JSON, or nested too deep."""
    try:
        text = bytes(blob).decode("utf-8")
    except UnicodeDecodeError:
        raise Damaged("not UTF-8 text") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise Damaged("nested too deep to be one") from None
    except ValueError:  # includes integers with more digits than Python converts
        raise Damaged("not valid JSON") from None


def load_json_object(blob):
    value = load_json(blob)
    if not isinstance(value, dict):
        raise Damaged("not a JSON object")
    return value


def check_version(document, what):
    """Damaged for a version that is no positive integer; RepositoryFormatError (upgrade) only for a higher one."""
    version = document.get("version")
    if not is_int(version) or version < 1:
        raise Damaged("field version is %s" % _shown(version))
    if version > FORMAT_VERSION:
        raise RepositoryFormatError("%s has format version %d; this blockvault reads version %d: upgrade blockvault." % (
            what[:1].upper() + what[1:], version, FORMAT_VERSION))


def _shown(value, limit=40):
    if value is None:
        return "missing or null"
    text = repr(value)
    return "%s %s" % (type(value).__name__, text if len(text) <= limit else text[:limit] + "...")


def require(document, field, check, expected):
    """``document[field]`` when ``check(value)`` holds, else Damaged naming the field and what it should be."""
    value = document.get(field)
    if field not in document:
        raise Damaged("field %s is missing" % field)
    if not check(value):
        raise Damaged("field %s is %s, expected %s" % (field, _shown(value), expected))
    return value


def _b64(document, field, size):
    value = require(document, field, lambda v: isinstance(v, str), "base64 text")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise Damaged("field %s is not base64" % field) from None
    if len(raw) != size:
        raise Damaged("field %s holds %d bytes, expected %d" % (field, len(raw), size))
    return raw


# -- config (format section 3) -------------------------------------------------------------------------------

def check_config(config, what="the repository configuration"):
    """Check every field of a parsed config dict (format already checked by the caller); Damaged or RepositoryFormatError."""
    check_version(config, what)
    require(config, "id", lambda v: isinstance(v, str) and _HEX32.match(v), "32 lower-case hex digits")
    require(config, "created", lambda v: isinstance(v, str), "a time")
    require(config, "chunk_size", lambda v: is_int(v) and 4096 <= v <= MAX_CHUNK_SIZE and not v & (v - 1),
            "a power of two up to %d" % MAX_CHUNK_SIZE)
    compression = require(config, "compression", lambda v: isinstance(v, dict), "an object")
    try:
        require(compression, "algorithm", lambda v: v == "zstd", '"zstd"')
        require(compression, "level", lambda v: is_int(v) and MIN_COMPRESSION_LEVEL <= v <= MAX_COMPRESSION_LEVEL,
                "an integer from %d to %d" % (MIN_COMPRESSION_LEVEL, MAX_COMPRESSION_LEVEL))
    except Damaged as exc:
        raise Damaged("compression %s" % exc) from None
    if "encryption" not in config:
        raise Damaged("field encryption is missing")
    encryption = config["encryption"]
    if encryption is None:
        if config.get("mac") is not None:
            raise Damaged("field mac is set in an unencrypted repository")
        return config
    expected = {"algorithm": "aes-256-gcm", "chunk_id": "hmac-sha256", "key_derivation": "hkdf-sha256"}
    if encryption != expected:
        raise Damaged("field encryption is %s, expected null or %s" % (_shown(encryption), json.dumps(expected)))
    require(config, "mac", lambda v: isinstance(v, str) and _HEX64.match(v), "64 hex digits")
    return config


# -- key objects (format section 4) --------------------------------------------------------------------------

def check_key_object(key_object, key_id):
    """Check a parsed key object stored as ``keys/<key_id>``; returns (type, kdf, salt, nonce, wrapped) decoded.

    Damaged or RepositoryFormatError. Bounds scrypt to SCRYPT_MAX_MEMORY so a forged object cannot exhaust memory.
    """
    require(key_object, "format", lambda v: v == "blockvault-key", '"blockvault-key"')
    check_version(key_object, "key object keys/%s" % key_id)
    require(key_object, "id", lambda v: isinstance(v, str) and v == key_id and _HEX16.match(v), "16 hex digits, as in its name")
    key_type = require(key_object, "type", lambda v: v in ("passphrase", "keyfile"), '"passphrase" or "keyfile"')
    for informative in ("created", "label"):
        if key_object.get(informative) is not None and not isinstance(key_object[informative], str):
            raise Damaged("field %s is %s, expected text" % (informative, _shown(key_object[informative])))
    kdf = require(key_object, "kdf", lambda v: isinstance(v, dict), "an object")
    try:
        if key_type == "passphrase":
            require(kdf, "name", lambda v: v == "scrypt", '"scrypt" for a passphrase key')
            params = [require(kdf, p, is_int, "an integer") for p in ("n", "r", "p")]
        else:
            require(kdf, "name", lambda v: v == "hkdf-sha256", '"hkdf-sha256" for a key-file key')
            params = None
        salt = _b64(kdf, "salt", SALT_SIZE)
    except Damaged as exc:
        raise Damaged("kdf %s" % exc) from None
    if params is not None:
        check_scrypt_parameters(*params)
    nonce, wrapped = _b64(key_object, "nonce", NONCE_SIZE), _b64(key_object, "wrapped", WRAPPED_SIZE)
    if "digest" in key_object:      # written since key objects carry it; older ones are judged by their fields only
        require(key_object, "digest", lambda v: isinstance(v, str) and _HEX64.match(v), "64 hex digits")
        if key_object["digest"] != key_object_digest(key_object):
            raise Damaged("its content does not match its digest (a changed byte)")
    return key_type, params, salt, nonce, wrapped


def key_object_digest(key_object):
    """SHA-256 (hex) of the canonical JSON of every field of ``key_object`` but ``digest`` (format section 4).

    Not a secret and not a MAC: it tells a damaged key object (a flipped byte in its salt, nonce or wrapped key
    fails AES-GCM exactly as a wrong passphrase does) from a passphrase that is not one of the repository's.
    Damaged when the object holds what canonical JSON cannot encode.
    """
    try:
        return hashlib.sha256(canonical_json({k: v for k, v in key_object.items() if k != "digest"})).hexdigest()
    except (UnicodeEncodeError, ValueError, TypeError) as exc:     # lone surrogates, NaN and such from hostile JSON
        raise Damaged("it holds a value JSON cannot carry (%s)" % type(exc).__name__) from None


def check_scrypt_parameters(n, r, p):
    """Damaged unless n is a power of two >= 2, r and p are positive and 128 * n * r * p <= SCRYPT_MAX_MEMORY."""
    if not (is_int(n) and is_int(r) and is_int(p)) or n < 2 or n & (n - 1) or r < 1 or p < 1 or 128 * n * r * p > SCRYPT_MAX_MEMORY:
        raise Damaged("unreasonable scrypt parameters (n=%r, r=%r, p=%r: n must be a power of two, r and p positive, "
                      "128*n*r*p at most %d bytes)" % (n, r, p, SCRYPT_MAX_MEMORY))


# -- locks (format section 9.1) ------------------------------------------------------------------------------

def check_lock(lock, lock_id):
    """Check a parsed lock dict stored as ``locks/<lock_id>``; returns it without fields the reader computes itself.

    Lenient where the protocol allows: only ``kind`` and ``refreshed`` decide anything and are required; ``format``,
    ``version``, ``id``, ``purpose``, ``host``, ``machine``, ``pid``, ``repository``, ``created`` are informative and
    checked for type when present. ``refreshed_epoch``, ``stale`` and ``damaged`` are the reader's own and dropped.
    """
    if "format" in lock:
        require(lock, "format", lambda v: v == "blockvault-lock", '"blockvault-lock"')
    if "version" in lock:
        version = lock["version"]
        if not is_int(version) or version < 1:
            raise Damaged("field version is %s" % _shown(version))
        if version > FORMAT_VERSION:
            raise Damaged("format version %d, newer than this blockvault reads (%d)" % (version, FORMAT_VERSION))
    if lock.get("id") is not None and lock["id"] != lock_id:
        raise Damaged("field id is %s, not its name %s" % (_shown(lock["id"]), lock_id))
    require(lock, "kind", lambda v: v in ("shared", "exclusive", "gc"), '"shared", "exclusive" or "gc"')
    require(lock, "refreshed", lambda v: isinstance(v, str) and _TIME.match(v), "a UTC time")
    for field in ("purpose", "host", "machine", "repository", "created"):
        if lock.get(field) is not None and not isinstance(lock[field], str):
            raise Damaged("field %s is %s, expected text" % (field, _shown(lock[field])))
    if lock.get("pid") is not None and not (is_int(lock["pid"]) and 0 <= lock["pid"] < 1 << 32):
        raise Damaged("field pid is %s, expected a process id" % _shown(lock["pid"]))
    return {k: v for k, v in lock.items() if k not in ("refreshed_epoch", "stale", "damaged")}
