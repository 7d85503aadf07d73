# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The moving parts of a copy between repositories: the rate limit and the chunk copying workers (ops.copy)."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time

from ..errors import ConfigurationError, CorruptionError, NotFoundInBackendError
from ..repo.format import chunk_name
from ..transfer.executor import Closed, Executor

__all__ = ["RateLimiter", "CopyCounters", "copy_chunks"]

MB = 1000 * 1000


class RateLimiter:
    """A token bucket of ``mbps`` megabytes (10^6 bytes) per second, for the puts to the destination.

    ``wait()`` before a put blocks while the bucket is in debt; ``consume(n)`` after it takes the bytes the put
    sent (known only once the chunk is encoded), so the average rate is the limit whatever the chunk sizes. The
    bucket holds at most one second of tokens: an idle moment does not allow a burst larger than that.
    ``mbps=None`` limits nothing. Thread-safe (one lock; the sleeping happens outside it).
    """

    def __init__(self, mbps=None, clock=time.monotonic, sleep=time.sleep):
        if mbps is not None and not mbps > 0:
            raise ConfigurationError("rate_limit_mbps must be more than 0 (MB/s), got %r; leave it unset for no limit." % (mbps,))
        self.rate = mbps * MB if mbps else None
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.rate or 0.0
        self._stamp = clock()

    def _refill(self):
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait(self):
        if self.rate is None:
            return
        while True:
            with self._lock:
                self._refill()
                debt = -self._tokens
            if debt <= 0:
                return
            self._sleep(debt / self.rate)

    def consume(self, nbytes):
        if self.rate is None:
            return
        with self._lock:
            self._refill()
            self._tokens -= nbytes


class CopyCounters:
    """What the workers did: chunks and bytes read from the source, chunks and bytes stored in the destination.
    Thread-safe (one lock)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.chunks_copied = 0
        self.bytes_read = 0
        self.bytes_sent = 0

    def add(self, plain, stored):
        with self._lock:
            self.bytes_read += plain
            if stored:
                self.chunks_copied += 1
                self.bytes_sent += stored


class _ChunkCopier:
    """A worker's handler: fetch one chunk from the source, check it against its digest, store it in the destination
    session (sealed with the destination's keys), after the rate limit. One chunk in memory at a time."""

    def __init__(self, job):
        self.job = job

    def handle(self, item):
        digest, where = item
        job = self.job
        data = fetch_verified(job.source, digest, where)
        job.limiter.wait()
        stored = job.session.put_chunk(digest, data)
        job.limiter.consume(stored)
        job.counters.add(len(data), stored)
        job.progress.advance(job.progress_key, len(data))

    def close(self):
        pass


def fetch_verified(source, digest, where):
    """The plaintext of the source chunk ``digest``, checked against it; CorruptionError naming the source object and
    ``where`` (the restore point and disk that use it) when it is missing or damaged."""
    storage_id = source.codec.storage_id(digest)
    name = chunk_name(storage_id)
    try:
        data = source.read_chunk(storage_id)
    except NotFoundInBackendError:
        raise CorruptionError("Chunk %s of %s is missing from the source repository %s: nothing of this restore point "
                              "was committed to the destination." % (name, where, source.location), object_name=name,
                              hint="Run backup_validate on the source; a new backup of the VM stores the chunk again.") from None
    except CorruptionError as exc:
        raise CorruptionError("%s It belongs to %s in the source repository %s; it was not copied." % (
            exc.message, where, source.location), object_name=name,
            hint="Run backup_validate on the source; a new backup of the VM stores the chunk again.") from None
    if hashlib.sha256(data).digest() != digest:
        raise CorruptionError("Chunk %s of %s in the source repository %s does not match its SHA-256: it is damaged and "
                              "was not copied." % (name, where, source.location), object_name=name,
                              hint="Run backup_validate on the source; a new backup of the VM stores the chunk again.")
    return data


@dataclasses.dataclass(frozen=True)
class CopyJob:
    """One restore point's chunk copy: the source Repository, the destination BackupSession, the RateLimiter, the
    CopyCounters, the run's progress and the key its bytes are counted under. Shared by the workers (each part is
    thread-safe)."""

    source: object
    session: object
    limiter: RateLimiter
    counters: CopyCounters
    progress: object
    progress_key: str


def copy_chunks(job, items, workers):
    """Copy every (digest, where) of the iterable ``items`` with ``workers`` threads on one Executor; the calling
    thread feeds a queue of ``workers`` digests, so at most one chunk per worker is in memory. Raises the first
    error (the executor stops the others after their current chunk)."""
    with Executor(queue_size=max(1, workers), name="bv-copy") as executor:
        for _number in range(max(1, workers)):
            executor.add_worker(lambda: _ChunkCopier(job))
        try:
            for item in items:
                executor.submit(item)
        except Closed:
            pass    # a worker failed: leaving the block raises its error
