"""kill -9 of a backup at several points: the next run removes the orphan snapshot, ignores the dead run's lock,
completes, reuses the chunks the killed run stored, and the repository validates."""
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from labkit import LabError

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import LockError, RestoreRefusedError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import config, inventory

from opslab import LABVDDK_VARS, PASSPHRASE, PLACEMENT, sha256_file  # pylint: disable=import-error
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import NewVm

pytestmark = pytest.mark.lab

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTIONS = os.path.join(HERE, "..", "..", "..", "build", "collections")


def chunk_objects(env):
    """{name: stored size} of the chunk objects in the repository (temporary files of unfinished puts excluded)."""
    repository = env.repository()
    try:
        return {info.name: info.size for info in repository.backend.list("chunks/")}
    finally:
        repository.close()


def start_child(env, run_id, pause_before_commit=None, restore=None, latency_us=250000, extra=None, **more):
    """The backup (or restore) child of backup_child.py; ``extra`` and ``more``: further keys of its spec (see there)."""
    spec = {"vsphere": {"host": env.vsphere.host, "username": env.vsphere.username, "password": env.vsphere.password,
                        "port": env.vsphere.port, "ca_bundle": env.vsphere.ca_bundle},
            "vddk": {"libdir": env.vddk.libdir, "thumbprint": env.vddk.thumbprint},
            "repo": {"location": env.repo.location, "passphrase": PASSPHRASE},
            "vm": "lab-vm1", "run_id": run_id, "status_file": str(env.tmp_path / ("%s.json" % run_id)),
            "pause_before_commit": pause_before_commit, "restore": restore}
    spec.update(extra or {}, **more)
    spec_path = env.tmp_path / ("%s.spec.json" % run_id)
    spec_path.write_text(json.dumps(spec))
    environ = {name: value for name, value in os.environ.items() if name not in LABVDDK_VARS}
    environ.update(PYTHONPATH=os.path.abspath(COLLECTIONS), LABVDDK_LATENCY_US=str(latency_us))
    return subprocess.Popen([sys.executable, os.path.join(HERE, "backup_child.py"), str(spec_path)], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition, child, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if child.poll() is not None:
            raise AssertionError("the backup child ended (%s) before %s: %s" % (child.returncode, what, child.stderr.read()))
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("no %s after %d s" % (what, timeout))
        time.sleep(0.02)


def assert_marked_incomplete(env, name, rp_id):
    """The new VM ``name`` of a killed restore of ``rp_id`` says it is incomplete (its extraConfig marker)."""
    with env.session() as session:
        marker = config.extra_config_value(inventory.find_vm(session, name=name), "blockvault.restore.incomplete")
    assert marker.startswith("restore run ") and marker.endswith(
        " of restore point %s has not finished writing the disks: delete this VM or restore again" % rp_id)


@pytest.mark.parametrize("point", ["snapshot", "transfer", "commit"])
def test_next_run_after_kill_9(env, point):
    killed_run = "killed-%s-%d" % (point, int(time.time() * 1000))
    marker = env.tmp_path / "before-commit"
    child = start_child(env, killed_run, pause_before_commit=str(marker) if point == "commit" else None)
    try:
        if point == "snapshot":
            wait_for(lambda: env.blockvault_snapshots("lab-vm1") == ["blockvault-" + killed_run], child, "backup snapshot")
        elif point == "transfer":
            wait_for(lambda: len(chunk_objects(env)) >= 6, child, "6 stored chunks")
        else:           # every chunk and index stored, the manifest not yet written
            wait_for(marker.exists, child, "the commit")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert env.blockvault_snapshots("lab-vm1") == ["blockvault-" + killed_run]
    left_by_killed = chunk_objects(env)
    assert (len(left_by_killed) > 0) == (point != "snapshot")
    assert env.restore_points() == []
    repository = env.repository()
    try:
        locks = repository.list_locks()
    finally:
        repository.close()
    assert [(lock["pid"], lock["stale"]) for lock in locks] == [(child.pid, True)]

    live = env.checksums("lab-vm1")
    status = env.tmp_path / "next.json"
    result = env.backup("lab-vm1", status_file=str(status))
    assert result["changed"] is True and [d["mode"] for d in result["disks"]] == ["full", "full"]
    assert env.blockvault_snapshots("lab-vm1") == []
    run_log = (env.tmp_path / "next.json.log").read_text()
    assert "removing snapshot blockvault-%s of VM lab-vm1 left behind by an earlier blockvault run" % killed_run in run_log

    # every chunk the killed run stored is reused: this run stored exactly the rest of a cold full backup
    stored = chunk_objects(env)
    assert set(left_by_killed) <= set(stored)
    cold_full = sum(stored.values())
    assert result["bytes_written"] == cold_full - sum(left_by_killed.values())
    if point == "transfer":
        assert 0 < result["bytes_written"] < cold_full
    elif point == "commit":
        assert result["bytes_written"] == 0

    for position, disk in enumerate(result["disks"]):
        assert sha256_file(env.restore_file(result["restore_point"]["id"], disk["key"])) == live[position]
    quick, full = env.validate()
    assert quick["ok"] and full["ok"] and quick["restore_points"] == 1 and quick["chunks_unreferenced"] == 0
    assert env.restore_points() == [result["restore_point"]["id"]]


def test_a_backup_started_while_another_runs_is_refused_and_the_other_completes(env):
    running_run = "running-%d" % int(time.time() * 1000)
    child = start_child(env, running_run)
    try:
        wait_for(lambda: env.blockvault_snapshots("lab-vm1") == ["blockvault-" + running_run], child, "backup snapshot")
        with pytest.raises(LockError) as refused:
            env.backup("lab-vm1", run_id="second")
        assert str(refused.value).startswith("Another backup of VM lab-vm1 is running")
        assert env.blockvault_snapshots("lab-vm1") == ["blockvault-" + running_run]
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    result = json.loads(out)
    assert result["changed"] is True and result["run_id"] == running_run
    assert env.restore_points() == [result["restore_point"]["id"]]
    assert env.blockvault_snapshots("lab-vm1") == []


def test_restore_killed_mid_write_leaves_a_vm_marked_incomplete(env):
    backup = env.backup("lab-vm1")
    live = env.checksums("lab-vm1")
    rp_id = backup["restore_point"]["id"]
    name = "killed-restore-%d" % int(time.time() * 1000)
    # the lab's checksum covers the disk file as it is: while CreateVM_Task makes the disk, the file exists with 0
    # bytes for a moment, and its checksum (of nothing) is neither of these; taking that for "data written" killed
    # the child before the marker could be set (the flake of issue 11, defect 9)
    not_written = {hashlib.sha256(bytes(64 << 20)).hexdigest(), hashlib.sha256(b"").hexdigest()}

    def some_data_written():
        try:
            return env.lab.checksum(name, 0) not in not_written
        except LabError:            # the VM (or its disk) does not exist yet
            return False

    child = start_child(env, "restore-" + name, latency_us=100000,
                        restore={"restore_point": rp_id, "new_name": name, "placement": dataclasses.asdict(PLACEMENT)})
    try:
        try:
            wait_for(some_data_written, child, "a written chunk")
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        assert_marked_incomplete(env, name, rp_id)
        with pytest.raises(RestoreRefusedError) as refused:
            env.restore(rp_id, NewVm(name))
        assert str(refused.value) == ("A VM named %s exists already, left by a restore that did not complete (its advanced "
                                      "setting blockvault.restore.incomplete says so): set force to replace it, or choose "
                                      "another new_name." % name)
        env.restore(rp_id, NewVm(name, force=True))
        with env.session() as session:
            assert config.extra_config_value(inventory.find_vm(session, name=name), "blockvault.restore.incomplete") == ""
        assert env.checksums(name) == live
    finally:
        env.destroy(name)


def test_restore_killed_as_soon_as_its_vm_exists_leaves_the_vm_marked_incomplete(env):
    """The marker is part of the VM's creation: there is no moment where the new VM exists without it."""
    rp_id = env.backup("lab-vm1")["restore_point"]["id"]
    name = "killed-at-create-%d" % int(time.time() * 1000)
    created = env.tmp_path / "created"
    child = start_child(env, "restore-" + name, pause_after_create_vm=str(created),
                        restore={"restore_point": rp_id, "new_name": name, "placement": dataclasses.asdict(PLACEMENT)})
    try:
        try:
            wait_for(created.exists, child, "the new VM")
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        assert_marked_incomplete(env, name, rp_id)
    finally:
        env.destroy(name)
