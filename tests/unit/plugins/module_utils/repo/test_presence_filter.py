"""The presence filter gc/present (format section 9.1, "The presence filter"): GC writes it, sessions use it instead of
a listing of chunks/, confirm its "maybe" with HEAD requests, fall back to the listing when it cannot be used, and stay
sound beside GC.

The filter's own tests run once; the session tests run against the local backend, moto and SeaweedFS (the
conformance fixtures).
"""
import functools
import hashlib
import json
import logging
import random
import threading
import uuid

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import CorruptionError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import BackendWrapper
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import ZERO_SENTINEL, chunk_name, isotime
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import presence as presence_module
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import ManifestDraft
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.presence import (
    PRESENT, PresenceFilter, UnreadableFilter, build_bits, decode_filter, filter_bits)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.session import list_chunk_ids
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    MIB, backup, beside_prune_and_gc, disk_record, make_repo, random_disk, read_disk, reopen, vm_record)


class Recorder(BackendWrapper):
    """Records the listings (by prefix) and the existence checks (by name) that reach the backend."""

    def __init__(self, inner):
        super().__init__(inner)
        self.lists = []
        self.heads = []
        self._mutex = threading.Lock()

    def list(self, prefix="", limit=None):
        with self._mutex:
            self.lists.append(prefix)
        return self.inner.list(prefix, limit=limit)

    def exists(self, name):
        with self._mutex:
            self.heads.append(name)
        return self.inner.exists(name)

    def chunk_listings(self):
        return [prefix for prefix in self.lists if prefix.startswith("chunks/")]

    def chunk_heads(self):
        return [name for name in self.heads if name.startswith("chunks/")]

    def reset(self):
        with self._mutex:
            self.lists, self.heads = [], []


def digest_of(data):
    return hashlib.sha256(bytes(data)).digest()


def chunks_of(data):
    return [bytes(data[i:i + MIB]) for i in range(0, len(data), MIB)]


def header(backend):
    blob = backend.get(PRESENT)
    return json.loads(blob[blob.index(b"\n") + 1:blob.index(b"\n", blob.index(b"\n") + 1)])


def one_chunk_index(digest):
    index = DiskIndex(MIB, MIB)
    index.set(0, digest)
    return index


# -- the filter --------------------------------------------------------------------------------------------------------

