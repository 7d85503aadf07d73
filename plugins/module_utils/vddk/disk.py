# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An open VDDK disk (VixDiskLib_Open): byte-addressed reads into caller buffers, writes, allocation, flush."""

from __future__ import annotations

import ctypes
import threading

from ..errors import ConfigurationError
from . import structs as S
from .library import LOGGER, SERIAL_LOCK

__all__ = ["DiskHandle", "DiskInfo", "create_disk"]


class DiskInfo:
    """What VixDiskLib_GetInfo says about a disk: capacity in bytes, adapter name, uuid (may be None), links."""

    __slots__ = ("capacity", "adapter", "uuid", "num_links")

    def __init__(self, capacity, adapter, uuid, num_links):
        self.capacity = capacity
        self.adapter = adapter
        self.uuid = uuid
        self.num_links = num_links

    def __repr__(self):
        return "DiskInfo(capacity=%d, adapter=%r, uuid=%r, num_links=%d)" % (self.capacity, self.adapter, self.uuid,
                                                                             self.num_links)


def _check_aligned(what, offset, length):
    if offset < 0 or length < 0 or offset % S.SECTOR_SIZE or length % S.SECTOR_SIZE:
        raise ValueError("VDDK %s at offset %d of %d bytes is not aligned to %d-byte sectors: offset and length must "
                         "be multiples of %d." % (what, offset, length, S.SECTOR_SIZE, S.SECTOR_SIZE))


def _byte_view(buffer):
    view = memoryview(buffer)
    if view.format not in ("B", "b", "c") or view.ndim != 1:
        view = view.cast("B")
    if not view.c_contiguous:
        raise ValueError("VDDK I/O needs a contiguous buffer.")
    return view


def _write_buffer(offset, buffer):
    """(length, uint8 pointer/array, object to keep alive) for a write of ``buffer``; no copy unless read-only."""
    if isinstance(buffer, bytes):
        _check_aligned("write", offset, len(buffer))
        keep = ctypes.c_char_p(buffer)                 # points into the bytes object: no copy
        return len(buffer), ctypes.cast(keep, ctypes.POINTER(ctypes.c_uint8)), (keep, buffer)
    view = _byte_view(buffer)
    _check_aligned("write", offset, view.nbytes)
    if view.readonly:
        return view.nbytes, (ctypes.c_uint8 * view.nbytes).from_buffer_copy(view), view
    return view.nbytes, (ctypes.c_uint8 * view.nbytes).from_buffer(view), view


