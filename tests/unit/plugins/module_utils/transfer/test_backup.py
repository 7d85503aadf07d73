"""The backup pipeline against an in-memory session: digests, zero/dedup/carry counts, exact reads, failures,
cancellation and the memory bound."""
import array
import hashlib
import os
import threading

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import blockhash
from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import (
    BackendError, CancelledError, ConfigurationError, TransferError, VddkError)
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer import TransferOptions
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.buffers import read_buffer_layout
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.endpoints import MemorySource, RawFileSource
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.file_extents import file_blocksum
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.pipeline import (
    BackupDisk, backup_disks, plan_backup)
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.plan import plan_disk
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.progress import RunProgress

C = 64 * 1024
MIB = 1 << 20


def digests(index):
    return [index.digest(i) for i in range(index.count)]


def reference_blocksum(data, chunk_size=C):
    return hashlib.sha256(b"".join(hashlib.sha256(data[i:i + chunk_size]).digest()
                                   for i in range(0, len(data), chunk_size))).hexdigest()


def disk(fakes, key, source, previous=None, changed=None):
    plan = plan_backup(source, C, changed=changed, previous=previous)
    return BackupDisk(key, source, plan, fakes.FakeDiskIndex(source.capacity, C), previous)


def test_full_backup_records_digests_zero_sentinels_and_dedup(fakes):
    data = fakes.make_data("rzdrdzh", tail=1000)
    source = fakes.CountingSource(MemorySource(data))
    session = fakes.FakeSession()
    results = backup_disks(session, [disk(fakes, "2000", source)],
                           TransferOptions(workers=3, memory_budget=4 * C, vm="vm1", run_id="r1"))
    result = results["2000"]
    assert digests(result.index) == digests(fakes.index_of(data, C))
    assert result.index.digest(1) == bytes(32) and result.index.digest(5) == bytes(32)
    assert (result.chunks_read, result.chunks_zero, result.chunks_new, result.chunks_deduped) == (8, 2, 5, 1)
    assert result.chunks_carried == 0
    assert result.bytes_read == len(data)
    stored = [data[i * C:(i + 1) * C] for i in (0, 2, 3, 6, 7)]
    # bytes_new before compression, bytes_stored what the session stored (the fake adds 16 bytes per chunk)
    assert result.bytes_new == sum(len(chunk) for chunk in stored) == 4 * C + 1000
    assert result.bytes_stored == sum(len(chunk) + 16 for chunk in stored)
    assert sorted(session.puts) == sorted(hashlib.sha256(chunk).digest() for chunk in stored)
    assert session.data_types == {"memoryview"}          # chunks handed over without a copy
    assert result.blocksum == reference_blocksum(data) == result.index.blocksum()
    # buffers of 2 chunks (budget 4 chunks): requests aligned to chunks, the last one short
    assert source.reads == [(0, 2 * C), (2 * C, 2 * C), (4 * C, 2 * C), (6 * C, C + 1000)]
    assert source.threads == {"bv-backup-read-2000"}
    assert source.closed == 1
    assert result.as_dict()["key"] == "2000" and "index" not in result.as_dict()


def test_blocksum_equals_the_definition(fakes):
    data = fakes.make_data("rzr", tail=512)
    results = backup_disks(fakes.FakeSession(), [disk(fakes, "a", MemorySource(data))],
                           TransferOptions(workers=2, memory_budget=4 * C))
    assert results["a"].blocksum == reference_blocksum(data)


def test_sparse_raw_file_reads_only_allocated_chunks(tmp_path, fakes):
    data = fakes.make_data("rzzzrrzz", tail=4096)
    path = tmp_path / "disk.img"
    fakes.write_sparse(path, data)
    source = fakes.CountingSource(RawFileSource(path))
    results = backup_disks(fakes.FakeSession(), [disk(fakes, "d", source)],
                           TransferOptions(workers=2, memory_budget=8 * C))
    assert source.reads == [(0, C), (4 * C, 2 * C), (8 * C, 4096)]
    result = results["d"]
    assert (result.chunks_read, result.chunks_zero, result.bytes_read) == (4, 5, 3 * C + 4096)
    assert digests(result.index) == digests(fakes.index_of(data, C))
    assert result.blocksum == file_blocksum(str(path), C)


