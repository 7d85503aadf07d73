"""GC beside running sessions (format section 9.1, "GC beside writers"): condemnation, the sessions it waits for,
rescues, the sweep marker, a damaged record; and GC looping beside writers, prunes and incrementals, nothing lost.

Every test runs against the local backend and a moto S3 server (the conformance fixtures).
"""
import functools
import hashlib
import json
import random
import threading
import uuid

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import LeaseLostError
from ansible_collections.blockvault.vsphere.plugins.module_utils.lease import OwnerLease
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import BackendWrapper, ObjectInfo
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.garbage import _listed_ids
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import chunk_id_from_name, chunk_name, isotime
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.generations import (
    CONDEMNED, RESCUES_PREFIX, SWEEP_MARKER, ChunkIds, ChunkIdsBuilder, Condemnation, Generation, begin_sweep, decode_condemnation,
    encode_condemnation, end_sweep, read_condemnation)
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    MIB, backup, beside_prune_and_gc, disk_record, make_repo, random_disk, read_disk, reopen, vm_record)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import ManifestDraft


def chunk_of(seed):
    data = random.Random(seed).randbytes(MIB)
    return hashlib.sha256(data).digest(), data


def garbage_chunk(repo, seed):
    """A chunk stored by a restore point that is then deleted: unreferenced, ready to be condemned."""
    digest, data = chunk_of(seed)
    rp_id = backup(repo, "vm-old", {"2000": bytearray(data)})[0]
    repo.delete_restore_point(rp_id)
    return digest, data, repo.codec.storage_id(digest)


def commit_one_chunk(session, vm_key, digest):
    index = DiskIndex(MIB, MIB)
    index.set(0, digest)
    session.add_disk_index("2000", index)
    return session.commit(ManifestDraft.build(session.run_id, vm_record(vm_key), [disk_record("2000", MIB)])).id


def test_garbage_goes_at_once_when_no_session_runs(backend):
    repo = make_repo(backend)
    _digest, _data, storage_id = garbage_chunk(repo, 1)
    report = reopen(repo).gc()
    assert (report["chunks_removed"], report["chunks_condemned"], report["sessions_waited_for"]) == (1, 0, 0)
    assert not backend.exists(chunk_name(storage_id))
    assert read_condemnation(backend).chunks == frozenset()
    assert not backend.exists(SWEEP_MARKER)


def test_condemned_chunks_wait_for_the_sessions_live_then_go(backend):
    repo = make_repo(backend)
    _digest, _data, storage_id = garbage_chunk(repo, 2)
    with repo.locks.acquire("shared", "validate"):      # any session: it may have listed the garbage chunk
        first = reopen(repo).gc()
        assert (first["chunks_removed"], first["chunks_condemned"], first["sessions_waited_for"]) == (0, 1, 1)
        assert backend.exists(chunk_name(storage_id))
        record = read_condemnation(backend)
        (generation,) = record.generations
        assert generation.chunks == {storage_id} and len(generation.sessions) == 1
    second = reopen(repo).gc()
    assert (second["chunks_removed"], second["chunks_condemned"]) == (1, 0)
    assert not backend.exists(chunk_name(storage_id))


def test_a_session_older_than_the_record_may_dedup_a_condemned_chunk_and_keeps_it(backend):
    repo = make_repo(backend)
    digest, data, storage_id = garbage_chunk(repo, 3)
    with reopen(repo).begin_backup(vm_key="vm-a", run_id="r") as session:
        assert session.has_chunk(digest)          # listed before any GC condemned it
        reopen(repo).gc()                         # condemns it, waits for this session
        assert session.put_chunk(digest, data) == 0      # deduplicated
        rp_id = commit_one_chunk(session, "vm-a", digest)
    report = reopen(repo).gc()
    assert (report["chunks_removed"], report["chunks_condemned"]) == (0, 0)
    assert read_disk(repo, rp_id, "2000") == data


