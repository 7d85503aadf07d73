# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup pipeline: every disk of a VM read in parallel into one repository session.

Shape (after ovirt-imageio's executor, adapted to hashing and deduplication):

- one **reader thread per disk**, using that disk's own source handle (VDDK: one handle per thread). It first
  records the chunks that need no read (ZERO -> zero sentinel, CARRY -> the previous index's digest), then
  walks the plan's read requests: takes a buffer from the shared BufferPool (waits when none is free), reads
  up to one buffer (8 MiB by default) with ``read_into`` straight into it, and queues one task per chunk, a
  memoryview slice of the buffer (zero copy). A source with ``read_into_many`` (VDDK's pipelined async reads)
  gets up to ``read_batch`` requests per call, into buffers that are free at that moment;
- **one shared pool of ``workers`` threads** processes chunk tasks from all disks as they come, overlapping
  with the reads: zero check (``blockhash.is_zero``, a memcmp), SHA-256,
  ``session.has_chunk``, ``session.put_chunk``
  (which compresses, encrypts and stores), then records the digest in the disk's new index. A digest being
  stored by another worker of this run is not stored twice. The buffer returns to the pool when its last
  chunk is done.

Memory bound: the BufferPool holds at most ``memory_budget`` bytes of chunk data, and no more buffers than the
workers can use (``backup_buffer_layout``: readers outrun hashing, so more buffers would only sit filled); the
task queue only references those buffers, so data in flight never exceeds the budget whatever the number and
size of disks. Outside it: ``workers`` times what ``put_chunk`` needs to compress and encrypt one chunk, and
the indexes themselves (32 bytes per chunk).

Contract of the session (``repo``'s backup session): ``has_chunk(digest)`` and ``put_chunk(digest, data)`` are
thread-safe; ``put_chunk`` receives a read-only-by-contract memoryview that is valid only during the call and
returns the stored bytes (0 when already present). Indexes are DiskIndex objects (``set``, ``set_zero``,
``digest``, ``blocksum``); the pipeline serializes its calls on each index with a per-disk lock, so they need
not be thread-safe. The caller adds the filled indexes to the session and commits (ops).

Failure and cancellation: the first exception in any reader or worker is recorded, a shared stop flag is set,
readers stop before their next read (or while waiting for a buffer), workers drop queued chunks, every source
is closed (by its reader, in its thread) and the first error is raised with the disk, VM and run id filled in
(``errors.with_context``; a non-engine exception is wrapped in TransferError, the original as ``__cause__``).
Setting the ``cancel`` Event passed in stops the run the same way and raises CancelledError, unless every chunk
was already done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import queue
import threading
import time

from ..blockhash import is_zero
from ..errors import BlockvaultError, CancelledError, TransferError
from .buffers import DEFAULT_MEMORY_BUDGET, BufferPool, BufferRef, read_buffer_layout
from .plan import CARRY, ZERO, plan_disk

__all__ = ["BackupDisk", "DiskBackupResult", "backup_buffer_layout", "backup_disks", "plan_backup", "wrap_error"]

log = logging.getLogger(__name__)

_ZERO_DIGEST = bytes(32)


def wrap_error(exc, action, disk=None, vm=None, run_id=None):
    """``exc`` as a BlockvaultError carrying the context: engine errors get their unset fields filled, anything
    else becomes a TransferError naming the disk and what was being done (the original stays as __cause__)."""
    if not isinstance(exc, BlockvaultError):
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        wrapped = TransferError("%s of disk %s failed: %s (%s)." % (action, disk, detail, type(exc).__name__))
        wrapped.__cause__ = exc
        exc = wrapped
    return exc.with_context(disk=disk, vm=vm, run_id=run_id)


@dataclasses.dataclass
class BackupDisk:
    """One disk to back up. ``source`` belongs to the pipeline from the call on (it is closed at the end);
    ``index`` is the new, empty DiskIndex to fill; ``previous`` the previous restore point's index (CARRY)."""

    key: str
    source: object
    plan: object
    index: object
    previous: object = None


@dataclasses.dataclass
class DiskBackupResult:
    """Figures of one disk. ``bytes_new`` is what the repository stored (compressed, encrypted)."""

    key: str
    mode: str
    bytes_read: int = 0
    bytes_new: int = 0
    chunks_read: int = 0
    chunks_new: int = 0
    chunks_deduped: int = 0
    chunks_zero: int = 0
    chunks_carried: int = 0
    duration: float = 0.0
    blocksum: str = None
    index: object = dataclasses.field(default=None, repr=False)

    def as_dict(self):
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self) if field.name != "index"}


def plan_backup(source, chunk_size, changed=None, previous=None):
    """The DiskPlan of ``source``: asks it for its allocated extents (None when it cannot tell) and plans."""
    allocated = source.allocated_extents(0, source.capacity, chunk_size=chunk_size)
    return plan_disk(source.capacity, chunk_size, allocated=allocated, changed=changed, previous=previous)


class _DiskState:
    """Per-disk mutable state; every field is changed under ``lock``."""

    def __init__(self, disk):
        self.disk = disk
        self.key = disk.key
        self.plan = disk.plan
        self.lock = threading.Lock()
        self.result = DiskBackupResult(disk.key, disk.plan.mode, index=disk.index)
        self.chunks_done = 0
        self.started = None
        self.finished = None
        self.source_closed = False
        self.reader_done = False
        self.reported_done = False

    def done_now(self):
        """Under ``lock``: True once, when the reader has finished and every chunk it queued was processed."""
        if self.reported_done or not self.reader_done or self.chunks_done != self.plan.chunks_read:
            return False
        self.reported_done = True
        return True


class _BackupRun:
    """One call of backup_disks: readers, workers, the first error. Used once, from the calling thread."""

    def __init__(self, session, disks, workers, pool, cancel, progress, vm, run_id, read_batch):
        self.session = session
        self.read_batch = read_batch
        self.states = [_DiskState(disk) for disk in disks]
        self.workers = workers
        self.pool = pool
        self.cancel = cancel
        self.progress = progress
        self.vm = vm
        self.run_id = run_id
        self.stop = threading.Event()
        self.tasks = queue.SimpleQueue()
        self.error = None
        self._error_lock = threading.Lock()
        self._inflight = set()
        self._inflight_lock = threading.Lock()

    def cancelled(self):
        return self.stop.is_set() or (self.cancel is not None and self.cancel.is_set())

    def fail(self, state, exc, action):
        with self._error_lock:
            first = self.error is None
            if first:
                self.error = wrap_error(exc, action, state.key if state else None, self.vm, self.run_id)
        if first:
            log.error("Backup of disk %s stops: %s", state.key if state else "?", self.error)
            self.stop.set()
            self.pool.wake()
        else:
            log.debug("Further error after the first one (disk %s): %r", state.key if state else "?", exc)

    # -- readers ---------------------------------------------------------------------------------------

    def read_disk(self, state):
        source = state.disk.source
        read_many = getattr(source, "read_into_many", None) if self.read_batch > 1 else None
        try:
            state.started = time.monotonic()
            self.record_unread(state)
            requests = state.plan.read_requests(self.pool.size)
            pending = next(requests, None)
            while pending is not None and not self.cancelled():
                buf = self.pool.acquire(self.cancelled)
                if buf is None:
                    break
                batch = [(pending, buf)]
                pending = next(requests, None)
                # more requests in one call only with buffers free right now: waiting for a buffer while holding
                # others could starve the other readers
                while read_many is not None and pending is not None and len(batch) < self.read_batch:
                    extra = self.pool.try_acquire()
                    if extra is None:
                        break
                    batch.append((pending, extra))
                    pending = next(requests, None)
                if not self.read_batch_into(state, source, read_many, batch):
                    break
        except BaseException as exc:     # a bug or an index error: still stop the run cleanly
            self.fail(state, exc, "Reading")
        finally:
            self.close_source(state)
            with state.lock:
                state.finished = max(state.finished or 0.0, time.monotonic())
                state.reader_done = True
                done = state.done_now()
            if done:
                self.report_done(state)

    def report_done(self, state):
        if self.progress is not None and not self.cancelled():
            self.progress.set_disk_phase(state.key, "done")

    def read_batch_into(self, state, source, read_many, batch):
        """Read the (request, buffer) pairs of ``batch`` and queue their chunks; False after a failure."""
        views = [memoryview(buf)[:length] for (offset, length), buf in batch]
        try:
            if len(batch) == 1:
                source.read_into(batch[0][0][0], views[0])
            else:
                read_many([(offset, view) for ((offset, length), buf), view in zip(batch, views)])
        except BaseException as exc:
            for request, buf in batch:
                self.pool.release(buf)
            start = batch[0][0][0]
            end = batch[-1][0][0] + batch[-1][0][1]
            self.fail(state, exc, "Reading %d bytes at offset %d" % (end - start, start))
            return False
        chunk_size = state.plan.chunk_size
        for ((offset, length), buf), view in zip(batch, views):
            chunks = (length + chunk_size - 1) // chunk_size
            with state.lock:
                state.result.bytes_read += length
            ref = BufferRef(self.pool, buf, chunks)
            first = offset // chunk_size
            for j in range(chunks):
                self.tasks.put((state, first + j, view[j * chunk_size:min((j + 1) * chunk_size, length)], ref))
        return True

    def record_unread(self, state):
        """ZERO and CARRY chunks: recorded in the index without reading."""
        index, previous = state.disk.index, state.disk.previous
        zero = carried = 0
        with state.lock:
            for i in state.plan.indexes(ZERO):
                index.set_zero(i)
                zero += 1
            for i in state.plan.indexes(CARRY):
                digest = previous.digest(i)
                if digest == _ZERO_DIGEST:
                    index.set_zero(i)
                else:
                    index.set(i, digest)
                carried += 1
            state.result.chunks_zero += zero
            state.result.chunks_carried += carried

    def close_source(self, state):
        with state.lock:
            if state.source_closed:
                return
            state.source_closed = True
        try:
            state.disk.source.close()
        except Exception as exc:  # a read-only handle: the data read is complete, so log and go on (like imageio)
            log.warning("Closing the source of disk %s failed: %s", state.key, exc)

    # -- workers ---------------------------------------------------------------------------------------

    def work(self):
        while True:
            task = self.tasks.get()
            if task is None:
                return
            state, index, view, ref = task
            try:
                if not self.cancelled():
                    self.process(state, index, view)
            except BaseException as exc:
                self.fail(state, exc, "Storing chunk %d" % index)
            finally:
                ref.done()

    def process(self, state, index, view):
        length = view.nbytes
        result = state.result
        if is_zero(view):
            with state.lock:
                state.disk.index.set_zero(index)
                result.chunks_zero += 1
                result.chunks_read += 1
                state.chunks_done += 1
        else:
            digest = hashlib.sha256(view).digest()
            stored = 0
            if not self.session.has_chunk(digest):
                with self._inflight_lock:
                    mine = digest not in self._inflight
                    if mine:
                        self._inflight.add(digest)
                if mine:
                    try:
                        stored = self.session.put_chunk(digest, view)
                    finally:
                        with self._inflight_lock:
                            self._inflight.discard(digest)
            with state.lock:
                state.disk.index.set(index, digest)
                result.chunks_read += 1
                if stored:
                    result.chunks_new += 1
                    result.bytes_new += stored
                else:
                    result.chunks_deduped += 1
                state.chunks_done += 1
        with state.lock:
            state.finished = time.monotonic()
            done = state.done_now()
        if self.progress is not None:
            self.progress.advance(state.key, length)
        if done:
            self.report_done(state)

    # -- the run ---------------------------------------------------------------------------------------

    def run(self):
        if self.progress is not None:
            for state in self.states:
                self.progress.add_disk(state.key, state.plan.bytes_to_read)
        workers = [threading.Thread(target=self.work, name="bv-backup-worker-%d" % n, daemon=True)
                   for n in range(self.workers)]
        readers = [threading.Thread(target=self.read_disk, args=(state,), name="bv-backup-read-%s" % state.key,
                                    daemon=True) for state in self.states]
        started = []
        try:
            for thread in workers + readers:
                thread.start()
                started.append(thread)
            for thread in readers:
                thread.join()
        except BaseException as exc:     # KeyboardInterrupt in the caller, or a thread that could not start
            self.fail(None, exc, "Starting the backup")
            for thread in readers:
                if thread in started:
                    thread.join()
            raise
        finally:
            for thread in workers:        # one stop marker per worker
                self.tasks.put(None)
            for thread in workers:
                if thread in started:
                    thread.join()
            for state in self.states:     # readers that never ran still own an open source
                self.close_source(state)
        if self.error is not None:
            raise self.error
        incomplete = [s.key for s in self.states if s.chunks_done != s.plan.chunks_read]
        if incomplete:
            raise CancelledError("The backup was cancelled on request before disks %s were read completely."
                                 % ", ".join(str(k) for k in incomplete), phase="transfer", vm=self.vm,
                                 run_id=self.run_id)
        results = {}
        for state in self.states:
            result = state.result
            result.duration = max(0.0, (state.finished or state.started) - state.started)
            result.blocksum = state.disk.index.blocksum()
            results[state.key] = result
        return results


def _check_disk(disk):
    plan = disk.plan
    if (disk.index.capacity, disk.index.chunk_size) != (plan.capacity, plan.chunk_size):
        raise ValueError("disk %s: the new index (capacity %d, chunk size %d) does not match the plan (%d, %d)"
                         % (disk.key, disk.index.capacity, disk.index.chunk_size, plan.capacity, plan.chunk_size))
    if disk.source.capacity != plan.capacity:
        raise ValueError("disk %s: the source holds %d bytes, the plan %d"
                         % (disk.key, disk.source.capacity, plan.capacity))
    if plan.chunks_carried and disk.previous is None:
        raise ValueError("disk %s: the plan carries chunks over but no previous index was given" % disk.key)


def backup_buffer_layout(chunk_size, memory_budget, workers, read_batch=4):
    """(buffer size, buffer count) of a backup: ``read_buffer_layout`` of the budget, but no more buffers than
    the workers can use: one per worker being processed, one more per worker queued, and one read batch.

    Why: the readers (page cache, VDDK) outrun hashing and compression, so every buffer the budget allows ends
    up filled and waiting; past that many, buffers add resident memory (the default 256 MiB budget alone would
    put the process far above 256 MiB) and no throughput.
    """
    size, count = read_buffer_layout(chunk_size, memory_budget)
    return size, max(1, min(count, 2 * max(1, workers) + max(1, read_batch)))


def backup_disks(session, disks, workers=4, memory_budget=DEFAULT_MEMORY_BUDGET, cancel=None, progress=None,
                 vm=None, run_id=None, buffer_pool=None, read_batch=4):
    """Back up ``disks`` (BackupDisk list) into ``session`` in parallel; return {disk key: DiskBackupResult}.

    ``workers``: threads hashing and storing chunks, shared by all disks. ``memory_budget``: bytes of chunk
    data in flight (see ``backup_buffer_layout``); ``buffer_pool`` replaces the pool built from it (tests).
    ``progress``: an object with ``add_disk(key, total)`` and ``advance(key, nbytes)`` (progress.RunProgress);
    ``cancel``: a threading.Event that stops the run. ``read_batch``: read requests a reader may pass in one
    ``read_into_many`` call when its source has one (VDDK's async reads: fewer round trips), using only buffers
    free at that moment. Raises the first error (see the module docstring).
    """
    disks = list(disks)
    try:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if len({disk.key for disk in disks}) != len(disks):
            raise ValueError("disk keys must be unique")
        for disk in disks:
            _check_disk(disk)
        chunk_sizes = {disk.plan.chunk_size for disk in disks}
        if len(chunk_sizes) > 1:
            raise ValueError("every disk of one backup uses the repository's chunk size")
        chunk_size = chunk_sizes.pop() if chunk_sizes else 1
        if buffer_pool is None:
            buffer_pool = BufferPool(*backup_buffer_layout(chunk_size, memory_budget, workers, read_batch))
        elif buffer_pool.size < chunk_size:
            raise ValueError("the buffer pool's buffers are smaller than one chunk")
    except BaseException:
        for disk in disks:             # the sources are ours from the call on
            try:
                disk.source.close()
            except Exception as exc:
                log.warning("Closing the source of disk %s failed: %s", disk.key, exc)
        raise
    return _BackupRun(session, disks, workers, buffer_pool, cancel, progress, vm, run_id, max(1, read_batch)).run()
