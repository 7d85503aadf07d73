# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore pipeline: one disk from its DiskIndex and a chunk fetcher to a DiskTarget.

The calling thread walks the index in order and submits typed work items to an ``executor.Executor`` whose
``workers`` threads handle them: a data chunk, DataChunk (fetch its
plaintext with ``fetch_chunk(digest)``, verify length and SHA-256 against the index, write it at its offset and
at the offsets of its later copies in the disk: each distinct chunk is fetched once),
a run of zero chunks, ZeroRun (skipped when ``target.known_zeroed``, a fresh sparse target; else one
``target.zero`` call per run of up to 1 GiB), or in compare mode a zero chunk to check, CheckZero. Each worker writes through its own handle, ``target.clone()``
(VDDK: one handle per thread), opened in the worker's thread; a target without ``clone`` is shared under a lock.
Clones are flushed and closed by the worker that made them; ``target`` itself is flushed at the end and stays open (the caller closes it).

In-place rollback ("only differing chunks"): ``changed_chunks`` (a set of chunk indexes that may differ, from
CBT) restricts the work to those chunks; the others are trusted to hold the index's data. ``compare=True``
reads each candidate chunk from the target first, hashes it, and fetches and writes only when it differs from
the index digest (a zero sentinel: when it is not all zero), which also saves repository reads.

The blocksum of the result is computed on the way (the SHA-256 of each verified chunk written, of each chunk
read back unchanged in compare mode, the zero digest for zero chunks, the index digest for chunks outside
``changed_chunks``) and must equal ``index.blocksum()``; a mismatch raises TransferError.

Memory bound: each worker holds at most one fetched chunk, plus one compare buffer in compare mode and its
handle's bounce buffer when the target copies writes (``target.bounce_buffers``, direct I/O); the
number of workers is capped so that this fits ``memory_budget``; the work queue holds item descriptions only.
Failure and cancellation: the executor's contract (first error recorded, other workers stop after their current
item, every clone closed by its worker, the error raised with the disk in its context; the ``cancel`` Event
raises CancelledError unless all work was done).
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
from .buffers import BufferPool
from .executor import Closed, Executor
from .options import TransferOptions
from .pipeline import wrap_error
from . import trace

__all__ = ["CheckZero", "DataChunk", "DiskRestore", "RestoreResult", "ZeroRun", "restore_disk"]

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


@dataclasses.dataclass(frozen=True)
class DiskRestore:
    """What to restore: the disk ``key`` (for messages and progress), its ``index`` (a DiskIndex: ``capacity``,
    ``chunk_size``, ``count``, ``digest(i)``, ``blocksum()``), ``fetch_chunk(digest) -> bytes`` (a chunk's
    plaintext, e.g. through ``repo.read_chunk``), the ``target`` (a DiskTarget of the index's capacity, which
    the caller closes) and, for an in-place rollback, ``changed_chunks`` or ``compare`` (module docstring)."""

    key: object
    index: object
    fetch_chunk: object
    target: object
    changed_chunks: object = None
    compare: bool = False


# The work items, in disk order: each is handled by its own method of _RestoreWorker.

@dataclasses.dataclass(frozen=True, slots=True)
class DataChunk:
    """Chunk ``index`` holds data of SHA-256 ``digest``: fetch, verify and write it (and its later copies)."""

    index: int
    digest: bytes

    @property
    def first_chunk(self):
        return self.index


@dataclasses.dataclass(frozen=True, slots=True)
class ZeroRun:
    """``count`` zero chunks from chunk ``start``: one ``target.zero`` call."""

    start: int
    count: int

    @property
    def first_chunk(self):
        return self.start


@dataclasses.dataclass(frozen=True, slots=True)
class CheckZero:
    """Compare mode: chunk ``index`` must be zero; read it and zero it only when it is not."""

    index: int

    @property
    def first_chunk(self):
        return self.index