def test_chunks_already_in_the_repository_are_not_stored_again(fakes):
    data = fakes.make_data("rrz")
    present = [hashlib.sha256(data[i * C:(i + 1) * C]).digest() for i in (0, 1)]
    session = fakes.FakeSession(present=present)
    result = backup_disks(session, [disk(fakes, "a", MemorySource(data))],
                          TransferOptions(workers=2, memory_budget=4 * C))["a"]
    assert (result.chunks_new, result.chunks_deduped, result.bytes_new, result.bytes_stored) == (0, 2, 0, 0)
    assert session.puts == []


def test_incremental_reads_exactly_the_changed_allocated_chunks_and_carries_the_rest(fakes):
    old = fakes.make_data("rrrrrrrrz", seed=1)
    new = bytearray(old)
    new[2 * C + 10:2 * C + 110] = os.urandom(100)          # chunk 2 changed
    new[5 * C:5 * C + 5] = b"12345"                        # chunk 5 changed
    new[6 * C:7 * C] = bytes(C)                            # chunk 6 trimmed: changed and unallocated
    new = bytes(new)
    previous = fakes.index_of(old, C)
    previous.set(0, b"\x11" * 32)                          # a carried digest must come from the previous index
    changed = [(2 * C + 10, 100), (5 * C, 5), (6 * C, C)]
    allocated = [(0, 6 * C), (7 * C, C)]
    source = fakes.CountingSource(MemorySource(new, allocated=allocated))
    result = backup_disks(fakes.FakeSession(), [disk(fakes, "2001", source, previous, changed)],
                          TransferOptions(workers=3, memory_budget=16 * C))["2001"]
    assert source.reads == [(2 * C, C), (5 * C, C)]
    assert source.bytes_read == result.bytes_read == 2 * C
    expected = digests(fakes.index_of(new, C))
    expected[0] = b"\x11" * 32
    assert digests(result.index) == expected
    assert result.index.digest(8) == bytes(32)              # a carried zero chunk stays a zero sentinel
    assert (result.chunks_read, result.chunks_carried, result.chunks_zero, result.chunks_new) == (2, 6, 1, 2)
    assert result.mode == "incremental"


def test_disks_are_read_in_parallel_each_by_its_own_thread(fakes):
    barrier = threading.Barrier(3)                       # sequential readers would never all meet here
    sources = {key: fakes.CountingSource(MemorySource(fakes.make_data("rrrrzr", seed=n)), barrier=barrier)
               for n, key in enumerate(("a", "b", "c"))}
    progress = RunProgress(run_id="r", vm="vm")
    results = backup_disks(fakes.FakeSession(), [disk(fakes, k, s) for k, s in sources.items()],
                           TransferOptions(workers=2, progress=progress),
                           buffer_pool=fakes.instrumented_pool(2 * C, 6))
    assert sorted(results) == ["a", "b", "c"]
    assert [s.threads for s in sources.values()] == [{"bv-backup-read-a"}, {"bv-backup-read-b"}, {"bv-backup-read-c"}]
    snapshot = progress.snapshot()
    assert [(d["key"], d["bytes_done"], d["bytes_total"], d["phase"]) for d in snapshot["disks"]] == [
        ("a", 6 * C, 6 * C, "done"), ("b", 6 * C, 6 * C, "done"), ("c", 6 * C, 6 * C, "done")]
    for key, source in sources.items():
        assert digests(results[key].index) == digests(fakes.index_of(source.inner.data, C))
        assert source.closed == 1


def _other_disk_waiting_for_the_cancel(fakes, pool, seed=9):
    """A disk whose reads wait until the pipeline has stopped (pool.wake runs right after the stop flag is set)."""
    woken = threading.Event()
    original_wake = pool.wake

    def wake():
        woken.set()
        original_wake()

    pool.wake = wake
    return fakes.CountingSource(MemorySource(fakes.make_data("r" * 12, seed=seed)), gate=woken)


