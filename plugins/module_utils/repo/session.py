# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup write session: chunks -> disk indexes -> manifest, under a shared lock (format section 9)."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

from .. import blockhash
from . import catalog
from ..errors import BackendError, BlockvaultError, ConfigurationError, CorruptionError, RepositoryError
from .format import (CHUNKS_PREFIX, ZERO_SENTINEL, DiskIndex, check_disk_key, chunk_id_from_name, index_name, isotime, utcnow,
                     manifest_name, new_restore_point_id, parse_restore_point_id)
from .manifest import validate_manifest
from .model import DiskEntry, Manifest, ManifestDraft


def list_chunk_infos(backend):
    """Every stored chunk object (ObjectInfo list) from listings: 1 request per 1000 chunks on S3.

    Remote backends first ask for one page; a repository with more chunks is listed by its 256 ``chunks/xx/``
    prefixes in parallel.
    """
    if not backend.parallel_listing:
        return backend.list(CHUNKS_PREFIX)
    first = backend.list(CHUNKS_PREFIX, limit=1000)
    if len(first) < 1000:
        return first
    with ThreadPoolExecutor(max_workers=16) as pool:
        listings = pool.map(backend.list, ["%s%02x/" % (CHUNKS_PREFIX, i) for i in range(256)])
        return [info for listing in listings for info in listing]


def list_chunk_ids(backend):
    """Every stored chunk id, as a set of 32-byte values (see list_chunk_infos)."""
    ids = set()
    for info in list_chunk_infos(backend):
        chunk_id = chunk_id_from_name(info.name)
        if chunk_id is not None:
            ids.add(chunk_id)
    return ids


