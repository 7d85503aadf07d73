"""The backup read plan: per-chunk actions and read requests, edge cases spelled out chunk by chunk."""
from types import SimpleNamespace

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import TransferError
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.plan import (
    CARRY, READ, ZERO, chunk_indexes, normalize_extents, plan_disk)

MIB = 1 << 20
R, Z, C = READ, ZERO, CARRY
# chunk size 100 and capacity 1050: 11 chunks, the last one 50 bytes
CS = 100
CAP = 1050


def prev(capacity=CAP, chunk_size=CS):
    return SimpleNamespace(capacity=capacity, chunk_size=chunk_size)


def test_full_without_allocation_info_reads_everything_including_short_tail():
    plan = plan_disk(CAP, CS)
    assert plan.actions() == [R] * 11
    assert plan.mode == "full"
    assert plan.bytes_to_read == 1050
    assert list(plan.read_requests(400)) == [(0, 400), (400, 400), (800, 250)]


def test_full_extents_crossing_chunk_boundaries_align_outward():
    plan = plan_disk(CAP, CS, allocated=[(150, 100), (599, 2)])
    assert plan.actions() == [Z, R, R, Z, Z, R, R, Z, Z, Z, Z]
    assert plan.bytes_to_read == 400
    assert list(plan.read_requests(1000)) == [(100, 200), (500, 200)]


def test_extent_ending_exactly_on_a_boundary_does_not_touch_the_next_chunk():
    plan = plan_disk(CAP, CS, allocated=[(200, 100), (400, 1)])
    assert plan.actions() == [Z, Z, R, Z, R, Z, Z, Z, Z, Z, Z]


def test_empty_allocation_list_means_all_zero_and_nothing_to_read():
    plan = plan_disk(CAP, CS, allocated=[])
    assert plan.actions() == [Z] * 11
    assert (plan.bytes_to_read, plan.chunks_zero, plan.chunks_read) == (0, 11, 0)
    assert list(plan.read_requests()) == []


def test_extents_past_capacity_are_clipped_and_negative_offsets_start_at_zero():
    plan = plan_disk(CAP, CS, allocated=[(1000, 5000), (2000, 100), (-50, 100)])
    assert plan.actions() == [R, Z, Z, Z, Z, Z, Z, Z, Z, Z, R]
    assert plan.bytes_to_read == 100 + 50
    assert list(plan.read_requests()) == [(0, 100), (1000, 50)]


def test_unsorted_overlapping_and_empty_extents():
    plan = plan_disk(CAP, CS, allocated=[(500, 10), (0, 10), (5, 300), (300, 0), (7, 3)])
    assert plan.actions() == [R, R, R, R, Z, R, Z, Z, Z, Z, Z]
    assert list(plan.read_requests(250)) == [(0, 200), (200, 200), (500, 100)]


def test_normalize_extents_sorts_clips_and_merges_touching_ranges():
    assert normalize_extents([(50, 10), (0, 10), (10, 5), (40, 15), (1040, 100), (-5, 3), (20, 0)], CAP) == [
        (0, 15), (40, 20), (1040, 10)]
    assert normalize_extents([SimpleNamespace(start=5, length=10), SimpleNamespace(offset=30, length=2)], CAP) == [
        (5, 10), (30, 2)]


def test_read_requests_never_exceed_max_and_never_split_a_chunk():
    plan = plan_disk(CAP, CS)
    assert list(plan.read_requests(250)) == [(0, 200), (200, 200), (400, 200), (600, 200), (800, 200), (1000, 50)]
    # smaller than a chunk: one chunk per request
    assert list(plan.read_requests(10)) == [(i * 100, 100) for i in range(10)] + [(1000, 50)]


def test_default_request_size_is_8_mib_or_the_chunk_size_when_larger():
    small = plan_disk(20 * MIB, MIB)
    assert list(small.read_requests()) == [(0, 8 * MIB), (8 * MIB, 8 * MIB), (16 * MIB, 4 * MIB)]
    large = plan_disk(40 * MIB, 16 * MIB)
    assert list(large.read_requests()) == [(0, 16 * MIB), (16 * MIB, 16 * MIB), (32 * MIB, 8 * MIB)]


def test_incremental_reads_changed_chunks_and_carries_the_rest():
    plan = plan_disk(CAP, CS, changed=[(120, 10), (1049, 1)], previous=prev())
    assert plan.actions() == [C, R, C, C, C, C, C, C, C, C, R]
    assert plan.mode == "incremental"
    assert (plan.chunks_read, plan.chunks_carried, plan.chunks_zero, plan.bytes_to_read) == (2, 9, 0, 150)
    assert list(plan.read_requests()) == [(100, 100), (1000, 50)]


