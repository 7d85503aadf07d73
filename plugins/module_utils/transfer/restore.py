# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore pipeline: one disk from its DiskIndex and a chunk fetcher to a DiskTarget.

``workers`` threads take work items from one shared cursor over the index, in order: a data chunk (fetch its
plaintext with ``fetch_chunk(digest)``, verify length and SHA-256 against the index, write it at its offset and
at the offsets of its later copies in the disk: each distinct chunk is fetched once),
or a run of zero chunks (skipped when ``target.known_zeroed``, a fresh sparse target; else one
``target.zero`` call per run of up to 1 GiB). Each worker writes through its own handle, ``target.clone()``
(VDDK: one handle per thread); a target without ``clone`` is shared under a lock. Clones are flushed and closed
by the worker that made them; ``target`` itself is flushed at the end and stays open (the caller closes it).

In-place rollback ("only differing chunks"): ``changed_chunks`` (a set of chunk indexes that may differ, from
CBT) restricts the work to those chunks; the others are trusted to hold the index's data. ``compare=True``
reads each candidate chunk from the target first, hashes it, and fetches and writes only when it differs from
the index digest (a zero sentinel: when it is not all zero), which also saves repository reads.

The blocksum of the result is computed on the way (the SHA-256 of each verified chunk written, of each chunk
read back unchanged in compare mode, the zero digest for zero chunks, the index digest for chunks outside
``changed_chunks``) and must equal ``index.blocksum()``; a mismatch raises TransferError.

Memory bound: each worker holds at most one fetched chunk, plus one compare buffer in compare mode and its
handle's bounce buffer when the target copies writes (``target.bounce_buffers``, direct I/O); the
number of workers is capped so that this fits ``memory_budget``. Failure and cancellation: as in the backup
pipeline (first error recorded, other workers stop after their current item, every clone closed, the error
raised with the disk in its context; the ``cancel`` Event raises CancelledError unless all work was done).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import threading
import time

from ..blockhash import DiskDigest, is_zero
from ..errors import CancelledError, ConfigurationError, CorruptionError, TransferError
from .buffers import DEFAULT_MEMORY_BUDGET, BufferPool
from .pipeline import wrap_error

__all__ = ["RestoreResult", "restore_disk"]

log = logging.getLogger(__name__)

_ZERO_DIGEST = bytes(32)
_MAX_ZERO_RUN = 1024 * 1024 * 1024
_MAX_COPY_MAP_CHUNKS = 256 * 1024      # 1 TiB of 4 MiB chunks: a transient map of ~30 MB at most
_NO_LOCK = contextlib.nullcontext()


@dataclasses.dataclass
class RestoreResult:
    """Figures of one restored disk. ``chunks_skipped``: zero chunks left as holes of a known-zeroed target;
    ``chunks_unchanged``: chunks found equal (compare) or outside ``changed_chunks``."""

    key: str
    bytes_written: int = 0
    bytes_zeroed: int = 0
    chunks_written: int = 0
    chunks_zeroed: int = 0
    chunks_skipped: int = 0
    chunks_unchanged: int = 0
    chunks_compared: int = 0
    duration: float = 0.0
    blocksum: str = None

    def as_dict(self):
        return dataclasses.asdict(self)


