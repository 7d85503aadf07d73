"""Checkpoint and resume: a backup killed (-9) at a seeded random point after a checkpoint is resumed by the next run,
which adopts the dead run's snapshot, reads exactly what its checkpoint does not list (the stand-in's counters), and
commits a restore point byte-exact to the snapshot's data although the guest changed after the snapshot. A
snapshot older than resume_max_age (or resume disabled) is removed and the run starts over, saying why."""
import os
import random
import re
import signal
import time

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.checkpoint import list_checkpoints, load_checkpoint
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import DIGEST_SIZE

from opslab import CHUNK, sha256_file  # pylint: disable=import-error
from test_kill import start_child  # pylint: disable=import-error

pytestmark = pytest.mark.lab

VM = "lab-vm1"
INTERVAL = 0.1          # seconds between checkpoints of the killed runs: several per run at the lab's slowed reads


def start_backup_child(env, run_id, latency_us=250000, **backup_options):
    """A backup child (test_kill.start_child) that checkpoints every INTERVAL s; ``backup_options``: more
    BackupRequest fields."""
    return start_child(env, run_id, latency_us=latency_us,
                       backup_options=dict({"checkpoint_interval": INTERVAL}, **backup_options))


def checkpoints(env):
    """{name: Checkpoint} of the repository."""
    repository = env.repository()
    try:
        return {name: load_checkpoint(repository, name) for name in list_checkpoints(repository)}
    finally:
        repository.close()