class _Restore:
    """One call of restore_disk: the work items, the shared counters and the checksum. Used once; the calling
    thread produces the items into an Executor whose workers each hold a _RestoreWorker. ``count_done`` and the
    DiskDigest (distinct indexes) are thread-safe."""

    def __init__(self, job, options, workers):
        self.job = job
        self.index = job.index
        self.fetch_chunk = job.fetch_chunk
        self.target = job.target
        self.compare = job.compare
        self.key = job.key
        self.workers = workers
        self.progress = options.progress
        self.vm = options.vm
        self.run_id = options.run_id
        self.capacity = self.index.capacity
        self.chunk_size = self.index.chunk_size
        self.count = self.index.count
        self.written = DiskDigest(self.capacity, self.chunk_size)
        self.result = RestoreResult(self.key)
        self.lock = threading.Lock()             # result counters
        self.target_lock = threading.Lock()      # only when the target cannot be cloned
        self.pool = BufferPool(self.chunk_size, workers) if self.compare else None
        self.trace = trace.current()             # read once: the no-op recorder unless tracing is on
        self.executor = Executor(cancel=options.cancel, cancelled_error=self.cancelled_error,
                                 name="bv-restore-%s" % self.key, recorder=self.trace)
        self.progress.add_disk(self.key, self.capacity)
        if job.changed_chunks is None:
            todo = range(self.count)
        else:
            todo = sorted({int(i) for i in job.changed_chunks if 0 <= int(i) < self.count})
            self.trust_unchanged(set(todo))
        self.copies = self.find_copies(todo)
        self.items = self.generate(todo)

    def chunk_length(self, i):
        return min(self.chunk_size, self.capacity - i * self.chunk_size)

    def cancelled_error(self):
        return CancelledError("The restore of disk %s was cancelled on request before it was complete." % self.key,
                              phase="restore", disk=self.key, vm=self.vm, run_id=self.run_id)

    def context(self, exc, action):
        return wrap_error(exc, action, self.key, self.vm, self.run_id)

    def count_done(self, nbytes, **counters):
        with self.lock:
            for name, value in counters.items():
                setattr(self.result, name, getattr(self.result, name) + value)
        if nbytes:
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
        """Work items in disk order: DataChunk, ZeroRun, CheckZero; a later copy of a data chunk has no item of its
        own (``copies``)."""
        run_first = run_count = 0
        max_run = max(1, _MAX_ZERO_RUN // self.chunk_size)
        later_copies = {i for places in self.copies.values() for i in places}
        for i in todo:
            if i in later_copies:
                continue
            digest = self.index.digest(i)
            if digest != _ZERO_DIGEST:
                if run_count:
                    yield ZeroRun(run_first, run_count)
                    run_count = 0
                yield DataChunk(i, digest)
            elif self.compare:
                yield CheckZero(i)
            elif self.target.known_zeroed:
                self.written.set_zero(i)
                self.count_done(self.chunk_length(i), chunks_skipped=1)
            elif run_count and run_first + run_count == i and run_count < max_run:
                run_count += 1
            else:
                if run_count:
                    yield ZeroRun(run_first, run_count)
                run_first, run_count = i, 1
        if run_count:
            yield ZeroRun(run_first, run_count)

    def open_worker(self):
        """The executor's handler factory: runs in the worker's own thread."""
        return _RestoreWorker(self)

    # -- the run ---------------------------------------------------------------------------------------

    def run(self):
        started = time.monotonic()
        span = self.trace.span
        with span("restore-disk", disk=str(self.key)):
            with self.executor as executor:
                for number in range(self.workers):
                    executor.add_worker(self.open_worker)
                try:
                    for item in self.items:
                        executor.submit(item)
                except Closed:
                    pass                      # a worker failed or the run was cancelled: leaving the block raises it
            try:
                with span("flush"):
                    self.target.flush()
            except BaseException as exc:
                raise self.context(exc, "Flushing the target")
        self.result.blocksum = self.written.hexdigest()
        expected = self.index.blocksum()
        if self.result.blocksum != expected:
            raise TransferError("The restored disk %s has checksum %s, not the %s its index records; the data written "
                                "is not the restore point's." % (self.key, self.result.blocksum, expected),
                                disk=self.key, vm=self.vm, run_id=self.run_id)
        self.result.duration = max(0.0, time.monotonic() - started)
        self.progress.set_disk_phase(self.key, "done")
        return self.result


class _RestoreWorker:
    """The handler of one restore worker thread, built in that thread: its own ``target.clone()`` (VDDK: one handle
    per thread), or the shared target under a lock when the target cannot be cloned (fetches stay parallel), and
    its compare buffer. ``close()`` (by the same thread) flushes the clone unless the run failed (after a cancel
    too: what was written must be durable), gives the buffer back and closes the clone. Not shared."""

    def __init__(self, restore):
        self.restore = restore
        self.chunk_size = restore.chunk_size
        clone = getattr(restore.target, "clone", None)
        try:
            with restore.trace.span("open-handle"):
                self.target = clone() if clone is not None else restore.target
        except BaseException as exc:
            raise restore.context(exc, "Opening a handle on the target")
        self.owned = clone is not None
        self.lock = _NO_LOCK if self.owned else restore.target_lock
        self.buf = restore.pool.acquire() if restore.pool is not None else None

    def handle(self, item):
        try:
            self._methods[type(item)](self, item)
        except BaseException as exc:
            raise self.restore.context(exc, "Restoring chunk %d" % item.first_chunk)

    def close(self):
        restore = self.restore
        try:
            if self.owned and not restore.executor.failed:
                try:
                    with restore.trace.span("flush-handle"):
                        self.target.flush()
                except BaseException as exc:
                    restore.executor.fail(restore.context(exc, "Flushing the target"))
        finally:
            if self.buf is not None:
                restore.pool.release(self.buf)
                self.buf = None
            if self.owned:
                try:
                    self.target.close()
                except BaseException as exc:     # a write handle that fails to close may have lost data
                    raise restore.context(exc, "Closing a handle on the target")

    def zero_run(self, item):
        restore = self.restore
        offset = item.start * self.chunk_size
        length = min(item.count * self.chunk_size, restore.capacity - offset)
        with self.lock:
            self.target.zero(offset, length)
        for j in range(item.start, item.start + item.count):
            restore.written.set_zero(j)
        restore.count_done(length, chunks_zeroed=item.count, bytes_zeroed=length)

    def check_zero(self, item):
        restore = self.restore
        i = item.index
        offset, length = i * self.chunk_size, restore.chunk_length(i)
        view = memoryview(self.buf)[:length]
        with self.lock:
            self.target.read_into(offset, view)
        if is_zero(view):
            restore.written.set_zero(i)
            restore.count_done(length, chunks_compared=1, chunks_unchanged=1)
            return
        with self.lock:
            self.target.zero(offset, length)
        restore.written.set_zero(i)
        restore.count_done(length, chunks_compared=1, chunks_zeroed=1, bytes_zeroed=length)

    def data_chunk(self, item):
        restore = self.restore
        i, digest = item.index, item.digest
        length = restore.chunk_length(i)
        if restore.compare:
            view = memoryview(self.buf)[:length]
            with self.lock:
                self.target.read_into(i * self.chunk_size, view)
            if hashlib.sha256(view).digest() == digest:
                restore.written.set(i, digest)
                restore.count_done(length, chunks_compared=1, chunks_unchanged=1)
                return
        span = restore.trace.span
        with span("fetch", chunk=i):
            data = restore.fetch_chunk(digest)
        with span("verify"):
            actual = hashlib.sha256(data).digest()
        if len(data) != length or actual != digest:
            raise CorruptionError("Chunk %d of disk %s (%s) read from the repository is %d bytes with SHA-256 %s, not the %d "
                                  "bytes the index records; run validate on the repository."
                                  % (i, restore.key, digest.hex(), len(data), actual.hex(), length),
                                  object_name=digest.hex())
        for place in [i] + restore.copies.get(i, []):
            with self.lock, span("write", chunk=place):
                self.target.write(place * self.chunk_size, data)
            restore.written.set(place, actual)
            restore.count_done(length, chunks_written=1, bytes_written=length, chunks_compared=1 if restore.compare else 0)

    _methods = {DataChunk: data_chunk, ZeroRun: zero_run, CheckZero: check_zero}


def restore_disk(job, options=TransferOptions()):
    """Restore one disk, ``job`` (a DiskRestore), as the module docstring says; return its RestoreResult.

    ``options`` (TransferOptions): ``workers`` (capped so their buffers fit ``memory_budget``), ``progress``
    (``add_disk``, ``advance`` and the "done" phase under the disk key), ``cancel``, ``vm`` and ``run_id``.
    """
    index, target, key = job.index, job.target, job.key
    workers, memory_budget = options.workers, options.memory_budget
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if target.capacity != index.capacity:
        raise TransferError("The target of disk %s holds %d bytes; the restore point's disk holds %d. Restore to a disk of "
                            "the same size." % (key, target.capacity, index.capacity), disk=key, vm=options.vm,
                            run_id=options.run_id)
    per_worker = index.chunk_size * (2 if job.compare else 1) + (index.chunk_size if getattr(target, "bounce_buffers", False) else 0)
    if memory_budget < per_worker:
        raise ConfigurationError("The memory budget of %d bytes cannot hold one worker's %d bytes of chunk data; set "
                                 "memory_budget to at least %d bytes." % (memory_budget, per_worker, per_worker))
    workers = max(1, min(workers, memory_budget // per_worker))
    return _Restore(job, options, workers).run()
