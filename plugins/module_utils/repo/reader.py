# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Random access by byte offset to one disk of one restore point."""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..errors import ConfigurationError, CorruptionError, NotFoundInBackendError
from .format import ZERO_SENTINEL


class DiskReader:
    """Reads a disk image of ``index.capacity`` bytes; zero chunks read as zeros; every chunk read is verified.

    Thread-safety: ``read``/``readinto`` may be called from several threads at once (chunk fetch and decode
    happen outside the cache lock; two threads may fetch the same chunk, which is harmless). A restore with
    several workers usually gives each worker its own extent range. Memory: ``cache_chunks`` decoded chunks.
    """

    def __init__(self, repository, index, description, cache_chunks=2):
        self.repository = repository
        self.index = index
        self.capacity = index.capacity
        self.chunk_size = index.chunk_size
        self.description = description
        self._cache = OrderedDict()
        self._cache_size = max(0, cache_chunks)
        self._mutex = threading.Lock()

    def chunk(self, number):
        """The plaintext of chunk ``number`` (None for a zero chunk)."""
        digest = self.index.get(number)
        if digest == ZERO_SENTINEL:
            return None
        with self._mutex:
            data = self._cache.get(number)
            if data is not None:
                self._cache.move_to_end(number)
                return data
        storage_id = self.repository.codec.storage_id(digest)
        try:
            data = self.repository.read_chunk(storage_id)
        except NotFoundInBackendError:
            raise CorruptionError("Chunk %s of %s (bytes %d-%d) is missing from the repository." % (
                storage_id.hex(), self.description, number * self.chunk_size, number * self.chunk_size + self.index.chunk_length(number)),
                object_name="chunks/%s" % storage_id.hex()) from None
        except CorruptionError as exc:
            raise CorruptionError("%s It holds bytes %d-%d of %s." % (
                exc.message, number * self.chunk_size, number * self.chunk_size + self.index.chunk_length(number), self.description),
                object_name=exc.object_name) from None
        if len(data) != self.index.chunk_length(number):
            raise CorruptionError("Chunk %s of %s has %d bytes, expected %d." % (
                storage_id.hex(), self.description, len(data), self.index.chunk_length(number)), object_name="chunks/%s" % storage_id.hex())
        if self._cache_size:
            with self._mutex:
                self._cache[number] = data
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return data

    def readinto(self, offset, buffer):
        """Fill ``buffer`` from byte ``offset``; returns the byte count (short only at the end of the disk)."""
        view = memoryview(buffer).cast("B")
        if offset < 0:
            raise ConfigurationError("A read offset must be >= 0, got %d." % offset)
        length = max(0, min(len(view), self.capacity - offset))
        done = 0
        while done < length:
            position = offset + done
            number, within = divmod(position, self.chunk_size)
            step = min(length - done, self.index.chunk_length(number) - within)
            data = self.chunk(number)
            if data is None:
                view[done:done + step] = bytes(step) if step < 65536 else memoryview(bytearray(step))
            else:
                view[done:done + step] = memoryview(data)[within:within + step]
            done += step
        return length

    def read(self, offset, length):
        """``length`` bytes from ``offset`` (fewer at the end of the disk)."""
        buffer = bytearray(max(0, min(length, self.capacity - offset)))
        self.readinto(offset, buffer)
        return bytes(buffer)

    def close(self):
        with self._mutex:
            self._cache.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
