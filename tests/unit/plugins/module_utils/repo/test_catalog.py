"""The restore point catalog (repo/catalog.py, format section 7.3): a listing from it equals the listing from the
manifests whatever happened to the catalog objects (missing, stale, damaged, forged, their manifest replaced), and
keeping it up to date never fails a backup. On the local backend, moto and SeaweedFS (the ``backend`` fixture), plus
a fuzz test of the catalog parser on an in-memory backend."""
import hashlib
import json
import logging
import os
import secrets
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BackendError, BlockvaultError, NotFoundInBackendError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import info as ops_info
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import report as ops_report
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops._engine import select_manifests, select_summaries
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, Repository, RepositorySettings, crypto, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import Backend, BackendWrapper, ObjectInfo
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.catalog import (CATALOG_PREFIX, decode_catalog, encode_catalog,
                                                                                      summary_of_entry)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import PointSummary
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.fuzzing import dump, mutated_bytes, mutated_document
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (MIB, PASSPHRASE, make_repo, manifest_for,
                                                                                                 reopen)

ENCRYPTION = pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])


def commit(repo, vm_key):
    """A restore point of ``vm_key`` with one all-zero 1 MiB disk (no chunk to store); its id."""
    run_id = uuid.uuid4().hex
    with repo.begin_backup(vm_key=vm_key, run_id=run_id) as session:
        session.add_disk_index("2000", DiskIndex(MIB, MIB))
        return session.commit(manifest_for(vm_key, {"2000": MIB}, run_id=run_id)).id


def from_manifests(repo):
    """The listing as the manifests give it: (id, PointSummary or None, error class or None), oldest first."""
    return [(read.point.id, PointSummary.of(read.manifest) if read.manifest else None,
             type(read.error).__name__ if read.error else None) for read in reopen(repo).read_manifests()]


def from_catalog(repo, **kwargs):
    return [(read.point.id, read.summary, type(read.error).__name__ if read.error else None)
            for read in reopen(repo).read_summaries(**kwargs)]


def tag_of(rp_id):
    return rp_id.split("-")[1]


def catalog_entries(repo, tag):
    """{restore point id: entry} of the catalog of VM ``tag``."""
    return decode_catalog(tag, repo.backend.get(CATALOG_PREFIX + tag), repo.keys).entries()


def catalog_records(repo, tag):
    """{restore point id: (stamp, entry)} of the catalog of VM ``tag``: what encode_catalog takes."""
    stored = decode_catalog(tag, repo.backend.get(CATALOG_PREFIX + tag), repo.keys)
    return {rp_id: (stored.stamps[rp_id], entry) for rp_id, entry in stored.entries().items()}


class Recording(BackendWrapper):
    """Records (method, name) of every call; ``failing(method, name)`` true makes that call raise BackendError."""

    def __init__(self, inner, failing=None, error=BackendError):
        super().__init__(inner)
        self.calls = []
        self.failing = failing or (lambda method, name: False)
        self.error = error

    def _call(self, method, *args, **kwargs):
        name = args[0] if args and isinstance(args[0], str) else ""
        self.calls.append((method, name))
        if self.failing(method, name):
            raise self.error("injected failure of %s %s" % (method, name))
        return getattr(self.inner, method)(*args, **kwargs)

    def reads(self, prefix):
        return [name for method, name in self.calls if method == "get" and name.startswith(prefix)]


