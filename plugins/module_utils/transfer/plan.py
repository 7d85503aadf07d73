# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read plan of one disk for a backup: what to do with each chunk, decided before any data moves.

Inputs: the disk ``capacity``, the repository ``chunk_size``, the ``allocated`` extents (VDDK
QueryAllocatedBlocks, SEEK_DATA of a raw file; ``None`` = unknown, everything counts as allocated),
the ``changed`` extents (``None`` = full backup; a list = CBT's changed areas since the previous restore
point) and, for an incremental, the ``previous`` DiskIndex (checked for the same capacity and chunk size).
Extents are ``(offset, length)`` pairs in bytes or objects with ``start``/``offset`` and ``length``; they
may be unsorted, overlapping, empty or reach past the capacity: they are clipped and merged first.

Output, per chunk ``i`` (bytes ``[i * chunk_size, min((i + 1) * chunk_size, capacity))``, the last one
possibly short):

- full backup: READ when any byte of the chunk is allocated, else ZERO (never read, recorded as the
  zero sentinel);
- incremental: a chunk touched by no changed extent is CARRY (its digest is taken from the previous
  index: it is unchanged). A chunk touched by a changed extent is READ when any byte of it is allocated,
  else ZERO. This is "changed ∩ allocated, aligned outward to whole chunks" with one deliberate
  difference: the test is per chunk, not per byte. A chunk whose changed part is unallocated (trimmed)
  but whose unchanged part holds data is READ, not ZERO: recording it as zero would lose that data.

