"""Raw-file and memory sources/targets: exact bytes, SEEK_DATA extents, holes, clones."""
import os

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import TransferError
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.endpoints import (
    DiskSource, DiskTarget, HandleTarget, MemorySource, MemoryTarget, RawFileSource, RawFileTarget)

CHUNK = 64 * 1024


def test_raw_source_reports_data_extents_and_reads_exact_bytes(tmp_path, fakes):
    data = fakes.make_data("rzzrz", tail=5000)
    path = tmp_path / "disk.img"
    fakes.write_sparse(path, data)
    with RawFileSource(path) as source:
        assert isinstance(source, DiskSource)
        assert source.capacity == len(data)
        assert source.allocated_extents() == [(0, CHUNK), (3 * CHUNK, CHUNK)] + [(5 * CHUNK, 5000)]
        assert source.allocated_extents(CHUNK, 3 * CHUNK) == [(3 * CHUNK, CHUNK)]
        assert source.allocated_extents(CHUNK // 2, CHUNK) == [(CHUNK // 2, CHUNK // 2)]
        buf = bytearray(2 * CHUNK)
        assert source.read_into(3 * CHUNK, buf) == 2 * CHUNK
        assert bytes(buf) == data[3 * CHUNK:5 * CHUNK]
        view = memoryview(bytearray(6000))
        source.read_into(len(data) - 5000, view[:5000])
        assert bytes(view[:5000]) == data[-5000:]


def test_raw_source_with_capacity_beyond_the_file_reads_zeros_there(tmp_path, fakes):
    data = fakes.make_data("rr")
    path = tmp_path / "short.img"
    path.write_bytes(data)
    source = RawFileSource(path, capacity=4 * CHUNK)
    try:
        buf = bytearray(2 * CHUNK)
        source.read_into(CHUNK, buf)
        assert bytes(buf) == data[CHUNK:] + bytes(CHUNK)
        assert source.allocated_extents() == [(0, 2 * CHUNK)]
        with pytest.raises(TransferError, match="A read of 2 bytes at offset 262143 is outside the disk"):
            source.read_into(4 * CHUNK - 1, bytearray(2))
    finally:
        source.close()


def test_raw_source_clone_is_an_independent_handle(tmp_path, fakes):
    data = fakes.make_data("rr")
    path = tmp_path / "disk.img"
    path.write_bytes(data)
    source = RawFileSource(path)
    clone = source.clone()
    source.close()
    source.close()                      # idempotent
    buf = bytearray(CHUNK)
    clone.read_into(CHUNK, buf)
    assert bytes(buf) == data[CHUNK:]
    clone.close()


def test_raw_source_missing_file_names_the_path(tmp_path):
    with pytest.raises(TransferError, match="Cannot open the image file .*nope.img for reading: No such file"):
        RawFileSource(tmp_path / "nope.img")


def test_raw_source_rejects_a_read_only_buffer(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"x" * 512)
    with RawFileSource(path) as source, pytest.raises(ValueError, match="writable buffer"):
        source.read_into(0, b"\0" * 512)


def test_raw_target_creates_a_sparse_file_of_the_capacity(tmp_path, fakes):
    path = tmp_path / "out.img"
    target = RawFileTarget(path, 8 * CHUNK)
    try:
        assert isinstance(target, DiskTarget)
        assert target.known_zeroed is True
        assert os.path.getsize(path) == 8 * CHUNK
        assert fakes.data_extents(path) == []
        chunk = fakes.make_data("r")
        target.write(2 * CHUNK, chunk)
        target.write(7 * CHUNK, memoryview(chunk)[:100])
        target.flush()
    finally:
        target.close()
    assert fakes.data_extents(path) == [(2 * CHUNK, CHUNK), (7 * CHUNK, 4096)]
    content = path.read_bytes()
    assert content == bytes(2 * CHUNK) + chunk + bytes(4 * CHUNK) + chunk[:100] + bytes(CHUNK - 100)


def test_raw_target_zero_punches_a_hole_in_an_existing_image(tmp_path, fakes):
    data = fakes.make_data("rrrr")
    path = tmp_path / "old.img"
    path.write_bytes(data)
    target = RawFileTarget(path, 4 * CHUNK, create=False)
    try:
        assert target.known_zeroed is False
        target.zero(CHUNK, 2 * CHUNK)
        buf = bytearray(4 * CHUNK)
        target.read_into(0, buf)
        target.flush()
    finally:
        target.close()
    assert bytes(buf) == data[:CHUNK] + bytes(2 * CHUNK) + data[3 * CHUNK:]
    assert path.read_bytes() == bytes(buf)
    assert fakes.data_extents(path) == [(0, CHUNK), (3 * CHUNK, CHUNK)]


def test_raw_target_sets_an_existing_file_to_the_capacity_and_refuses_writes_outside(tmp_path):
    path = tmp_path / "old.img"
    path.write_bytes(b"y" * 1000)
    with RawFileTarget(path, 4096, create=False) as target:
        assert os.path.getsize(path) == 4096
        with pytest.raises(TransferError, match="A write of 2 bytes at offset 4095 is outside the disk"):
            target.write(4095, b"ab")
    assert path.read_bytes() == b"y" * 1000 + bytes(3096)


def test_raw_target_clones_write_the_same_file(tmp_path):
    path = tmp_path / "out.img"
    target = RawFileTarget(path, 2 * CHUNK)
    clone = target.clone()
    assert clone.known_zeroed is True
    clone.write(CHUNK, b"z" * 512)
    clone.flush()
    clone.close()
    target.write(0, b"a" * 512)
    target.flush()
    target.close()
    content = path.read_bytes()
    assert content[:512] == b"a" * 512 and content[CHUNK:CHUNK + 512] == b"z" * 512
    assert os.path.getsize(path) == 2 * CHUNK


def test_memory_source_and_target():
    source = MemorySource(b"abcdefgh" * 128, allocated=[(0, 100), (900, 500)])
    assert source.allocated_extents() == [(0, 100), (900, 124)]
    assert source.allocated_extents(50, 900) == [(50, 50), (900, 50)]
    assert MemorySource(b"x" * 10).allocated_extents() is None
    buf = bytearray(8)
    source.clone().read_into(8, buf)
    assert bytes(buf) == b"abcdefgh"
    target = MemoryTarget(1024, known_zeroed=False)
    clone = target.clone()
    clone.write(10, b"hello")
    target.zero(11, 2)
    assert bytes(target.data[10:15]) == b"h\0\0lo"
    with pytest.raises(TransferError):
        target.zero(1000, 25)


class FakeHandle:
    """A VDDK-like handle: capacity, write, read_into, flush, close; records its calls."""

    def __init__(self, capacity, calls):
        self.capacity = capacity
        self.data = bytearray(capacity)
        self.calls = calls

    def write(self, offset, data):
        view = memoryview(data)
        self.calls.append(("write", offset, view.nbytes))
        self.data[offset:offset + view.nbytes] = view
        return view.nbytes

    def read_into(self, offset, buffer):
        view = memoryview(buffer)
        view[:] = self.data[offset:offset + view.nbytes]
        return view.nbytes

    def flush(self):
        self.calls.append(("flush",))

    def close(self):
        self.calls.append(("close",))


def test_handle_target_zeroes_by_writing_in_steps_of_at_most_8_mib():
    mib = 1 << 20
    calls = []
    handle = FakeHandle(20 * mib, calls)
    handle.data[:] = b"\x01" * (20 * mib)
    target = HandleTarget(handle)
    assert isinstance(target, DiskTarget) and not hasattr(target, "clone") and target.known_zeroed is False
    target.zero(512, 17 * mib)
    assert calls == [("write", 512, 8 * mib), ("write", 512 + 8 * mib, 8 * mib), ("write", 512 + 16 * mib, mib)]
    assert bytes(handle.data[:512]) == b"\x01" * 512
    assert handle.data[512:512 + 17 * mib] == bytes(17 * mib)
    assert bytes(handle.data[512 + 17 * mib:]) == b"\x01" * (3 * mib - 512)
    del calls[:]
    target.zero(0, 4096)
    assert calls == [("write", 0, 4096)]
    with pytest.raises(TransferError, match="Zeroing of 2 bytes at offset"):
        target.zero(20 * mib - 1, 2)


def test_handle_target_clones_through_the_opener_and_uses_a_native_zero():
    calls = []
    opened = []

    def opener():
        handle = FakeHandle(4096, calls)
        handle.zero = lambda offset, length: calls.append(("zero", offset, length))
        opened.append(handle)
        return handle

    target = HandleTarget(opener(), known_zeroed=True, opener=opener)
    clone = target.clone()
    assert clone.known_zeroed is True and clone.handle is opened[1] and len(opened) == 2
    clone.zero(0, 1024)
    clone.write(1024, b"abc")
    clone.flush()
    clone.close()
    assert calls == [("zero", 0, 1024), ("write", 1024, 3), ("flush",), ("close",)]