def test_a_read_failure_cancels_the_other_disks_closes_everything_and_raises_with_the_disk(fakes):
    pool = fakes.instrumented_pool(2 * C, 8)
    failing = fakes.CountingSource(MemorySource(fakes.make_data("r" * 12)), fail_read_at=2,
                                   fail_with=VddkError("VDDK Read failed: sector out of range.", code=22))
    other = _other_disk_waiting_for_the_cancel(fakes, pool)
    failing.fail_after = other.reading                     # fail once the other disk is in its first read
    with pytest.raises(VddkError) as info:
        backup_disks(fakes.FakeSession(), [disk(fakes, "2000", failing), disk(fakes, "2001", other)],
                     TransferOptions(workers=2, vm="web01", run_id="run-7"), buffer_pool=pool)
    err = info.value
    assert (str(err), err.disk, err.vm, err.run_id, err.phase) == (
        "VDDK Read failed: sector out of range.", "2000", "web01", "run-7", "vddk")
    assert len(failing.reads) == 2
    assert len(other.reads) == 1                           # stopped before its next read
    assert (failing.closed, other.closed) == (1, 1)
    assert pool.in_use == 0                                # every buffer came back


def test_an_os_error_is_wrapped_in_a_transfer_error_naming_the_disk_and_range(fakes):
    source = fakes.CountingSource(MemorySource(fakes.make_data("rrrr")), fail_read_at=2,
                                  fail_with=OSError(5, "Input/output error"))
    with pytest.raises(TransferError) as info:
        backup_disks(fakes.FakeSession(), [disk(fakes, "scsi0:1", source)],
                     TransferOptions(workers=1, memory_budget=4 * C))
    assert str(info.value) == ("Reading 131072 bytes at offset 131072 of disk scsi0:1 failed: Input/output error "
                               "(OSError).")
    assert info.value.disk == "scsi0:1" and isinstance(info.value.__cause__, OSError)
    assert source.closed == 1


def test_a_put_chunk_failure_cancels_the_run_and_raises_with_its_disk(fakes):
    data = fakes.make_data("rrrr", seed=3)
    pool = fakes.instrumented_pool(2 * C, 8)
    other = _other_disk_waiting_for_the_cancel(fakes, pool)
    session = fakes.FakeSession(fail_put_at=1, fail_with=BackendError("Writing chunk x to S3 failed: 503 Slow Down.",
                                                                      transient=True), fail_after=other.reading)
    failing = fakes.CountingSource(MemorySource(data))
    with pytest.raises(BackendError) as info:
        backup_disks(session, [disk(fakes, "2000", failing), disk(fakes, "2001", other)],
                     TransferOptions(workers=3, vm="db01"), buffer_pool=pool)
    assert info.value.disk == "2000" and info.value.vm == "db01"
    assert str(info.value) == "Writing chunk x to S3 failed: 503 Slow Down."
    assert len(other.reads) == 1
    assert (failing.closed, other.closed) == (1, 1)
    assert pool.in_use == 0


def test_cancel_on_request_stops_reading_and_raises_cancelled(fakes):
    cancel = threading.Event()
    source = fakes.CountingSource(MemorySource(fakes.make_data("r" * 8)))
    original = source.read_into

    def read_then_cancel(offset, buffer):
        if len(source.reads) == 1:
            cancel.set()                                   # the user asks to stop during the second read
        return original(offset, buffer)

    source.read_into = read_then_cancel
    with pytest.raises(CancelledError, match="cancelled on request before disks a were read completely"):
        backup_disks(fakes.FakeSession(), [disk(fakes, "a", source)],
                     TransferOptions(workers=2, memory_budget=4 * C, cancel=cancel))
    assert len(source.reads) == 2
    assert source.closed == 1


def test_cancel_set_before_the_start_reads_nothing(fakes):
    cancel = threading.Event()
    cancel.set()
    source = fakes.CountingSource(MemorySource(fakes.make_data("rr")))
    with pytest.raises(CancelledError):
        backup_disks(fakes.FakeSession(), [disk(fakes, "a", source)],
                     TransferOptions(memory_budget=4 * C, cancel=cancel))
    assert source.reads == [] and source.closed == 1