Consecutive READ chunks are grouped into read requests aligned to chunk boundaries, each at most
``max(8 MiB, chunk_size)`` bytes (or the caller's buffer size): a request never splits a chunk, so every
chunk is hashed from one buffer. The totals (``bytes_to_read``, ``chunks_read``/``_zero``/``_carried``)
let check mode report the work without moving data.

Memory: one byte per chunk (a 1 TiB disk in 1 MiB chunks: 1 MiB), built with slice operations and one
regular-expression scan, so planning a large disk costs milliseconds. A DiskPlan is immutable after
construction and may be read from any thread.
"""

from __future__ import annotations

import re

from ..errors import TransferError

__all__ = ["READ", "ZERO", "CARRY", "DEFAULT_MAX_REQUEST", "DiskPlan", "plan_disk", "normalize_extents", "chunk_indexes"]

READ = "read"
ZERO = "zero"
CARRY = "carry"

#: the largest read request of the reader threads (unless the chunk size is larger)
DEFAULT_MAX_REQUEST = 8 * 1024 * 1024

_CODE = {READ: 1, ZERO: 2, CARRY: 3}
_NAME = {code: name for name, code in _CODE.items()}
_READ_RUNS = re.compile(b"\x01+")


def _extent_pair(extent):
    """(offset, length) of a tuple, a ChangedArea (start, length) or any object with offset/length."""
    if hasattr(extent, "length"):
        start = getattr(extent, "start", None)
        return int(getattr(extent, "offset", 0) if start is None else start), int(extent.length)
    offset, length = extent
    return int(offset), int(length)


def normalize_extents(extents, capacity):
    """Clip to [0, capacity), drop empty ones, sort and merge overlapping or touching ones: [(offset, length)]."""
    ranges = []
    for extent in extents:
        offset, length = _extent_pair(extent)
        lo, hi = max(offset, 0), min(offset + length, capacity)
        if hi > lo:
            ranges.append((lo, hi))
    ranges.sort()
    merged = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi - lo) for lo, hi in merged]


def _chunk_ranges(extents, chunk_size):
    """The chunk index ranges [first, end) that normalized extents touch (outward alignment)."""
    for offset, length in extents:
        yield offset // chunk_size, (offset + length - 1) // chunk_size + 1


def chunk_indexes(extents, capacity, chunk_size):
    """The sorted chunk indexes that byte ``extents`` touch (clipped to the capacity): e.g. the chunks an in-place
    rollback must rewrite, from the areas CBT reports changed since the restore point."""
    touched = set()
    for first, end in _chunk_ranges(normalize_extents(extents, capacity), chunk_size):
        touched.update(range(first, end))
    return sorted(touched)


class DiskPlan:
    """What a backup does with each chunk of one disk; see the module docstring for the rules.

    Contract: ``action(i)`` is READ, ZERO or CARRY for ``0 <= i < count``; ``read_requests()`` yields
    ``(offset, length)`` covering exactly the READ chunks, in order. Immutable; thread-safe to read.
    """

    def __init__(self, capacity, chunk_size, actions, mode):
        self.capacity = capacity
        self.chunk_size = chunk_size
        self.count = len(actions)
        self.mode = mode
        self._actions = bytes(actions)
        self.chunks_read = self._actions.count(_CODE[READ])
        self.chunks_zero = self._actions.count(_CODE[ZERO])
        self.chunks_carried = self._actions.count(_CODE[CARRY])
        self.bytes_to_read = self.chunks_read * chunk_size
        if self.count and self._actions[-1] == _CODE[READ]:
            self.bytes_to_read -= self.count * chunk_size - capacity   # the short last chunk

    def __repr__(self):
        return "DiskPlan(%s, capacity=%d, chunk_size=%d, read=%d, zero=%d, carried=%d)" % (
            self.mode, self.capacity, self.chunk_size, self.chunks_read, self.chunks_zero, self.chunks_carried)

    def action(self, index):
        return _NAME[self._actions[index]]

    def actions(self):
        """Every chunk's action as a list of names (tests and diagnostics; a 1 TiB disk gives 1M items)."""
        return [_NAME[code] for code in self._actions]

    def indexes(self, action):
        """The chunk indexes planned with ``action``, ascending (a generator)."""
        code = _CODE[action]
        pos = self._actions.find(code)
        while pos >= 0:
            yield pos
            pos = self._actions.find(code, pos + 1)

    def chunk_length(self, index):
        return min(self.chunk_size, self.capacity - index * self.chunk_size)

    def read_requests(self, max_bytes=None):
        """Yield ``(offset, length)`` read requests: consecutive READ chunks, at most ``max_bytes`` each.

        ``max_bytes`` defaults to max(8 MiB, chunk_size) and is rounded down to whole chunks (at least one
        chunk: a request never splits a chunk).
        """
        if max_bytes is None:
            max_bytes = max(DEFAULT_MAX_REQUEST, self.chunk_size)
        per_request = max(1, max_bytes // self.chunk_size)
        for run in _READ_RUNS.finditer(self._actions):
            first, end = run.start(), run.end()
            while first < end:
                last = min(first + per_request, end)
                offset = first * self.chunk_size
                yield offset, min(last * self.chunk_size, self.capacity) - offset
                first = last

    def with_carried(self, indexes):
        """A copy of this plan in which the READ chunks among ``indexes`` are CARRY (a resumed backup: their
        digests come from the interrupted run's checkpoint, given as the transfer's ``previous`` index)."""
        actions = bytearray(self._actions)
        for index in indexes:
            if actions[index] == _CODE[READ]:
                actions[index] = _CODE[CARRY]
        return DiskPlan(self.capacity, self.chunk_size, actions, self.mode)

    def with_read(self, indexes):
        """A copy of this plan in which the CARRY chunks among ``indexes`` are READ (their previous chunk may not be
        relied on: the repository's GC has condemned it)."""
        actions = bytearray(self._actions)
        for index in indexes:
            if actions[index] == _CODE[CARRY]:
                actions[index] = _CODE[READ]
        return DiskPlan(self.capacity, self.chunk_size, actions, self.mode)

    def summary(self):
        """The figures check mode reports (JSON-able)."""
        return {
            "mode": self.mode,
            "capacity": self.capacity,
            "chunk_size": self.chunk_size,
            "chunks": self.count,
            "chunks_read": self.chunks_read,
            "chunks_zero": self.chunks_zero,
            "chunks_carried": self.chunks_carried,
            "bytes_to_read": self.bytes_to_read,
        }


def plan_disk(capacity, chunk_size, allocated=None, changed=None, previous=None):
    """Build the DiskPlan of one disk (rules in the module docstring).

    Raises TransferError when an incremental plan has no previous index or one of another capacity or
    chunk size (the caller must then plan a full backup), ValueError on a nonsensical size.
    """
    if chunk_size <= 0 or capacity < 0:
        raise ValueError("capacity must be >= 0 and chunk_size > 0 (got %r, %r)" % (capacity, chunk_size))
    count = (capacity + chunk_size - 1) // chunk_size
    allocated_ranges = None
    if allocated is not None:
        allocated_ranges = list(_chunk_ranges(normalize_extents(allocated, capacity), chunk_size))
    if changed is None:
        if allocated_ranges is None:
            return DiskPlan(capacity, chunk_size, bytes([_CODE[READ]]) * count, "full")
        actions = bytearray([_CODE[ZERO]]) * count
        for first, end in allocated_ranges:
            actions[first:end] = bytes([_CODE[READ]]) * (end - first)
        return DiskPlan(capacity, chunk_size, actions, "full")

    if previous is None:
        raise TransferError("An incremental plan needs the previous restore point's disk index; plan a full backup.")
    if previous.capacity != capacity or previous.chunk_size != chunk_size:
        raise TransferError("The previous disk index (capacity %d, chunk size %d) does not match this disk (capacity %d, "
                            "chunk size %d); plan a full backup." % (previous.capacity, previous.chunk_size, capacity,
                                                                     chunk_size))
    actions = bytearray([_CODE[CARRY]]) * count
    for first, end in _chunk_ranges(normalize_extents(changed, capacity), chunk_size):
        actions[first:end] = bytes([_CODE[ZERO]]) * (end - first)
    # changed chunks are ZERO now; those with any allocated byte become READ
    if allocated_ranges is None:
        actions = actions.replace(bytes([_CODE[ZERO]]), bytes([_CODE[READ]]))
    else:
        for first, end in allocated_ranges:
            actions[first:end] = actions[first:end].replace(bytes([_CODE[ZERO]]), bytes([_CODE[READ]]))
    return DiskPlan(capacity, chunk_size, actions, "incremental")
