"""Crash safety (a failing write at every step; kill -9) and concurrent writers with prune and GC, on both backends."""
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BackendError, LockError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    MIB, PASSPHRASE, CrashingBackend, backup, fast_locks, make_repo, random_disk, read_disk, reopen)

ROOT = pathlib.Path(__file__).resolve().parents[5]


def test_crash_at_every_write_of_a_backup(backend_factory):
    disks = {"2000": random_disk(3 * MIB, 1), "2001": random_disk(MIB + 77, 2)}
    step = 1
    outcomes = []
    while True:
        inner = backend_factory()
        make_repo(inner)
        crashing = CrashingBackend(inner, fail_at=step)
        repo = reopen(Repository.open(inner, passphrase=PASSPHRASE), crashing)
        repo.lock_settings.refresh_interval = 3600  # no heartbeat writes: the write order is deterministic
        try:
            rp_id = backup(repo, "vm-a", disks, threads=1)[0]
        except BackendError as exc:
            assert "injected crash" in str(exc)
            rp_id = None
        survivor = reopen(repo, inner)
        points = [p.id for p in survivor.list_restore_points()]
        report = survivor.validate("full")
        assert report["ok"], (step, report)
        if crashing.writes < step:  # the backup finished before the injected failure: every write was tried
            assert points == [rp_id]
            break
        outcomes.append(len(points))
        if points:  # the manifest was written before the crash (only the lock release failed)
            assert all(read_disk(survivor, points[0], key) == bytes(data) for key, data in disks.items())
        chunks_before = len(inner.list("chunks/"))
        # the next backup reuses the chunks the dead session left
        rp_next, stored = backup(survivor, "vm-a", disks)
        assert len(inner.list("chunks/")) == 5
        if chunks_before == 5:
            assert stored == 0
        for lock in survivor.list_locks():
            survivor.break_lock(lock["id"])  # the dead session's lock (same pid here, so never judged stale)
        # with its lock broken by hand nothing tells its indexes from those of a deleted manifest: the user says so
        survivor.gc(forget_orphans=True)
        final = survivor.validate("full")
        assert final["ok"] and final["chunks_unreferenced"] == 0
        assert all(read_disk(survivor, rp_next, key) == bytes(data) for key, data in disks.items())
        step += 1
    # 14 writes: lock, 5 chunks, a lock refresh before each of the 2 indexes (fencing), the lock refresh before the
    # manifest, manifest, lock release, the VM's catalog (best effort: its failure fails nothing); a crash at any of the
    # first 12 leaves no restore point, at the 13th or 14th a complete one
    assert step == 15 and outcomes == [0] * 12 + [1, 1]


