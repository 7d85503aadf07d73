"""The restore pipeline: byte-identical sparse images, zero handling, rollback modes, verification, failures."""
import hashlib
import threading

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import (
    BackendError, CancelledError, ConfigurationError, CorruptionError, TransferError)
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer import TransferOptions
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.endpoints import MemoryTarget, RawFileTarget
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.file_extents import file_blocksum
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.restore import DiskRestore, restore_disk

C = 64 * 1024


class Repo:
    """Chunks by digest, as repo.read_chunk would return them; counts fetches."""

    def __init__(self, data, chunk_size=C):
        self.chunks = {}
        for offset in range(0, len(data), chunk_size):
            chunk = data[offset:offset + chunk_size]
            self.chunks[hashlib.sha256(chunk).digest()] = chunk
        self.fetched = []
        self.lock = threading.Lock()

    def read_chunk(self, digest):
        with self.lock:
            self.fetched.append(digest)
        return self.chunks[digest]


def chunk_range(i, count=1):
    return (i * C, count * C)


def test_restore_to_a_new_raw_file_is_byte_identical_and_sparse(tmp_path, fakes):
    data = fakes.make_data("rzzrdzd", tail=4096)
    index = fakes.index_of(data, C)
    path = tmp_path / "restored.img"
    target = fakes.CountingTarget(RawFileTarget(path, len(data)))
    result = restore_disk(DiskRestore("2000", index, Repo(data).read_chunk, target),
                          TransferOptions(workers=3, memory_budget=16 * C))
    target.close()
    assert path.read_bytes() == data
    assert fakes.data_extents(path) == [(0, C), (3 * C, 2 * C), (6 * C, C + 4096)]
    assert result.blocksum == index.blocksum() == file_blocksum(str(path), C)
    assert (result.chunks_written, result.chunks_skipped, result.chunks_zeroed, result.bytes_written) == (
        5, 3, 0, 4 * C + 4096)
    assert target.zeros == []
    assert target.writes == [(0, C), (3 * C, C), (4 * C, C), (6 * C, C), (7 * C, 4096)]
    clones = target.log["clones"]
    assert len(clones) == 3 and all(c.closed == 1 and c.flushed == 1 for c in clones)
    assert (target.flushed, target.closed) == (1, 1)       # flushed by the pipeline, closed by us


def test_zero_chunks_of_a_target_not_known_zeroed_are_zeroed_in_runs(fakes):
    data = fakes.make_data("rzzrzzzr", tail=100)
    target = fakes.CountingTarget(MemoryTarget(len(data), known_zeroed=False, data=bytearray(b"\xff" * len(data))))
    result = restore_disk(DiskRestore(None, fakes.index_of(data, C), Repo(data).read_chunk, target),
                          TransferOptions(workers=2, memory_budget=4 * C))
    assert bytes(target.inner.data) == data
    assert target.zeros == [chunk_range(1, 2), chunk_range(4, 3)]
    assert (result.chunks_zeroed, result.bytes_zeroed, result.chunks_written) == (5, 5 * C, 4)
    assert result.blocksum == fakes.index_of(data, C).blocksum()


def test_rollback_with_changed_chunks_writes_only_those(fakes):
    old = fakes.make_data("rrrrrr", seed=1)
    wanted = bytearray(old)
    wanted[C:2 * C] = fakes.make_data("r", seed=2)
    wanted[3 * C:4 * C] = bytes(C)
    wanted = bytes(wanted)
    target = fakes.CountingTarget(MemoryTarget(len(old), known_zeroed=False, data=bytearray(old)))
    repo = Repo(wanted)
    result = restore_disk(DiskRestore(None, fakes.index_of(wanted, C), repo.read_chunk, target, changed_chunks={3, 1, 99}),
                          TransferOptions(workers=2, memory_budget=8 * C))
    assert bytes(target.inner.data) == wanted
    assert target.writes == [chunk_range(1)]
    assert target.zeros == [chunk_range(3)]
    assert target.log["reads"] == []
    assert repo.fetched == [hashlib.sha256(wanted[C:2 * C]).digest()]
    assert (result.chunks_written, result.chunks_zeroed, result.chunks_unchanged) == (1, 1, 4)
    assert result.blocksum == fakes.index_of(wanted, C).blocksum()