def test_memory_budget_bounds_the_buffers_in_flight_whatever_the_disk_size(fakes):
    gate = threading.Event()
    session = fakes.FakeSession(gate=gate)                 # storing blocks until the readers are throttled
    pool = fakes.instrumented_pool(2 * C, 3)
    sources = [fakes.CountingSource(MemorySource(fakes.make_data("r" * 40, seed=n))) for n in (1, 2)]
    reads_when_blocked = []

    def open_gate_when_readers_wait():
        if pool.blocked.wait(30):
            reads_when_blocked.append(sum(len(s.reads) for s in sources))
        gate.set()

    opener = threading.Thread(target=open_gate_when_readers_wait)
    opener.start()
    try:
        results = backup_disks(session, [disk(fakes, "a", sources[0]), disk(fakes, "b", sources[1])],
                               TransferOptions(workers=2), buffer_pool=pool)
    finally:
        gate.set()
        opener.join()
    assert reads_when_blocked == [3]                       # three buffers read, then the readers waited
    assert pool.peak_in_use == 3 and pool.in_use == 0
    assert pool.acquired == 40                             # 2 disks x 40 chunks / 2 chunks per buffer
    for key, source in zip("ab", sources):
        assert digests(results[key].index) == digests(fakes.index_of(source.inner.data, C))


def test_buffer_layout_follows_the_budget():
    assert read_buffer_layout(4 * MIB, 256 * MIB) == (8 * MIB, 32)
    assert read_buffer_layout(16 * MIB, 256 * MIB) == (16 * MIB, 16)
    assert read_buffer_layout(MIB, 4 * MIB) == (2 * MIB, 2)
    assert read_buffer_layout(MIB, MIB + 1) == (MIB, 1)
    with pytest.raises(ConfigurationError) as info:
        read_buffer_layout(4 * MIB, MIB)
    assert str(info.value) == ("The memory budget of 1048576 bytes is smaller than one chunk (4194304 bytes); set "
                               "memory_budget to at least 4194304 bytes (16 times that is a good minimum).")


def test_invalid_arguments_still_close_the_sources(fakes):
    first = fakes.CountingSource(MemorySource(bytes(C)))
    second = fakes.CountingSource(MemorySource(bytes(C)))
    disks = [BackupDisk("a", first, plan_disk(C, C), fakes.FakeDiskIndex(C, C)),
             BackupDisk("a", second, plan_disk(C, C), fakes.FakeDiskIndex(C, C))]
    with pytest.raises(ValueError, match="disk keys must be unique"):
        backup_disks(fakes.FakeSession(), disks)
    assert (first.closed, second.closed) == (1, 1)


def test_an_incremental_plan_without_its_previous_index_is_refused(fakes):
    source = fakes.CountingSource(MemorySource(bytes(2 * C)))
    plan = plan_disk(2 * C, C, changed=[(0, 1)], previous=fakes.FakeDiskIndex(2 * C, C))
    with pytest.raises(ValueError, match="disk a: the plan carries chunks over but no previous index was given"):
        backup_disks(fakes.FakeSession(), [BackupDisk("a", source, plan, fakes.FakeDiskIndex(2 * C, C))])
    with pytest.raises(ValueError, match=r"disk b: the new index \(capacity 65536, chunk size 65536\) does not match"):
        backup_disks(fakes.FakeSession(), [BackupDisk("b", source, plan_disk(2 * C, C), fakes.FakeDiskIndex(C, C))])
    assert source.closed == 2 and source.reads == []


def test_only_the_first_error_is_raised_and_no_pipeline_thread_survives(fakes):
    before = set(threading.enumerate())       # another test's daemon threads (a signal taker, a keeper) are not ours
    pool = fakes.instrumented_pool(2 * C, 8)
    second = _other_disk_waiting_for_the_cancel(fakes, pool)
    second.fail_read_at, second.fail_with = 1, VddkError("second failure")   # fails after the first one
    first = fakes.CountingSource(MemorySource(fakes.make_data("rrrr")), fail_read_at=1,
                                 fail_with=VddkError("first failure"), fail_after=second.reading)
    with pytest.raises(VddkError, match="^first failure$") as info:
        backup_disks(fakes.FakeSession(), [disk(fakes, "one", first), disk(fakes, "two", second)],
                     TransferOptions(workers=3), buffer_pool=pool)
    assert info.value.disk == "one"
    assert (first.closed, second.closed) == (1, 1)
    assert [t.name for t in set(threading.enumerate()) - before if t.name.startswith("bv-")] == []