class _Restore:
    """One call of restore_disk: the work cursor, the workers, the first error. Used once."""

    def __init__(self, index, fetch_chunk, target, workers, compare, changed_chunks, cancel, progress, key, vm,
                 run_id):
        self.index = index
        self.fetch_chunk = fetch_chunk
        self.target = target
        self.workers = workers
        self.compare = compare
        self.cancel = cancel
        self.progress = progress
        self.key = key
        self.vm = vm
        self.run_id = run_id
        self.capacity = index.capacity
        self.chunk_size = index.chunk_size
        self.count = index.count
        self.written = DiskDigest(self.capacity, self.chunk_size)
        self.result = RestoreResult(key)
        self.stop = threading.Event()
        self.error = None
        self.lock = threading.Lock()             # result counters, error
        self.cursor_lock = threading.Lock()
        self.target_lock = threading.Lock()      # only when the target cannot be cloned
        self.exhausted = False
        self.pool = BufferPool(self.chunk_size, workers) if compare else None
        if progress is not None:
            progress.add_disk(key, self.capacity)
        if changed_chunks is None:
            todo = range(self.count)
        else:
            todo = sorted({int(i) for i in changed_chunks if 0 <= int(i) < self.count})
            self.trust_unchanged(set(todo))
        self.copies = self.find_copies(todo)
        self.items = self.generate(todo)

    def chunk_length(self, i):
        return min(self.chunk_size, self.capacity - i * self.chunk_size)

    def cancelled(self):
        return self.stop.is_set() or (self.cancel is not None and self.cancel.is_set())

    def count_done(self, nbytes, **counters):
        with self.lock:
            for name, value in counters.items():
                setattr(self.result, name, getattr(self.result, name) + value)
        if self.progress is not None and nbytes:
            self.progress.advance(self.key, nbytes)

    def trust_unchanged(self, todo):
        trusted = 0
        nbytes = 0
        for i in range(self.count):
            if i not in todo:
                digest = self.index.digest(i)
                if digest == _ZERO_DIGEST:
                    self.written.set_zero(i)
                else:
                    self.written.set(i, digest)
                trusted += 1
                nbytes += self.chunk_length(i)
        self.count_done(nbytes, chunks_unchanged=trusted)

    def find_copies(self, todo):
        """{first index: [later indexes]} of the data chunks whose digest repeats in ``todo`` (cloned templates, copied
        files): such a chunk is fetched, verified and decompressed once and written at every place. Not in compare
        mode (each place is compared on its own), nor above _MAX_COPY_MAP_CHUNKS chunks, where the map would cost
        more memory than the reads it saves."""
        if self.compare or len(todo) > _MAX_COPY_MAP_CHUNKS:
            return {}
        first_of = {}
        copies = {}
        for i in todo:
            digest = self.index.digest(i)
            if digest != _ZERO_DIGEST:
                first = first_of.setdefault(digest, i)
                if first != i:
                    copies.setdefault(first, []).append(i)
        return copies

    def generate(self, todo):
        """Work items in disk order: ("data", i, digest), ("zero", first, n), ("check_zero", i, 1); a later copy of a
        data chunk has no item of its own (``copies``)."""
        run_first = run_count = 0
        max_run = max(1, _MAX_ZERO_RUN // self.chunk_size)
        later_copies = {i for places in self.copies.values() for i in places}
        for i in todo:
            if i in later_copies:
                continue
            digest = self.index.digest(i)
            if digest != _ZERO_DIGEST:
                if run_count:
                    yield ("zero", run_first, run_count)
                    run_count = 0
                yield ("data", i, digest)
            elif self.compare:
                yield ("check_zero", i, 1)
            elif self.target.known_zeroed:
                self.written.set_zero(i)
                self.count_done(self.chunk_length(i), chunks_skipped=1)
            elif run_count and run_first + run_count == i and run_count < max_run:
                run_count += 1
            else:
                if run_count:
                    yield ("zero", run_first, run_count)
                run_first, run_count = i, 1
        if run_count:
            yield ("zero", run_first, run_count)

    def next_item(self):
        with self.cursor_lock:
            if self.exhausted:
                return None
            item = next(self.items, None)
            if item is None:
                self.exhausted = True
            return item

    def fail(self, exc, action):
        with self.lock:
            first = self.error is None
            if first:
                self.error = wrap_error(exc, action, self.key, self.vm, self.run_id)
        if first:
            log.error("Restore of disk %s stops: %s", self.key, self.error)
            self.stop.set()
        else:
            log.debug("Further error after the first one (disk %s): %r", self.key, exc)

    # -- workers ---------------------------------------------------------------------------------------

    def work(self):
        clone = getattr(self.target, "clone", None)
        handle = None
        buf = None
        action = "Opening a handle on the target"
        try:
            handle = clone() if clone is not None else None
            if self.pool is not None:
                buf = self.pool.acquire()
            while not self.cancelled():
                item = self.next_item()
                if item is None:
                    break
                kind, i, extra = item
                action = "Restoring chunk %d" % i
                if handle is None:        # shared target: only its calls are serialized, fetches stay parallel
                    self.do_item(self.target, self.target_lock, buf, kind, i, extra)
                else:
                    self.do_item(handle, _NO_LOCK, buf, kind, i, extra)
            if handle is not None and self.error is None:   # also after a cancel: what was written must be durable
                action = "Flushing the target"
                handle.flush()
        except BaseException as exc:
            self.fail(exc, action)
        finally:
            if buf is not None:
                self.pool.release(buf)
            if handle is not None:
                try:
                    handle.close()
                except BaseException as exc:     # a write handle that fails to close may have lost data
                    self.fail(exc, "Closing a handle on the target")

    def do_item(self, handle, handle_lock, buf, kind, i, extra):
        """One work item; every call on ``handle`` is made under ``handle_lock``."""
        offset = i * self.chunk_size
        if kind == "zero":
            length = min(extra * self.chunk_size, self.capacity - offset)
            with handle_lock:
                handle.zero(offset, length)
            for j in range(i, i + extra):
                self.written.set_zero(j)
            self.count_done(length, chunks_zeroed=extra, bytes_zeroed=length)
            return
        length = self.chunk_length(i)
        if self.compare:
            view = memoryview(buf)[:length]
            with handle_lock:
                handle.read_into(offset, view)
            if kind == "check_zero":
                if is_zero(view):
                    self.written.set_zero(i)
                    self.count_done(length, chunks_compared=1, chunks_unchanged=1)
                else:
                    with handle_lock:
                        handle.zero(offset, length)
                    self.written.set_zero(i)
                    self.count_done(length, chunks_compared=1, chunks_zeroed=1, bytes_zeroed=length)
                return
            if hashlib.sha256(view).digest() == extra:
                self.written.set(i, extra)
                self.count_done(length, chunks_compared=1, chunks_unchanged=1)
                return
        data = self.fetch_chunk(extra)
        actual = hashlib.sha256(data).digest()
        if len(data) != length or actual != extra:
            raise CorruptionError("Chunk %d of disk %s (%s) read from the repository is %d bytes with SHA-256 %s, not the %d "
                                  "bytes the index records; run validate on the repository."
                                  % (i, self.key, extra.hex(), len(data), actual.hex(), length),
                                  object_name=extra.hex())
        for place in [i] + self.copies.get(i, []):
            with handle_lock:
                handle.write(place * self.chunk_size, data)
            self.written.set(place, actual)
            self.count_done(length, chunks_written=1, bytes_written=length, chunks_compared=1 if self.compare else 0)

    # -- the run ---------------------------------------------------------------------------------------

    def run(self):
        started = time.monotonic()
        threads = [threading.Thread(target=self.work, name="bv-restore-%s-%d" % (self.key, n), daemon=True)
                   for n in range(self.workers)]
        running = []
        try:
            for thread in threads:
                thread.start()
                running.append(thread)
        except BaseException as exc:
            self.fail(exc, "Starting the restore")
        try:
            for thread in running:
                thread.join()
        except BaseException as exc:     # KeyboardInterrupt in the caller: stop the workers, then re-raise
            self.fail(exc, "Restoring")
            for thread in running:
                thread.join()
            raise
        if self.error is None and not self.exhausted:
            raise CancelledError("The restore of disk %s was cancelled on request before it was complete." % self.key,
                                 phase="restore", disk=self.key, vm=self.vm, run_id=self.run_id)
        if self.error is None:
            try:
                self.target.flush()
            except BaseException as exc:
                self.fail(exc, "Flushing the target")
        if self.error is not None:
            raise self.error
        self.result.blocksum = self.written.hexdigest()
        expected = self.index.blocksum()
        if self.result.blocksum != expected:
            raise TransferError("The restored disk %s has checksum %s, not the %s its index records; the data written "
                                "is not the restore point's." % (self.key, self.result.blocksum, expected),
                                disk=self.key, vm=self.vm, run_id=self.run_id)
        self.result.duration = max(0.0, time.monotonic() - started)
        if self.progress is not None:
            self.progress.set_disk_phase(self.key, "done")
        return self.result


def restore_disk(index, fetch_chunk, target, workers=4, memory_budget=DEFAULT_MEMORY_BUDGET, changed_chunks=None,
                 compare=False, cancel=None, progress=None, disk_key=None, vm=None, run_id=None):
    """Restore one disk (see the module docstring); return its RestoreResult.

    ``index``: a DiskIndex (``capacity``, ``chunk_size``, ``count``, ``digest(i)``, ``blocksum()``);
    ``fetch_chunk(digest) -> bytes``: a chunk's plaintext (e.g. ``repo.read_chunk``); ``target``: a DiskTarget
    of the index's capacity. ``progress``: ``add_disk(key, total)`` and ``advance(key, nbytes)``.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if target.capacity != index.capacity:
        raise TransferError("The target of disk %s holds %d bytes; the restore point's disk holds %d. Restore to a disk of "
                            "the same size." % (disk_key, target.capacity, index.capacity), disk=disk_key, vm=vm,
                            run_id=run_id)
    per_worker = index.chunk_size * (2 if compare else 1) + (index.chunk_size if getattr(target, "bounce_buffers", False) else 0)
    if memory_budget < per_worker:
        raise ConfigurationError("The memory budget of %d bytes cannot hold one worker's %d bytes of chunk data; set "
                                 "memory_budget to at least %d bytes." % (memory_budget, per_worker, per_worker))
    workers = max(1, min(workers, memory_budget // per_worker))
    return _Restore(index, fetch_chunk, target, workers, compare, changed_chunks, cancel, progress,
                    disk_key, vm, run_id).run()