class DiskHandle:
    """One open disk of a Connection, addressed in bytes (sector-aligned).

    Contract: a handle is used by one worker thread; VDDK forbids concurrent calls on one handle, and the
    internal lock serializes them anyway should two threads share it. Different handles may do I/O in parallel
    (ctypes releases the GIL during each call). ``read_into`` fills the caller's writable buffer in place (no
    copy); ``write`` passes bytes, bytearray and writable buffers without a copy. Use as a context manager or
    call ``close()``.
    """

    def __init__(self, connection, path, read_only=True, unbuffered=False, own_connection=False):
        self.connection = connection
        self.library = connection.library
        self.path = path
        self.read_only = bool(read_only)
        self._own_connection = own_connection
        self._io_lock = threading.Lock()
        flags = (S.OPEN_READ_ONLY if read_only else 0) | (S.OPEN_UNBUFFERED if unbuffered else 0)
        handle = ctypes.c_void_p()
        conn_handle = connection.raw_handle()
        self.library.check_process()
        with SERIAL_LOCK:
            err = self.library.fn("Open")(conn_handle, path.encode("utf-8"), flags, ctypes.byref(handle))
        self.library.check(err, "Open", path)
        self._handle = handle
        try:
            self.info = self._get_info()
        except BaseException:
            self.close()
            raise
        self.capacity = self.info.capacity

    def __repr__(self):
        return "DiskHandle(%r, capacity=%d, %s)" % (self.path, self.capacity if self._handle else -1,
                                                    "open" if self._handle else "closed")

    def _raw(self):
        if self._handle is None:
            raise ConfigurationError("The VDDK disk %s is closed." % self.path)
        return self._handle

    def _get_info(self):
        info_ptr = ctypes.POINTER(S.Info)()
        err = self.library.fn("GetInfo")(self._raw(), ctypes.byref(info_ptr))
        self.library.check(err, "GetInfo", self.path)
        try:
            info = info_ptr.contents
            uuid = info.uuid.decode("utf-8", "replace") if info.uuid else None
            return DiskInfo(info.capacity * S.SECTOR_SIZE, S.ADAPTER_TYPES.get(info.adapterType, "unknown"), uuid,
                            info.numLinks)
        finally:
            self.library.fn("FreeInfo")(info_ptr)

    @property
    def transport_mode(self):
        """The transport VDDK picked for this disk ('nbdssl', 'nbd', 'hotadd', 'san', 'file')."""
        mode = self.library.fn("GetTransportMode")(self._raw())
        return mode.decode() if mode else None

    def read_into(self, offset, buffer):
        """Read len(buffer) bytes at ``offset`` straight into ``buffer`` (writable; offset and length sector-aligned)."""
        view = _byte_view(buffer)
        length = view.nbytes
        _check_aligned("read", offset, length)
        if view.readonly:
            raise ValueError("VDDK read_into needs a writable buffer (bytearray, memoryview of one, mmap...).")
        if length == 0:
            return 0
        cbuf = (ctypes.c_uint8 * length).from_buffer(view)
        with self._io_lock:
            err = self.library.fn("Read")(self._raw(), offset // S.SECTOR_SIZE, length // S.SECTOR_SIZE, cbuf)
        del cbuf
        self.library.check(err, "Read", "%s, offset %d, %d bytes" % (self.path, offset, length))
        return length

    def write(self, offset, buffer):
        """Write ``buffer`` at ``offset`` (both sector-aligned)."""
        if self.read_only:
            raise ConfigurationError("The VDDK disk %s is open read-only; it cannot be written." % self.path)
        length, cbuf, keep = _write_buffer(offset, buffer)
        if length:
            self._write_raw(offset, length, cbuf)
        del cbuf, keep
        return length

    def _write_raw(self, offset, length, cbuf):
        with self._io_lock:
            err = self.library.fn("Write")(self._raw(), offset // S.SECTOR_SIZE, length // S.SECTOR_SIZE, cbuf)
        self.library.check(err, "Write", "%s, offset %d, %d bytes" % (self.path, offset, length))

    @property
    def can_async(self):
        """True when this VDDK has ReadAsync/WriteAsync/Wait (6.5+): read_into_many/write_many then pipeline."""
        return all(self.library.has(name) for name in ("ReadAsync", "WriteAsync", "Wait"))

    def read_into_many(self, requests):
        """Read several ``(offset, buffer)`` requests; each buffer is filled in place like ``read_into``.

        With VDDK's async API all requests are queued, then waited for (fewer network round trips); otherwise they
        run one by one. Raises the first failure once every queued request has completed.
        """
        prepared = []
        for offset, buffer in requests:
            view = _byte_view(buffer)
            _check_aligned("read", offset, view.nbytes)
            if view.readonly:
                raise ValueError("VDDK read_into_many needs writable buffers.")
            prepared.append((offset, view))
        if not self.can_async:
            for offset, view in prepared:
                self.read_into(offset, view)
            return
        self._run_async("ReadAsync", [(offset, view.nbytes, (ctypes.c_uint8 * view.nbytes).from_buffer(view))
                                      for offset, view in prepared if view.nbytes])

    def write_many(self, requests):
        """Write several ``(offset, buffer)`` requests, pipelined with VDDK's async API when it has one."""
        if self.read_only:
            raise ConfigurationError("The VDDK disk %s is open read-only; it cannot be written." % self.path)
        prepared = [(offset,) + _write_buffer(offset, buffer) for offset, buffer in requests]
        if not self.can_async:
            for offset, length, cbuf, keep in prepared:
                if length:
                    self._write_raw(offset, length, cbuf)
            return
        self._run_async("WriteAsync", [(offset, length, cbuf) for offset, length, cbuf, keep in prepared if length])
        del prepared

    def _run_async(self, function, operations):
        results = [None] * len(operations)

        def completed(data, err):
            results[(data or 0) - 1] = err
        callback = S.CompletionFunc(completed)          # alive until Wait returned: VDDK calls it from its thread
        submit = self.library.fn(function)
        with self._io_lock:
            handle = self._raw()
            for index, (offset, length, cbuf) in enumerate(operations):
                err = submit(handle, offset // S.SECTOR_SIZE, length // S.SECTOR_SIZE, cbuf, callback, index + 1)
                if err != S.VIX_ASYNC:
                    results[index] = err                 # done at once (VIX_OK) or refused: no callback expected
                    if err:
                        break                            # queue no more; report this one after Wait
            wait_err = self.library.fn("Wait")(handle)
        self.library.check(wait_err, "Wait", self.path)
        for index, err in enumerate(results):
            if err:
                offset, length = operations[index][:2]
                self.library.check(err, function, "%s, offset %d, %d bytes" % (self.path, offset, length))
        del callback

    @property
    def can_query_allocation(self):
        return self.library.has("QueryAllocatedBlocks") and self.library.has("FreeBlockList")

    def allocated_extents(self, start=0, length=None, chunk_size=65536):
        """Allocated byte ranges [(offset, length)] within [start, start+length), merged and sorted.

        None when this VDDK lacks QueryAllocatedBlocks (the caller then treats everything as allocated). Results
        are whole ``chunk_size`` units (a multiple of 64 KiB) clipped to the range asked; a partial chunk at the
        end of the disk is reported allocated without asking (over-reporting is safe, VDDK may refuse it).
        """
        if not self.can_query_allocation:
            return None
        if length is None:
            length = self.capacity - start
        chunk_sectors = chunk_size // S.SECTOR_SIZE
        if chunk_size % S.SECTOR_SIZE or chunk_sectors < S.MIN_CHUNK_SECTORS:
            raise ValueError("The allocation chunk size %d is not a multiple of 512 of at least %d bytes."
                             % (chunk_size, S.MIN_CHUNK_SECTORS * S.SECTOR_SIZE))
        end = min(start + length, self.capacity)
        if start < 0 or start >= end:
            return []
        first = start // chunk_size * chunk_size
        whole_end = self.capacity // chunk_size * chunk_size
        query_end = min(-(-end // chunk_size) * chunk_size, whole_end)
        extents = []
        pos = first
        while pos < query_end:
            step_end = min(query_end, pos + S.MAX_CHUNK_NUMBER * chunk_size)
            extents.extend(self._query(pos, step_end - pos, chunk_sectors))
            pos = step_end
        if end > whole_end:
            extents.append((whole_end, self.capacity - whole_end))
        return _clip_merge(extents, start, end)

    def _query(self, offset, length, chunk_sectors):
        lib = self.library
        blocks_ptr = ctypes.POINTER(S.BlockList)()
        with self._io_lock:
            err = lib.fn("QueryAllocatedBlocks")(self._raw(), offset // S.SECTOR_SIZE, length // S.SECTOR_SIZE,
                                                 chunk_sectors, ctypes.byref(blocks_ptr))
        lib.check(err, "QueryAllocatedBlocks", "%s, offset %d, %d bytes" % (self.path, offset, length))
        try:
            count = blocks_ptr.contents.numBlocks
            array = ctypes.cast(ctypes.addressof(blocks_ptr.contents.blocks), ctypes.POINTER(S.Block * count)).contents
            return [(b.offset * S.SECTOR_SIZE, b.length * S.SECTOR_SIZE) for b in array] if count else []
        finally:
            lib.fn("FreeBlockList")(blocks_ptr)

    def flush(self):
        with self._io_lock:
            err = self.library.fn("Flush")(self._raw())
        self.library.check(err, "Flush", self.path)

    def close(self):
        """VixDiskLib_Close (and Disconnect when the handle owns its connection). Idempotent."""
        with self._io_lock:
            handle, self._handle = self._handle, None
        try:
            if handle is not None:
                with SERIAL_LOCK:
                    err = self.library.fn("Close")(handle)
                self.library.check(err, "Close", self.path)
        finally:
            self.connection._forget(self)
            if self._own_connection and handle is not None:
                self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception as close_error:      # keep the error that is already on its way up
            LOGGER.warning("closing the VDDK disk %s after an error failed too: %s", self.path, close_error)


def _clip_merge(extents, start, end):
    merged = []
    for offset, length in sorted(extents):
        lo, hi = max(offset, start), min(offset + length, end)
        if hi <= lo:
            continue
        if merged and merged[-1][1] >= lo:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi - lo) for lo, hi in merged]


def create_disk(connection, path, capacity, adapter="lsilogic", disk_type="vmfs_thin", hw_version=13):
    """VixDiskLib_Create of a disk of ``capacity`` bytes (a multiple of 512) at ``path`` on a read-write connection."""
    if capacity <= 0 or capacity % S.SECTOR_SIZE:
        raise ValueError("The disk capacity %d is not a positive multiple of 512 bytes." % capacity)
    adapters = {name: code for code, name in S.ADAPTER_TYPES.items()}
    if adapter not in adapters or disk_type not in S.DISK_TYPES:
        raise ConfigurationError("Unknown adapter %r or disk type %r." % (adapter, disk_type))
    params = S.CreateParams(diskType=S.DISK_TYPES[disk_type], adapterType=adapters[adapter], hwVersion=hw_version,
                            capacity=capacity // S.SECTOR_SIZE)
    lib = connection.library
    with SERIAL_LOCK:
        err = lib.fn("Create")(connection.raw_handle(), path.encode("utf-8"), ctypes.byref(params), S.ProgressFunc(),
                               None)
    lib.check(err, "Create", path)