def test_incremental_is_changed_and_allocated_with_changed_unallocated_chunks_zero():
    plan = plan_disk(CAP, CS, allocated=[(0, 250)], changed=[(150, 300)], previous=prev())
    # changed chunks 1..4; allocated chunks 0..2 -> 1, 2 read; 3, 4 changed but unallocated -> zero
    assert plan.actions() == [C, R, R, Z, Z, C, C, C, C, C, C]
    assert list(plan.read_requests()) == [(100, 200)]


def test_changed_part_unallocated_but_rest_of_chunk_allocated_is_read_not_zeroed():
    # chunk 3: bytes 300-310 changed (and trimmed), bytes 350-370 hold unchanged data: zeroing would lose them
    plan = plan_disk(CAP, CS, allocated=[(350, 20)], changed=[(300, 10)], previous=prev())
    assert plan.actions() == [C, C, C, R, C, C, C, C, C, C, C]


def test_incremental_with_no_changes_carries_everything():
    plan = plan_disk(CAP, CS, allocated=[(0, CAP)], changed=[], previous=prev())
    assert plan.actions() == [C] * 11
    assert (plan.bytes_to_read, list(plan.read_requests())) == (0, [])


def test_incremental_accepts_cbt_changed_area_objects():
    areas = [SimpleNamespace(start=410, length=200), SimpleNamespace(start=0, length=1)]
    plan = plan_disk(CAP, CS, changed=areas, previous=prev())
    assert plan.actions() == [R, C, C, C, R, R, R, C, C, C, C]
    assert list(plan.indexes(READ)) == [0, 4, 5, 6]
    assert list(plan.indexes(CARRY)) == [1, 2, 3, 7, 8, 9, 10]


def test_incremental_needs_a_matching_previous_index():
    with pytest.raises(TransferError, match="needs the previous restore point's disk index; plan a full backup"):
        plan_disk(CAP, CS, changed=[(0, 1)])
    with pytest.raises(TransferError) as info:
        plan_disk(CAP, CS, changed=[(0, 1)], previous=prev(capacity=2000))
    assert str(info.value) == ("The previous disk index (capacity 2000, chunk size 100) does not match this disk "
                               "(capacity 1050, chunk size 100); plan a full backup.")
    with pytest.raises(TransferError):
        plan_disk(CAP, CS, changed=[(0, 1)], previous=prev(chunk_size=200))


def test_empty_disk_and_exact_multiple_capacity():
    empty = plan_disk(0, CS, allocated=[(0, 100)])
    assert (empty.count, empty.actions(), list(empty.read_requests()), empty.bytes_to_read) == (0, [], [], 0)
    exact = plan_disk(1000, CS, allocated=[(900, 100)])
    assert exact.actions() == [Z] * 9 + [R]
    assert exact.bytes_to_read == 100


def test_summary_reports_the_plan_for_check_mode():
    plan = plan_disk(CAP, CS, allocated=[(0, 100), (1000, 50)], changed=[(0, 300), (1000, 1)], previous=prev())
    assert plan.summary() == {"mode": "incremental", "capacity": 1050, "chunk_size": 100, "chunks": 11,
                              "chunks_read": 2, "chunks_zero": 2, "chunks_carried": 7, "bytes_to_read": 150}


def test_nonsensical_sizes_are_rejected():
    with pytest.raises(ValueError):
        plan_disk(100, 0)
    with pytest.raises(ValueError):
        plan_disk(-1, 100)


def test_large_disk_plans_by_ranges():
    tib = 1 << 40
    allocated = [(i * 64 * MIB, MIB) for i in range(0, 16384, 2)]      # 8192 scattered 1 MiB extents
    plan = plan_disk(tib, 4 * MIB, allocated=allocated)
    assert plan.count == 262144
    assert plan.chunks_read == 8192
    assert plan.bytes_to_read == 8192 * 4 * MIB
    requests = list(plan.read_requests())
    assert len(requests) == 8192 and requests[1] == (128 * MIB, 4 * MIB)


def test_chunk_indexes_of_changed_areas_for_a_rollback():
    assert chunk_indexes([(250, 100), (0, 1), (1040, 500), (99, 2), (600, 0)], CAP, CS) == [0, 1, 2, 3, 10]
    assert chunk_indexes([], CAP, CS) == []


def test_a_resumed_plan_carries_the_done_read_chunks_only():
    plan = plan_disk(6 * MIB, MIB, allocated=[(0, 4 * MIB)])
    assert plan.actions() == [READ] * 4 + [ZERO] * 2
    resumed = plan.with_carried([1, 3, 5])
    assert resumed.actions() == [READ, CARRY, READ, CARRY, ZERO, ZERO]
    assert (resumed.mode, resumed.bytes_to_read, plan.bytes_to_read) == ("full", 2 * MIB, 4 * MIB)
    assert list(resumed.read_requests()) == [(0, MIB), (2 * MIB, MIB)]
