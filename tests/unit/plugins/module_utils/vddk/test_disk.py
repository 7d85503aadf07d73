"""DiskHandle logic that needs no library: argument checks and the allocation query plan (batches, tail chunk)."""
import threading

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import disk as D
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import structs as S

KIB = 1024
MIB = 1024 * KIB


class FakeLibrary:
    def __init__(self, optional=("VixDiskLib_QueryAllocatedBlocks", "VixDiskLib_FreeBlockList")):
        self.optional = set(optional)

    def has(self, name):
        return "VixDiskLib_" + name in self.optional


def make_handle(capacity, allocated=(), library=None, read_only=True):
    """A DiskHandle whose _query answers from ``allocated`` (byte ranges) and records its calls."""
    handle = D.DiskHandle.__new__(D.DiskHandle)
    handle.library = library or FakeLibrary()
    handle.capacity = capacity
    handle.path = "[ds] vm/vm.vmdk"
    handle.read_only = read_only
    handle._handle = object()
    handle._io_lock = threading.Lock()
    handle.queries = []

    def query(offset, length, chunk_sectors):
        handle.queries.append((offset, length, chunk_sectors))
        chunk = chunk_sectors * S.SECTOR_SIZE
        found = []
        for lo, size in allocated:
            lo_al, hi_al = lo // chunk * chunk, -(-(lo + size) // chunk) * chunk
            lo_al, hi_al = max(lo_al, offset), min(hi_al, offset + length)
            if hi_al > lo_al:
                found.append((lo_al, hi_al - lo_al))
        return found
    handle._query = query
    return handle


def test_whole_chunks_are_queried_and_the_partial_tail_is_reported():
    capacity = 10 * MIB + 1536
    handle = make_handle(capacity, allocated=[(MIB + 10, 20)])
    assert handle.allocated_extents() == [(MIB, 64 * KIB), (10 * MIB, 1536)]
    assert handle.queries == [(0, 10 * MIB, 128)]


def test_range_is_clipped_and_aligned_outwards_for_the_query():
    handle = make_handle(8 * MIB, allocated=[(0, 8 * MIB)])
    assert handle.allocated_extents(100 * KIB, 50 * KIB) == [(100 * KIB, 50 * KIB)]
    assert handle.queries == [(64 * KIB, 128 * KIB, 128)]


def test_queries_are_batched_by_the_chunk_limit(monkeypatch):
    monkeypatch.setattr(S, "MAX_CHUNK_NUMBER", 4)
    handle = make_handle(MIB, allocated=[(0, 64 * KIB), (256 * KIB, 64 * KIB), (320 * KIB, 64 * KIB)])
    assert handle.allocated_extents() == [(0, 64 * KIB), (256 * KIB, 128 * KIB)]     # merged across batches
    assert handle.queries == [(0, 256 * KIB, 128), (256 * KIB, 256 * KIB, 128), (512 * KIB, 256 * KIB, 128),
                              (768 * KIB, 256 * KIB, 128)]


def test_bigger_chunks():
    handle = make_handle(4 * MIB, allocated=[(MIB + 5, 1)])
    assert handle.allocated_extents(chunk_size=MIB) == [(MIB, MIB)]
    assert handle.queries == [(0, 4 * MIB, 2048)]


@pytest.mark.parametrize("chunk", [32 * KIB, 64 * KIB + 100, 0])
def test_bad_chunk_size(chunk):
    with pytest.raises(ValueError) as info:
        make_handle(MIB).allocated_extents(chunk_size=chunk)
    assert "is not a multiple of 512 of at least 65536 bytes" in str(info.value)


def test_empty_and_out_of_disk_ranges():
    handle = make_handle(MIB, allocated=[(0, MIB)])
    assert handle.allocated_extents(MIB, 4096) == []
    assert handle.allocated_extents(0, 0) == []
    assert handle.queries == []


def test_without_query_allocated_blocks():
    assert make_handle(MIB, library=FakeLibrary(optional=())).allocated_extents() is None


@pytest.mark.parametrize("offset, size, what", [(1, 512, "offset 1 of 512"), (512, 100, "offset 512 of 100")])
def test_unaligned_read(offset, size, what):
    with pytest.raises(ValueError) as info:
        make_handle(MIB).read_into(offset, bytearray(size))
    assert str(info.value).startswith("VDDK read at %s bytes is not aligned to 512-byte sectors" % what)


def test_read_needs_a_writable_buffer():
    with pytest.raises(ValueError) as info:
        make_handle(MIB).read_into(0, bytes(512))
    assert "needs a writable buffer" in str(info.value)


def test_write_on_read_only_handle_and_unaligned_write():
    with pytest.raises(ConfigurationError) as info:
        make_handle(MIB).write(0, b"\0" * 512)
    assert str(info.value) == "The VDDK disk [ds] vm/vm.vmdk is open read-only; it cannot be written."
    with pytest.raises(ValueError):
        make_handle(MIB, read_only=False).write(0, b"\0" * 100)


def test_write_buffers_are_passed_without_copy():
    data = bytearray(b"\1" * 1024)
    length, cbuf, keep = D._write_buffer(0, data)
    cbuf[0] = 7                                      # the C view aliases the caller's bytearray
    assert (length, data[0]) == (1024, 7)
    del cbuf, keep
    length, cbuf, keep = D._write_buffer(512, memoryview(bytes(512)))
    assert length == 512                             # a read-only view is copied (documented)


def test_clip_merge():
    assert D._clip_merge([(0, 10), (10, 5), (30, 10), (5, 2)], 3, 35) == [(3, 12), (30, 5)]


class ClosingLibrary(FakeLibrary):
    """Close fails with VIX_E_HOST_CONNECTION_LOST, as on a broken connection."""

    def fn(self, name):
        assert name == "Close"
        return lambda handle: 36

    def check(self, err, function, context=None):
        if err:
            raise D.ConfigurationError("%s failed with %d" % (function, err))


class ForgettingConnection:
    def __init__(self):
        self.forgotten = []

    def _forget(self, disk):
        self.forgotten.append(disk)


def test_close_error_does_not_hide_the_error_in_flight():
    handle = make_handle(MIB, library=ClosingLibrary())
    handle.connection = ForgettingConnection()
    handle._own_connection = False
    with pytest.raises(KeyError):
        with handle:
            raise KeyError("the original failure")
    assert handle.connection.forgotten == [handle]
    again = make_handle(MIB, library=ClosingLibrary())
    again.connection = ForgettingConnection()
    again._own_connection = False
    with pytest.raises(ConfigurationError) as info:
        with again:
            pass
    assert str(info.value) == "Close failed with 36"