def test_rollback_by_comparing_reads_every_chunk_and_writes_only_differing_ones(fakes):
    wanted = fakes.make_data("rrrrzrr", tail=512, seed=5)
    current = bytearray(wanted)
    current[2 * C + 7] ^= 0xFF                             # data differs
    current[4 * C:5 * C] = b"x" * C                       # should be zero, holds data
    current[5 * C:6 * C] = bytes(C)                       # should hold data, reads as zero
    target = fakes.CountingTarget(MemoryTarget(len(wanted), known_zeroed=False, data=current))
    repo = Repo(wanted)
    result = restore_disk(DiskRestore(None, fakes.index_of(wanted, C), repo.read_chunk, target, compare=True),
                          TransferOptions(workers=3, memory_budget=6 * C))
    assert bytes(target.inner.data) == wanted
    assert target.writes == [chunk_range(2), chunk_range(5)]
    assert target.zeros == [chunk_range(4)]
    assert sorted(target.log["reads"]) == [chunk_range(i) for i in range(7)] + [(7 * C, 512)]
    assert sorted(repo.fetched) == sorted(hashlib.sha256(wanted[i * C:(i + 1) * C]).digest() for i in (2, 5))
    assert (result.chunks_compared, result.chunks_unchanged, result.chunks_written, result.chunks_zeroed) == (
        8, 5, 2, 1)
    assert result.blocksum == fakes.index_of(wanted, C).blocksum()


def test_a_chunk_failing_verification_raises_corruption_and_closes_every_clone(fakes):
    data = fakes.make_data("rrrr")
    repo = Repo(data)
    bad = hashlib.sha256(data[2 * C:3 * C]).digest()
    repo.chunks[bad] = b"\x01" * C
    target = fakes.CountingTarget(MemoryTarget(len(data)))
    with pytest.raises(CorruptionError) as info:
        restore_disk(DiskRestore("2001", fakes.index_of(data, C), repo.read_chunk, target),
                     TransferOptions(workers=2, memory_budget=4 * C, vm="web01", run_id="r9"))
    err = info.value
    assert str(err) == ("Chunk 2 of disk 2001 (%s) read from the repository is 65536 bytes with SHA-256 %s, not the "
                        "65536 bytes the index records; run validate on the repository."
                        % (bad.hex(), hashlib.sha256(b"\x01" * C).hexdigest()))
    assert (err.disk, err.vm, err.run_id, err.object_name) == ("2001", "web01", "r9", bad.hex())
    assert all(c.closed == 1 for c in target.log["clones"])
    assert (2 * C, C) not in target.writes


def test_a_write_failure_stops_the_restore_with_the_disk_in_context(fakes):
    data = fakes.make_data("rrrrrrrr")
    target = fakes.CountingTarget(MemoryTarget(len(data)), fail_write_at=3, fail_with=OSError(28, "No space left on device"))
    with pytest.raises(TransferError) as info:
        restore_disk(DiskRestore("d1", fakes.index_of(data, C), Repo(data).read_chunk, target),
                     TransferOptions(workers=2, memory_budget=4 * C))
    assert str(info.value).endswith("of disk d1 failed: No space left on device (OSError).")
    assert str(info.value).startswith("Restoring chunk ")
    assert info.value.disk == "d1"
    assert all(c.closed == 1 for c in target.log["clones"])
    assert all(c.flushed == 0 for c in target.log["clones"])


def test_a_fetch_error_is_raised_as_is_with_the_disk(fakes):
    data = fakes.make_data("rr")

    def fetch(digest):
        raise BackendError("Reading chunk from S3 failed: 500.", transient=True)

    with pytest.raises(BackendError) as info:
        restore_disk(DiskRestore("k", fakes.index_of(data, C), fetch, MemoryTarget(len(data))),
                     TransferOptions(memory_budget=4 * C))
    assert info.value.disk == "k"


def test_a_target_that_cannot_be_cloned_is_shared_under_a_lock(fakes):
    data = fakes.make_data("rrzrr")
    target = fakes.CountingTarget(MemoryTarget(len(data)), clonable=False)
    result = restore_disk(DiskRestore(None, fakes.index_of(data, C), Repo(data).read_chunk, target),
                          TransferOptions(workers=3, memory_budget=8 * C))
    assert bytes(target.inner.data) == data
    assert target.log["clones"] == [] and target.flushed == 1 and target.closed == 0
    assert result.chunks_written == 4


def test_memory_budget_caps_the_workers(fakes):
    data = fakes.make_data("rrrr")
    target = fakes.CountingTarget(MemoryTarget(len(data), known_zeroed=False))
    restore_disk(DiskRestore(None, fakes.index_of(data, C), Repo(data).read_chunk, target, compare=True),
                 TransferOptions(workers=8, memory_budget=3 * C))
    assert len(target.log["clones"]) == 1                  # 2 chunks per comparing worker
    target = fakes.CountingTarget(MemoryTarget(len(data)))
    restore_disk(DiskRestore(None, fakes.index_of(data, C), Repo(data).read_chunk, target),
                 TransferOptions(workers=8, memory_budget=3 * C))
    assert len(target.log["clones"]) == 3
    with pytest.raises(ConfigurationError, match="cannot hold one worker's 131072 bytes"):
        restore_disk(DiskRestore(None, fakes.index_of(data, C), Repo(data).read_chunk, target, compare=True),
                     TransferOptions(memory_budget=C))


