"""Operations beside a prune and beside damage: a backup's parent pruned while it starts, a prune looping beside
backups, and a damaged manifest of another VM under restores by name, backup_info and validate."""
import hashlib
import threading
import types

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, CorruptionError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import info as ops_info
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import prune as ops_prune
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import validate as ops_validate
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops._backup_plan import BackupPlanner
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.backup import _previous_manifest
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import RestorePointQuery
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import select_restore_point
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, Repository, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import DiskKey
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    MIB, backup, fast_locks, make_repo, manifest_for, random_disk, read_disk, reopen)

GONE = "the previous restore point %s was removed while this backup started"


def plain_repo(tmp_path):
    return make_repo(open_backend(str(tmp_path / "repo")), encrypted=False)


def pruned_after_listing(repository, victims):
    """``repository`` (a fresh one: empty manifest cache) whose next listings are each followed by the removal of
    ``victims`` by another process's prune, before the caller reads what it listed."""
    remover = reopen(repository)
    listed = repository.list_restore_points

    def list_then_prune(vm=None):
        points = listed(vm)
        for rp_id in victims:
            if remover.backend.exists("manifests/" + rp_id):
                remover.delete_restore_point(rp_id)
        return points

    repository.list_restore_points = list_then_prune
    return repository


def test_a_parent_pruned_after_the_listing_means_the_next_older_one_or_a_full_read_that_says_why(tmp_path):
    repo = plain_repo(tmp_path)
    disks = {"2000": random_disk(2 * MIB, 1)}
    first = backup(repo, "vm-a", disks)[0]
    second = backup(repo, "vm-a", disks)[0]
    previous, why = _previous_manifest(pruned_after_listing(reopen(repo), [second]), "vm-a")
    assert (previous.id, why) == (first, None)
    previous, why = _previous_manifest(pruned_after_listing(reopen(repo), [first]), "vm-a")
    assert (previous, why) == (None, GONE % first)
    # the planner reads every disk in full and says why, even for mode=incremental
    disk = types.SimpleNamespace(key=2000, capacity=2 * MIB, uuid="u", file_name="[ds] vm/a.vmdk")
    assert BackupPlanner("incremental", None, MIB, no_previous_reason=why).full_reason(disk, True) == GONE % first
    assert _previous_manifest(reopen(repo), "vm-never-backed-up") == (None, None)


def test_a_parent_pruned_while_the_backup_plans_makes_that_disk_a_full_read(tmp_path):
    repo = plain_repo(tmp_path)
    data = random_disk(3 * MIB, 2)
    parent = backup(repo, "vm-a", {"2000": data})[0]
    planner = BackupPlanner("auto", repo.load_manifest(parent), MIB)
    with repo.begin_backup(vm_key="vm-a", run_id="r2") as session:
        index, why = planner.previous_index(session, DiskKey("2000"))
        assert why is None and list(index) == [hashlib.sha256(bytes(data[i * MIB:(i + 1) * MIB])).digest() for i in range(3)]
        reopen(repo).delete_restore_point(parent)       # a prune in another process
        assert planner.previous_index(session, DiskKey("2000")) == (None, GONE % parent)
    # a parent that still exists with a damaged index is damage, not a prune: it is said, not papered over
    parent = backup(repo, "vm-a", {"2000": data})[0]
    planner = BackupPlanner("auto", repo.load_manifest(parent), MIB)
    repo.backend.put("indexes/%s/2000" % parent, b"damaged")
    with repo.begin_backup(vm_key="vm-a", run_id="r3") as session:
        with pytest.raises(CorruptionError, match="does not match the checksum its manifest records"):
            planner.previous_index(session, DiskKey("2000"))


def _backup_like_a_run(location, vm, run_id, data):
    """What ops.backup does with the repository: a fresh open, the idempotency check, the parent chosen from what
    loads, its index carried over by the planner (or a full read), every chunk that differs from it stored."""
    repo = fast_locks(Repository.open(open_backend(location)))
    assert repo.find_restore_point(vm, run_id) is None
    previous, why = _previous_manifest(repo, vm)
    planner = BackupPlanner("auto", previous, MIB, no_previous_reason=why)
    with repo.begin_backup(vm_key=vm, run_id=run_id) as session:
        index = planner.previous_index(session, DiskKey("2000"))[0] if previous is not None else None
        index = index if index is not None else DiskIndex(len(data), MIB)
        for number in range(index.count):
            chunk = bytes(data[number * MIB:(number + 1) * MIB])
            digest = hashlib.sha256(chunk).digest()
            if index.get(number) != digest:
                session.put_chunk(digest, chunk)
                index.set(number, digest)
        session.add_disk_index("2000", index)
        return session.commit(manifest_for(vm, {"2000": len(data)}, run_id=run_id)).id