def test_positions_are_little_endian_32_bit_slices_of_the_id_modulo_m():
    storage_id = bytes(range(32))
    m = 1000
    presence = PresenceFilter(build_bits([storage_id], m), m, 7, 1, "gc", isotime(), isotime())
    expected = {int.from_bytes(storage_id[4 * i:4 * i + 4], "little") % m for i in range(7)}
    set_bits = {p for p in range(m) if presence.bits[p // 8] >> (p % 8) & 1}
    assert set_bits == expected
    assert storage_id in presence


def test_no_false_negatives_and_about_one_percent_false_positives():
    rng = random.Random(7)
    ids = [rng.randbytes(32) for _unused in range(20000)]
    presence = PresenceFilter.build(iter(ids), len(ids), "gc", isotime())
    assert presence.m == filter_bits(20000) == 200000 and presence.k == 7
    assert all(storage_id in presence for storage_id in ids)
    others = [rng.randbytes(32) for _unused in range(20000)]
    rate = sum(storage_id in presence for storage_id in others) / len(others)
    assert 0.002 < rate < 0.02
    decoded = decode_filter(presence.encode())
    assert (decoded.bits, decoded.m, decoded.k, decoded.count, decoded.gc) == (presence.bits, presence.m, 7, 20000, "gc")


def test_an_empty_filter_says_absent():
    presence = decode_filter(PresenceFilter.build([], 0, "gc", isotime()).encode())
    assert presence.m == 64 and bytes(32) not in presence


def _forged(**changes):
    good = PresenceFilter.build([bytes(range(32))], 1, "gc", isotime())
    fields = {"gc": "gc", "listed": good.listed, "written": good.written, "count": 1, "m": good.m, "k": 7,
              "sha256": hashlib.sha256(good.bits).hexdigest()}
    bits = changes.pop("bits", good.bits)
    fields.update(changes)
    return b"blockvault-present 1\n" + json.dumps(fields).encode() + b"\n" + bits


@pytest.mark.parametrize("blob", [
    b"", b"blockvault-present 2\n{}\n", b"blockvault-present 1\n{not json\n", b"blockvault-present 1\n[]\n",
    _forged(sha256="00" * 32), _forged(m=60), _forged(m=2 ** 33), _forged(k=9), _forged(k=0), _forged(count=-1),
    _forged(count=True), _forged(listed="yesterday"), _forged(written=None), _forged(gc=None),
    _forged(bits=bytes(7)),                                  # shorter than its m
    _forged(bits=b"\xff" * 8, sha256=hashlib.sha256(b"\xff" * 8).hexdigest()),   # 64 bits set by one id of k = 7
], ids=["empty", "version 2", "not json", "not an object", "checksum", "m not a multiple of 8", "m too large", "k 9",
        "k 0", "negative count", "boolean count", "listed", "written", "gc", "truncated", "too many bits"])
def test_filters_that_cannot_be_used_are_refused(blob):
    with pytest.raises(UnreadableFilter):
        decode_filter(blob)


# -- GC writes it -------------------------------------------------------------------------------------------------------

def test_gc_writes_the_filter_of_what_it_keeps_and_rewrites_it(backend):
    repo = make_repo(backend, encrypted=False)      # ids are the plain SHA-256: the filter's answers are the same every run
    keep = random_disk(2 * MIB, 1)
    garbage = random_disk(MIB, 2)
    backup(repo, "vm-a", {"2000": keep})
    doomed = backup(repo, "vm-b", {"2000": garbage})[0]
    assert not backend.exists(PRESENT)
    dry = reopen(repo).gc(dry_run=True)
    assert dry["presence_filter"] is None and not backend.exists(PRESENT)     # a dry run writes nothing
    first = reopen(repo).gc()
    assert first["presence_filter"] == 3
    written = decode_filter(backend.get(PRESENT))
    assert written.count == 3
    ids = [repo.codec.storage_id(digest_of(chunk)) for chunk in chunks_of(keep) + chunks_of(garbage)]
    assert all(storage_id in written for storage_id in ids)
    repo.delete_restore_point(doomed)
    second = reopen(repo).gc()
    assert (second["chunks_removed"], second["presence_filter"]) == (1, 2)
    rewritten = decode_filter(backend.get(PRESENT))
    assert rewritten.count == 2 and rewritten.gc != written.gc and rewritten.listed >= written.listed
    assert all(storage_id in rewritten for storage_id in ids[:2])
    assert ids[2] not in rewritten          # deleted (for these ids, no false positive)


# -- sessions use it ------------------------------------------------------------------------------------------------------

def test_a_session_starts_without_listing_chunks_and_deduplicates_through_the_filter(backend):
    recorder = Recorder(backend)
    repo = make_repo(recorder, encrypted=False)     # plain SHA-256 ids: no false positive for the new chunk below
    data = random_disk(4 * MIB, 3, zero_chunks=(2,))
    assert backup(repo, "vm-a", {"2000": data})[1] > 0
    repo.gc()
    recorder.reset()
    again = reopen(repo)
    with again.begin_backup(vm_key="vm-a", run_id="r") as session:
        assert recorder.chunk_listings() == []          # the start lists no chunk
        assert session.chunk_presence == "filter"
        stored_chunks = [chunk for chunk in chunks_of(data) if any(chunk)]
        assert all(session.has_chunk(digest_of(chunk)) for chunk in stored_chunks)
        asked = len(recorder.chunk_heads())
        assert asked == 3           # each chunk the filter cannot rule out: one HEAD...
        assert all(session.has_chunk(digest_of(chunk)) for chunk in stored_chunks)
        assert len(recorder.chunk_heads()) == asked     # ...once per session
        assert session.presence_requests == 3
    # a second backup of the same data stores nothing, and lists no chunk
    recorder.reset()
    second, stored = backup(reopen(repo), "vm-a", {"2000": data})
    assert stored == 0 and recorder.chunk_listings() == []
    assert read_disk(repo, second, "2000") == bytes(data)
    # an incremental carries its parent's chunks over without asking about each one
    recorder.reset()
    data[0:5] = b"hello"
    third, stored = backup(reopen(repo), "vm-a", {"2000": data}, previous=second, changed={"2000": {0}})
    assert stored > 0 and recorder.chunk_listings() == []
    assert recorder.chunk_heads() == []       # the new chunk is absent from the filter: stored without a question
    assert read_disk(repo, third, "2000") == bytes(data)
    assert reopen(repo).validate("full")["ok"]


def test_a_chunk_deleted_behind_the_filter_is_stored_again(backend):
    repo = make_repo(backend)
    data = random_disk(2 * MIB, 4)
    backup(repo, "vm-a", {"2000": data})
    repo.gc()
    lost = chunks_of(data)[1]
    backend.delete(chunk_name(repo.codec.storage_id(digest_of(lost))))     # damage after GC listed it
    with reopen(repo).begin_backup(vm_key="vm-b", run_id="r") as session:
        assert session.chunk_presence == "filter"
        assert not session.has_chunk(digest_of(lost))   # the filter says maybe; the HEAD says no
        assert session.put_chunk(digest_of(lost), lost) > 0
        assert session.put_chunk(digest_of(chunks_of(data)[0]), chunks_of(data)[0]) == 0    # still there: deduplicated
        session.add_disk_index("2000", one_chunk_index(digest_of(lost)))
        rp_id = session.commit(ManifestDraft.build("r", vm_record("vm-b"), [disk_record("2000", MIB)])).id
    assert read_disk(repo, rp_id, "2000") == lost


def test_an_index_naming_a_chunk_lost_before_the_filter_still_fails(backend):
    repo = make_repo(backend)
    data = random_disk(3 * MIB, 5)
    parent = backup(repo, "vm-a", {"2000": data})[0]
    lost = repo.codec.storage_id(digest_of(chunks_of(data)[2]))
    backend.delete(chunk_name(lost))
    report = reopen(repo).gc()      # its listing lacks the chunk: the filter does not hold it
    assert report["chunks_missing"] == 1
    with reopen(repo).begin_backup(vm_key="vm-a", run_id="r") as session:
        assert session.chunk_presence == "filter"
        index = session.previous_index(parent, "2000")        # carried over: chunk 2 names the lost chunk
        index.set(0, digest_of(chunks_of(data)[0]))
        with pytest.raises(CorruptionError, match=r"The index of disk 2000 names 1 chunk\(s\) that are not stored "
                                                  r"\(first at byte %d\); the repository may have lost data" % (2 * MIB)):
            session.add_disk_index("2000", index)


def test_an_index_naming_a_chunk_lost_after_the_filter_fails_unless_its_parent_carries_it(backend):
    repo = make_repo(backend)
    data = random_disk(2 * MIB, 6)
    parent = backup(repo, "vm-a", {"2000": data})[0]
    repo.gc()
    lost_digest = digest_of(chunks_of(data)[1])
    backend.delete(chunk_name(repo.codec.storage_id(lost_digest)))      # after GC listed it: the filter holds it
    # a chunk of no restore point the session builds on is asked about, whatever the filter says
    with reopen(repo).begin_backup(vm_key="vm-b", run_id="r") as session:
        with pytest.raises(CorruptionError, match=r"names 1 chunk\(s\) that are not stored \(first at byte 0\)"):
            session.add_disk_index("2000", one_chunk_index(lost_digest))
    # a chunk carried over from the parent the filter says is present is relied on (GC deletes no chunk of an existing
    # restore point): the loss is damage, which validation reports and the next GC's filter makes the check see
    with reopen(repo).begin_backup(vm_key="vm-a", run_id="r2") as session:
        session.add_disk_index("2000", session.previous_index(parent, "2000"))
    reopen(repo).gc()
    with reopen(repo).begin_backup(vm_key="vm-a", run_id="r3") as session:
        with pytest.raises(CorruptionError, match=r"names 1 chunk\(s\) that are not stored \(first at byte %d\)" % MIB):
            session.add_disk_index("2000", session.previous_index(parent, "2000"))


def test_false_positives_are_confirmed_by_a_head_request(backend):
    recorder = Recorder(backend)
    repo = make_repo(recorder)
    data = random_disk(2 * MIB, 7)
    backup(repo, "vm-a", {"2000": data})
    # a tiny filter: 64 bits, all set by many ids, so every id is "maybe present"
    stored = list_chunk_ids(backend)
    rng = random.Random(8)
    ids = list(stored) + [rng.randbytes(32) for _unused in range(200)]
    tiny = PresenceFilter.build(ids, len(ids), "forged", isotime(), bits_per_id=0)
    assert tiny.m == 64 and tiny.bits == b"\xff" * 8
    backend.put(PRESENT, tiny.encode())
    new = random_disk(MIB, 9)
    recorder.reset()
    with reopen(repo).begin_backup(vm_key="vm-b", run_id="r") as session:
        assert session.chunk_presence == "filter"
        assert not session.has_chunk(digest_of(new))          # "maybe", then the HEAD: absent
        assert recorder.chunk_heads() == [chunk_name(repo.codec.storage_id(digest_of(new)))]
        assert session.put_chunk(digest_of(new), bytes(new)) > 0     # not asked again: the answer is kept
        assert len(recorder.chunk_heads()) == 1
        assert session.has_chunk(digest_of(new))            # stored by itself: known
        session.add_disk_index("2000", one_chunk_index(digest_of(new)))
        assert len(recorder.chunk_heads()) == 1
        session.commit(ManifestDraft.build("r", vm_record("vm-b"), [disk_record("2000", MIB)]))
    assert recorder.chunk_listings() == []


@pytest.mark.parametrize("damage", ["flipped", "version", "truncated", "old", "off"])
def test_a_filter_that_cannot_be_used_makes_the_session_list_and_say_why(backend, damage, caplog):
    recorder = Recorder(backend)
    repo = make_repo(recorder)
    data = random_disk(2 * MIB, 10)
    backup(repo, "vm-a", {"2000": data})
    repo.gc()
    blob = bytearray(backend.get(PRESENT))
    session_repo = reopen(repo)
    if damage == "flipped":
        blob[-1] ^= 1
    elif damage == "version":
        blob[len("blockvault-present ")] = ord("2")
    elif damage == "truncated":
        blob = blob[:-1]
    elif damage == "old":
        session_repo.presence_settings.max_age = 0.0
    else:
        session_repo.presence_settings.use_filter = False
    backend.put(PRESENT, bytes(blob))
    recorder.reset()
    with caplog.at_level(logging.INFO, logger="blockvault.repository"):
        with session_repo.begin_backup(vm_key="vm-a", run_id="r") as session:
            why = {"flipped": "gc/present is damaged or of another version: its bit array does not match",
                   "version": "gc/present is damaged or of another version: it does not begin with",
                   "truncated": "gc/present is damaged or of another version: its bit array does not match",
                   "old": "is older than 0 s: does GC run?", "off": "the presence filter is turned off"}[damage]
            assert session.chunk_presence.startswith("listing (") and why in session.chunk_presence
            assert recorder.chunk_listings() != [] and recorder.chunk_heads() == []
            assert all(session.has_chunk(digest_of(chunk)) for chunk in chunks_of(data))
            assert recorder.chunk_heads() == []             # answered from the listing
    assert any(why in record.getMessage() for record in caplog.records)


def test_a_session_past_its_request_budget_lists_once_and_then_asks_nothing(backend):
    recorder = Recorder(backend)
    repo = make_repo(recorder)
    data = random_disk(4 * MIB, 11)
    backup(repo, "vm-a", {"2000": data})
    repo.gc()
    session_repo = reopen(repo)
    session_repo.presence_settings.min_requests = 2
    session_repo.presence_settings.requests_per_page = 0
    recorder.reset()
    with session_repo.begin_backup(vm_key="vm-b", run_id="r") as session:
        digests = [digest_of(chunk) for chunk in chunks_of(data)]
        assert session.has_chunk(digests[0]) and session.has_chunk(digests[1])
        assert (len(recorder.chunk_heads()), recorder.chunk_listings()) == (2, [])
        assert session.has_chunk(digests[2])        # the budget is spent: one listing instead
        assert session.chunk_presence.startswith("filter, then listing (2 HEAD requests")
        assert recorder.chunk_listings() != [] and len(recorder.chunk_heads()) == 2
        assert session.has_chunk(digests[3]) and len(recorder.chunk_heads()) == 2
        # a bulk check larger than what is left of the budget lists at once
    session_repo = reopen(repo)
    session_repo.presence_settings.min_requests = 3
    session_repo.presence_settings.requests_per_page = 0
    recorder.reset()
    with session_repo.begin_backup(vm_key="vm-b", run_id="r2") as session:
        assert session.stored_chunks(digests) == set(digests)
        assert recorder.chunk_heads() == [] and recorder.chunk_listings() != []
        assert session.chunk_presence.startswith("filter, then listing (a check of 4 chunks would exceed")


def test_stored_chunks_confirms_chunks_stored_since_the_filter(backend):
    """What a resumed backup relies on: chunks a killed run stored after GC wrote the filter (absent from it)."""
    recorder = Recorder(backend)
    repo = make_repo(recorder)
    backup(repo, "vm-a", {"2000": random_disk(MIB, 12)})
    repo.gc()
    data = random_disk(3 * MIB, 13)
    with reopen(repo).begin_backup(vm_key="vm-b", run_id="killed") as session:
        for chunk in chunks_of(data)[:2]:
            session.put_chunk(digest_of(chunk), chunk)
        session.abort()
    digests = [digest_of(chunk) for chunk in chunks_of(data)]
    recorder.reset()
    with reopen(repo).begin_backup(vm_key="vm-b", run_id="resumed") as session:
        assert not session.has_chunk(digests[0])        # deduplication trusts the filter's "absent"...
        assert recorder.chunk_heads() == []
        assert session.stored_chunks(digests + [ZERO_SENTINEL]) == set(digests[:2]) | {ZERO_SENTINEL}   # ...this asks
        assert sorted(recorder.chunk_heads()) == sorted(chunk_name(repo.codec.storage_id(d)) for d in digests)
        assert session.has_chunk(digests[0]) and not session.has_chunk(digests[2])
        assert len(recorder.chunk_heads()) == 3         # the answers are kept
    assert recorder.chunk_listings() == []


def test_a_condemned_chunk_is_never_asked_about_nor_relied_on(backend):
    repo = make_repo(backend)
    data = random_disk(MIB, 14)
    doomed = backup(repo, "vm-old", {"2000": data})[0]
    repo.gc()                                   # the filter holds the chunk
    repo.delete_restore_point(doomed)
    with repo.locks.acquire("shared", "validate"):
        reopen(repo).gc()                       # condemned, kept for the validation; the filter still holds it
    digest = digest_of(data)
    assert repo.codec.storage_id(digest) in decode_filter(backend.get(PRESENT))
    recorder = Recorder(backend)
    with reopen(repo, recorder).begin_backup(vm_key="vm-a", run_id="r") as session:
        assert session.chunk_presence == "filter"
        assert not session.has_chunk(digest) and recorder.chunk_heads() == []
        assert session.stored_chunks([digest]) == set()
        with pytest.raises(CorruptionError, match="names 1 chunk"):
            session.add_disk_index("2000", one_chunk_index(digest))
        assert session.put_chunk(digest, bytes(data)) > 0      # a rescue, as with a listing
        session.add_disk_index("2001", one_chunk_index(digest))


# -- GC beside writers, with the filter ----------------------------------------------------------------------------------

POOL = 24


def _chunk(seed):
    data = random.Random(seed).randbytes(MIB)
    return digest_of(data), data


def _writer(repo, vm_key, rng, rounds, written, paths, errors):
    try:
        previous = None
        for _unused in range(rounds):
            contents = [_chunk(rng.randrange(POOL)) for _unused in range(3)]
            with repo.begin_backup(vm_key=vm_key, run_id=uuid.uuid4().hex) as session:
                paths.append(session.chunk_presence)
                threading.Event().wait(rng.uniform(0.0, 0.2))
                index, read = None, range(3)
                if previous is not None and repo.restore_point_exists(previous[0]):
                    try:
                        index = session.previous_index(previous[0], "2000")
                    except Exception:       # pruned meanwhile
                        index = None
                if index is not None:
                    changed = {rng.randrange(3)} | set(session.condemned_positions(index))
                    contents = [contents[n] if n in changed else previous[1][n] for n in range(3)]
                    read = sorted(changed)
                else:
                    index = DiskIndex(3 * MIB, MIB)
                for number in read:
                    digest, data = contents[number]
                    if not session.has_chunk(digest):       # through the filter and its HEAD requests
                        session.put_chunk(digest, data)
                    index.set(number, digest)
                session.add_disk_index("2000", index)
                rp_id = session.commit(ManifestDraft.build(session.run_id, vm_record(vm_key), [disk_record("2000", 3 * MIB)])).id
            written[rp_id] = b"".join(data for _digest, data in contents)
            previous = (rp_id, contents)
    except Exception as exc:      # reported by the test
        errors.append((vm_key, exc))


@pytest.mark.parametrize("tiny", [False, True], ids=["filter", "every-id-maybe"])
def test_gc_looping_beside_writers_that_use_the_filter_loses_nothing(backend, tiny, monkeypatch):
    if tiny:    # 64-bit filters: almost every id is "maybe present", so sessions ask about nearly every chunk
        monkeypatch.setattr(presence_module, "filter_bits", lambda count, bits_per_id=10: 64)
    repo = make_repo(backend)
    backup(repo, "vm-seed", {"2000": random_disk(MIB, 15)})
    repo.gc()
    written, errors, paths = {}, [], []
    writers = [functools.partial(_writer, reopen(repo), "vm-%d" % n, random.Random(n), 10, written, paths, errors)
               for n in range(4)]
    removed = beside_prune_and_gc(repo, writers, errors)
    assert errors == []
    assert sum(removed) > 0, "GC never deleted anything beside the writers: the test proved nothing"
    assert paths.count("filter") > len(paths) // 2, paths
    final = reopen(repo)
    for point in final.list_restore_points():
        if point.id in written:
            assert read_disk(final, point.id, "2000") == written[point.id]
    final.prune({"keep_last": 1}, dry_run=False)
    final.gc()
    report = final.validate("full")
    assert report["ok"] and report["chunks_unreferenced"] == 0


def test_an_encrypted_repository_filters_storage_ids(backend):
    """The filter is built from storage ids (HMACs, visible as names anyway), not from the plain digests."""
    repo = make_repo(backend, encrypted=True)
    data = random_disk(MIB, 16)
    backup(repo, "vm-a", {"2000": data})
    repo.gc()
    assert repo.codec.storage_id(digest_of(data)) in decode_filter(backend.get(PRESENT))
    assert header(backend)["count"] == 1 and header(backend)["gc"] != ""
