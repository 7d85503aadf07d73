# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bounded pool of reusable byte buffers: the memory bound of the pipelines.

The pipelines never allocate per read: a reader takes a preallocated bytearray from the pool, reads into it
(``read_into`` on a memoryview slice), hands memoryview slices of it (one per chunk) to the workers, and the
buffer goes back to the pool when the last of those chunks is processed. At most ``count`` buffers of
``size`` bytes exist, so the data in flight is bounded by ``size * count`` whatever the disk sizes; a
reader that finds the pool empty waits (back-pressure), and wakes up to stop when the run is cancelled.
"""

from __future__ import annotations

import threading

from ..errors import ConfigurationError

__all__ = ["BufferPool", "BufferRef", "DEFAULT_MEMORY_BUDGET", "read_buffer_layout"]

DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024
_MAX_READ = 8 * 1024 * 1024


def read_buffer_layout(chunk_size, memory_budget, max_read=_MAX_READ):
    """(buffer size, buffer count) for a memory budget: reads of up to max(8 MiB, chunk_size), at least one chunk,
    and at least two buffers when the budget allows (one being read while the other is hashed)."""
    if memory_budget < chunk_size:
        raise ConfigurationError("The memory budget of %d bytes is smaller than one chunk (%d bytes); set memory_budget "
                                 "to at least %d bytes (16 times that is a good minimum)." % (memory_budget, chunk_size,
                                                                                              chunk_size))
    size = max(chunk_size, min(max(max_read, chunk_size), memory_budget // 2) // chunk_size * chunk_size)
    return size, memory_budget // size


class BufferPool:
    """At most ``count`` bytearrays of ``size`` bytes, allocated on first use and reused.

    Contract: ``acquire`` returns a buffer or None when ``cancelled()`` became true while it waited;
    every acquired buffer is given back once with ``release``. Thread-safe. ``in_use`` and ``peak_in_use``
    are exact (they are updated under the pool's lock) and let tests check the bound.
    """

    def __init__(self, size, count, poll_interval=0.1):
        if size <= 0 or count <= 0:
            raise ValueError("a buffer pool needs size > 0 and count > 0")
        self.size = size
        self.count = count
        self.in_use = 0
        self.peak_in_use = 0
        self._free = []
        self._poll = poll_interval
        self._cond = threading.Condition()

    def acquire(self, cancelled=None):
        with self._cond:
            while True:
                if cancelled is not None and cancelled():
                    return None
                if self.in_use < self.count:
                    break
                self._waiting()
                self._cond.wait(self._poll)     # poll too: an external cancel event does not notify us
            self.in_use += 1
            self.peak_in_use = max(self.peak_in_use, self.in_use)
            buf = self._free.pop() if self._free else None
        return buf if buf is not None else bytearray(self.size)

    def try_acquire(self):
        """A buffer if one is free right now, else None (never waits)."""
        with self._cond:
            if self.in_use >= self.count:
                return None
            self.in_use += 1
            self.peak_in_use = max(self.peak_in_use, self.in_use)
            buf = self._free.pop() if self._free else None
        return buf if buf is not None else bytearray(self.size)

    def release(self, buf):
        with self._cond:
            self.in_use -= 1
            self._free.append(buf)
            self._cond.notify()

    def wake(self):
        """Wake every waiter so it re-checks its cancel condition."""
        with self._cond:
            self._cond.notify_all()

    def _waiting(self):
        """Called (under the lock) each time an acquire has to wait: a hook for instrumentation."""


class BufferRef:
    """Counts the chunks of one buffer still being processed; the last ``done()`` returns it to its pool.

    Thread-safe: workers finish chunks of one buffer concurrently.
    """

    __slots__ = ("_pool", "_buf", "_pending", "_lock")

    def __init__(self, pool, buf, pending):
        self._pool = pool
        self._buf = buf
        self._pending = pending
        self._lock = threading.Lock()

    def done(self):
        with self._lock:
            self._pending -= 1
            last = self._pending == 0
        if last:
            self._pool.release(self._buf)
            self._buf = None