def test_a_session_younger_than_the_record_stores_a_condemned_chunk_again_and_gc_keeps_it(backend):
    repo = make_repo(backend)
    digest, data, storage_id = garbage_chunk(repo, 4)
    with repo.locks.acquire("shared", "validate"):
        reopen(repo).gc()                         # condemned; waits for the validation
    with reopen(repo).begin_backup(vm_key="vm-a", run_id="r") as session:
        assert not session.has_chunk(digest)      # it read the record: never relies on the condemned chunk
        assert session.put_chunk(digest, data) > 0        # stored again, announced first
        note = json.loads(backend.get(RESCUES_PREFIX + session.lock_id))
        assert note == {"lock": session.lock_id, "all": False, "chunks": [storage_id.hex()]}
        # the validation ended: the record's sessions are over, but this session's rescue keeps the chunk
        during = reopen(repo).gc()
        assert (during["chunks_removed"], during["sessions_waited_for"]) == (0, 1)
        assert backend.exists(chunk_name(storage_id))
        rp_id = commit_one_chunk(session, "vm-a", digest)
    assert not backend.list(RESCUES_PREFIX)      # the note ends with its session
    assert reopen(repo).gc()["chunks_removed"] == 0
    assert read_disk(repo, rp_id, "2000") == data


def test_a_carried_over_condemned_chunk_is_read_again(backend):
    repo = make_repo(backend)
    garbage_chunk(repo, 5)
    parent = random_disk(2 * MIB, 6)
    rp_id = backup(repo, "vm-a", {"2000": parent})[0]
    # the condemned chunk is in the parent (a writer older than the record deduplicated it): forge that state
    with repo.locks.acquire("shared", "validate"):
        reopen(repo).gc()
    parent_index = repo.load_disk_index(rp_id, "2000")
    record = read_condemnation(backend)
    forged = Generation(frozenset({repo.codec.storage_id(parent_index.digest(1))}), isotime(), ())
    backend.put(CONDEMNED, encode_condemnation(Condemnation(record.generations + (forged,), record.gc)))
    with reopen(repo).begin_backup(vm_key="vm-a", run_id="r2") as session:
        assert session.condemned_positions(session.previous_index(rp_id, "2000")) == [1]


def test_a_rescue_waits_for_a_sweep_in_progress(backend):
    repo = make_repo(backend)
    digest, data, _storage_id = garbage_chunk(repo, 7)
    with repo.locks.acquire("shared", "validate"):
        reopen(repo).gc()
    gc_lock = repo.locks.acquire("gc", "gc", wait=0)
    begin_sweep(backend, gc_lock.lock_id)         # a GC deleting right now
    stored = threading.Event()
    with reopen(repo).begin_backup(vm_key="vm-a", run_id="r") as session:
        session._rescuer.poll = 0.02

        def store():
            session.put_chunk(digest, data)
            stored.set()
        thread = threading.Thread(target=store)
        thread.start()
        # the note is written before the wait, so a sweep that lists notes after this sees it
        assert _wait_for(lambda: backend.exists(RESCUES_PREFIX + session.lock_id))
        assert not stored.wait(0.5)
        end_sweep(backend)
        gc_lock.release()
        thread.join(timeout=30)
        assert stored.is_set()
        rp_id = commit_one_chunk(session, "vm-a", digest)
    assert read_disk(repo, rp_id, "2000") == data


def test_a_sweep_marker_of_a_dead_gc_is_not_waited_for(backend):
    repo = make_repo(backend)
    digest, data, _storage_id = garbage_chunk(repo, 8)
    with repo.locks.acquire("shared", "validate"):
        reopen(repo).gc()
    backend.put(SWEEP_MARKER, json.dumps({"gc": uuid.uuid4().hex, "started": "2026-01-01T00:00:00.000000Z"}).encode())
    with reopen(repo).begin_backup(vm_key="vm-a", run_id="r") as session:
        assert session.put_chunk(digest, data) > 0


