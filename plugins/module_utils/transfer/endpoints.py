# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk sources and targets: the small interfaces the pipelines move data between.

The pipelines never know what they talk to. A VDDK DiskHandle satisfies DiskSource as it is (``capacity``,
``read_into``, ``allocated_extents``, ``close``); for restores the ops layer wraps a writable handle into a
DiskTarget (adding ``zero`` and ``known_zeroed``). Raw image files and memory buffers are implemented here.

Handle rule (VDDK's, applied everywhere): a handle is used by one thread at a time. A pipeline thread that
needs its own handle calls ``clone()``, which opens a new, independent handle on the same disk; the caller
closes what it cloned. Objects without ``clone`` are used by one thread only (or under a lock).

Buffers: ``read_into(offset, buffer)`` fills a writable buffer in place (no allocation, no copy) and returns
its length; ``write(offset, data)`` accepts any bytes-like object. Ranges are in bytes and lie inside
``[0, capacity)``; callers keep them 512-byte aligned (VDDK's sector rule; the last chunk of a disk ends at
the capacity, which is a multiple of 512 for every VMware disk).
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from typing import Optional, Protocol, runtime_checkable

from .file_extents import file_data_extents
from ..errors import TransferError
from ..fileio import fsync_directory
from .direct_io import DirectWriter

__all__ = ["DiskSource", "DiskTarget", "RawFileSource", "RawFileTarget", "MemorySource", "MemoryTarget",
           "HandleTarget"]

_ZERO_STEP = 8 * 1024 * 1024
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


@runtime_checkable
class DiskSource(Protocol):
    """What a backup reads. ``allocated_extents`` returns sorted, merged ``[(offset, length)]`` or None (unknown)."""

    capacity: int

    def read_into(self, offset: int, buffer) -> int:
        """Fill ``buffer`` from ``offset``; the number of bytes read."""

    def allocated_extents(self, start: int = 0, length: Optional[int] = None, chunk_size: int = 65536):
        """The allocated ``[(offset, length)]`` in the range, or None when unknown."""

    def close(self) -> None:
        """Release the source (idempotent)."""


@runtime_checkable
class DiskTarget(Protocol):
    """What a restore writes. ``known_zeroed``: every byte reads as zero now (a fresh sparse target), so zero
    chunks need no write. ``read_into`` is needed only by the compare (rollback) mode."""

    capacity: int
    known_zeroed: bool

    def write(self, offset: int, data) -> int:
        """Write ``data`` at ``offset``; the number of bytes written."""

    def zero(self, offset: int, length: int) -> None:
        """Make ``length`` bytes from ``offset`` read as zero."""

    def flush(self) -> None:
        """Make what was written durable."""

    def close(self) -> None:
        """Release the target (idempotent; the caller flushes first)."""


def _writable_view(buffer):
    view = memoryview(buffer)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if view.readonly:
        raise ValueError("read_into needs a writable buffer (bytearray, memoryview of one, mmap)")
    return view


def _check_range(what, offset, length, capacity):
    if offset < 0 or length < 0 or offset + length > capacity:
        raise TransferError("%s of %d bytes at offset %d is outside the disk (capacity %d)."
                            % (what, length, offset, capacity))


class RawFileSource:
    """A local raw disk image read with pread into the caller's buffers; allocation from SEEK_DATA/SEEK_HOLE.

    ``capacity`` defaults to the file size; bytes past the end of a shorter file read as zeros. Thread-safety:
    pread has no shared file position, but by the handle rule one thread uses a handle; ``clone()`` opens the
    file again for another thread.
    """

    def __init__(self, path, capacity=None):
        self.path = os.fspath(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise TransferError("Cannot open the image file %s for reading: %s. Check the path and its permissions."
                                % (self.path, exc.strerror or exc)) from exc
        self._size = os.fstat(self._fd).st_size
        self.capacity = self._size if capacity is None else int(capacity)

    def __repr__(self):
        return "RawFileSource(%r, capacity=%d)" % (self.path, self.capacity)

    def read_into(self, offset, buffer):
        view = _writable_view(buffer)
        length = view.nbytes
        _check_range("A read", offset, length, self.capacity)
        done = 0
        while done < length:
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got == 0:                           # end of a file shorter than the capacity: zeros
                view[done:] = bytes(length - done)
                break
            done += got
        return length

    def allocated_extents(self, start=0, length=None, chunk_size=65536):
        """Data ranges within [start, start + length) clipped to the capacity; ``chunk_size`` is ignored."""
        end = self.capacity if length is None else min(self.capacity, start + length)
        extents = file_data_extents(self._fd, start, min(end, self._size))
        return extents                           # a short file's tail reads as zeros: not data

    def clone(self):
        return RawFileSource(self.path, self.capacity)

    def close(self):
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_punch_hole_fn = None
_punch_hole_lock = threading.Lock()


def _punch_hole(fd, offset, length):
    """fallocate(PUNCH_HOLE | KEEP_SIZE) through libc; False when unavailable (the caller writes zeros)."""
    global _punch_hole_fn
    with _punch_hole_lock:
        if _punch_hole_fn is None:
            try:                                 # the process's own libc: no library search, no subprocess
                fn = ctypes.CDLL(None, use_errno=True).fallocate
                fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
                fn.restype = ctypes.c_int
            except (OSError, AttributeError):
                fn = False
            _punch_hole_fn = fn
    if not _punch_hole_fn:
        return False
    if _punch_hole_fn(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err))


class FdTarget:
    """What the file-descriptor targets share (a raw image file, a block device): ``_fd`` written with pwrite, the
    aligned part of each write through ``_direct`` (a direct_io.DirectWriter, or None), zero writes from one shared
    read-only buffer, and the close. Subclasses open both and add ``read_into``, ``zero``, ``flush`` and ``clone``.
    Thread-safety: one thread per handle."""

    _fd = -1
    _direct = None

    @property
    def bounce_buffers(self):
        """True when each handle copies writes into its own chunk-sized buffer (direct I/O): restore memory."""
        return self._direct is not None

    def write(self, offset, data):
        view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else memoryview(data)
        length = view.nbytes
        _check_range("A write", offset, length, self.capacity)
        done = self._direct.write(offset, view) if self._direct is not None else 0
        while done < length:
            done += os.pwritev(self._fd, [view[done:]], offset + done)
        return length

    def _write_zeros(self, offset, length):
        end = offset + length
        while offset < end:
            step = min(_ZERO_STEP, end - offset)
            self.write(offset, memoryview(_zero_buffer(step))[:step])
            offset += step

    def close(self):
        fd, self._fd = self._fd, -1
        direct, self._direct = self._direct, None
        if direct is not None:
            direct.close()
        if fd >= 0:
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RawFileTarget(FdTarget):
    """A raw image file written with pwrite; zero ranges become holes, so the image stays sparse.

    ``create=True`` creates (or truncates) the file at ``capacity`` bytes: a fresh sparse file, so
    ``known_zeroed`` is True and zero chunks are skipped. ``create=False`` opens an existing image for an
    in-place rollback (``known_zeroed`` False; its size is set to ``capacity``). Refusing to overwrite an
    existing file is the caller's decision (ops). ``flush`` fsyncs the file (and, once, its directory).
    ``direct=True`` writes the aligned part of every write with O_DIRECT (see direct_io: no page-cache growth,
    durable sooner), falling back to the page cache where the file system refuses it (``bounce_buffers``: each
    handle then holds a chunk-sized buffer). Thread-safety: one thread per handle; ``clone()`` opens another handle on the
    same file.
    """

    def __init__(self, path, capacity, create=True, direct=True, _clone_of=None):
        self.path = os.fspath(path)
        self.capacity = int(capacity)
        flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
        if create and _clone_of is None:
            flags |= os.O_CREAT | os.O_TRUNC
        try:
            self._fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise TransferError("Cannot open the image file %s for writing: %s. Check the path and its permissions."
                                % (self.path, exc.strerror or exc)) from exc
        self._created = bool(create) and _clone_of is None
        self._dir_synced = _clone_of is not None or not self._created
        if _clone_of is None:
            if os.fstat(self._fd).st_size != self.capacity:
                os.ftruncate(self._fd, self.capacity)
            self.known_zeroed = self._created
        else:
            self.known_zeroed = _clone_of.known_zeroed
        self.direct = direct
        try:
            self._direct = DirectWriter.open(self.path) if direct else None
        except OSError as exc:
            os.close(self._fd)
            raise TransferError("Cannot open the image file %s for writing: %s. Check the path and its permissions."
                                % (self.path, exc.strerror or exc)) from exc

    def __repr__(self):
        return "RawFileTarget(%r, capacity=%d)" % (self.path, self.capacity)

    def read_into(self, offset, buffer):
        view = _writable_view(buffer)
        length = view.nbytes
        _check_range("A read", offset, length, self.capacity)
        done = 0
        while done < length:
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got == 0:
                view[done:] = bytes(length - done)
                break
            done += got
        return length

    def zero(self, offset, length):
        """Make [offset, offset + length) read as zeros: punch a hole, or write zeros where holes are unsupported."""
        _check_range("Zeroing", offset, length, self.capacity)
        if length == 0 or _punch_hole(self._fd, offset, length):
            return
        self._write_zeros(offset, length)

    def flush(self):
        os.fsync(self._fd)
        if not self._dir_synced:                 # a new file's directory entry must be durable too
            fsync_directory(os.path.dirname(os.path.abspath(self.path)))
            self._dir_synced = True

    def clone(self):
        return RawFileTarget(self.path, self.capacity, create=False, direct=self.direct, _clone_of=self)


class HandleTarget:
    """A DiskTarget over a writable disk handle that has ``capacity``, ``write``, ``flush``, ``close`` (and
    ``read_into`` for compare mode), such as a VDDK DiskHandle opened read-write.

    ``zero`` uses the handle's own ``zero`` when it has one, else writes zeros from one shared read-only buffer
    in steps of at most 8 MiB (VDDK has no zeroing call). ``known_zeroed``: the caller knows the disk reads as
    zeros (a freshly created thin disk). ``opener``: a callable returning a new handle on the same disk; with
    it, ``clone()`` gives each restore worker its own handle; without it the target has no ``clone`` and the
    restore shares this one under a lock. Thread-safety: that of the handle (one thread at a time).
    """

    def __init__(self, handle, known_zeroed=False, opener=None):
        self.handle = handle
        self.capacity = handle.capacity
        self.known_zeroed = bool(known_zeroed)
        self._opener = opener
        if opener is not None:
            self.clone = self._clone

    def __repr__(self):
        return "HandleTarget(%r)" % (self.handle,)

    def write(self, offset, data):
        return self.handle.write(offset, data)

    def read_into(self, offset, buffer):
        return self.handle.read_into(offset, buffer)

    def zero(self, offset, length):
        _check_range("Zeroing", offset, length, self.capacity)
        own_zero = getattr(self.handle, "zero", None)
        if own_zero is not None:
            own_zero(offset, length)
            return
        zeros = _zero_buffer(min(length, _ZERO_STEP))
        end = offset + length
        while offset < end:
            step = min(len(zeros), end - offset)
            self.handle.write(offset, zeros if step == len(zeros) else memoryview(zeros)[:step])
            offset += step

    def flush(self):
        self.handle.flush()

    def _clone(self):
        return HandleTarget(self._opener(), self.known_zeroed, self._opener)

    def close(self):
        self.handle.close()


_zero_buffers = {}


def _zero_buffer(length):
    """A shared read-only zero buffer of at least ``length`` bytes (at most 8 MiB are ever allocated)."""
    size = _ZERO_STEP if length > 1024 * 1024 else 1024 * 1024
    buf = _zero_buffers.get(size)
    if buf is None:
        buf = _zero_buffers.setdefault(size, bytes(size))
    return buf


class MemorySource:
    """A disk held in memory (tests, benchmarks of the CPU path). ``allocated``: extents to report, None = unknown.

    Clones share the data. Thread-safe for reads (the data is never modified).
    """

    def __init__(self, data, allocated=None):
        self.data = bytes(data)
        self.capacity = len(self.data)
        self.allocated = None if allocated is None else list(allocated)
        self.closed = False

    def read_into(self, offset, buffer):
        view = _writable_view(buffer)
        _check_range("A read", offset, view.nbytes, self.capacity)
        view[:] = self.data[offset:offset + view.nbytes]
        return view.nbytes

    def allocated_extents(self, start=0, length=None, chunk_size=65536):
        if self.allocated is None:
            return None
        end = self.capacity if length is None else min(self.capacity, start + length)
        return [(max(o, start), min(o + n, end) - max(o, start)) for o, n in self.allocated if min(o + n, end) > max(o, start)]

    def clone(self):
        return MemorySource(self.data, self.allocated)

    def close(self):
        self.closed = True


class MemoryTarget:
    """A disk held in a bytearray. Clones share the bytearray (like handles share a disk); writes of distinct
    ranges from different clones are safe (slice assignment of a fixed-size bytearray). ``zeroed`` records the
    ranges passed to ``zero`` so tests can tell a skipped zero chunk from a zeroed one."""

    def __init__(self, capacity, known_zeroed=True, data=None):
        self.capacity = int(capacity)
        self.data = bytearray(capacity) if data is None else data
        self.known_zeroed = known_zeroed
        self.closed = False
        self.flushed = 0

    def write(self, offset, data):
        view = memoryview(data).cast("B")
        _check_range("A write", offset, view.nbytes, self.capacity)
        self.data[offset:offset + view.nbytes] = view
        return view.nbytes

    def read_into(self, offset, buffer):
        view = _writable_view(buffer)
        _check_range("A read", offset, view.nbytes, self.capacity)
        view[:] = self.data[offset:offset + view.nbytes]
        return view.nbytes

    def zero(self, offset, length):
        _check_range("Zeroing", offset, length, self.capacity)
        self.data[offset:offset + length] = bytes(length)

    def flush(self):
        self.flushed += 1

    def clone(self):
        return MemoryTarget(self.capacity, self.known_zeroed, data=self.data)

    def close(self):
        self.closed = True