@pytest.mark.parametrize("buf", [b"", bytes(C), bytes(C - 1) + b"\x01", b"\x01" + bytes(C - 1), bytearray(100),
                                 memoryview(bytes(C))[C // 2:], array.array("I", [0, 0, 0]), array.array("I", [0, 1 << 31])])
def test_zero_check_answers_like_a_byte_comparison(buf):
    assert blockhash.is_zero(buf) == (bytes(memoryview(buf).cast("B")) == bytes(memoryview(buf).nbytes))


def test_a_source_with_read_into_many_gets_batches_of_requests_into_free_buffers(fakes):
    data = fakes.make_data("r" * 16)
    source = fakes.BatchingSource(MemorySource(data))
    pool = fakes.instrumented_pool(2 * C, 8)
    result = backup_disks(fakes.FakeSession(), [disk(fakes, "a", source)], TransferOptions(workers=2),
                          buffer_pool=pool, read_batch=4)["a"]
    assert source.batches == [[(i * 2 * C, 2 * C) for i in range(4)], [(i * 2 * C, 2 * C) for i in range(4, 8)]]
    assert source.reads == []
    assert digests(result.index) == digests(fakes.index_of(data, C))
    assert pool.peak_in_use <= 8 and pool.in_use == 0


def test_batches_never_exceed_the_free_buffers(fakes):
    data = fakes.make_data("r" * 16, seed=4)
    source = fakes.BatchingSource(MemorySource(data))
    pool = fakes.instrumented_pool(2 * C, 2)
    result = backup_disks(fakes.FakeSession(), [disk(fakes, "a", source)], TransferOptions(workers=2),
                          buffer_pool=pool, read_batch=4)["a"]
    single = [[request] for request in source.reads]        # batches of one go through read_into
    batches = sorted(source.batches + single)
    assert max(len(batch) for batch in batches) <= 2
    assert sorted(request for batch in batches for request in batch) == [(i * 2 * C, 2 * C) for i in range(8)]
    assert digests(result.index) == digests(fakes.index_of(data, C))


def test_read_batch_one_never_uses_read_into_many(fakes):
    source = fakes.BatchingSource(MemorySource(fakes.make_data("rrrr")))
    backup_disks(fakes.FakeSession(), [disk(fakes, "a", source)], buffer_pool=fakes.instrumented_pool(C, 4),
                 read_batch=1)
    assert source.batches == [] and source.reads == [(i * C, C) for i in range(4)]


def test_a_failing_batch_releases_all_its_buffers_and_names_the_whole_range(fakes):
    source = fakes.BatchingSource(MemorySource(fakes.make_data("r" * 8)), fail_batch_at=1,
                                  fail_with=OSError(5, "Input/output error"))
    pool = fakes.instrumented_pool(2 * C, 8)
    with pytest.raises(TransferError, match=r"^Reading 524288 bytes at offset 0 of disk a failed: Input/output error"):
        backup_disks(fakes.FakeSession(), [disk(fakes, "a", source)], buffer_pool=pool, read_batch=4)
    assert pool.in_use == 0 and source.closed == 1


def test_disks_with_nothing_to_read_complete_without_reading(fakes):
    empty = fakes.CountingSource(MemorySource(b""))
    holes = fakes.CountingSource(MemorySource(bytes(3 * C), allocated=[]))
    unchanged_data = fakes.make_data("rzr", seed=6)
    previous = fakes.index_of(unchanged_data, C)
    unchanged = fakes.CountingSource(MemorySource(unchanged_data, allocated=[(0, 3 * C)]))
    disks = [disk(fakes, "empty", empty), disk(fakes, "holes", holes),
             disk(fakes, "same", unchanged, previous, changed=[])]
    results = backup_disks(fakes.FakeSession(), disks, TransferOptions(memory_budget=4 * C))
    assert (empty.reads, holes.reads, unchanged.reads) == ([], [], [])
    assert results["empty"].blocksum == hashlib.sha256(b"").hexdigest()
    assert results["holes"].blocksum == reference_blocksum(bytes(3 * C))
    assert results["holes"].chunks_zero == 3
    assert results["same"].blocksum == previous.blocksum() == reference_blocksum(unchanged_data)
    assert results["same"].chunks_carried == 3
    assert (empty.closed, holes.closed, unchanged.closed) == (1, 1, 1)
