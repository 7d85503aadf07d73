# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository format v1 constants, object names and the disk index (docs/repository-format.md sections 1, 6, 7)."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import secrets
import struct

from .. import blockhash
from ..errors import ConfigurationError, CorruptionError, RepositoryFormatError

FORMAT_VERSION = 1
MIN_CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 16 << 20
DEFAULT_CHUNK_SIZE = 4 << 20
# zstd level 1, as Proxmox Backup Server uses for its 4 MiB image chunks: on the benchmark disk it compresses text
# ~30 % faster than level 3 for a repository ~6 % larger (docs/performance.md). A repository keeps the level it was
# created with; higher levels are a creation option.
DEFAULT_COMPRESSION_LEVEL = 1
DIGEST_SIZE = 32
ZERO_SENTINEL = bytes(DIGEST_SIZE)

CONFIG_NAME = "config"
KEYS_PREFIX = "keys/"
CHUNKS_PREFIX = "chunks/"
INDEXES_PREFIX = "indexes/"
MANIFESTS_PREFIX = "manifests/"
LOCKS_PREFIX = "locks/"

_INDEX_HEADER = struct.Struct("<4sHHIQQ")
_INDEX_MAGIC = b"BVIX"
_DISK_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_RP_ID_RE = re.compile(r"^(\d{8}T\d{6}\.\d{6}Z)-([0-9a-f]{16})-([0-9a-f]{8})$")


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def isotime(moment=None):
    return (moment or utcnow()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def check_chunk_size(chunk_size, allow_small=False):
    """A power of two from 1 to 16 MiB (``allow_small`` is the private test hook: down to 4 KiB)."""
    low = 4096 if allow_small else MIN_CHUNK_SIZE
    if not isinstance(chunk_size, int) or chunk_size < low or chunk_size > MAX_CHUNK_SIZE or chunk_size & (chunk_size - 1):
        raise ConfigurationError("chunk_size must be a power of two from 1 MiB to 16 MiB (1048576..16777216), got %r." % (chunk_size,))
    return chunk_size


def chunk_name(chunk_id):
    hexid = chunk_id.hex()
    return "%s%s/%s" % (CHUNKS_PREFIX, hexid[:2], hexid)


def chunk_id_from_name(name):
    """The 32-byte id of a chunk object name, or None for a name that is not a chunk."""
    hexid = name.rpartition("/")[2]
    if len(hexid) != 64 or name != chunk_name_from_hex(hexid):
        return None
    try:
        return bytes.fromhex(hexid)
    except ValueError:
        return None


def chunk_name_from_hex(hexid):
    return "%s%s/%s" % (CHUNKS_PREFIX, hexid[:2], hexid)


def check_disk_key(disk_key):
    disk_key = str(disk_key)
    if not _DISK_KEY_RE.match(disk_key) or disk_key in (".", ".."):
        raise ConfigurationError("A disk key must be 1-64 characters of [A-Za-z0-9_.-] (the VM device key), got %r." % (disk_key,))
    return disk_key


def index_name(rp_id, disk_key):
    return "%s%s/%s" % (INDEXES_PREFIX, rp_id, check_disk_key(disk_key))


def manifest_name(rp_id):
    return MANIFESTS_PREFIX + rp_id


def new_restore_point_id(vm_tag, moment=None):
    return "%s-%s-%s" % ((moment or utcnow()).strftime("%Y%m%dT%H%M%S.%fZ"), vm_tag, secrets.token_hex(4))


def parse_restore_point_id(rp_id):
    """(created datetime, vm tag) of a restore point id; ConfigurationError when it is not one."""
    match = _RP_ID_RE.match(str(rp_id))
    try:
        if not match:
            raise ValueError
        # the digits by position, not strptime (a third of its time): a listing of 30,000 restore points parses every id
        text = match.group(1)
        created = datetime.datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]), int(text[11:13]),
                                    int(text[13:15]), int(text[16:22]), tzinfo=datetime.timezone.utc)
    except ValueError:  # also a name of the right shape with an impossible date (month 13): found in a repository, not made
        raise ConfigurationError("%r is not a restore point id (expected YYYYmmddTHHMMSS.ffffffZ-<16 hex>-<8 hex>)." % (rp_id,)) from None
    return created, match.group(2)


def restore_point_tag(rp_id):
    """The vm tag of what looks like a restore point id (its time is not checked: parse_restore_point_id does), else None."""
    match = _RP_ID_RE.match(rp_id)
    return match.group(2) if match else None


def is_restore_point_id(rp_id):
    try:
        parse_restore_point_id(rp_id)
    except ConfigurationError:
        return False
    return True