@ENCRYPTION
def test_the_catalog_listing_equals_the_manifest_listing_after_commits_prunes_and_deletes(backend, encrypted):
    repo = make_repo(backend, encrypted=encrypted)
    a = [commit(repo, "vm-a") for _number in range(3)]
    b = [commit(repo, "vm-b") for _number in range(2)]
    assert sorted(info.name for info in backend.list(CATALOG_PREFIX)) == sorted({CATALOG_PREFIX + tag_of(a[0]), CATALOG_PREFIX + tag_of(b[0])})
    assert sorted(catalog_entries(repo, tag_of(a[0]))) == a     # every commit added its entry
    expected = from_manifests(repo)
    assert [rp_id for rp_id, _s, _e in expected] == sorted(a + b) and all(s is not None for _i, s, _e in expected)
    assert from_catalog(repo) == expected
    assert from_catalog(repo, vm="vm-a") == [row for row in expected if row[0] in a]
    assert from_catalog(repo, vm_name="vm vm-b") == [row for row in expected if row[0] in b]
    repo.prune({"keep_last": 1}, dry_run=False)
    assert from_catalog(repo) == from_manifests(repo) == [row for row in expected if row[0] in (a[-1], b[-1])]
    repo.delete_restore_point(b[-1])
    assert from_catalog(repo) == from_manifests(repo) == [row for row in expected if row[0] == a[-1]]
    later = commit(repo, "vm-b")
    assert from_catalog(repo) == from_manifests(repo) and [row[0] for row in from_catalog(repo)] == [a[-1], later]


def test_the_views_show_the_same_with_and_without_the_catalog(tmp_path):
    repo = make_repo(open_backend(str(tmp_path / "repo")))
    points = [commit(repo, key) for key in ("vm-a", "vm-b", "vm-a")]
    repo.set_pinned(points[0], True)
    repo.set_note(points[2], "before the upgrade")
    expected = {}
    for manifest in select_manifests(reopen(repo)).manifests:    # what ops.info showed before the catalog
        note = "before the upgrade" if manifest.id == points[2] else ""
        expected.setdefault(manifest.vm.name, []).append(ops_info.summarize(manifest, manifest.id == points[0], note))
    settings = RepositorySettings(repo.location, passphrase=PASSPHRASE)
    assert ops_info.list_restore_points(settings) == {"changed": False, "vms": expected, "count": 3, "warnings": []}
    assert ops_info.list_restore_points(settings, vm="vm vm-a")["vms"] == {"vm vm-a": expected["vm vm-a"]}
    summaries = select_summaries(reopen(repo)).summaries
    assert [ops_report.PointRow.of(s) for s in summaries] == [ops_report.PointRow.of(m) for m in select_manifests(reopen(repo)).manifests]


def test_a_missing_or_stale_catalog_is_rebuilt_from_the_manifests(backend):
    repo = make_repo(backend)
    points = [commit(repo, "vm-a") for _number in range(3)] + [commit(repo, "vm-b")]
    expected = from_manifests(repo)
    tag = tag_of(points[0])
    old = backend.get(CATALOG_PREFIX + tag)
    for info in backend.list(CATALOG_PREFIX):
        backend.delete(info.name)
    recording = Recording(backend)
    assert [(r.point.id, r.summary) for r in reopen(repo, recording).read_summaries()] == [row[:2] for row in expected]
    assert sorted(recording.reads("manifests/")) == sorted("manifests/" + rp_id for rp_id in points)
    assert sorted(catalog_entries(repo, tag)) == points[:3]     # rebuilt by the listing
    recording.calls.clear()
    assert from_catalog(reopen(repo, recording)) == expected
    assert recording.reads("manifests/") == []              # the second listing reads no manifest
    # an older catalog put back (as a lost update of two writers leaves it): what it lacks is read and added again
    newer = commit(repo, "vm-a")
    backend.put(CATALOG_PREFIX + tag, old)
    recording.calls.clear()
    assert from_catalog(reopen(repo, recording), vm_name="vm vm-a") == [row for row in from_manifests(repo) if tag_of(row[0]) == tag]
    assert recording.reads("manifests/") == ["manifests/" + newer]
    assert newer in catalog_entries(repo, tag)
    # listed by another VM's name, this VM's catalog (complete again, without that name) is read, none of its manifests
    recording.calls.clear()
    assert from_catalog(reopen(repo, recording), vm_name="vm vm-b") == [row for row in from_manifests(repo) if row[0] == points[3]]
    assert recording.reads("manifests/") == []


