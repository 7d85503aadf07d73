"""What a backup says about its snapshot when the cleanup after the commit does not go as planned (issue 11, defect 6).

The backup snapshot is removed from outside (through pyVmomi, as an admin in the vSphere client would) while the
backup waits just before its commit: the restore point is committed and the result says so, with the snapshot
``already_gone`` and a warning naming it, instead of a failure.
"""
import json
import os
import signal
import time

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory, snapshots
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.tasks import wait_for_task

from opslab import sha256_file  # pylint: disable=import-error
from test_kill import start_child, wait_for  # pylint: disable=import-error

pytestmark = pytest.mark.lab


def test_a_snapshot_removed_from_outside_before_the_commit_leaves_a_committed_restore_point_and_a_warning(env):
    run_id = "vanished-%d" % int(time.time() * 1000)
    marker, resume = env.tmp_path / "before-commit", env.tmp_path / "resume"
    live = env.checksums("lab-vm1")
    child = start_child(env, run_id, pause_before_commit=str(marker), resume_when=str(resume))
    try:
        wait_for(marker.exists, child, "the commit")
        with env.session() as session:
            vm = inventory.find_vm(session, name="lab-vm1")
            [entry] = [e for e in snapshots.list_snapshots(vm) if e.name == "blockvault-" + run_id]
            # from outside, behind the backup's back: plain pyVmomi, as any other client would
            wait_for_task(entry.snapshot.RemoveSnapshot_Task(removeChildren=False, consolidate=True))
        resume.touch()
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == 0, err
    result = json.loads(out)
    assert result["changed"] is True and result["run_id"] == run_id
    assert result["snapshot"] == "already_gone"
    assert result["warnings"] == ["the backup snapshot blockvault-%s of VM lab-vm1 was already removed from outside" % run_id]
    assert env.restore_points() == [result["restore_point"]["id"]]
    assert env.blockvault_snapshots("lab-vm1") == []
    for position, disk in enumerate(result["disks"]):
        assert sha256_file(env.restore_file(result["restore_point"]["id"], disk["key"])) == live[position]


def test_a_backup_whose_snapshot_is_removed_as_planned_says_removed_and_warns_nothing(env):
    result = env.backup("lab-vm1")
    assert result["snapshot"] == "removed" and "warnings" not in result
    assert env.blockvault_snapshots("lab-vm1") == []