def test_a_damaged_record_makes_sessions_rely_on_everything_and_gc_delete_nothing(backend):
    repo = make_repo(backend)
    digest, _data, storage_id = garbage_chunk(repo, 9)
    backend.put(CONDEMNED, b"blockvault-condemned 1\n{not json")
    with reopen(repo).begin_backup(vm_key="vm-a", run_id="r") as session:
        assert session.has_chunk(digest)          # it could not read the record: it trusts its listing...
        assert json.loads(backend.get(RESCUES_PREFIX + session.lock_id))["all"] is True   # ...and says so
        report = reopen(repo).gc()
        assert report["chunks_removed"] == 0 and backend.exists(chunk_name(storage_id))
    assert reopen(repo).gc()["chunks_removed"] == 1        # the session has ended: nobody relies on it any more


@pytest.mark.parametrize("blob", [b"", b"blockvault-condemned 1\n", b"blockvault-condemned 1\n{}\n",
                                  b'blockvault-condemned 1\n{"gc": "a", "written": "b", "sessions": null, "count": 1, '
                                  b'"sha256": "00"}\n' + bytes(31), b"blockvault-condemned 2\n{}\n"])
def test_records_that_are_not_records_are_refused(blob):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.generations import UnreadableRecord
    with pytest.raises(UnreadableRecord):
        decode_condemnation(blob)


def test_record_round_trip():
    record = Condemnation((Generation(frozenset({bytes(32), b"\x01" * 32}), "2026-12-05T00:00:00.000000Z", ("a", "b")),
                           Generation(frozenset({b"\x02" * 32}), "2026-12-05T01:00:00.000000Z", None)), "gc-id")
    assert decode_condemnation(encode_condemnation(record)) == record
    assert record.chunks == {bytes(32), b"\x01" * 32, b"\x02" * 32}


def test_chunk_ids_is_a_compact_set():
    """generations.ChunkIds, GC's packed id set: a set's answers, any input order, and shared, not copied, by the steps
    that keep every member."""
    rng = random.Random(7)
    ids = [rng.randbytes(32) for _number in range(3000)] + [bytes(32), bytes(8) + b"\x01" * 24, bytes(31) + b"\x02"]
    builder = ChunkIdsBuilder(sizes=True)
    for number, storage_id in enumerate(ids + ids[:5]):
        builder.add(storage_id, number % len(ids) + 1)
    everything, half = builder.build(), ChunkIds.of(reversed(ids[:1500]))
    assert len(everything) == len(ids) and list(everything) == sorted(ids) and everything == set(ids)
    assert all(storage_id in everything for storage_id in ids) and rng.randbytes(32) not in everything
    assert everything - half == set(ids[1500:]) and everything & half == set(ids[:1500]) and half | everything == everything
    assert {ids[0], b"x" * 32} & everything == {ids[0]}
    assert everything.without(set(ids[3:])) == set(ids[:3]) and everything.size_of(ids[:3]) == 1 + 2 + 3
    assert everything.without(set()) is everything and everything & everything is everything
    assert ChunkIds() == frozenset() and not ChunkIds()


def test_chunk_names_of_a_listing_as_format_reads_them():
    rng = random.Random(8)
    valid = [chunk_name(rng.randbytes(32)) for _number in range(50)]
    hexid = rng.randbytes(32).hex()
    odd = ["chunks/%s/%s" % (hexid[:2].upper(), hexid.upper()), "chunks/zz/" + hexid, "chunks/%s/%s" % (hexid[:2], hexid[:62] + "zz"),
           "indexes/%s/%s" % (hexid[:2], hexid), "chunks/%s/%s\n%s" % (hexid[:2], hexid, valid[0]), "chunks/%s/%s" % (hexid[:2], hexid[:63])]
    for names in (valid, valid + odd, odd):
        listing = [ObjectInfo(name, number, 0.0) for number, name in enumerate(names)]
        expected = [(chunk_id_from_name(name), number) for number, name in enumerate(names) if chunk_id_from_name(name) is not None]
        assert _listed_ids(listing) == expected


