# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The block-based disk checksum ("blocksum") recorded for every disk of a restore point.

Definition (also in docs/repository-format.md): split the disk image of ``capacity`` bytes
into blocks of ``block_size`` bytes (the repository's chunk size; the last block may be
shorter). ``d_i = SHA-256(block_i)``. The disk's checksum is ``SHA-256(d_0 || d_1 || ...)``,
written as lowercase hex. An all-zero block's digest depends only on its length, so it is
computed once: holes and zero extents cost nothing, blocks hash in parallel, and the value
can be recomputed from a restored raw image with ``tools/blocksum.py IMAGE BLOCK_SIZE`` (a
standalone script), ``transfer.file_extents.file_blocksum`` or the ten lines of any language that follow the
definition. Pure computation, no file I/O: this module sits below the transfer layer.
"""

from __future__ import annotations

import functools
import hashlib

DIGEST_SIZE = 32


@functools.lru_cache(maxsize=8)
def zero_block_digest(length):
    """SHA-256 of ``length`` zero bytes (cached: the sizes used are the block size and one tail)."""
    return hashlib.sha256(bytes(length)).digest()


@functools.lru_cache(maxsize=4)
def _zeros(length):
    return bytes(length)


def is_zero(buf):
    """True when ``buf`` (bytes-like) holds only zero bytes.

    ``bytes.startswith`` compares against a cached zero buffer without copying ``buf`` (a memcmp at memory speed);
    comparing two memoryviews would go item by item, about 40 times slower and holding the GIL, which matters on
    thick disks where every allocated chunk is zero.
    """
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return _zeros(view.nbytes).startswith(view)


def block_count(capacity, block_size):
    return (capacity + block_size - 1) // block_size


def block_length(index, capacity, block_size):
    """Length of block ``index`` of a disk of ``capacity`` bytes (the last one may be short)."""
    start = index * block_size
    return min(block_size, capacity - start)


class DiskDigest:
    """Collects per-block digests, in any order and from any thread, and combines them.

    Contract: every block index in ``range(count)`` gets exactly one digest (``set`` or
    ``set_zero``) before ``hexdigest``. Thread-safety: ``set``/``set_zero`` of distinct
    indexes may run concurrently (each writes its own 32-byte slot of a preallocated
    bytearray); ``hexdigest`` must run after all setters have finished. Memory: 32 bytes
    per block (8 MiB for 1 TiB in 4 MiB blocks).
    """

    def __init__(self, capacity, block_size):
        if block_size <= 0 or capacity < 0:
            raise ValueError("capacity must be >= 0 and block_size > 0")
        self.capacity = capacity
        self.block_size = block_size
        self.count = block_count(capacity, block_size)
        self._digests = bytearray(self.count * DIGEST_SIZE)
        self._filled = bytearray(self.count)

    def set(self, index, digest):
        if len(digest) != DIGEST_SIZE:
            raise ValueError("a block digest is 32 bytes")
        self._digests[index * DIGEST_SIZE:(index + 1) * DIGEST_SIZE] = digest
        self._filled[index] = 1

    def set_zero(self, index):
        self.set(index, zero_block_digest(block_length(index, self.capacity, self.block_size)))

    def set_data(self, index, buf):
        """Hash ``buf`` (the whole block) and record it; zero blocks use the cached digest."""
        if is_zero(buf):
            self.set_zero(index)
        else:
            self.set(index, hashlib.sha256(buf).digest())

    def missing(self):
        """Indexes that have no digest yet (for error messages)."""
        return [i for i, filled in enumerate(self._filled) if not filled]

    def hexdigest(self):
        if not all(self._filled):
            raise ValueError("blocks %s have no digest" % self.missing()[:8])
        return hashlib.sha256(self._digests).hexdigest()