class BackupSession:
    """One backup of one VM into the repository; use as a context manager (abort on exception).

    Contract: ``put_chunk`` every new chunk, then ``add_disk_index`` for every disk (its chunks must all have
    been put or been present), then ``commit`` once. Leaving the ``with`` block without commit aborts: no
    restore point appears; the chunks stay and the next session reuses them.

    Thread-safety: ``has_chunk`` and ``put_chunk`` may be called from many threads at once (the stored-id set
    is read lock-free; encoding and upload happen outside any lock, so two threads compress, encrypt and
    upload in parallel). ``add_disk_index``, ``commit`` and ``abort`` are called by the owning thread.
    Memory: the set of stored chunk ids (about 100 bytes per chunk: 25 MiB for 1 TiB of unique 4 MiB chunks)
    plus one encoded chunk per calling thread.

    Which chunks are stored (``presence``, a presence.ChunkPresence; ``chunk_presence`` says how): from the presence
    filter ``gc/present`` when GC wrote a usable one, asking the backend about the chunks the filter cannot rule out,
    else from one listing of ``chunks/`` (format section 9.1, "The presence filter"). Without ``presence`` the
    session answers from ``known_ids`` alone, as with a listing.
    """

    def __init__(self, repository, vm_key, run_id, lock, known_ids, rescuer=None, presence=None):
        self.repository = repository
        self.vm_key = vm_key
        self.run_id = run_id
        now = utcnow()
        self.started = isotime(now)
        self.restore_point_id = new_restore_point_id(repository.vm_tag(vm_key), now)
        self._lock = lock
        self._fences = [lock]
        self._codec = repository.codec
        self._known = known_ids
        # chunks GC has condemned: not in _known, stored again (rescued) when needed (section 9.1, GC beside writers)
        self._rescuer = rescuer
        self._presence = presence
        self._inflight = {}
        self._mutex = threading.Lock()
        self._disks = {}
        self._state = "open"
        self.chunks_stored = 0
        self.bytes_stored = 0
        self.bytes_new = 0
        self.chunks_deduplicated = 0

    @property
    def lock_id(self):
        """The id of this session's repository lock: a checkpoint records it, so that the next run knows whether
        the checkpoint's run is still alive (its lock live) or dead (gone or stale)."""
        return self._lock.lock_id

    def adopt_identity(self, restore_point_id, created):
        """Make this session write restore point ``restore_point_id`` created at ``created`` (an ISO time) instead of
        a new id and now: a copy between repositories keeps the source's time and a deterministic id, so that a later
        copy recognises what was copied. The id must carry this session's VM tag. Call before ``commit``."""
        self._check_open()
        _moment, tag = parse_restore_point_id(restore_point_id)
        if tag != self.repository.vm_tag(self.vm_key):
            raise ConfigurationError("Restore point id %s does not carry the VM tag of %s in this repository." % (
                restore_point_id, self.vm_key))
        self.restore_point_id = restore_point_id
        self.started = created

    # -- chunks ------------------------------------------------------------------------------

    def _check_open(self):
        if self._state != "open":
            raise RepositoryError("This backup session is %s; start a new one with begin_backup." % self._state)

    @property
    def chunk_presence(self):
        """How this session knows which chunks are stored: "filter" (gc/present, confirmed by HEAD requests),
        "listing (<why>)" (a listing of chunks/ at its start), or "filter, then listing (<why>)"."""
        return self._presence.path if self._presence is not None else "listing"

    @property
    def presence_requests(self):
        """HEAD requests made so far to learn whether chunks are stored (0 when the session listed them)."""
        return self._presence.requests if self._presence is not None else 0

    def has_chunk(self, digest):
        """True when a chunk with this SHA-256 is stored (or is the zero sentinel), as far as deduplication can tell:
        no backend request with a listing; with the presence filter, one HEAD request (once per chunk and session)
        when the filter cannot rule the chunk out. False for a chunk stored since GC wrote the filter (stored again).
        Use ``stored_chunks`` to rely on chunks stored by an earlier run (it asks about every one)."""
        if digest == ZERO_SENTINEL:
            return True
        storage_id = self._codec.storage_id(digest)
        if storage_id in self._known:
            return True
        return self._presence is not None and self._presence.probe(storage_id)

    def stored_chunks(self, digests):
        """The set of ``digests`` whose chunk is stored and may be relied on (the zero sentinel included): every one
        the session has not seen stored is confirmed with the backend (HEAD requests in parallel, or one listing of
        chunks/ when that is cheaper). A resumed backup's and a copy's check of what an earlier run stored."""
        digests = set(digests)
        storage_ids = {self._codec.storage_id(digest): digest for digest in digests if digest != ZERO_SENTINEL}
        if self._presence is not None:
            missing = self._presence.missing(storage_ids)
        else:
            missing = {storage_id for storage_id in storage_ids if storage_id not in self._known}
        return {digest for storage_id, digest in storage_ids.items() if storage_id not in missing} | (digests & {ZERO_SENTINEL})

    def put_chunk(self, digest, data):
        """Store a chunk (``digest`` = SHA-256 of ``data``, trusted); returns the bytes stored, 0 when deduplicated.

        An all-zero chunk is never stored. If another thread is storing the same chunk, waits for it.
        """
        self._check_open()
        length = len(memoryview(data).cast("B"))
        if not 0 < length <= self._codec.chunk_size:
            raise ConfigurationError("A chunk holds 1 to %d bytes, got %d." % (self._codec.chunk_size, length))
        if digest == ZERO_SENTINEL or digest == blockhash.zero_block_digest(length):
            return 0
        storage_id = self._codec.storage_id(digest)
        if self._presence is not None:
            self._presence.probe(storage_id)        # with the filter, a "maybe" is asked (once): then it is known
        with self._mutex:
            if storage_id in self._known:
                self.chunks_deduplicated += 1
                return 0
            event = self._inflight.get(storage_id)
            owner = event is None
            if owner:
                event = self._inflight[storage_id] = threading.Event()
        if not owner:
            event.wait()
            if storage_id not in self._known:
                raise RepositoryError("Storing chunk %s failed in another thread of this backup." % digest.hex())
            return 0
        try:
            if self._rescuer is not None and storage_id in self._rescuer.condemned:
                self._rescuer.before_store(storage_id, self._lock.check_valid)
            parts = self._codec.encode(storage_id, data)
            size = sum(len(part) for part in parts)
            self.repository.backend.put(self.repository.chunk_object_name(storage_id), parts)
            with self._mutex:
                self._known.add(storage_id)
                self.chunks_stored += 1
                self.bytes_stored += size
                self.bytes_new += length
            return size
        finally:
            with self._mutex:
                del self._inflight[storage_id]
            event.set()

    # -- fencing -----------------------------------------------------------------------------

    def add_fence(self, fence):
        """Also require ``fence`` (e.g. the backup snapshot's lease) before every index and the manifest.

        A fence has ``ensure_valid()`` (renew if it can, then raise unless its owner may still write) and
        ``check_valid()`` (raise unless it may, without a request); the session's lock is the first fence.
        """
        self._fences.append(fence)

    def on_lost(self, callback):
        """Call ``callback(reason)`` once when the session's lock, or a fence that can tell (``on_lost``), is lost:
        e.g. to set the transfer's cancel event, so a run that may no longer commit stops reading at once. Call it
        after ``add_fence``; releasing the lock (commit, abort) calls nothing."""
        fired = threading.Lock()

        def once(reason):
            if fired.acquire(blocking=False):
                callback(reason)
        self._lock.lease.on_lost(once)
        for fence in self._fences[1:]:
            if hasattr(fence, "on_lost"):
                fence.on_lost(once)

    def _ensure_fences(self):
        for fence in self._fences:
            fence.ensure_valid()

    # -- indexes and manifest ----------------------------------------------------------------

    def previous_index(self, rp_id, disk_key):
        """The DiskIndex of a disk of an earlier restore point (a copy to modify and add), for carrying chunks over.

        Its chunks are those of a committed restore point: with the presence filter, the session relies on those the
        filter says are present without asking about each one, once it has seen the restore point's manifest exist
        after the session began (one HEAD request): GC deletes no chunk of an existing restore point (format section
        9.1, "The presence filter")."""
        index = self.repository.load_disk_index(rp_id, disk_key)      # its manifest may come from the cache
        if self._presence is not None and not self._presence.listing and self.repository.restore_point_exists(rp_id):
            self._presence.trust(self._codec.storage_id(digest) for digest in index.referenced())
        return index.copy()

    def condemned_positions(self, index):
        """The positions of ``index`` whose chunk GC has condemned: they must be read again, not carried over
        (section 9.1, GC beside writers). Costs nothing when nothing is condemned."""
        condemned = self._rescuer.condemned if self._rescuer is not None else ()
        if not condemned:
            return []
        return [position for position, digest in enumerate(index)
                if digest != ZERO_SENTINEL and self._codec.storage_id(digest) in condemned]

    def add_disk_index(self, disk_key, index):
        """Write the index of one disk (atomic) after checking every chunk it names is stored. Returns the object name."""
        self._check_open()
        disk_key = check_disk_key(disk_key)
        if not isinstance(index, DiskIndex) or index.chunk_size != self._codec.chunk_size:
            raise ConfigurationError("add_disk_index needs a DiskIndex with the repository chunk size %d." % self._codec.chunk_size)
        if disk_key in self._disks:
            raise ConfigurationError("Disk %s already has an index in this backup." % disk_key)
        missing = 0
        first_missing = None
        named = [(position, self._codec.storage_id(digest)) for position, digest in enumerate(index) if digest != ZERO_SENTINEL]
        if self._presence is not None:      # those not seen stored are asked about (section 9.1, the presence filter)
            absent = self._presence.missing(storage_id for _position, storage_id in named)
        else:
            absent = {storage_id for _position, storage_id in named if storage_id not in self._known}
        for position, storage_id in named:
            if storage_id in absent:
                missing += 1
                first_missing = position if first_missing is None else first_missing
        if missing:
            raise CorruptionError("The index of disk %s names %d chunk(s) that are not stored (first at byte %d); the repository "
                                  "may have lost data or the backup did not store them." % (
                                      disk_key, missing, first_missing * index.chunk_size),
                                  disk=disk_key, hint="Run validate, then a full backup of this disk.")
        name = index_name(self.restore_point_id, disk_key)
        blob = self.repository.encode_index(name, index)
        self._ensure_fences()  # a run whose lock may have been judged stale writes nothing more (section 9.1)
        self.repository.backend.put(name, blob)
        self._disks[disk_key] = {"index": name, "index_sha256": hashlib.sha256(blob).hexdigest(), "capacity": index.capacity,
                                 "sha256": index.blocksum()}
        return name

    def commit(self, draft):
        """Complete ``draft`` (a ManifestDraft) into the restore point's Manifest, validate it, check the lock, write it.

        The repository fills ``id``, ``created``, ``chunk_size`` and per disk ``index``, ``index_sha256``, ``sha256``,
        ``sha256_block_size`` (a given ``sha256`` must match the index). Returns the committed Manifest.
        """
        self._check_open()
        if not isinstance(draft, ManifestDraft):
            raise ConfigurationError("commit needs a ManifestDraft (ManifestDraft.build), not %s." % type(draft).__name__)
        if draft.vm.key != self.vm_key:
            raise ConfigurationError("The manifest's vm.key %r differs from the session's vm_key %r." % (draft.vm.key, self.vm_key))
        if draft.run_id != self.run_id:
            raise ConfigurationError("The manifest's run_id %r differs from the session's %r." % (draft.run_id, self.run_id))
        keys = [disk.key.value for disk in draft.disks]
        if sorted(keys) != sorted(self._disks) or len(set(keys)) != len(keys):
            raise ConfigurationError("The manifest lists disks %s but indexes were added for %s." % (sorted(keys), sorted(self._disks)))
        entries = []
        for record in draft.disks:
            written = self._disks[record.key.value]
            if record.capacity != written["capacity"]:
                raise ConfigurationError("Disk %s: manifest capacity %r differs from its index's %d." % (
                    record.key, record.capacity, written["capacity"]))
            if record.sha256 not in (None, written["sha256"]):
                raise CorruptionError("Disk %s: the checksum computed during the backup differs from the one of its index." % record.key,
                                      disk=record.key.value)
            entries.append(DiskEntry(record=record, sha256=written["sha256"], sha256_block_size=self._codec.chunk_size,
                                     index=written["index"], index_sha256=written["index_sha256"]))
        manifest = Manifest(id=self.restore_point_id, run_id=self.run_id, vm=draft.vm, created=self.started,
                            started=draft.started or self.started, finished=isotime(), backup_mode=draft.backup_mode,
                            chunk_size=self._codec.chunk_size, disks=tuple(entries), stats=dict(draft.stats))
        document = manifest.to_json()
        validate_manifest(document, "the new manifest", ConfigurationError)
        self._ensure_fences()
        name = manifest_name(self.restore_point_id)
        self.repository.backend.put(name, self.repository.encode_manifest(name, document))
        self._confirm_commit(name)
        self._state = "committed"
        self.repository.remember_manifest(manifest)
        self._release()
        catalog.record_commit(self.repository, manifest)    # best effort, after the lock: the restore point exists
        return manifest

    def _confirm_commit(self, name):
        """After the manifest write returned: prove it landed while every fence was still valid, or withdraw it.

        A fence still valid now means the write completed before anyone could take this run's lock (or snapshot)
        for dead; otherwise the process may have stalled between its check and its write, and the restore point
        could rely on chunks a GC that took over has removed: it is deleted again and the run fails.
        """
        try:
            for fence in self._fences:
                fence.check_valid()
        except BlockvaultError as exc:
            try:
                self.repository.backend.delete(name)
                withdrawn = "was deleted again"
            except BackendError as delete_exc:
                withdrawn = "could not be deleted again (%s): run validate" % delete_exc
            exc.message = "%s The manifest of restore point %s was written meanwhile and %s." % (
                exc.message.rstrip(), self.restore_point_id, withdrawn)
            raise

    def abort(self):
        """End without a restore point; indexes already written are removed (best effort), chunks stay for reuse."""
        if self._state != "open":
            return
        self._state = "aborted"
        try:
            for written in self._disks.values():
                self.repository.backend.delete(written["index"])
        except BackendError:
            pass  # orphan indexes are removed by GC
        self._release()

    def _release(self):
        try:
            if self._rescuer is not None:
                self._rescuer.end()
            self._lock.release()
        except BackendError:
            pass  # the lock becomes stale and is ignored, then removed by GC (and its rescue note with it)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if self._state == "open":
            self.abort()
        if isinstance(exc, BlockvaultError):
            exc.with_context(vm=self.vm_key, run_id=self.run_id)
        return False
