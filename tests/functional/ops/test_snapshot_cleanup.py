"""What a backup says about its snapshot when it is removed from outside (issue 11, defect 6).

The backup snapshot is removed from outside (through pyVmomi, as an admin in the vSphere client would) while the
backup waits just before its commit. The snapshot's lease is a fence of the commit (docs/repository-format.md 9.1):
a run that cannot tell whether what it read came from its snapshot commits nothing, and says so with a typed error
(before the fix a raw pyVmomi fault broke the cleanup with ``AttributeError: __context__``). A snapshot removed
after the commit is the ``already_gone`` outcome beside a committed restore point (unit tests of snapshots.py).
"""
import os
import signal
import time

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory, snapshots
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.tasks import wait_for_task

from test_kill import start_child, wait_for  # pylint: disable=import-error

pytestmark = pytest.mark.lab


def test_a_snapshot_removed_from_outside_before_the_commit_is_a_clear_failure_with_nothing_committed(env):
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
        err = child.communicate(timeout=120)[1].decode("utf-8", "replace")
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == 1 and "AttributeError" not in err
    assert ("SnapshotLeaseLostError" in err or "LeaseLostError" in err) and "nothing read from it is committed" in err.lower() \
        or "Nothing was committed" in err, err[-2000:]
    assert env.restore_points() == []                       # nothing half-made is visible
    assert env.blockvault_snapshots("lab-vm1") == []
    assert env.checksums("lab-vm1") == live


def test_a_backup_whose_snapshot_is_removed_as_planned_says_removed_and_warns_nothing(env):
    result = env.backup("lab-vm1")
    assert result["snapshot"] == "removed" and result["warnings"] == []
    assert env.blockvault_snapshots("lab-vm1") == []
