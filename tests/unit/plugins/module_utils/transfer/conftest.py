"""In-memory fakes of the layers below transfer/ (repository session, DiskIndex) and instrumented endpoints.

Test modules get them through the ``fakes`` fixture (this module), since test directories are not packages.
Nothing from the engine is imported at module level: pytest loads this file before pytest-ansible installs
its collection finder (when a test file of this directory is named on the command line), and a package
imported before that finder confuses it.
"""
import hashlib
import os
import random
import sys
import threading

import pytest


def _blockhash():
    from ansible_collections.blockvault.vsphere.plugins.module_utils import blockhash
    return blockhash


ZERO_SENTINEL = bytes(32)
KIB = 1024
CHUNK = 64 * KIB


@pytest.fixture
def fakes():
    return sys.modules[__name__]


class FakeDiskIndex:
    """The repository's DiskIndex contract, in memory; NOT thread-safe on purpose: overlapping calls raise,
    which proves the pipeline serializes its calls on one index."""

    def __init__(self, capacity, chunk_size):
        self.capacity = capacity
        self.chunk_size = chunk_size
        self.count = _blockhash().block_count(capacity, chunk_size)
        self._digests = [None] * self.count
        self._busy = threading.Lock()

    def _enter(self):
        if not self._busy.acquire(blocking=False):
            raise AssertionError("DiskIndex used by two threads at once")

    def set(self, i, digest):
        self._enter()
        try:
            if len(digest) != 32 or digest == ZERO_SENTINEL:
                raise ValueError("bad digest")
            self._digests[i] = bytes(digest)
        finally:
            self._busy.release()

    def set_zero(self, i):
        self._enter()
        try:
            self._digests[i] = ZERO_SENTINEL
        finally:
            self._busy.release()

    def digest(self, i):
        return self._digests[i]

    def missing(self):
        return [i for i, d in enumerate(self._digests) if d is None]

    def blocksum(self):
        if self.missing():
            raise ValueError("index incomplete: %s" % self.missing()[:8])
        parts = []
        for i, digest in enumerate(self._digests):
            if digest == ZERO_SENTINEL:
                digest = _blockhash().zero_block_digest(_blockhash().block_length(i, self.capacity, self.chunk_size))
            parts.append(digest)
        return hashlib.sha256(b"".join(parts)).hexdigest()


def index_of(data, chunk_size):
    """A complete FakeDiskIndex of ``data`` (the reference a backup must produce)."""
    index = FakeDiskIndex(len(data), chunk_size)
    for i in range(index.count):
        chunk = data[i * chunk_size:(i + 1) * chunk_size]
        if chunk == bytes(len(chunk)):
            index.set_zero(i)
        else:
            index.set(i, hashlib.sha256(chunk).digest())
    return index


class FakeSession:
    """A backup session: chunks by digest. ``put_chunk`` stores a copy, returns a fake stored size (len + 16),
    or 0 when present; ``fail_put_at`` makes the N-th put (1-based) raise ``fail_with``; ``gate`` (an Event)
    makes every put wait for it."""

    def __init__(self, present=(), fail_put_at=None, fail_with=None, gate=None, fail_after=None):
        self.fail_after = fail_after
        self.chunks = {bytes(d): None for d in present}
        self.lock = threading.Lock()
        self.puts = []
        self.has_calls = 0
        self.fail_put_at = fail_put_at
        self.fail_with = fail_with
        self.gate = gate
        self.data_types = set()

    def has_chunk(self, digest):
        with self.lock:
            self.has_calls += 1
            return digest in self.chunks

    def put_chunk(self, digest, data):
        if self.gate is not None and not self.gate.wait(30):
            raise AssertionError("test gate never opened")
        with self.lock:
            self.puts.append(digest)
            self.data_types.add(type(data).__name__)
            failing = self.fail_put_at is not None and len(self.puts) == self.fail_put_at
        if failing:
            if self.fail_after is not None and not self.fail_after.wait(30):
                raise AssertionError("fail_after never happened")
            raise self.fail_with
        with self.lock:
            if digest in self.chunks:
                return 0
            plain = bytes(data)
            if hashlib.sha256(plain).digest() != digest:
                raise AssertionError("put_chunk got data that does not match its digest")
            self.chunks[digest] = plain
            return len(plain) + 16

    def read_chunk(self, digest):
        return self.chunks[digest]


class CountingSource:
    """Wraps a source: records every read (offset, length), the threads that used it, closes; can fail or block.

    ``fail_read_at``: the N-th read (1-based) raises ``fail_with``. ``gate``: reads wait for this Event.
    """

    def __init__(self, inner, fail_read_at=None, fail_with=None, gate=None, fail_after=None, barrier=None):
        self.inner = inner
        self.fail_after = fail_after
        self.barrier = barrier
        self.capacity = inner.capacity
        self.reads = []
        self.threads = set()
        self.closed = 0
        self.fail_read_at = fail_read_at
        self.fail_with = fail_with
        self.gate = gate
        self.reading = threading.Event()

    def read_into(self, offset, buffer):
        self.threads.add(threading.current_thread().name)
        self.reads.append((offset, len(memoryview(buffer))))
        self.reading.set()
        if self.barrier is not None and len(self.reads) == 1:
            self.barrier.wait(30)          # every source of the barrier is being read at the same time
        if self.gate is not None and not self.gate.wait(30):
            raise AssertionError("test gate never opened")
        if self.fail_read_at is not None and len(self.reads) == self.fail_read_at:
            if self.fail_after is not None and not self.fail_after.wait(30):
                raise AssertionError("fail_after never happened")
            raise self.fail_with
        return self.inner.read_into(offset, buffer)

    def allocated_extents(self, start=0, length=None, chunk_size=65536):
        return self.inner.allocated_extents(start, length, chunk_size)

    def close(self):
        self.closed += 1
        self.inner.close()

    @property
    def bytes_read(self):
        return sum(length for offset, length in self.reads)