def _wait_for(condition, timeout=10.0):
    event = threading.Event()
    for _number in range(int(timeout / 0.01)):
        if condition():
            return True
        event.wait(0.01)
    return False


# -- GC looping beside writers ----------------------------------------------------------------------------------------

POOL = 24           # chunk contents the writers draw from: a pruned chunk soon comes back in a new backup
DISK_CHUNKS = 3
stop_for_a_while = threading.Event()     # never set: its wait is a sleep


def _writer(repo, vm_key, rng, rounds, written, errors):
    """Back up ``vm_key`` ``rounds`` times, full or incremental from its newest restore point, its chunks drawn from a
    small pool; records {rp_id: expected bytes} in ``written``."""
    try:
        previous = None
        for _number in range(rounds):
            contents = [chunk_of(rng.randrange(POOL)) for _number in range(DISK_CHUNKS)]
            with repo.begin_backup(vm_key=vm_key, run_id=uuid.uuid4().hex) as session:
                # a session lives a while between its listing and its commit: that is when a GC can run beside it
                stop_for_a_while.wait(rng.uniform(0.0, 0.2))
                index, read = None, range(DISK_CHUNKS)
                if previous is not None and repo.restore_point_exists(previous[0]):
                    try:
                        index = session.previous_index(previous[0], "2000")
                    except Exception:       # pruned between the check and the read: a full backup
                        index = None
                if index is not None:       # incremental: one changed chunk, the rest carried, condemned ones read
                    changed = {rng.randrange(DISK_CHUNKS)} | set(session.condemned_positions(index))
                    contents = [contents[n] if n in changed else previous[1][n] for n in range(DISK_CHUNKS)]
                    read = sorted(changed)
                else:
                    index = DiskIndex(DISK_CHUNKS * MIB, MIB)
                for number in read:
                    digest, data = contents[number]
                    session.put_chunk(digest, data)
                    index.set(number, digest)
                session.add_disk_index("2000", index)
                entries = [disk_record("2000", DISK_CHUNKS * MIB)]
                rp_id = session.commit(ManifestDraft.build(session.run_id, vm_record(vm_key), entries)).id
            written[rp_id] = b"".join(data for _digest, data in contents)
            previous = (rp_id, contents)
    except Exception as exc:      # reported by the test
        errors.append((vm_key, exc))


def test_gc_looping_beside_writers_prune_and_incrementals_loses_nothing(backend):
    repo = make_repo(backend)
    written, errors = {}, []
    writers = [functools.partial(_writer, reopen(repo), "vm-%d" % n, random.Random(n), 10, written, errors) for n in range(4)]
    removed = beside_prune_and_gc(repo, writers, errors)
    assert errors == []
    assert sum(removed) > 0, "GC never deleted anything beside the writers: the test proved nothing"
    final = reopen(repo)
    for point in final.list_restore_points():
        assert read_disk(final, point.id, "2000") == written[point.id]
    final.prune({"keep_last": 1}, dry_run=False)
    final.gc()
    report = final.validate("full")
    assert report["ok"] and report["chunks_unreferenced"] == 0


def test_a_reader_holds_the_condemned_chunks_of_its_restore_point_until_it_ends(backend):
    repo = make_repo(backend)
    digest, data, storage_id = garbage_chunk(repo, 10)
    with reopen(repo).begin_backup(vm_key="vm-a", run_id="r") as session:     # older than the record: dedups x
        reopen(repo).gc()
        session.put_chunk(digest, data)
        rp_id = commit_one_chunk(session, "vm-a", digest)
    assert storage_id in read_condemnation(backend).chunks      # referenced now, still in its generation
    reader_repo = reopen(repo)
    with reader_repo.locks.acquire("shared", "export e of restore point %s" % rp_id) as lock:
        reader = reader_repo.open_disk_reader(rp_id, "2000")        # the index is in memory from here on
        with reader_repo.hold_chunks(lock, reader.index, "export e"):
            assert json.loads(backend.get(RESCUES_PREFIX + lock.lock_id))["chunks"] == [storage_id.hex()]
            repo.delete_restore_point(rp_id)
            report = reopen(repo).gc()
            assert report["chunks_removed"] == 0 and backend.exists(chunk_name(storage_id))
            assert reader.read(0, MIB) == data
    assert reopen(repo).gc()["chunks_removed"] == 1