@ENCRYPTION
@pytest.mark.parametrize("damage", ["garbage", "flipped", "truncated", "empty", "other vm", "bad entry", "forged"])
def test_a_damaged_or_forged_catalog_is_ignored_and_rebuilt(backend, encrypted, damage, caplog):
    repo = make_repo(backend, encrypted=encrypted)
    mine = [commit(repo, "vm-a") for _number in range(2)]
    other = commit(repo, "vm-b")
    expected = from_manifests(repo)
    tag, name = tag_of(mine[0]), CATALOG_PREFIX + tag_of(mine[0])
    blob = backend.get(name)
    records = catalog_records(repo, tag)
    if damage == "garbage":
        blob = b"\x00not a catalog\xff"
    elif damage == "flipped":
        blob = blob[:40] + bytes([blob[40] ^ 0x10]) + blob[41:]
    elif damage == "truncated":
        blob = blob[:len(blob) // 2]
    elif damage == "empty":
        blob = b""
    elif damage == "other vm":      # the catalog of vm-b stored under vm-a's name
        blob = backend.get(CATALOG_PREFIX + tag_of(other))
    elif damage == "bad entry":     # a well-formed catalog (sealed or checksummed right) with an entry no manifest could give
        records[mine[0]][1]["disks"] = [{"key": "../x", "capacity": -1}]
        blob = encode_catalog(tag, records, repo.keys)
    else:   # forged: other names; sealed with another key when encrypted, with stamps no listing shows when plain
        for rp_id, (stamp, entry) in list(records.items()):
            entry["vm"]["name"] = "forged"
            records[rp_id] = (stamp if encrypted else [stamp[0] + 1] + stamp[1:], entry)
        keys = crypto.RepositoryKeys(secrets.token_bytes(32), repo.id) if encrypted else None
        blob = encode_catalog(tag, records, keys)
    backend.put(name, blob)
    caplog.set_level(logging.INFO)
    assert from_catalog(repo) == expected
    assert from_catalog(repo, vm_name="vm vm-a") == [row for row in expected if row[0] in mine]
    if damage not in ("forged",) or encrypted:
        assert any("It is ignored and rebuilt from the manifests" in r.getMessage() for r in caplog.records)
    assert sorted(catalog_entries(repo, tag)) == mine   # rebuilt: it decodes again, with every entry
    assert [summary_of_entry(rp_id, entry, tag) for rp_id, entry in sorted(catalog_entries(repo, tag).items())] == [
        row[1] for row in expected if row[0] in mine]


def test_an_entry_without_a_listed_manifest_is_not_shown(backend):
    repo = make_repo(backend)
    kept, pruned = commit(repo, "vm-a"), commit(repo, "vm-a")
    tag = tag_of(kept)
    repo.delete_restore_point(pruned)
    assert pruned in catalog_entries(repo, tag)     # delete leaves the entry: the listing ignores it
    assert [row[0] for row in from_catalog(repo)] == [kept]
    # an entry for a restore point that never existed (an id of this VM, a stamp of any manifest) is not shown either
    records = catalog_records(repo, tag)
    ghost = kept[:-8] + "00000000"
    records[ghost] = (records[kept][0], dict(records[kept][1], id=ghost))
    backend.put(CATALOG_PREFIX + tag, encode_catalog(tag, records, repo.keys))
    assert from_catalog(repo) == from_manifests(repo) and [row[0] for row in from_catalog(repo)] == [kept]


def test_stale_entries_are_dropped_once_they_outnumber_the_live_ones(backend):
    repo = make_repo(backend, encrypted=False)
    points = [commit(repo, "vm-a") for _number in range(18)]
    tag = tag_of(points[0])
    repo.prune({"keep_last": 2}, dry_run=False)
    assert len(catalog_entries(repo, tag)) == 18
    assert from_catalog(repo) == from_manifests(repo)
    assert sorted(catalog_entries(repo, tag)) == points[-2:]


@ENCRYPTION
def test_a_manifest_replaced_behind_the_catalogs_back_is_detected(backend, encrypted):
    repo = make_repo(backend, encrypted=encrypted)
    first, second = commit(repo, "vm-a"), commit(repo, "vm-a")
    assert from_catalog(repo) == from_manifests(repo)
    name = "manifests/" + first
    document = repo.load_manifest(first).to_json()
    document["vm"]["name"] = "vm VM-A"      # as long as "vm vm-a": the object keeps its size
    replaced = repo.encode_manifest(name, document)
    assert len(replaced) == len(backend.get(name))
    backend.put(name, replaced)             # at once: within the modification time's resolution of the commit
    listing = from_catalog(repo)
    assert listing == from_manifests(repo) and listing[0][1].vm.name == "vm VM-A"
    # replaced by damage (one byte changed, same size): the listing says it is damaged, as the manifests do
    blob = bytearray(backend.get(name))
    blob[-20] ^= 0x01
    backend.put(name, bytes(blob))
    listing = from_catalog(repo)
    assert listing == from_manifests(repo) and listing[0] == (first, None, "CorruptionError") and listing[1][0] == second
    warnings = select_summaries(reopen(repo), "vm vm-a").warnings
    assert warnings == select_manifests(reopen(repo), "vm vm-a").warnings and len(warnings) == 1


@pytest.mark.parametrize("error", [BackendError, TypeError], ids=["backend error", "bug"])
def test_a_failing_catalog_update_does_not_fail_the_commit(backend, error, caplog):
    repo = make_repo(backend)
    failing = Recording(backend, failing=lambda method, name: name.startswith(CATALOG_PREFIX) or method == "stat", error=error)
    broken = reopen(repo, failing)
    caplog.set_level(logging.WARNING)
    rp_id = commit(broken, "vm-a")
    assert broken.list_restore_points()[0].id == rp_id
    assert [r.getMessage() for r in caplog.records if "catalog of its VM could not be updated" in r.getMessage()] != []
    assert backend.list(CATALOG_PREFIX) == []
    failing.error = BackendError
    failing.failing = lambda method, name: name.startswith(CATALOG_PREFIX)     # cannot read nor write the catalog
    assert from_catalog(reopen(repo, failing)) == from_manifests(repo)
    failing.failing = lambda method, name: method == "put" and name.startswith(CATALOG_PREFIX)
    assert from_catalog(reopen(repo, failing)) == from_manifests(repo)     # read-only: the repair is given up
    assert any("could not be written" in r.getMessage() for r in caplog.records)
    assert from_catalog(repo) == from_manifests(repo) and backend.list(CATALOG_PREFIX) != []


def test_stat_of_every_backend_is_what_its_listing_shows(backend):
    backend.put("manifests/x", b"one")
    listed = {info.name: info for info in backend.list("manifests/")}
    assert backend.stat("manifests/x") == listed["manifests/x"]
    before = listed["manifests/x"]
    backend.put("manifests/x", b"two")      # written again, same size
    assert backend.stat("manifests/x") != before and backend.stat("manifests/x").size == 3
    with pytest.raises(NotFoundInBackendError):
        backend.stat("manifests/y")


# -- one VM (format section 7.3, "One VM"): manifests listed by name, only the shown VM's stat'ed ----------------------------


def test_list_names_gives_the_names_list_gives(backend):
    for name in ("manifests/a", "manifests/b", "chunks/ab/one", "chunks/cd/two", "locks/x"):
        backend.put(name, b"x")
    for prefix in ("manifests/", "chunks/", "chunks/ab/", "", "nothing/"):
        assert sorted(backend.list_names(prefix)) == sorted(info.name for info in backend.list(prefix)), prefix
    if not backend.parallel_listing:    # the local backend: a leftover temporary object is not listed by name either
        root = backend.location
        with open(os.path.join(root, "manifests", ".c.tmp-123"), "wb") as handle:
            handle.write(b"half")
        assert sorted(backend.list_names("manifests/")) == ["manifests/a", "manifests/b"]


def test_one_vm_is_listed_from_its_catalog_and_the_stamps_of_its_own_manifests(backend_factory):
    backend = backend_factory()
    repo = make_repo(backend)
    a = [commit(repo, "vm-a") for _number in range(3)]
    b = [commit(repo, "vm-b") for _number in range(2)]
    expected = from_manifests(repo)
    recording = Recording(repo.backend)
    reads = list(reopen(repo, recording).read_summaries(vm_name="vm vm-a"))
    assert [(read.point.id, read.summary) for read in reads] == [row[:2] for row in expected if row[0] in a]
    on_manifests = [(method, name) for method, name in recording.calls if name.startswith("manifests/")]
    # no manifest read; on a local directory one listing by name and one stat per restore point shown (vm-b's manifests
    # are not touched); on S3, whose listing gives the stamps at no extra cost, one listing
    by_names = backend.names_cheaper_than_listing
    assert by_names == (backend_factory.server is None)
    assert sorted(on_manifests) == (sorted([("list_names", "manifests/")] + [("stat", "manifests/" + rp_id) for rp_id in a]) if by_names
                                    else [("list", "manifests/")])
    listing = [(method, name) for method, name in recording.calls if name.startswith((CATALOG_PREFIX, "manifests/"))]
    assert sorted(name for method, name in listing if method == "get") == sorted(CATALOG_PREFIX + tag_of(rp_id) for rp_id in (a[0], b[0]))
    # by key: the same, from that VM's catalog alone
    recording.calls.clear()
    assert from_catalog(reopen(repo, recording), vm="vm-b") == [row for row in expected if row[0] in b]
    assert sorted(name for method, name in recording.calls if method in ("get", "stat") and name.startswith((CATALOG_PREFIX, "manifests/"))) == sorted(
        [CATALOG_PREFIX + tag_of(b[0])] + (["manifests/" + rp_id for rp_id in b] if by_names else []))


def test_a_restore_point_the_catalog_lacks_is_read_and_added(backend):
    repo = make_repo(backend)
    a = [commit(repo, "vm-a") for _number in range(2)]
    commit(repo, "vm-b")
    tag = tag_of(a[0])
    backend.delete(CATALOG_PREFIX + tag)        # as after a commit that stopped before its catalog update
    later = commit(repo, "vm-a")                # the catalog now holds only this one
    assert from_catalog(repo, vm_name="vm vm-a") == [row for row in from_manifests(repo) if row[0] in a + [later]]
    recording = Recording(repo.backend)
    assert [read.point.id for read in reopen(repo, recording).read_summaries(vm_name="vm vm-a")] == a + [later]
    assert [name for method, name in recording.calls if method == "get" and name.startswith("manifests/")] == []   # repaired


def test_another_vms_damaged_manifest_is_reported_by_the_listing_of_every_vm_not_by_one_vms(backend):
    repo = make_repo(backend)
    a, b = commit(repo, "vm-a"), commit(repo, "vm-b")
    name = "manifests/" + b
    blob = bytearray(backend.get(name))
    blob[-20] ^= 0x01                           # damage written over it: a new stamp, the same size
    backend.put(name, bytes(blob))
    assert [row[0] for row in from_catalog(repo, vm_name="vm vm-a")] == [a]
    assert from_catalog(repo) == from_manifests(repo) and from_catalog(repo)[1] == (b, None, "CorruptionError")
    # one VM's listing of the damaged one's own VM does say it
    assert from_catalog(repo, vm_name="vm vm-b") == [(b, None, "CorruptionError")]


# -- fuzz ------------------------------------------------------------------------------------------------------------

class MemoryBackend(Backend):
    """Objects in a dict; each write gets a new modification time and version, as a store gives them."""

    location = "memory:catalog"

    def __init__(self):
        self.objects, self.stamps, self.writes = {}, {}, 0

    def put(self, name, data, exclusive=False):
        self.objects[name] = b"".join(bytes(part) for part in data) if isinstance(data, (list, tuple)) else bytes(data)
        self.writes += 1
        self.stamps[name] = (1.7e9 + self.writes, str(self.writes))

    def get(self, name):
        try:
            return self.objects[name]
        except KeyError:
            raise NotFoundInBackendError("Object %s does not exist." % name) from None

    def exists(self, name):
        return name in self.objects

    def delete(self, name):
        self.objects.pop(name, None)

    def list(self, prefix="", limit=None):
        return [ObjectInfo(name, len(data), *self.stamps[name]) for name, data in sorted(self.objects.items())
                if name.startswith(prefix)][:limit]


@pytest.fixture(scope="module")
def fuzzed():
    """A plain and an encrypted repository in memory, two VMs with three restore points each, and their listings."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
        made = {}
        for kind in ("plain", "encrypted"):
            backend = MemoryBackend()
            Repository.create(backend, chunk_size=MIB, encryption=kind == "encrypted", passphrase=PASSPHRASE if kind == "encrypted" else None)
            repo = Repository.open(backend, passphrase=PASSPHRASE if kind == "encrypted" else None)
            points = [commit(repo, key) for key in ("vm-a", "vm-b") * 3]
            made[kind] = {"backend": backend, "repo": repo, "tag": tag_of(points[0]), "ids": sorted(points),
                          "catalog": backend.get(CATALOG_PREFIX + tag_of(points[0])), "listing": from_manifests(repo)}
        yield made


@given(data=st.data())
@settings(max_examples=400, derandomize=True, database=None, deadline=None, print_blob=True, suppress_health_check=list(HealthCheck))
def test_fuzzed_catalogs_give_typed_errors_and_never_break_a_listing(fuzzed, data):
    kind = data.draw(st.sampled_from(["plain", "encrypted"]))
    made = fuzzed[kind]
    repo, backend, tag = made["repo"], made["backend"], made["tag"]
    name = CATALOG_PREFIX + tag
    if data.draw(st.sampled_from(["bytes", "document", "document"])) == "bytes":
        blob = data.draw(mutated_bytes(made["catalog"]))
    else:   # a well-formed envelope (seal or checksum) around a damaged header or entries: reaches the checks behind it
        plain = repo.keys.unseal(name, made["catalog"]) if repo.keys is not None else made["catalog"].partition(b"\n")[2]
        header, points = (json.loads(line) for line in plain.split(b"\n"))
        if data.draw(st.booleans()):
            header = data.draw(mutated_document(header))
        else:
            points = data.draw(mutated_document({"points": points})).get("points")
        body = dump(header) + b"\n" + dump(points)
        blob = repo.keys.seal(name, body) if repo.keys is not None else hashlib.sha256(body).hexdigest().encode() + b"\n" + body
    try:
        for rp_id, entry in decode_catalog(tag, blob, repo.keys).entries().items():
            try:
                summary_of_entry(rp_id, entry, tag)
            except BlockvaultError:
                pass
    except BlockvaultError:
        pass
    backend.objects[name] = blob    # in place: the manifests keep their stamps, so the entries that still match are used
    try:
        reads = repo.read_summaries()
        assert [read.point.id for read in reads] == made["ids"]     # what exists is never the catalog's to say
        for read in reads:
            assert read.summary is not None and read.summary.id == read.point.id
            ops_info.summarize(read.summary)
            ops_report.PointRow.of(read.summary)
        other = [row for row in made["listing"] if tag_of(row[0]) != tag]
        assert [row for row in from_catalog(repo) if tag_of(row[0]) != tag] == other     # the other VM is untouched
        backend.objects[name] = blob
        assert {read.point.id for read in repo.read_summaries(vm_name="vm vm-a")} <= set(made["ids"])
    finally:
        backend.objects[name] = made["catalog"]