class DiskIndex:
    """The chunk digests of one disk of one restore point, in order (format section 6).

    ``digests`` is a bytearray of 32 bytes per chunk; the all-zero value is the zero-chunk sentinel; a new
    index is all zero chunks. Thread-safety: ``set``/``set_zero`` of distinct indexes may run concurrently
    (each writes its own 32-byte slot); everything else must run after the setters. Memory: 32 bytes per
    chunk (8 MiB for 1 TiB in 4 MiB chunks).
    """

    def __init__(self, capacity, chunk_size, digests=None):
        if capacity < 0 or chunk_size <= 0:
            raise ConfigurationError("A disk index needs capacity >= 0 and chunk_size > 0, got %r and %r." % (capacity, chunk_size))
        self.capacity = capacity
        self.chunk_size = chunk_size
        self.count = blockhash.block_count(capacity, chunk_size)
        if digests is None:
            digests = bytearray(self.count * DIGEST_SIZE)
        elif len(digests) != self.count * DIGEST_SIZE:
            raise ConfigurationError("A disk index of %d chunks needs %d digest bytes, got %d." % (
                self.count, self.count * DIGEST_SIZE, len(digests)))
        self.digests = bytearray(digests)

    def set(self, index, digest):
        if len(digest) != DIGEST_SIZE:
            raise ConfigurationError("A chunk digest is 32 bytes, got %d." % len(digest))
        if not 0 <= index < self.count:
            raise ConfigurationError("Chunk %d is outside a disk index of %d chunks." % (index, self.count))
        if digest == blockhash.zero_block_digest(self.chunk_length(index)):
            digest = ZERO_SENTINEL  # an all-zero chunk is never stored: always recorded by the sentinel
        self.digests[index * DIGEST_SIZE:(index + 1) * DIGEST_SIZE] = digest

    def set_zero(self, index):
        self.set(index, ZERO_SENTINEL)

    def get(self, index):
        """The digest of chunk ``index`` (bytes); ZERO_SENTINEL for a zero chunk."""
        if not 0 <= index < self.count:
            raise ConfigurationError("Chunk %d is outside a disk index of %d chunks." % (index, self.count))
        return bytes(self.digests[index * DIGEST_SIZE:(index + 1) * DIGEST_SIZE])

    def digest(self, index):
        """The same as ``get``: the name the transfer layer's index protocol uses."""
        return self.get(index)

    def is_zero(self, index):
        return self.get(index) == ZERO_SENTINEL

    def __iter__(self):
        view = memoryview(self.digests)
        for i in range(self.count):
            yield bytes(view[i * DIGEST_SIZE:(i + 1) * DIGEST_SIZE])

    def referenced(self):
        """The set of distinct non-zero digests."""
        return {digest for digest in self if digest != ZERO_SENTINEL}

    def chunk_length(self, index):
        return blockhash.block_length(index, self.capacity, self.chunk_size)

    def blocksum(self):
        """blockhash's disk checksum, from the index alone (zero chunks by their precomputed digest)."""
        if not self.count:
            return hashlib.sha256(b"").hexdigest()
        full = blockhash.zero_block_digest(self.chunk_size)
        if ZERO_SENTINEL not in self.digests:  # fast path; a false positive only takes the slow path
            return hashlib.sha256(self.digests).hexdigest()
        combined = hashlib.sha256()
        last = self.count - 1
        for i, digest in enumerate(self):
            if digest == ZERO_SENTINEL:
                digest = full if i != last else blockhash.zero_block_digest(self.chunk_length(i))
            combined.update(digest)
        return combined.hexdigest()

    def copy(self):
        return DiskIndex(self.capacity, self.chunk_size, self.digests)

    def to_bytes(self):
        header = _INDEX_HEADER.pack(_INDEX_MAGIC, FORMAT_VERSION, 0, self.chunk_size, self.capacity, self.count)
        body = header + bytes(self.digests)
        return body + hashlib.sha256(body).digest()

    @classmethod
    def from_bytes(cls, blob, name="index"):
        blob = memoryview(blob)
        if len(blob) < _INDEX_HEADER.size + DIGEST_SIZE:
            raise CorruptionError("Disk index %s is truncated (%d bytes)." % (name, len(blob)), object_name=name)
        magic, version, _flags, chunk_size, capacity, count = _INDEX_HEADER.unpack_from(blob)
        if magic != _INDEX_MAGIC:
            raise CorruptionError("Disk index %s has a bad magic number." % name, object_name=name)
        if hashlib.sha256(blob[:-DIGEST_SIZE]).digest() != bytes(blob[-DIGEST_SIZE:]):
            raise CorruptionError("Disk index %s fails its checksum: it is damaged." % name, object_name=name)
        if version != FORMAT_VERSION:
            raise RepositoryFormatError("Disk index %s has format version %d; this blockvault reads version %d: upgrade blockvault." % (
                name, version, FORMAT_VERSION))
        if chunk_size <= 0 or count != blockhash.block_count(capacity, chunk_size) or \
                len(blob) != _INDEX_HEADER.size + count * DIGEST_SIZE + DIGEST_SIZE:
            raise CorruptionError("Disk index %s is inconsistent (count/capacity/length)." % name, object_name=name)
        return cls(capacity, chunk_size, blob[_INDEX_HEADER.size:-DIGEST_SIZE])
