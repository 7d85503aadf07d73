"""Restore points whose manifest is gone: pruned while being read (not damage), deleted (damage that validation names
and GC keeps the evidence of), or not written yet (a backup running, or one that was killed)."""
import hashlib
import os
import pathlib
import signal
import subprocess
import sys

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, open_backend
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    MIB, backup, make_repo, manifest_for, random_disk, read_disk, reopen)

ROOT = pathlib.Path(__file__).resolve().parents[5]


def local_repo(tmp_path, name="repo"):
    return make_repo(open_backend(str(tmp_path / name)), encrypted=False)


def test_reads_pass_over_a_restore_point_pruned_between_the_listing_and_the_read(tmp_path):
    repo = local_repo(tmp_path)
    disks = {"2000": random_disk(MIB, 1)}
    first = backup(repo, "vm-a", disks, run_id="run-1")[0]
    second = backup(repo, "vm-a", disks, run_id="run-2")[0]
    racer = reopen(repo)            # an empty manifest cache, as every new run has
    listed = racer.list_restore_points

    def list_then_prune(vm=None):
        points = listed(vm)
        if repo.backend.exists("manifests/" + first):
            repo.delete_restore_point(first)      # a prune runs between this listing and the reads that follow it
        return points

    racer.list_restore_points = list_then_prune
    # the idempotency check of a backup reads every restore point of its VM, newest first
    assert racer.find_restore_point("vm-a", "run-1") is None
    assert racer.find_restore_point("vm-a", "run-2") == second
    reads = list(reopen(repo).read_manifests("vm-a"))
    assert [(r.point.id, r.manifest.id if r.manifest else None, r.gone) for r in reads] == [(second, second, False)]


def test_validation_names_a_deleted_manifest_and_gc_keeps_what_recovering_it_needs(backend):
    repo = make_repo(backend)
    kept = backup(repo, "vm-a", {"2000": random_disk(MIB, 2)})[0]
    disks = {"2000": random_disk(2 * MIB, 3), "2001": random_disk(MIB + 5, 4)}
    lost = backup(repo, "vm-a", disks)[0]
    manifest = backend.get("manifests/" + lost)
    backend.delete("manifests/" + lost)
    report = reopen(repo).validate("full")
    assert not report["ok"] and report["damaged_chunks"] == []
    assert report["errors"] == [{
        "restore_point": lost, "disk": None, "object": "manifests/" + lost,
        "objects": ["indexes/%s/2000" % lost, "indexes/%s/2001" % lost], "error_class": "CorruptionError",
        "error": "Restore point %s has 2 index object(s) (indexes/%s/2000, indexes/%s/2001) but no manifest: its manifest "
                 "was deleted or lost, so it cannot be restored. GC keeps these indexes and the chunks they name for 7 "
                 "day(s) after they were written; recover the manifest meanwhile (an S3 object version, a copy of the "
                 "repository), or forget them with backup_prune forget_orphans=true." % (lost, lost, lost)}]
    chunks = sorted(info.name for info in backend.list("chunks/"))
    report = reopen(repo).gc()
    assert (report["chunks_removed"], report["indexes_removed"], report["orphans_kept"]) == (0, 0, [lost])
    assert sorted(info.name for info in backend.list("chunks/")) == chunks
    # the evidence was kept: the manifest recovered from elsewhere makes the restore point whole again
    backend.put("manifests/" + lost, manifest)
    survivor = reopen(repo)
    assert survivor.validate("full")["ok"]
    assert all(read_disk(survivor, lost, key) == bytes(data) for key, data in disks.items())
    # past the grace period GC removes the indexes, then the chunks only they named
    backend.delete("manifests/" + lost)
    collector = reopen(repo)
    collector.maintenance_settings.orphan_index_grace = 0
    report = collector.gc()
    assert (report["chunks_removed"], report["indexes_removed"], report["orphans_removed"]) == (4, 2, [lost])
    assert [p.id for p in collector.list_restore_points()] == [kept]
    assert reopen(repo).validate("full")["ok"]


def test_a_running_backup_is_not_a_restore_point_without_manifest(tmp_path):
    repo = local_repo(tmp_path)
    data = random_disk(MIB, 6)
    digest = hashlib.sha256(bytes(data)).digest()
    with repo.begin_backup(vm_key="vm-a", run_id="running") as session:
        session.put_chunk(digest, bytes(data))
        index = DiskIndex(len(data), repo.chunk_size)
        index.set(0, digest)
        session.add_disk_index("2000", index)
        report = reopen(repo).validate("quick")
        assert report["ok"], report
        assert (report["backups_in_progress"], report["interrupted_backups"]) == ([session.restore_point_id], [])
        # a deleted manifest of the same VM is still damage while the backup runs: its lock explains only its own
        older = "20200101T000000.000000Z-%s-00000000" % repo.vm_tag("vm-a")
        repo.backend.put("indexes/%s/2000" % older, b"index of a deleted manifest")
        report = reopen(repo).validate("quick")
        assert [error["restore_point"] for error in report["errors"]] == [older]
        assert report["backups_in_progress"] == [session.restore_point_id]
        repo.backend.delete("indexes/%s/2000" % older)
        rp_id = session.commit(manifest_for("vm-a", {"2000": len(data)}, run_id="running")).id
    report = reopen(repo).validate("full")
    assert report["ok"] and report["backups_in_progress"] == []
    assert read_disk(repo, rp_id, "2000") == bytes(data)


KILLED_AFTER_ITS_INDEX = """
import hashlib, os, signal, sys
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, Repository, open_backend
repo = Repository.open(open_backend(sys.argv[1]))
data = os.urandom(3 << 20)
session = repo.begin_backup(vm_key="vm-a", run_id="doomed")
index = DiskIndex(len(data), repo.chunk_size)
for i in range(3):
    chunk = data[i << 20:(i + 1) << 20]
    index.set(i, hashlib.sha256(chunk).digest())
    session.put_chunk(hashlib.sha256(chunk).digest(), chunk)
session.add_disk_index("2000", index)
print(session.restore_point_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_interrupted_backup_is_not_damage_and_gc_removes_what_it_left(tmp_path):
    repo = local_repo(tmp_path)
    kept = backup(repo, "vm-a", {"2000": random_disk(MIB, 7)})[0]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "build" / "collections"))
    proc = subprocess.run([sys.executable, "-c", KILLED_AFTER_ITS_INDEX, repo.location], env=env, capture_output=True,
                          timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    doomed = proc.stdout.decode().strip()
    report = reopen(repo).validate("quick")
    assert report["ok"] and (report["backups_in_progress"], report["interrupted_backups"]) == ([], [doomed])
    report = reopen(repo).gc()
    assert (report["orphans_removed"], report["orphans_kept"], report["indexes_removed"], report["chunks_removed"]) == (
        [doomed], [], 1, 3)
    assert len(report["stale_locks_removed"]) == 1
    assert [info.name for info in repo.backend.list("indexes/")] == ["indexes/%s/2000" % kept]
    report = reopen(repo).validate("full")
    assert report["ok"] and report["interrupted_backups"] == [] and report["chunks_unreferenced"] == 0