def test_a_reader_whose_condemned_chunk_a_sweep_deleted_first_is_told(backend):
    repo = make_repo(backend)
    digest, data, storage_id = garbage_chunk(repo, 11)
    with reopen(repo).begin_backup(vm_key="vm-a", run_id="r") as session:
        reopen(repo).gc()
        session.put_chunk(digest, data)
        rp_id = commit_one_chunk(session, "vm-a", digest)
    index = repo.load_disk_index(rp_id, "2000")
    backend.delete(chunk_name(storage_id))        # what a sweep that listed the notes before this reader's did
    with repo.locks.acquire("shared", "export e") as lock:
        with pytest.raises(Exception, match=r"export e: 1 chunk\(s\) of its restore point were deleted by a GC"):
            with repo.hold_chunks(lock, index, "export e"):
                pass
    assert not backend.list(RESCUES_PREFIX)


class BatchDeleting(BackendWrapper):
    """A store whose batch delete takes ``batch`` names a request: records each request's size, and calls ``on_request``
    (if set) as a request is made. Two delete workers (a local directory's), whatever the inner backend."""

    def __init__(self, inner, batch):
        super().__init__(inner)
        self.max_delete_batch = batch
        self.parallel_listing = False
        self.requests = []
        self.on_request = None
        self._mutex = threading.Lock()

    def delete_many(self, names):
        names = list(names)
        with self._mutex:
            self.requests.append(len(names))
        if self.on_request is not None:
            self.on_request()
        return self.inner.delete_many(names)


def _garbage_chunks(repo, count, seed):
    """``count`` chunks of a restore point that is then deleted; returns their storage ids."""
    data = random_disk(count * MIB, seed)
    rp_id = backup(repo, "vm-old", {"2000": bytearray(data)})[0]
    repo.delete_restore_point(rp_id)
    return [repo.codec.storage_id(hashlib.sha256(data[n * MIB:(n + 1) * MIB]).digest()) for n in range(count)]


def test_the_sweep_deletes_in_batches_of_the_stores_size(backend):
    store = BatchDeleting(backend, 3)
    repo = make_repo(store)
    ids = _garbage_chunks(repo, 10, 21)
    report = reopen(repo).gc()
    assert (report["chunks_removed"], report["chunks_condemned"], report["bytes_removed"] > 10 * MIB // 2) == (10, 0, True)
    assert store.requests == [3, 3, 3]      # and the tenth chunk by a delete (a request of one name)
    assert not any(backend.exists(chunk_name(storage_id)) for storage_id in ids)


def test_no_delete_request_once_the_gc_lock_is_lost(backend, monkeypatch):
    """Fencing of the batch deletes (spec 9.1): the deadline is checked before every request, so a lease lost during
    the sweep stops it at once; at most the request in flight in the other worker still goes."""
    store = BatchDeleting(backend, 2)
    repo = make_repo(store)
    ids = _garbage_chunks(repo, 12, 22)
    lost = threading.Event()
    store.on_request = lost.set
    problem = OwnerLease.problem
    monkeypatch.setattr(OwnerLease, "problem", lambda self: "lost in the test" if lost.is_set() else problem(self))
    with pytest.raises(LeaseLostError, match="lost in the test"):
        reopen(repo).gc()
    assert 1 <= len(store.requests) <= 2      # the request that lost it, and at most one the other worker had begun
    assert sum(backend.exists(chunk_name(storage_id)) for storage_id in ids) >= 12 - 2 * 2
