# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the nbdkit plugin serves: one disk of one restore point, read through the repository under a shared lock."""

from __future__ import annotations

import contextlib
import threading

from ..errors import ConfigurationError
from ..repo import Repository, open_backend
from ..repo.keyagent import KeyAgentClient
from ..repo.locks import SHARED
from ..repo.settings import RepositorySettings

__all__ = ["DiskService", "MAX_EXTENTS_BYTES"]

#: block status answers cover at most this many bytes: nbdkit asks again for the rest (a short, cheap answer)
MAX_EXTENTS_BYTES = 1 << 30
#: decoded chunks the reader keeps: several clients (or one reading in parallel) mostly hit recent chunks
CACHE_CHUNKS = 16
#: locks a chunk's first reader holds while it fetches and decodes it (by chunk number modulo this)
FETCH_STRIPES = 64


class DiskService:
    """The disk an nbdkit process serves: ``size``, ``readinto`` (verified chunks) and ``extents`` (zero chunks).

    Contract: ``start(spec)`` opens the repository of ``spec["repository"]`` (RepositorySettings fields, secrets
    included), takes a shared lock held until ``close``, and opens the DiskReader of disk ``spec["disk"]`` of
    restore point ``spec["restore_point"]``; every cleanup is on its ExitStack. Thread-safety: ``readinto`` and
    ``extents`` may run on several threads at once (the DiskReader is thread-safe, the index read-only).

    Why the fetch locks: an NBD client reads a chunk (1-4 MiB) as many parallel requests (nbdcopy: 256 KiB each, many
    in flight); without them every request would fetch, verify and decode the same chunk at once (measured: half the
    restore's throughput). The first request of a chunk decodes it; the others wait and find it in the cache.
    """

    def __init__(self, stack, reader):
        self._stack = stack
        self._reader = reader
        self.size = reader.capacity
        self._fetching = [threading.Lock() for _stripe in range(FETCH_STRIPES)]

    @classmethod
    def start(cls, spec):
        settings = RepositorySettings(**spec["repository"])
        with contextlib.ExitStack() as stack:
            agent = KeyAgentClient(settings.key_agent) if settings.key_agent else None
            repository = Repository.open(open_backend(settings), passphrase=settings.passphrase,
                                         key_file=settings.key_file, agent=agent)
            stack.callback(repository.close)
            # the lock before reading the manifest: from here on a GC cannot remove the chunks this export reads
            lock = repository.locks.acquire(SHARED, "export %s of restore point %s" % (spec["name"], spec["restore_point"]))
            stack.callback(lock.release)
            manifest = repository.load_manifest(spec["restore_point"])
            entry = manifest.disk(spec["disk"])
            if entry.key.value != str(spec["disk"]):
                raise ConfigurationError("Restore point %s has no disk with key %s." % (manifest.id, spec["disk"]))
            reader = stack.enter_context(repository.open_disk_reader(manifest.id, entry.key.value, cache_chunks=CACHE_CHUNKS))
            # a GC running beside the export may have condemned chunks of this restore point (a prune removes it):
            # announced, they stay until the export stops (repository format section 9.1, GC beside writers)
            stack.enter_context(repository.hold_chunks(lock, reader.index, "export %s" % spec["name"]))
            service = cls(stack.pop_all(), reader)
        return service

    def readinto(self, offset, buffer):
        """Fill ``buffer`` from ``offset`` (NBD requests stay inside the disk), chunk by chunk."""
        view = memoryview(buffer).cast("B")
        chunk_size, index = self._reader.chunk_size, self._reader.index
        done = 0
        while done < len(view):
            number, within = divmod(offset + done, chunk_size)
            step = min(len(view) - done, index.chunk_length(number) - within)
            with self._fetching[number % FETCH_STRIPES]:
                data = self._reader.chunk(number)
            if data is None:
                view[done:done + step] = bytes(step)
            else:
                view[done:done + step] = memoryview(data)[within:within + step]
            done += step

    def extents(self, offset, count):
        """(start, length, zero) runs from ``offset``, merged, covering at least one byte of [offset, offset+count)."""
        index, chunk = self._reader.index, self._reader.chunk_size
        end = min(self.size, offset + max(1, min(count, MAX_EXTENTS_BYTES)))
        runs = []
        position = offset
        while position < end:
            number = position // chunk
            stop = min(self.size, number * chunk + index.chunk_length(number))
            zero = index.is_zero(number)
            if runs and runs[-1][2] == zero:
                runs[-1][1] = stop - runs[-1][0]
            else:
                runs.append([position, stop - position, zero])
            position = stop
        return [tuple(run) for run in runs]

    def close(self):
        self._stack.close()
