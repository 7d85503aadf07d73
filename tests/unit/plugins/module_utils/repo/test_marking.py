"""GC's compact mark (repo/marking.py): the same answer as the exact set of storage ids, on random repositories.

The compact mark keeps 64-bit prefixes of storage ids and marks each disk chain by its differences from the previous
index; the exact mark is the set of every full storage id every index names. A referenced chunk must always be in
the compact mark, and a garbage chunk never, except through a prefix collision (forced here with 8-bit prefixes).
"""
import hashlib
import os
import random
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import CorruptionError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import marking
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import ZERO_SENTINEL, manifest_name
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.manifest import decode_manifest, encode_manifest
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.marking import ReferencedChunks, changed_digests, index_blocksum
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.marking import mark_restore_points, storage_id_function
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.session import list_chunk_ids
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import backup, make_repo

CHUNK = 4096


def chunk_content(number, length=CHUNK):
    """Chunk content ``number`` (0: a zero chunk), ``length`` bytes: small numbers are shared between disks and VMs."""
    if number == 0:
        return bytes(length)
    return (hashlib.sha256(b"content %d" % number).digest() * (CHUNK // 32))[:length]


def disk_image(contents, tail):
    """A disk made of ``contents`` (chunk numbers), its last chunk ``tail`` bytes short."""
    data = bytearray(b"".join(chunk_content(number) for number in contents))
    if tail and data:
        del data[-tail:]
    return bytes(data)


def exact_mark(repo, rp_ids):
    """The mark as it was: every full storage id every verified index names (the reference)."""
    codec, ids = repo.codec, set()
    for rp_id in rp_ids:
        for disk in repo.load_manifest(rp_id).disks:
            index = repo.load_disk_index(rp_id, disk.key)
            assert index.blocksum() == disk.sha256
            ids.update(codec.storage_id(digest) for digest in index.referenced())
    return ids


class IdSet:
    """``into`` as validation passes it: update() only, full ids."""

    def __init__(self):
        self.ids = set()

    def update(self, storage_ids):
        self.ids.update(storage_ids)


def no_error(rp_id, disk, exc):
    raise AssertionError("unexpected error for %s disk %s: %s" % (rp_id, disk, exc))


# -- random fleets ----------------------------------------------------------------------------

contents = st.integers(min_value=0, max_value=30)        # 0 = zero chunk; few values: chunks shared across VMs
disk_shapes = st.tuples(st.integers(min_value=0, max_value=10), st.sampled_from([0, 0, 1, 100, CHUNK - 1]))
changes = st.lists(st.tuples(st.integers(min_value=0, max_value=9), contents), max_size=6)


@st.composite
def fleets(draw):
    """{encrypted, templates, vms: [{clone_of, disks: {key: (chunks, tail)}, points: [changes per disk, grow]}]}"""
    templates = draw(st.lists(st.lists(contents, min_size=10, max_size=10), min_size=1, max_size=2))
    vms = []
    for _unused in range(draw(st.integers(min_value=1, max_value=3))):
        shapes = draw(st.lists(disk_shapes, min_size=1, max_size=2))
        points = draw(st.lists(st.tuples(st.lists(changes, min_size=len(shapes), max_size=len(shapes)), st.booleans()),
                               min_size=1, max_size=4))
        vms.append({"clone_of": draw(st.none() | st.integers(min_value=0, max_value=len(templates) - 1)),
                    "disks": {str(2000 + n): shape for n, shape in enumerate(shapes)}, "points": points,
                    "own": draw(st.lists(contents, min_size=10, max_size=10))})
    return {"encrypted": draw(st.booleans()), "templates": templates, "vms": vms,
            "delete": draw(st.lists(st.integers(min_value=0, max_value=20), max_size=3)),
            "abandon": draw(st.lists(st.integers(min_value=31, max_value=60), max_size=3)),
            "workers": draw(st.sampled_from([1, 2, 3])), "seed": draw(st.integers(min_value=0, max_value=1000))}


def build(directory, fleet):
    """The repository of ``fleet``; returns (repo, restore point ids alive, ids of the points deleted)."""
    repo = make_repo(open_backend(directory), encrypted=fleet["encrypted"], chunk_size=CHUNK, _allow_small_chunks=True)
    rp_ids = []
    states = []
    for number, vm in enumerate(fleet["vms"]):
        base = fleet["templates"][vm["clone_of"]] if vm["clone_of"] is not None else vm["own"]
        states.append({key: [list(base[:chunks]), tail] for key, (chunks, tail) in vm["disks"].items()})
    # the VMs' backups interleaved in time, as a nightly schedule makes them
    for day in range(max(len(vm["points"]) for vm in fleet["vms"])):
        for number, vm in enumerate(fleet["vms"]):
            if day >= len(vm["points"]):
                continue
            point_changes, grow = vm["points"][day]
            disks = {}
            for (key, state), disk_changes in zip(sorted(states[number].items()), point_changes):
                if day and grow:
                    state[0].append(day + number)          # the disk grew by a chunk
                for position, content in disk_changes:
                    if position < len(state[0]):
                        state[0][position] = content
                disks[key] = disk_image(state[0], state[1] if len(state[0]) else 0)
            rp_ids.append(backup(repo, "vm-%d" % number, disks, threads=1)[0])
    deleted = sorted({rp_ids[n % len(rp_ids)] for n in fleet["delete"]})
    for rp_id in deleted:
        repo.delete_restore_point(rp_id)
    if fleet["abandon"]:         # a backup that stored chunks and died before its manifest: garbage chunks
        with repo.begin_backup(vm_key="vm-dead", run_id="dead") as session:
            for content in fleet["abandon"]:
                data = chunk_content(content)
                session.put_chunk(hashlib.sha256(data).digest(), data)
    return repo, [rp for rp in rp_ids if rp not in deleted], deleted


@settings(max_examples=int(os.environ.get("BLOCKVAULT_MARK_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fleets())
def test_the_compact_mark_equals_the_exact_mark_on_random_repositories(fleet):
    with tempfile.TemporaryDirectory() as directory:
        repo, alive, _deleted = build(directory, fleet)
        exact = exact_mark(repo, alive)
        order = list(alive)
        random.Random(fleet["seed"]).shuffle(order)      # GC passes them in listing order; any order must do
        compact = mark_restore_points(repo, order, no_error, workers=fleet["workers"])
        assert all(storage_id in compact for storage_id in exact)
        assert len(compact) == len(exact)
        garbage = list_chunk_ids(repo.backend) - exact
        assert not [storage_id for storage_id in garbage if storage_id in compact]
        assert compact.unreferenced(sorted(garbage) + sorted(exact)) == sorted(garbage)
        # validation's path: full ids into a plain set, the same set exactly
        full = IdSet()
        assert mark_restore_points(repo, order, no_error, into=full, workers=fleet["workers"]) is full
        assert full.ids == exact
        # a tiny prefix forces collisions: still every referenced id, and a garbage id only by a collision
        tiny = mark_restore_points(repo, order, no_error, into=ReferencedChunks(_prefix_bits=8))
        assert all(storage_id in tiny for storage_id in exact)
        referenced_prefixes = {storage_id[0] for storage_id in exact}
        for storage_id in garbage:
            assert (storage_id in tiny) == (storage_id[0] in referenced_prefixes)
        assert len(tiny) == len(referenced_prefixes)


# -- the pieces ---------------------------------------------------------------------------------

entries = st.one_of(st.just(ZERO_SENTINEL), st.binary(min_size=32, max_size=32),
                    st.binary(min_size=1, max_size=31).map(lambda head: head.ljust(32, b"\0")),     # ends in zeros
                    st.binary(min_size=1, max_size=31).map(lambda tail: tail.rjust(32, b"\0")))     # starts with zeros


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, max_size=80), st.sampled_from([CHUNK, 1 << 20, 4 << 20]), st.integers(min_value=0, max_value=CHUNK - 1))
def test_index_blocksum_is_the_disk_index_blocksum(digests, chunk_size, short):
    capacity = max(0, len(digests) * chunk_size - (short if digests else 0))
    index = DiskIndex(capacity, chunk_size, b"".join(digests))
    assert index_blocksum(index) == index.blocksum()


def test_index_blocksum_of_long_zero_runs():
    chunk_size = 4 << 20
    for layout in ([0] * 9000, [1] * 5 + [0] * 4097 + [1] + [0] * 3, [0] * 4096 + [1], [1, 0] * 50):
        index = DiskIndex(len(layout) * chunk_size - 7, chunk_size,
                          b"".join(hashlib.sha256(b"%d" % n).digest() if used else ZERO_SENTINEL for n, used in enumerate(layout)))
        assert index_blocksum(index) == index.blocksum()


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, max_size=120), st.data())
def test_changed_digests_are_the_entries_that_differ(previous, data):
    current = list(previous)
    for position, entry in data.draw(st.lists(st.tuples(st.integers(min_value=0, max_value=119), entries), max_size=40)):
        if position < len(current):
            current[position] = entry
    current = current[:data.draw(st.integers(min_value=0, max_value=len(current)))] + data.draw(st.lists(entries, max_size=5))
    expected = {entry for n, entry in enumerate(current) if n >= len(previous) or previous[n] != entry}
    assert changed_digests(b"".join(previous), b"".join(current)) == expected


def test_changed_digests_dense_and_sparse_agree_on_a_large_index():
    rnd = random.Random(7)
    previous = rnd.randbytes(32 * 20000)
    for fraction in (0.0, 0.001, 0.05, 0.3, 1.0):
        current = bytearray(previous)
        for position in rnd.sample(range(20000), int(20000 * fraction)):
            current[32 * position:32 * position + 32] = rnd.randbytes(32)
        current = bytes(current)
        expected = {current[i:i + 32] for i in range(0, len(current), 32) if current[i:i + 32] != previous[i:i + 32]}
        assert changed_digests(previous, current) == expected


def test_referenced_chunks_set_operations():
    rnd = random.Random(3)
    ids = [rnd.randbytes(32) for _unused in range(5000)]
    others = [rnd.randbytes(32) for _unused in range(5000)]
    referenced = ReferencedChunks()
    referenced.update(ids[:2500])
    assert ids[0] in referenced and len(referenced) == 2500
    for storage_id in ids[2500:4000]:           # additions after lookups: sorted again before the next lookup
        referenced.add(storage_id)
    referenced |= ids[4000:] + ids[:100]         # duplicates count once
    assert len(referenced) == 5000
    assert all(storage_id in referenced for storage_id in ids)
    assert not any(storage_id in referenced for storage_id in others)
    assert memoryview(ids[7]) in referenced
    assert referenced.unreferenced(others[:10] + ids[:10] + others[10:20]) == others[:20]
    assert referenced.memory_bytes() <= 5000 * (8 + 80) + 16 * 65536        # per id, per used bucket, per bucket
    with pytest.raises(Exception):
        ReferencedChunks(_prefix_bits=4)


def test_duplicates_are_compacted_while_marking(monkeypatch):
    referenced = ReferencedChunks()
    ids = [bytes([n]) * 32 for n in range(200)]
    monkeypatch.setattr(marking, "_COMPACT_MIN", 100)      # compact beyond 200 (the set's size) unsorted values
    for _unused in range(5):
        referenced.update(ids)
    assert referenced._unsorted <= 200 and len(referenced) == 200


def test_the_fast_storage_id_is_the_codecs(tmp_path):
    repo = make_repo(open_backend(str(tmp_path / "r")), encrypted=True)
    to_id = storage_id_function(repo.codec)
    assert to_id is not repo.codec.storage_id
    for n in range(50):
        digest = hashlib.sha256(b"%d" % n).digest()
        assert to_id(digest) == repo.codec.storage_id(digest)
    assert storage_id_function(make_repo(open_backend(str(tmp_path / "p")), encrypted=False).codec) is None


# -- errors: reported, and the chain goes on from the last index that was read -----------------------------------

@pytest.mark.parametrize("encrypted", [False, True])
def test_a_damaged_index_is_reported_and_the_next_point_is_marked_whole(tmp_path, encrypted):
    repo = make_repo(open_backend(str(tmp_path / "r")), encrypted=encrypted, chunk_size=CHUNK, _allow_small_chunks=True)
    first = backup(repo, "vm", {"2000": disk_image([1, 2, 3, 0], 0)})[0]
    second = backup(repo, "vm", {"2000": disk_image([4, 5, 3, 0], 0)})[0]      # damaged below
    third = backup(repo, "vm", {"2000": disk_image([4, 5, 6, 0], 0)})[0]       # shares 4 and 5 with the damaged one only
    name = "indexes/%s/2000" % second
    blob = bytearray(repo.backend.get(name))
    blob[-1] ^= 1
    repo.backend.put(name, bytes(blob))
    errors = []
    marked = mark_restore_points(repo, [first, second, third], lambda rp, disk, exc: errors.append((rp, disk, type(exc))))
    assert errors == [(second, "2000", CorruptionError)]
    assert all(storage_id in marked for storage_id in exact_mark(repo, [first, third]))
    assert len(marked) == 6


def test_a_manifest_that_does_not_load_and_a_checksum_that_differs_are_reported(tmp_path):
    repo = make_repo(open_backend(str(tmp_path / "r")), encrypted=False, chunk_size=CHUNK, _allow_small_chunks=True)
    good = backup(repo, "vm", {"2000": disk_image([1, 2], 0)})[0]
    altered = backup(repo, "vm", {"2000": disk_image([1, 3], 0), "2001": disk_image([4], 0)})[0]
    name = manifest_name(altered)
    document = decode_manifest(name, repo.backend.get(name), None)
    document["disks"][0]["sha256"] = "0" * 64                      # consistent object, wrong disk checksum
    repo.backend.put(name, encode_manifest(name, document, None))
    repo._manifests.clear()
    errors = []
    marked = mark_restore_points(repo, [good, altered, "not-a-restore-point"],
                                 lambda rp, disk, exc: errors.append((rp, disk, exc.message)))
    assert sorted((rp, disk) for rp, disk, _message in errors) == sorted([(altered, "2000"), ("not-a-restore-point", None)])
    assert (altered, "2000", "The checksum of disk 2000 of %s computed from its index differs from the manifest's." % altered) in errors
    assert len(marked) == 3    # chunks 1 and 2 of the good point, 4 of the other disk of the altered one
