"""RawFileTarget's direct-I/O path: exact bytes with aligned heads and unaligned tails, and the buffered fallback."""
import errno
import os

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer import direct_io
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.direct_io import DIRECT_ALIGNMENT, DirectWriter
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.endpoints import RawFileTarget

CHUNK = 64 * 1024


def _direct_supported(directory):
    probe = os.path.join(directory, "probe")
    open(probe, "wb").close()
    writer = DirectWriter.open(probe)
    if writer is None:
        return False
    writer.close()
    return True


@pytest.fixture
def disk_dir(tmp_path):
    if not _direct_supported(str(tmp_path)):
        pytest.skip("the file system under %s refuses O_DIRECT" % tmp_path)
    return tmp_path


def test_direct_writes_land_exactly_with_an_unaligned_tail_written_buffered(disk_dir, fakes, monkeypatch):
    capacity = 3 * CHUNK + 1536                  # a disk whose last chunk ends off the 4 KiB grid
    path = disk_dir / "out.img"
    direct_calls = []
    real_write = DirectWriter.write

    def counting_write(self, offset, view):
        written = real_write(self, offset, view)
        direct_calls.append((offset, view.nbytes, written))
        return written

    monkeypatch.setattr(DirectWriter, "write", counting_write)
    data = fakes.make_data("rrr") + b"t" * 1536
    with RawFileTarget(path, capacity) as target:
        assert target.bounce_buffers is True
        clone = target.clone()
        clone.write(CHUNK, data[CHUNK:2 * CHUNK])
        clone.flush()
        clone.close()
        target.write(0, data[:CHUNK])
        target.write(2 * CHUNK, memoryview(data)[2 * CHUNK:])     # 64 KiB + 1536: 4 KiB-aligned head, then the tail
        target.flush()
    assert path.read_bytes() == data
    assert direct_calls == [(CHUNK, CHUNK, CHUNK), (0, CHUNK, CHUNK), (2 * CHUNK, CHUNK + 1536, CHUNK)]


def test_an_unaligned_offset_is_written_through_the_page_cache(disk_dir):
    path = disk_dir / "out.img"
    with RawFileTarget(path, 4 * DIRECT_ALIGNMENT) as target:
        target.write(512, b"x" * DIRECT_ALIGNMENT)
        target.flush()
    assert path.read_bytes() == bytes(512) + b"x" * DIRECT_ALIGNMENT + bytes(3 * DIRECT_ALIGNMENT - 512)


def test_a_refused_direct_write_falls_back_to_the_page_cache_for_good(disk_dir, monkeypatch):
    path = disk_dir / "out.img"
    real_pwritev = os.pwritev
    refused = []

    def pwritev(fd, buffers, offset):
        if fd == target._direct._fd:       # pylint: disable=protected-access
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwritev(fd, buffers, offset)

    target = RawFileTarget(path, 2 * CHUNK)
    monkeypatch.setattr(direct_io.os, "pwritev", pwritev)
    try:
        target.write(0, b"a" * CHUNK)
        target.write(CHUNK, b"b" * CHUNK)
        target.flush()
        assert refused == [0]                      # tried once, then off
        assert target._direct.enabled is False      # pylint: disable=protected-access
    finally:
        target.close()
    assert path.read_bytes() == b"a" * CHUNK + b"b" * CHUNK


def test_other_write_errors_are_not_hidden_by_the_fallback(disk_dir, monkeypatch):
    path = disk_dir / "out.img"
    target = RawFileTarget(path, CHUNK)

    def no_space(fd, buffers, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(direct_io.os, "pwritev", no_space)
    try:
        with pytest.raises(OSError, match="No space left"):
            target.write(0, b"a" * CHUNK)
    finally:
        target.close()


def test_without_o_direct_support_the_target_writes_buffered(tmp_path, monkeypatch):
    def refuse(path, flags, *args):
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    real_open = os.open
    monkeypatch.setattr(direct_io.os, "open", refuse)
    path = tmp_path / "out.img"
    with RawFileTarget(path, CHUNK) as target:
        assert target.bounce_buffers is False
        target.write(0, b"c" * CHUNK)
        target.flush()
    assert path.read_bytes() == b"c" * CHUNK


def test_direct_can_be_switched_off(tmp_path):
    with RawFileTarget(tmp_path / "out.img", CHUNK, direct=False) as target:
        assert target.bounce_buffers is False
        with target.clone() as clone:
            assert clone.bounce_buffers is False


def test_an_in_place_rollback_of_an_image_reads_back_what_direct_writes_wrote(disk_dir, fakes):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.restore import DiskRestore, restore_disk
    from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer import TransferOptions
    wanted = fakes.make_data("rrzrdr", tail=512)
    current = bytearray(wanted)
    current[CHUNK + 5] ^= 0x55                               # one chunk differs
    current[2 * CHUNK:3 * CHUNK] = b"y" * CHUNK              # should be zero
    path = disk_dir / "vm.img"
    path.write_bytes(bytes(current))
    index = fakes.index_of(wanted, CHUNK)
    chunks = {index.digest(i): wanted[i * CHUNK:(i + 1) * CHUNK] for i in range(index.count)}
    with RawFileTarget(path, len(wanted), create=False) as target:
        assert target.bounce_buffers is True
        result = restore_disk(DiskRestore(None, index, chunks.__getitem__, target, compare=True),
                              TransferOptions(workers=2, memory_budget=16 * CHUNK))
        assert (result.chunks_written, result.chunks_zeroed) == (1, 1)
        again = restore_disk(DiskRestore(None, index, chunks.__getitem__, target, compare=True),
                             TransferOptions(workers=2, memory_budget=16 * CHUNK))
        assert (again.chunks_written, again.chunks_zeroed, again.chunks_unchanged) == (0, 0, index.count)
    assert path.read_bytes() == wanted