def test_a_prune_looping_beside_four_backups_fails_none_of_them(tmp_path):
    location = str(tmp_path / "repo")
    make_repo(open_backend(location), encrypted=False)
    failures, committed = [], {}
    stop = threading.Event()

    def backups(vm, writer):
        data = random_disk(4 * MIB, writer)
        for generation in range(8):
            data[generation % 4 * MIB] ^= 0xFF      # one chunk changes per generation
            try:
                rp_id = _backup_like_a_run(location, vm, "%s-%d-%d" % (vm, writer, generation), data)
                committed[rp_id] = bytes(data)
            except Exception as exc:  # every failure is reported below  # pylint: disable=broad-except
                failures.append((vm, writer, generation, repr(exc)))

    def prunes():
        repo = fast_locks(Repository.open(open_backend(location)))
        while not stop.is_set():
            try:
                repo.prune({"keep_last": 1}, dry_run=False)
            except Exception as exc:  # pylint: disable=broad-except
                failures.append(("prune", repr(exc)))

    # two writers per VM: each one's parent is often pruned as the other commits
    writers = [threading.Thread(target=backups, args=("vm-%d" % (n % 2), n)) for n in range(4)]
    pruner = threading.Thread(target=prunes)
    for thread in writers + [pruner]:
        thread.start()
    for thread in writers:
        thread.join(timeout=600)
    stop.set()
    pruner.join(timeout=60)
    assert failures == [] and len(committed) == 32
    repo = fast_locks(Repository.open(open_backend(location)))
    repo.prune({"keep_last": 1}, dry_run=False)
    remaining = [point.id for point in repo.list_restore_points()]
    assert len(remaining) == 2
    for rp_id in remaining:
        assert read_disk(repo, rp_id, "2000") == committed[rp_id]
    assert repo.validate("full")["ok"]


def damage_manifest(repository, rp_id):
    name = "manifests/" + rp_id
    blob = repository.backend.get(name)
    assert b'"num_cpus": 2' in blob
    repository.backend.put(name, blob.replace(b'"num_cpus": 2', b'"num_cpus": 3'))


def test_a_damaged_manifest_of_another_vm_holds_no_restore_by_name_hostage(tmp_path):
    repo = plain_repo(tmp_path)
    settings = RepositorySettings(location=repo.location)
    disk = {"2000": random_disk(MIB, 3)}
    other = backup(repo, "vm-a", disk)[0]
    older = backup(repo, "vm-b", disk)[0]
    newest = backup(repo, "vm-b", disk)[0]
    damage_manifest(repo, other)
    problem = "Manifest manifests/%s fails its checksum: it is damaged." % other
    skipped = "restore point %s: its manifest is damaged (%s); skipped" % (other, problem)
    unknown_vm = (" - its VM is unknown (a VM's name is stored inside its manifest), so it may be a restore point of "
                  "VM vm vm-b")
    assert select_restore_point(reopen(repo), RestorePointQuery("latest", "vm vm-b")).id == newest
    warnings = []
    select_restore_point(reopen(repo), RestorePointQuery("latest", "vm vm-b"), warnings)
    assert warnings == [skipped + unknown_vm]
    before = reopen(repo).load_manifest(newest).created
    assert select_restore_point(reopen(repo), RestorePointQuery("latest", "vm vm-b", before)).id == older
    # asked for by id, the damaged restore point fails, clearly
    with pytest.raises(CorruptionError, match="fails its checksum: it is damaged"):
        select_restore_point(reopen(repo), RestorePointQuery(other))
    listing = ops_info.list_restore_points(settings)
    assert (sorted(listing["vms"]), listing["count"], listing["warnings"]) == (["vm vm-b"], 2, [skipped])
    # a listing of vm-b passes over it: vm-a's catalog says whose restore point it is (format section 7.3, "One VM");
    # the listing of its own VM reports it
    assert ops_info.list_restore_points(settings, vm="vm vm-b")["warnings"] == []
    assert ops_info.list_restore_points(settings, vm="vm vm-a")["warnings"] == [skipped + unknown_vm.replace("vm vm-b", "vm vm-a")]
    result = ops_validate.validate(ops_validate.ValidateRequest(vm="vm vm-b"), settings)
    assert result["ok"] and result["checked"]["restore_points"] == 2 and result["warnings"] == [skipped + unknown_vm]
    # the whole repository's validation reports it as an error
    result = ops_validate.validate(ops_validate.ValidateRequest(), settings)
    assert not result["ok"] and [(e["restore_point"], e["error"]) for e in result["errors"]] == [(other, problem)]


def test_prune_goes_on_past_a_damaged_manifest_and_forgets_orphan_indexes_when_asked(tmp_path):
    repo = plain_repo(tmp_path)
    settings = RepositorySettings(location=repo.location)
    disk = {"2000": random_disk(MIB, 4)}
    damaged = backup(repo, "vm-a", disk)[0]
    newest = backup(repo, "vm-a", disk)[0]
    lost = backup(repo, "vm-b", {"2000": random_disk(MIB, 5)})[0]
    damage_manifest(repo, damaged)
    repo.backend.delete("manifests/" + lost)
    result = ops_prune.prune(settings, {"keep_last": 1})
    assert [(r["id"], r["vm"]) for r in result["removed"]] == [(damaged, None)]
    assert [(k["id"], k["vm"]) for k in result["kept"]] == [(newest, "vm vm-a")]
    assert result["warnings"] == ["restore point %s: its manifest is damaged (Manifest manifests/%s fails its checksum: it "
                                  "is damaged.); skipped" % (damaged, damaged)]
    assert (result["gc"]["orphans_kept"], result["gc"]["chunks_removed"]) == ([lost], 0)
    with pytest.raises(ConfigurationError, match="forget_orphans removes what the garbage collection would keep: it needs gc=true"):
        ops_prune.prune(settings, {}, gc=False, forget_orphans=True)
    result = ops_prune.prune(settings, {}, forget_orphans=True)
    assert result["changed"] and (result["removed"], result["kept"]) == ([], [])
    assert (result["gc"]["orphans_removed"], result["gc"]["indexes_removed"], result["gc"]["chunks_removed"]) == ([lost], 1, 1)
    assert reopen(repo).validate("full")["ok"]