def listed_chunks(checkpoint):
    return sum(len(disk.digests) // DIGEST_SIZE for disk in checkpoint.disks)


def kill_after_checkpoint(env, child, at_least):
    """Wait for a checkpoint listing ``at_least`` chunks, then kill -9 the child; its last Checkpoint."""
    deadline = time.monotonic() + 120
    try:
        while True:
            found = checkpoints(env)
            if found and listed_chunks(next(iter(found.values()))) >= at_least:
                break
            if child.poll() is not None:
                raise AssertionError("the backup child ended (%s) before a checkpoint of %d chunks: %s" % (
                    child.returncode, at_least, child.stderr.read()))
            if time.monotonic() > deadline:
                raise AssertionError("no checkpoint of %d chunks after 120 s" % at_least)
            time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    (final,) = checkpoints(env).values()      # read after the kill: what the next run finds
    return final


def listed_bytes(checkpoint):
    return sum(min(CHUNK, disk.capacity - chunk * CHUNK) for disk in checkpoint.disks for chunk in disk.done_chunks())


def resume_and_check(env, killed_run, checkpoint, snapshot_sums, modes):
    """The next run resumes ``killed_run``: the assertions every kill point must pass; returns its result."""
    stats = env.new_stats()
    result = env.backup(VM)
    counted = env.read_stats(stats)
    resumed = result["resumed"]
    assert resumed["from_run"] == killed_run and result["resume_declined"] is None
    assert result["msg"] == "resumed from checkpoint of run %s, %d of %d bytes left" % (
        killed_run, resumed["bytes_left"], resumed["bytes_total"])
    # exactly what the checkpoint did not list is read, once: no chunk read twice
    assert resumed["bytes_left"] == resumed["bytes_total"] - listed_bytes(checkpoint) < resumed["bytes_total"]
    assert counted["bytes_read"] == result["bytes_read"] == resumed["bytes_left"]
    assert [(d["key"], d["mode"], d["reason"]) for d in result["disks"]] == [
        (disk.key, disk.mode, disk.reason) for disk in checkpoint.disks] and [d["mode"] for d in result["disks"]] == modes
    # byte-exact to the adopted snapshot's data, not to the guest as it is now
    for position, disk in enumerate(result["disks"]):
        assert sha256_file(env.restore_file(result["restore_point"]["id"], disk["key"])) == snapshot_sums[position]
    assert env.blockvault_snapshots(VM) == [] and checkpoints(env) == {}
    quick, full = env.validate()
    assert quick["ok"] and full["ok"] and full["chunks_unreferenced"] == 0
    return result


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_killed_full_resumes_from_its_checkpoint(env, seed):
    killed_run = "killed-full-%d-%d" % (seed, int(time.time() * 1000))
    child = start_backup_child(env, killed_run)
    checkpoint = kill_after_checkpoint(env, child, at_least=random.Random(seed).randint(1, 40))
    assert checkpoint.run_id == killed_run and checkpoint.parent is None
    assert env.blockvault_snapshots(VM) == ["blockvault-" + killed_run]
    snapshot_sums = env.checksums(VM, snapshot="blockvault-" + killed_run)
    env.write(VM, 0, 3 * CHUNK, 2 * CHUNK, seed=50 + seed)          # the guest changes after the snapshot
    assert env.checksums(VM)[0] != snapshot_sums[0]
    resume_and_check(env, killed_run, checkpoint, snapshot_sums, ["full", "full"])


@pytest.mark.parametrize("seed", [4, 5])
def test_a_killed_incremental_resumes_from_its_checkpoint(env, seed):
    base = env.backup(VM)
    env.write(VM, 0, 2 * CHUNK, 30 * CHUNK, seed=60 + seed)
    env.write(VM, 1, 2 * CHUNK, 12 * CHUNK, seed=70 + seed)
    killed_run = "killed-incremental-%d-%d" % (seed, int(time.time() * 1000))
    child = start_backup_child(env, killed_run)
    checkpoint = kill_after_checkpoint(env, child, at_least=random.Random(seed).randint(1, 30))
    assert checkpoint.parent == base["restore_point"]["id"]
    snapshot_sums = env.checksums(VM, snapshot="blockvault-" + killed_run)
    env.write(VM, 1, 4 * CHUNK, 4 * CHUNK, seed=80 + seed)
    result = resume_and_check(env, killed_run, checkpoint, snapshot_sums, ["incremental", "incremental"])
    assert [d["reason"] for d in result["disks"]] == ["changed areas since restore point %s" % base["restore_point"]["id"]] * 2


def test_a_resumed_run_killed_again_resumes_with_everything_done_so_far(env):
    killed_run = "killed-twice-%d" % int(time.time() * 1000)
    first = kill_after_checkpoint(env, start_backup_child(env, killed_run), at_least=10)
    snapshot_sums = env.checksums(VM, snapshot="blockvault-" + killed_run)
    second = kill_after_checkpoint(env, start_backup_child(env, "second-%d" % int(time.time() * 1000)),
                                   at_least=listed_chunks(first) + 10)
    assert second.run_id == killed_run and second.created == first.created
    assert set(first.disks[0].done_chunks()) <= set(second.disks[0].done_chunks())
    assert env.blockvault_snapshots(VM) == ["blockvault-" + killed_run]
    resume_and_check(env, killed_run, second, snapshot_sums, ["full", "full"])


@pytest.mark.parametrize("max_age", [0, 1])
def test_a_too_old_snapshot_is_removed_and_the_run_starts_over(env, max_age):
    killed_run = "killed-old-%d-%d" % (max_age, int(time.time() * 1000))
    kill_after_checkpoint(env, start_backup_child(env, killed_run), at_least=5)
    time.sleep(max_age + 1)         # the snapshot is older than max_age whatever the machine's speed
    live = env.checksums(VM)
    stats = env.new_stats()
    status = env.tmp_path / "over.json"
    result = env.backup(VM, resume_max_age=max_age, status_file=str(status))
    if max_age == 0:
        reason = "resume is disabled (resume_max_age is 0)"
    else:
        reason = result["resume_declined"]["reason"]
        assert re.fullmatch(r"its snapshot blockvault-%s is \d+ s old, older than resume_max_age \(1 s\): its delta disk "
                            r"keeps growing on the datastore" % killed_run, reason), reason
    assert result["resume_declined"] == {"from_run": killed_run, "reason": reason}
    assert result["resumed"] is None
    assert result["msg"] == "did not resume interrupted run %s: %s; started over" % (killed_run, reason)
    assert env.read_stats(stats)["bytes_read"] == result["bytes_read"] == sum(d["bytes_read"] for d in result["disks"])
    run_log = (env.tmp_path / "over.json.log").read_text()
    assert "removing snapshot blockvault-%s of VM %s left behind by an earlier blockvault run" % (killed_run, VM) in run_log
    assert "not resuming interrupted run %s of VM %s: %s" % (killed_run, VM, reason) in run_log
    assert env.blockvault_snapshots(VM) == [] and checkpoints(env) == {}
    for position, disk in enumerate(result["disks"]):
        assert sha256_file(env.restore_file(result["restore_point"]["id"], disk["key"])) == live[position]
