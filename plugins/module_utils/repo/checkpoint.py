# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checkpoints: the durable progress of a running backup (format section 12), so that a killed run can be resumed.

A checkpoint ``checkpoints/<vm tag>/<run>`` records, per disk of the run, which chunks of its snapshot are done
and their digests, plus what the run planned (mode, reason, the change id an incremental read from). The next
backup of the VM adopts the run's snapshot and reads only the chunks the checkpoint does not list.

Rules that make an adopted checkpoint safe:

- write-then-record: a chunk is listed only once ``BackupSession.has_chunk`` says it is stored (the recorder
  checks every chunk it adds), so a checkpoint never names a chunk that was never stored;
- GC treats the chunks of a checkpoint younger than its ``max_age`` as referenced (maintenance.gc), and removes
  older checkpoints; the adopting run still checks every listed chunk against its known-id set and reads again
  any that is gone;
- the object is sealed like an index when the repository is encrypted (its name is the associated data).

Binary layout (before sealing): ``BVCP``, u16 version, u32 header length, the header (canonical JSON), then for
each disk of the header in order its done bitmap (bit ``i % 8`` of byte ``i // 8`` = chunk ``i``) and the
32-byte digests of its done chunks in ascending order; then the SHA-256 of everything before it.
Memory: one bit per chunk plus 32 bytes per done chunk (a 2 TiB disk in 4 MiB chunks, all done: 16 MiB).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import re
import struct
import threading
import time

from .. import blockhash
from ..errors import BackendError, BlockvaultError, CorruptionError, NotFoundInBackendError, RepositoryFormatError
from .format import DIGEST_SIZE, ZERO_SENTINEL, canonical_json, isotime

__all__ = ["CHECKPOINTS_PREFIX", "CheckpointDisk", "Checkpoint", "CheckpointRecorder", "checkpoint_name", "write_checkpoint",
           "load_checkpoint", "list_checkpoints", "delete_checkpoint", "gc_checkpoints"]

log = logging.getLogger(__name__)

CHECKPOINTS_PREFIX = "checkpoints/"
CHECKPOINT_VERSION = 1
_MAGIC = b"BVCP"
_HEAD = struct.Struct("<4sHI")
_PLAIN_RUN_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")


def checkpoint_name(vm_tag, run_id):
    """``checkpoints/<vm tag>/<run>``; a run id that is not a safe object name is replaced by a hash of it."""
    run = str(run_id)
    if not _PLAIN_RUN_RE.match(run):
        run = "x" + hashlib.sha256(run.encode("utf-8")).hexdigest()[:32]
    return "%s%s/%s" % (CHECKPOINTS_PREFIX, vm_tag, run)


def _bitmap_size(count):
    return (count + 7) // 8


def _set_bits(bitmap):
    """Indexes of the set bits of ``bitmap`` (bytes-like), ascending."""
    for byte_index, byte in enumerate(bitmap):
        if byte:
            base = byte_index * 8
            for bit in range(8):
                if byte >> bit & 1:
                    yield base + bit


def _parse_time(text):
    """Epoch seconds of an ISO time as ``isotime`` writes it (ValueError when it is not one)."""
    return datetime.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


@dataclasses.dataclass(frozen=True)
class CheckpointDisk:
    """One disk of a checkpoint: what the run planned, and its done chunks (``done`` bitmap, ``digests`` of the
    done chunks in ascending order). ``base_change_id`` is the change id an incremental read from (None: full).
    Immutable."""

    key: str
    capacity: int
    mode: str
    reason: str
    base_change_id: str = None
    done: bytes = b""
    digests: bytes = b""

    def done_chunks(self):
        """{chunk index: digest} of the done chunks (ZERO_SENTINEL for a zero chunk)."""
        return {index: self.digests[n * DIGEST_SIZE:(n + 1) * DIGEST_SIZE] for n, index in enumerate(_set_bits(self.done))}

    def header(self):
        return {"key": self.key, "capacity": self.capacity, "mode": self.mode, "reason": self.reason,
                "base_change_id": self.base_change_id, "done": len(self.digests) // DIGEST_SIZE}


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """The progress of run ``run_id`` of the VM ``vm_tag``: ``parent`` is the restore point its incremental disks
    build on (None when all are full), ``max_age`` (seconds) how long its snapshot may be adopted, ``created`` the
    run's start and ``updated`` the moment of this write (ISO times), ``lock_id`` the repository lock of the
    process writing it (the run is alive while that lock is). Immutable."""

    run_id: str
    vm_tag: str
    chunk_size: int
    max_age: float
    created: str
    updated: str
    parent: str = None
    disks: tuple = ()
    lock_id: str = None

    @property
    def name(self):
        return checkpoint_name(self.vm_tag, self.run_id)

    def disk(self, key):
        return next((disk for disk in self.disks if disk.key == str(key)), None)

    def to_bytes(self):
        header = canonical_json({"run_id": self.run_id, "vm_tag": self.vm_tag, "chunk_size": self.chunk_size,
                                 "max_age": self.max_age, "created": self.created, "updated": self.updated,
                                 "parent": self.parent, "lock_id": self.lock_id,
                                 "disks": [disk.header() for disk in self.disks]})
        parts = [_HEAD.pack(_MAGIC, CHECKPOINT_VERSION, len(header)), header]
        for disk in self.disks:
            parts.extend((disk.done, disk.digests))
        body = b"".join(parts)
        return body + hashlib.sha256(body).digest()

    @classmethod
    def from_bytes(cls, blob, name):
        """Parse and check a checkpoint; CorruptionError naming ``name`` for anything wrong."""
        blob = bytes(blob)

        def damaged(why):
            return CorruptionError("Checkpoint %s is damaged (%s)." % (name, why), object_name=name,
                                   hint="Nothing to do: it is ignored and removed, and the next backup of its VM starts over.")

        if len(blob) < _HEAD.size + DIGEST_SIZE or blob[:4] != _MAGIC:
            raise damaged("bad magic or truncated")
        if hashlib.sha256(blob[:-DIGEST_SIZE]).digest() != blob[-DIGEST_SIZE:]:
            raise damaged("checksum mismatch")
        _magic, version, header_length = _HEAD.unpack_from(blob)
        if version != CHECKPOINT_VERSION:
            raise RepositoryFormatError("Checkpoint %s has version %d; this blockvault reads version %d." % (
                name, version, CHECKPOINT_VERSION))
        try:
            header = json.loads(blob[_HEAD.size:_HEAD.size + header_length].decode("utf-8"))
            position = _HEAD.size + header_length
            disks = []
            for item in header["disks"]:
                count = blockhash.block_count(int(item["capacity"]), int(header["chunk_size"]))
                done = blob[position:position + _bitmap_size(count)]
                position += len(done)
                digests = blob[position:position + int(item["done"]) * DIGEST_SIZE]
                position += len(digests)
                if len(done) != _bitmap_size(count) or len(digests) != int(item["done"]) * DIGEST_SIZE or \
                        sum(bin(byte).count("1") for byte in done) != int(item["done"]):
                    raise ValueError("disk %s: bitmap and digests disagree" % item.get("key"))
                disks.append(CheckpointDisk(key=str(item["key"]), capacity=int(item["capacity"]), mode=str(item["mode"]),
                                            reason=str(item["reason"]), base_change_id=item.get("base_change_id"),
                                            done=done, digests=digests))
            if position != len(blob) - DIGEST_SIZE:
                raise ValueError("trailing bytes")
            _parse_time(header["created"])
            return cls(run_id=str(header["run_id"]), vm_tag=str(header["vm_tag"]), chunk_size=int(header["chunk_size"]),
                       max_age=float(header["max_age"]), created=str(header["created"]), updated=str(header["updated"]),
                       parent=header.get("parent"), disks=tuple(disks), lock_id=header.get("lock_id"))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise damaged(str(exc) or type(exc).__name__) from None

    def age(self, now=None):
        """Seconds since the run started (its ``created`` time)."""
        return (time.time() if now is None else now) - _parse_time(self.created)


def write_checkpoint(repository, checkpoint):
    """Store ``checkpoint`` (atomic replace of the previous one of its run), sealed when the repository is encrypted."""
    name = checkpoint.name
    plain = checkpoint.to_bytes()
    repository.backend.put(name, repository.keys.seal(name, plain) if repository.keys is not None else plain)
    return name


def load_checkpoint(repository, name):
    """The Checkpoint stored as ``name``; NotFoundInBackendError when gone, CorruptionError when damaged."""
    blob = repository.backend.get(name)
    plain = repository.keys.unseal(name, blob) if repository.keys is not None else blob
    return Checkpoint.from_bytes(plain, name)


def list_checkpoints(repository, vm_key=None):
    """Object names of the checkpoints (of one VM, by its key), sorted."""
    prefix = CHECKPOINTS_PREFIX + ("%s/" % repository.vm_tag(vm_key) if vm_key is not None else "")
    return sorted(info.name for info in repository.backend.list(prefix))


def delete_checkpoint(repository, name):
    """Remove a checkpoint, best effort (a leftover one expires and GC removes it)."""
    try:
        repository.backend.delete(name)
    except NotFoundInBackendError:
        pass
    except BackendError as exc:
        log.warning("could not remove checkpoint %s (GC removes it once it expires): %s", name, exc)


def gc_checkpoints(repository, now=None):
    """(storage ids the live checkpoints reference, names of the expired or damaged ones) for GC.

    A checkpoint is live while younger than its ``max_age`` or while the lock it records is live: its chunks are
    kept so that its run can be resumed. (GC calls this under its exclusive lock, when no backup lock is live.)
    """
    referenced, expired = set(), []
    codec = repository.codec
    live_locks = {lock["id"] for lock in repository.list_locks() if not lock.get("stale")}
    for name in list_checkpoints(repository):
        try:
            checkpoint = load_checkpoint(repository, name)
        except NotFoundInBackendError:
            continue
        except BlockvaultError as exc:
            log.warning("removing checkpoint %s: %s", name, exc)
            expired.append(name)
            continue
        if checkpoint.lock_id not in live_locks and (checkpoint.max_age <= 0 or checkpoint.age(now) > checkpoint.max_age):
            expired.append(name)
            continue
        for disk in checkpoint.disks:
            for n in range(len(disk.digests) // DIGEST_SIZE):
                digest = disk.digests[n * DIGEST_SIZE:(n + 1) * DIGEST_SIZE]
                if digest != ZERO_SENTINEL:
                    referenced.add(codec.storage_id(digest))
    return referenced, expired


class CheckpointRecorder:
    """Writes the checkpoint of a running backup every ``interval`` seconds from its own thread.

    ``disks`` are (key, capacity, mode, reason, base_change_id, index, done) tuples: ``index`` the DiskIndex the
    transfer fills and ``done`` the bitmap it sets once a chunk's digest is in the index (BackupDisk.done).
    ``adopted`` is the Checkpoint this run resumes (its done chunks stay listed), or None. Each write lists the
    chunks listed before plus the newly done ones that ``session.has_chunk`` says are stored (write-then-record).

    Thread-safety: ``start``/``stop`` by the run's thread; ``write_now`` by the recorder thread (or by the run's
    thread when the recorder thread is not running). Reads the transfer's bitmaps without its locks: the bitmap is
    copied first, and a bit is set only after its digest is in the index, so every copied bit has its digest.
    A write that fails is logged and retried at the next interval: progress is an optimisation, never a failure.
    """

    def __init__(self, repository, session, template, disks, interval, adopted=None):
        self.repository = repository
        self.session = session
        self.template = template      # a Checkpoint without disks: run id, tag, chunk size, max age, created, parent
        self.interval = float(interval)
        self._disks = []
        for key, capacity, mode, reason, base_change_id, index, done in disks:
            count = blockhash.block_count(capacity, template.chunk_size)
            confirmed = bytearray(_bitmap_size(count))
            digests = bytearray(count * DIGEST_SIZE)
            previous = adopted.disk(key) if adopted is not None else None
            if previous is not None:
                adopted_chunks = previous.done_chunks()
                stored = self.session.stored_chunks(adopted_chunks.values())     # known since the resume's own check
                for chunk, digest in adopted_chunks.items():
                    if digest in stored:
                        confirmed[chunk >> 3] |= 1 << (chunk & 7)
                        digests[chunk * DIGEST_SIZE:(chunk + 1) * DIGEST_SIZE] = digest
            self._disks.append((CheckpointDisk(key=str(key), capacity=capacity, mode=mode, reason=reason,
                                               base_change_id=base_change_id), index, done, confirmed, digests))
        self._stop = threading.Event()
        self._thread = None
        self.writes = 0

    def start(self):
        if self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="bv-checkpoint", daemon=True)
            self._thread.start()

    def stop(self):
        """Stop the thread (waits for a write in progress); no checkpoint is written after this returns."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self):
        while not self._stop.wait(self.interval):
            try:
                self.write_now()
            except BlockvaultError as exc:
                log.warning("writing checkpoint %s failed (retried in %.0f s): %s", self.template.name, self.interval, exc)

    def _absorb(self, index, done, confirmed, digests):
        """Add the newly done chunks whose chunk is stored to ``confirmed``/``digests``; returns how many."""
        snapshot = bytes(done)          # copy first: every bit in the copy has its digest in the index already
        added = 0
        for byte_index, byte in enumerate(snapshot):
            new = byte & ~confirmed[byte_index]
            if not new:
                continue
            for bit in range(8):
                if new >> bit & 1:
                    chunk = byte_index * 8 + bit
                    digest = index.get(chunk)
                    if self.session.has_chunk(digest):
                        confirmed[byte_index] |= 1 << bit
                        digests[chunk * DIGEST_SIZE:(chunk + 1) * DIGEST_SIZE] = digest
                        added += 1
        return added

    def write_now(self):
        """Write the checkpoint as it stands; returns the Checkpoint written."""
        disks = []
        for planned, index, done, confirmed, digests in self._disks:
            if done is not None:
                self._absorb(index, done, confirmed, digests)
            listed = b"".join(bytes(digests[chunk * DIGEST_SIZE:(chunk + 1) * DIGEST_SIZE]) for chunk in _set_bits(confirmed))
            disks.append(dataclasses.replace(planned, done=bytes(confirmed), digests=listed))
        checkpoint = dataclasses.replace(self.template, updated=isotime(), disks=tuple(disks))
        write_checkpoint(self.repository, checkpoint)
        self.writes += 1
        return checkpoint