def test_capacity_mismatch_is_refused(fakes):
    data = fakes.make_data("rr")
    with pytest.raises(TransferError, match="The target of disk 7 holds 65536 bytes; the restore point's disk holds 131072"):
        restore_disk(DiskRestore("7", fakes.index_of(data, C), Repo(data).read_chunk, MemoryTarget(C)))


def test_cancel_on_request(fakes):
    data = fakes.make_data("r" * 8)
    repo = Repo(data)
    cancel = threading.Event()

    def fetch(digest):
        cancel.set()
        return repo.read_chunk(digest)

    target = fakes.CountingTarget(MemoryTarget(len(data)))
    with pytest.raises(CancelledError, match="The restore of disk x was cancelled on request"):
        restore_disk(DiskRestore("x", fakes.index_of(data, C), fetch, target),
                     TransferOptions(workers=1, memory_budget=4 * C, cancel=cancel))
    assert target.writes == [chunk_range(0)]               # the chunk in hand is finished, nothing more
    assert all(c.closed == 1 and c.flushed == 1 for c in target.log["clones"])


def test_a_checksum_different_from_the_index_is_an_error(fakes):
    data = fakes.make_data("rr")
    index = fakes.index_of(data, C)
    index.blocksum = lambda: "0" * 64
    with pytest.raises(TransferError, match="The restored disk k has checksum [0-9a-f]{64}, not the 0{64} its index"):
        restore_disk(DiskRestore("k", index, Repo(data).read_chunk, MemoryTarget(len(data))),
                     TransferOptions(memory_budget=4 * C))


def test_fetches_stay_parallel_when_the_target_is_shared(fakes):
    data = fakes.make_data("rrrr", seed=8)
    repo = Repo(data)
    barrier = threading.Barrier(2)
    calls = []

    def fetch(digest):
        with repo.lock:
            calls.append(digest)
            first_two = len(calls) <= 2
        if first_two:
            barrier.wait(30)            # two fetches at once, or a broken barrier
        return repo.read_chunk(digest)

    target = fakes.CountingTarget(MemoryTarget(len(data)), clonable=False)
    restore_disk(DiskRestore(None, fakes.index_of(data, C), fetch, target),
                 TransferOptions(workers=2, memory_budget=4 * C))
    assert bytes(target.inner.data) == data and not barrier.broken


def test_progress_counts_every_chunk_once_whatever_happened_to_it(fakes):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.progress import RunProgress

    wanted = fakes.make_data("rzrzr", tail=1000)
    progress = RunProgress()
    target = MemoryTarget(len(wanted), known_zeroed=False, data=bytearray(wanted))
    restore_disk(DiskRestore("d", fakes.index_of(wanted, C), Repo(wanted).read_chunk, target, changed_chunks={1, 2}),
                 TransferOptions(memory_budget=4 * C, progress=progress))
    assert progress.snapshot()["disks"] == [{"key": "d", "phase": "done", "bytes_done": len(wanted),
                                             "bytes_total": len(wanted)}]


def test_a_chunk_repeated_in_the_disk_is_fetched_once_and_written_at_every_place(tmp_path, fakes):
    data = fakes.make_data("drrdzdrd", tail=4096)          # the same chunk (d) at 0, 3, 5 and 7
    index = fakes.index_of(data, C)
    repo = Repo(data)
    path = tmp_path / "restored.img"
    target = fakes.CountingTarget(RawFileTarget(path, len(data)))
    result = restore_disk(DiskRestore("2000", index, repo.read_chunk, target),
                          TransferOptions(workers=3, memory_budget=16 * C))
    target.close()
    assert path.read_bytes() == data
    dup = hashlib.sha256(data[:C]).digest()
    assert repo.fetched.count(dup) == 1
    assert len(repo.fetched) == len(set(repo.fetched)) == 5          # d, three r and the tail: each once
    assert sorted(offset for offset, _length in target.writes) == [0, C, 2 * C, 3 * C, 5 * C, 6 * C, 7 * C, 8 * C]
    assert (result.chunks_written, result.bytes_written, result.blocksum) == (8, 7 * C + 4096, index.blocksum())


def test_compare_mode_fetches_each_differing_place_on_its_own(fakes):
    data = fakes.make_data("drd")
    target = fakes.CountingTarget(MemoryTarget(len(data), known_zeroed=False, data=bytearray(len(data))))
    repo = Repo(data)
    result = restore_disk(DiskRestore(None, fakes.index_of(data, C), repo.read_chunk, target, compare=True),
                          TransferOptions(workers=1, memory_budget=8 * C))
    assert bytes(target.inner.data) == data
    assert len(repo.fetched) == 3 and result.chunks_written == 3