class BatchingSource(CountingSource):
    """A CountingSource with VDDK's ``read_into_many``: records each call's requests as one batch."""

    def __init__(self, inner, fail_batch_at=None, fail_with=None):
        super().__init__(inner)
        self.batches = []
        self.fail_batch_at = fail_batch_at
        self.batch_error = fail_with

    def read_into_many(self, requests):
        requests = list(requests)
        self.batches.append([(offset, len(memoryview(buffer))) for offset, buffer in requests])
        if self.fail_batch_at is not None and len(self.batches) == self.fail_batch_at:
            raise self.batch_error
        for offset, buffer in requests:
            self.inner.read_into(offset, buffer)


class CountingTarget:
    """Wraps a target: every clone is a CountingTarget too; writes and zeros of all clones land in shared logs."""

    def __init__(self, inner, log=None, fail_write_at=None, fail_with=None, clonable=True):
        self.inner = inner
        self.capacity = inner.capacity
        self.known_zeroed = inner.known_zeroed
        self.log = log if log is not None else {"writes": [], "zeros": [], "reads": [], "clones": [], "lock": threading.Lock()}
        self.fail_write_at = fail_write_at
        self.fail_with = fail_with
        self.closed = 0
        self.flushed = 0
        if clonable:
            self.clone = self._clone

    def _record(self, kind, item):
        with self.log["lock"]:
            self.log[kind].append(item)
            return len(self.log[kind])

    def write(self, offset, data):
        n = self._record("writes", (offset, len(memoryview(data))))
        if self.fail_write_at is not None and n == self.fail_write_at:
            raise self.fail_with
        return self.inner.write(offset, data)

    def zero(self, offset, length):
        self._record("zeros", (offset, length))
        return self.inner.zero(offset, length)

    def read_into(self, offset, buffer):
        self._record("reads", (offset, len(memoryview(buffer))))
        return self.inner.read_into(offset, buffer)

    def flush(self):
        self.flushed += 1
        self.inner.flush()

    def _clone(self):
        clone = CountingTarget(self.inner.clone(), self.log, self.fail_write_at, self.fail_with)
        self._record("clones", clone)
        return clone

    def close(self):
        self.closed += 1
        self.inner.close()

    @property
    def writes(self):
        return sorted(self.log["writes"])

    @property
    def zeros(self):
        return sorted(self.log["zeros"])


def instrumented_pool(size, count):
    """A BufferPool that checks the bound on every acquire and signals (``blocked``) when a reader had to wait."""
    from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.buffers import BufferPool

    class InstrumentedPool(BufferPool):
        def __init__(self):
            super().__init__(size, count, poll_interval=0.01)
            self.blocked = threading.Event()
            self.acquired = 0

        def acquire(self, cancelled=None):
            buf = super().acquire(cancelled)
            if buf is not None:
                self.acquired += 1
                if self.in_use > self.count:
                    raise AssertionError("more buffers in flight than the pool holds")
            return buf

        def try_acquire(self):
            buf = super().try_acquire()
            if buf is not None:
                self.acquired += 1
                if self.in_use > self.count:
                    raise AssertionError("more buffers in flight than the pool holds")
            return buf

        def _waiting(self):
            self.blocked.set()

    return InstrumentedPool()


def make_data(pattern, chunk_size=CHUNK, tail=0, seed=1):
    """Disk bytes from a pattern, one letter per chunk: r = unique random, z = zeros, d = one repeated random
    chunk (dedup), h = half zeros half random. ``tail``: a short last chunk of random bytes."""
    rnd = _Random(seed)
    dup = rnd.bytes(chunk_size)
    parts = []
    for kind in pattern:
        if kind == "r":
            parts.append(rnd.bytes(chunk_size))
        elif kind == "z":
            parts.append(bytes(chunk_size))
        elif kind == "d":
            parts.append(dup)
        elif kind == "h":
            parts.append(bytes(chunk_size // 2) + rnd.bytes(chunk_size - chunk_size // 2))
        else:
            raise ValueError(kind)
    if tail:
        parts.append(rnd.bytes(tail))
    return b"".join(parts)


class _Random:
    def __init__(self, seed):
        self._rng = random.Random(seed)

    def bytes(self, n):
        return self._rng.randbytes(n)


def write_sparse(path, data, chunk_size=CHUNK):
    """Write ``data`` to ``path`` leaving holes where whole chunks are zero."""
    with open(path, "wb") as handle:
        handle.truncate(len(data))
        for offset in range(0, len(data), chunk_size):
            chunk = data[offset:offset + chunk_size]
            if chunk != bytes(len(chunk)):
                handle.seek(offset)
                handle.write(chunk)


def data_extents(path):
    """SEEK_DATA/SEEK_HOLE ranges of a file, [(offset, length)]."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        out, offset = [], 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, end - start))
            offset = end
        return out
    finally:
        os.close(fd)
