# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup pipeline: every disk of a VM read in parallel into one repository session.

Shape (ovirt-imageio's executor, adapted to hashing and deduplication), on one ``executor.Executor``:

- one **reader thread per disk** (a producer of the executor), using that disk's own source handle (VDDK: one handle per thread). It first
  records the chunks that need no read (ZERO -> zero sentinel, CARRY -> the previous index's digest), then
  walks the plan's read requests: takes a buffer from the shared BufferPool (waits when none is free), reads
  up to one buffer (8 MiB by default) with ``read_into`` straight into it, and submits one ChunkTask per
  chunk, a memoryview slice of the buffer (zero copy). A source with ``read_into_many`` (VDDK's pipelined async reads)
  gets up to ``read_batch`` requests per call, into buffers that are free at that moment;
- **the executor's ``workers`` threads**, shared by all disks, process chunk tasks from all disks as they come, overlapping
  with the reads: zero check (``blockhash.is_zero``, a memcmp), SHA-256,
  ``session.has_chunk``, ``session.put_chunk``
  (which compresses, encrypts and stores), then records the digest in the disk's new index. A digest being
  stored by another worker of this run is not stored twice. The buffer returns to the pool when its last
  chunk is done.

Memory bound: the BufferPool holds at most ``memory_budget`` bytes of chunk data, and no more buffers than the
workers can use (``backup_buffer_layout``: readers outrun hashing, so more buffers would only sit filled); the
work queue only references those buffers (it has room for every chunk they hold, so it never waits first), so
data in flight never exceeds the budget whatever the number and size of disks. Outside it: ``workers`` times
what ``put_chunk`` needs to compress and encrypt one chunk, and the indexes themselves (32 bytes per chunk).

Contract of the session (``repo``'s backup session): ``has_chunk(digest)`` and ``put_chunk(digest, data)`` are
thread-safe; ``put_chunk`` receives a read-only-by-contract memoryview that is valid only during the call and
returns the stored bytes (0 when already present). Indexes are DiskIndex objects (``set``, ``set_zero``,
``digest``, ``blocksum``); the pipeline serializes its calls on each index with a per-disk lock, so they need
not be thread-safe. The caller adds the filled indexes to the session and commits (ops).

Failure and cancellation (the executor's contract): the first exception in any reader or worker is recorded and
closes the work queue, readers stop before their next read (or while waiting for a buffer), workers stop after
their chunk in hand, the chunks left queued give their buffers back, every source is closed (by its reader, in
its thread) and the first error is raised with the disk, VM and run id filled in
(``errors.with_context``; a non-engine exception is wrapped in TransferError, the original as ``__cause__``).
Setting the ``cancel`` Event passed in stops the run the same way and raises CancelledError, unless every chunk
was already done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time

from ..blockhash import is_zero
from ..errors import BlockvaultError, CancelledError, TransferError
from .buffers import BufferPool, BufferRef, read_buffer_layout
from .executor import Closed, Executor
from .options import TransferOptions
from .plan import CARRY, ZERO, plan_disk

__all__ = ["BackupDisk", "ChunkTask", "DiskBackupResult", "backup_buffer_layout", "backup_disks", "plan_backup", "wrap_error"]

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
    ``index`` is the new, empty DiskIndex to fill; ``previous`` the previous restore point's index (CARRY).
    ``done``: an optional bitmap (bytearray, one bit per chunk, bit ``i % 8`` of byte ``i // 8``) in which the
    pipeline sets a read chunk's bit once its digest is in ``index`` and ``put_chunk`` (or the session's known
    set) has it: a checkpoint recorder reads it to persist progress (repo/checkpoint.py)."""

    key: str
    source: object
    plan: object
    index: object
    previous: object = None
    done: bytearray = None


@dataclasses.dataclass
class DiskBackupResult:
    """Figures of one disk. ``bytes_new``: the size of the chunks the repository did not hold yet, before
    compression; ``bytes_stored``: what they took in the repository (compressed, encrypted)."""

    key: str
    mode: str
    bytes_read: int = 0
    bytes_new: int = 0
    bytes_stored: int = 0
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


@dataclasses.dataclass(frozen=True, slots=True)
class ChunkTask:
    """One chunk read into a pool buffer, for a worker to hash and store: ``view`` is its slice of the buffer
    (valid until ``ref.done()``, which gives the buffer back once all its chunks are done)."""

    disk: _DiskState
    index: int
    view: memoryview
    ref: BufferRef


class _BackupRun:
    """One call of backup_disks: the per-disk readers (producers of an Executor) and the chunk store step its
    workers run. Used once, from the calling thread; the workers share this object as their handler (they need
    no handle of their own: the session is thread-safe), so ``handle`` and ``close`` are thread-safe."""

    def __init__(self, session, disks, options, pool, read_batch):
        self.session = session
        self.read_batch = read_batch
        self.states = [_DiskState(disk) for disk in disks]
        self.workers = options.workers
        self.pool = pool
        self.progress = options.progress
        self.vm = options.vm
        self.run_id = options.run_id
        chunk_size = self.states[0].plan.chunk_size if self.states else pool.size
        # room for every chunk the pool's buffers can hold: the pool bounds memory, the queue never waits first
        self.executor = Executor(cancel=options.cancel, queue_size=pool.count * max(1, pool.size // chunk_size),
                                 cancelled_error=self.cancelled_error, discard=self.drop, on_close=self.wake_readers,
                                 name="bv-backup-worker")
        self._inflight = set()
        self._inflight_lock = threading.Lock()

    def wake_readers(self):
        self.pool.wake()                  # readers waiting for a buffer re-check executor.cancelled()

    def cancelled_error(self):
        incomplete = [s.key for s in self.states if s.chunks_done != s.plan.chunks_read]
        return CancelledError("The backup was cancelled on request before disks %s were read completely."
                              % ", ".join(str(k) for k in incomplete), phase="transfer", vm=self.vm, run_id=self.run_id)

    def context(self, exc, action, state):
        return wrap_error(exc, action, state.key, self.vm, self.run_id)

    # -- readers (producers) ---------------------------------------------------------------------------

    def read_disk(self, state):
        """The reader of one disk, in its own thread: ZERO/CARRY chunks, then the reads, each chunk submitted."""
        source = state.disk.source
        read_many = getattr(source, "read_into_many", None) if self.read_batch > 1 else None
        try:
            state.started = time.monotonic()
            self.record_unread(state)
            requests = state.plan.read_requests(self.pool.size)
            pending = next(requests, None)
            while pending is not None:
                self.executor.check()
                buf = self.pool.acquire(self.executor.cancelled)
                if buf is None:
                    continue              # stopping: check() raises Closed
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
                self.read_batch_into(state, source, read_many, batch)
        except Closed:
            raise
        except BaseException as exc:     # a bug or an index error: still stop the run cleanly
            raise self.context(exc, "Reading", state)
        finally:
            self.close_source(state)
            with state.lock:
                state.finished = max(state.finished or 0.0, time.monotonic())
                state.reader_done = True
                done = state.done_now()
            if done:
                self.report_done(state)

    def report_done(self, state):
        if not self.executor.cancelled():
            self.progress.set_disk_phase(state.key, "done")

    def read_batch_into(self, state, source, read_many, batch):
        """Read the (request, buffer) pairs of ``batch`` and submit their chunks."""
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
            raise self.context(exc, "Reading %d bytes at offset %d" % (end - start, start), state)
        chunk_size = state.plan.chunk_size
        submit = self.executor.submit
        for ((offset, length), buf), view in zip(batch, views):
            chunks = (length + chunk_size - 1) // chunk_size
            with state.lock:
                state.result.bytes_read += length
            ref = BufferRef(self.pool, buf, chunks)
            first = offset // chunk_size
            j = 0
            try:
                for j in range(chunks):
                    submit(ChunkTask(state, first + j, view[j * chunk_size:min((j + 1) * chunk_size, length)], ref))
            except Closed:
                for never_queued in range(j, chunks):     # the chunks never queued still hold the buffer
                    ref.done()
                raise

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

    # -- workers: the handler of every worker thread ---------------------------------------------------

    def handle(self, task):
        try:
            self.store(task)
        except BaseException as exc:
            raise self.context(exc, "Storing chunk %d" % task.index, task.disk)
        finally:
            task.ref.done()

    def close(self):
        """Nothing to close: the workers share the session, which the caller owns."""

    def drop(self, task):
        task.ref.done()                   # a task no worker will store: its buffer goes back to the pool

    def store(self, task):
        state, index, view = task.disk, task.index, task.view
        length = view.nbytes
        result = state.result
        done = state.disk.done
        if is_zero(view):
            with state.lock:
                state.disk.index.set_zero(index)
                result.chunks_zero += 1
                result.chunks_read += 1
                state.chunks_done += 1
                if done is not None:
                    done[index >> 3] |= 1 << (index & 7)
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
                    result.bytes_new += length
                    result.bytes_stored += stored
                else:
                    result.chunks_deduped += 1
                state.chunks_done += 1
                if done is not None:      # after the digest: a recorder copying the bitmap finds it in the index
                    done[index >> 3] |= 1 << (index & 7)
        with state.lock:
            state.finished = time.monotonic()
            done = state.done_now()
        self.progress.advance(state.key, length)
        if done:
            self.report_done(state)

    # -- the run ---------------------------------------------------------------------------------------

    def run(self):
        for state in self.states:
            self.progress.add_disk(state.key, state.plan.bytes_to_read)
        try:
            with self.executor as executor:
                for number in range(self.workers):
                    executor.add_worker(self.worker_handler)
                for state in self.states:
                    executor.add_producer(self.read_disk, state, name="bv-backup-read-%s" % state.key)
        finally:
            for state in self.states:     # readers that never ran still own an open source
                self.close_source(state)
        results = {}
        for state in self.states:
            result = state.result
            result.duration = max(0.0, (state.finished or state.started) - state.started)
            result.blocksum = state.disk.index.blocksum()
            results[state.key] = result
        return results

    def worker_handler(self):
        return self


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


def backup_disks(session, disks, options=TransferOptions(), buffer_pool=None, read_batch=4):
    """Back up ``disks`` (BackupDisk list) into ``session`` in parallel; return {disk key: DiskBackupResult}.

    ``options`` (TransferOptions): ``workers`` threads hashing and storing chunks, shared by all disks;
    ``memory_budget`` bytes of chunk data in flight (see ``backup_buffer_layout``); ``progress`` gets
    ``add_disk(key, total)``, ``advance(key, nbytes)`` and the disks' "done" phase; ``cancel`` (an Event) stops
    the run; ``vm`` and ``run_id`` go into every error. ``buffer_pool`` replaces the pool built from the budget
    (tests). ``read_batch``: read requests a reader may pass in one ``read_into_many`` call when its source has
    one (VDDK's async reads: fewer round trips), using only buffers free at that moment. Raises the first error
    (see the module docstring).
    """
    disks = list(disks)
    workers = options.workers
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
            buffer_pool = BufferPool(*backup_buffer_layout(chunk_size, options.memory_budget, workers, read_batch))
        elif buffer_pool.size < chunk_size:
            raise ValueError("the buffer pool's buffers are smaller than one chunk")
    except BaseException:
        for disk in disks:             # the sources are ours from the call on
            try:
                disk.source.close()
            except Exception as exc:
                log.warning("Closing the source of disk %s failed: %s", disk.key, exc)
        raise
    return _BackupRun(session, disks, options, buffer_pool, max(1, read_batch)).run()