def test_killed_session_leaves_chunks_the_next_session_reuses(backend_factory, request):
    backend = backend_factory()
    repo = make_repo(backend, encrypted=False)
    data = random_disk(4 * MIB, 9)
    location = backend.location
    kwargs = {}
    server = backend_factory.server
    if server is not None:
        kwargs = dict(s3_endpoint_url=server.endpoint, region=server.region, access_key=server.access_key,
                      secret_key=server.secret_key)
    script = """
import hashlib, os, signal, sys
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, RepositorySettings, open_backend
repo = Repository.open(open_backend(RepositorySettings(sys.argv[1], **eval(sys.argv[2]))))
data = open(sys.argv[3], "rb").read()
session = repo.begin_backup(vm_key="vm-a", run_id="doomed")
for i in range(3):
    chunk = data[i << 20:(i + 1) << 20]
    session.put_chunk(hashlib.sha256(chunk).digest(), chunk)
os.kill(os.getpid(), signal.SIGKILL)
"""
    image = pathlib.Path(request.getfixturevalue("tmp_path")) / "disk.raw"
    image.write_bytes(data)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "build" / "collections"))
    proc = subprocess.run([sys.executable, "-c", script, location, repr(kwargs), str(image)], env=env, capture_output=True, timeout=120,
                          check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert len(backend.list("chunks/")) == 3 and len(backend.list("locks/")) == 1
    repo = reopen(repo)
    assert repo.list_locks()[0]["stale"]  # its process is gone (same host)
    rp_id, stored = backup(repo, "vm-a", {"2000": data})
    single = len(b"".join(repo.codec.encode(b"", bytes(data[3 * MIB:]))))
    assert stored == single  # only the fourth chunk was written
    assert repo.gc()["stale_locks_removed"][0].startswith("shared lock for backup of")
    assert read_disk(repo, rp_id, "2000") == bytes(data)


def test_concurrent_writers_prune_and_gc_lose_nothing(backend_factory):
    backend = backend_factory()
    make_repo(backend)
    common = random_disk(MIB, 500)
    errors = []
    latest = {}
    gc_runs = {"ok": 0, "busy": 0}
    stop = threading.Event()

    def writer(number):
        try:
            repo = reopen(Repository.open(backend, passphrase=PASSPHRASE))
            for generation in range(3):
                data = random_disk(3 * MIB, 1000 * number + generation)
                data[MIB:2 * MIB] = common  # shared by every VM and generation
                rp_id = backup(repo, "vm-%d" % number, {"2000": data})[0]
                latest[number] = (rp_id, bytes(data))
                time.sleep(0.05)
        except Exception as exc:  # reported below
            errors.append(("writer", number, exc))

    def pruner():
        repo = reopen(Repository.open(backend, passphrase=PASSPHRASE))
        while not stop.is_set():
            try:
                repo.prune({"keep_last": 1}, dry_run=False)
            except Exception as exc:
                errors.append(("prune", exc))
            time.sleep(0.03)

    def collector():
        repo = reopen(Repository.open(backend, passphrase=PASSPHRASE))
        while not stop.is_set():
            try:
                repo.gc(lock_wait=0.1)
                gc_runs["ok"] += 1
            except LockError:
                gc_runs["busy"] += 1
            except Exception as exc:
                errors.append(("gc", exc))
            time.sleep(0.02)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    helpers = [threading.Thread(target=pruner), threading.Thread(target=collector)]
    for thread in writers + helpers:
        thread.start()
    for thread in writers:
        thread.join(timeout=300)
    stop.set()
    for thread in helpers:
        thread.join(timeout=60)
    assert errors == []
    assert gc_runs["ok"] + gc_runs["busy"] > 0
    repo = fast_locks(Repository.open(backend, passphrase=PASSPHRASE))
    repo.prune({"keep_last": 1}, dry_run=False)
    repo.gc()
    assert sorted(p.id for p in repo.list_restore_points()) == sorted(rp for rp, _data in latest.values())
    report = repo.validate("full")
    assert report["ok"] and report["chunks_unreferenced"] == 0 and report["chunks_referenced"] == 3 * 2 + 1
    for rp_id, data in latest.values():
        assert read_disk(repo, rp_id, "2000") == data


def test_crash_at_every_write_of_a_removal(backend_factory):
    """A removal cut short at any of its writes leaves the restore point whole or leftovers that validation does not
    call damage (its removal marker names them, even with the dead process's lock broken by hand); GC finishes it and
    frees the chunks only it named."""
    kept_disks = {"2000": random_disk(MIB, 11)}
    doomed_disks = {"2000": random_disk(2 * MIB, 12), "2001": random_disk(MIB, 13)}
    step = 1
    outcomes = []
    while True:
        inner = backend_factory()
        repo = make_repo(inner)
        kept = backup(repo, "vm-a", kept_disks)[0]
        doomed = backup(repo, "vm-a", doomed_disks)[0]
        repo.set_note(doomed, "before the upgrade")
        crashing = CrashingBackend(inner, fail_at=step)
        dying = reopen(repo, crashing)
        dying.lock_settings.refresh_interval = 3600  # no heartbeat writes: the write order is deterministic
        try:
            dying.delete_restore_point(doomed)
        except BackendError as exc:
            assert "injected crash" in str(exc)
        survivor = reopen(repo, inner)
        for lock in survivor.list_locks():
            survivor.break_lock(lock["id"])  # the dead process's lock, which explains nothing any more
        points = [p.id for p in survivor.list_restore_points()]
        report = survivor.validate("full")
        assert report["ok"], (step, report)
        assert report["interrupted_backups"] == [] and report["backups_in_progress"] == []
        if crashing.writes < step:  # the removal finished before the injected failure: every write was tried
            assert points == [kept] and report["unfinished_removals"] == []
            break
        whole = doomed in points
        outcomes.append(whole)
        if whole:
            assert report["unfinished_removals"] == []
            assert all(read_disk(survivor, doomed, key) == bytes(data) for key, data in doomed_disks.items())
            assert survivor.note(doomed) == "before the upgrade"
        else:
            assert report["unfinished_removals"] == ([doomed] if step <= 7 else [])
        gc = survivor.gc()     # no forget_orphans: the marker alone lets GC finish the removal
        assert gc["orphans_kept"] == []
        marked = step >= 3 and step <= 7      # the marker was written and not yet deleted
        assert (gc["removals_finished"], gc["removals_not_begun"]) == (
            ([], [doomed] if marked else []) if whole else ([doomed] if marked else [], []))
        left = [info.name for prefix in ("indexes/", "notes/", "pins/", "removals/") for info in inner.list(prefix)
                if doomed in info.name]
        assert left == ([] if not whole else ["indexes/%s/2000" % doomed, "indexes/%s/2001" % doomed, "notes/" + doomed])
        final = survivor.validate("full")
        assert final["ok"] and final["chunks_unreferenced"] == 0 and final["unfinished_removals"] == []
        assert all(read_disk(survivor, kept, key) == bytes(data) for key, data in kept_disks.items())
        assert len(inner.list("chunks/")) == (1 if not whole else 4)
        step += 1
    # writes: lock, marker, manifest, 2 indexes, note, marker, lock release; a crash before the manifest is deleted
    # leaves the restore point whole (with the marker, which GC deletes), a later one a removal that GC finishes
    assert step == 9 and outcomes == [True] * 3 + [False] * 5
