"""A backup taken while the guest keeps writing restores to exactly the snapshot's data (point in time)."""
import threading
import time

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import _backup_plan

from opslab import MIB, sha256_file  # pylint: disable=import-error

pytestmark = pytest.mark.lab


def test_backup_during_guest_writes_restores_the_snapshot_data(env, monkeypatch):
    env.backup("lab-vm1")                       # the run under test is an incremental: reads only what changed
    env.write("lab-vm1", 0, 8 * MIB, 2 * MIB, seed=41)
    env.write("lab-vm1", 1, 2 * MIB, 1 * MIB, seed=42)
    before = env.checksums("lab-vm1")
    run_id = "consistency-%d" % int(time.time() * 1000)
    snapshot_name = "blockvault-" + run_id
    seen = {}

    def guest():
        deadline = time.monotonic() + 60
        while snapshot_name not in env.blockvault_snapshots("lab-vm1"):
            if time.monotonic() > deadline:
                seen["error"] = "the snapshot %s never appeared" % snapshot_name
                guest_done.set()
                return
            time.sleep(0.02)
        # the guest writes over the very ranges the backup is about to read, and elsewhere
        env.write("lab-vm1", 0, 8 * MIB, 2 * MIB, seed=43)
        env.write("lab-vm1", 1, 2 * MIB + 4096, 4096, seed=44)
        seen["snapshot"] = env.checksums("lab-vm1", snapshot=snapshot_name)
        env.write("lab-vm1", 0, 30 * MIB, 1 * MIB, seed=45)
        seen["live_during"] = env.checksums("lab-vm1")
        guest_done.set()

    # Deterministic overlap: the run plans its first disk (no data read yet) only once the guest has written
    # after the snapshot; the VDDK latency keeps the reads slow besides.
    guest_done = threading.Event()
    plan_backup = _backup_plan.plan_backup

    def plan_after_the_guest_wrote(*args, **kwargs):
        guest_done.wait(60)
        return plan_backup(*args, **kwargs)

    monkeypatch.setattr(_backup_plan, "plan_backup", plan_after_the_guest_wrote)

    env.knobs(LATENCY_US=20000)
    thread = threading.Thread(target=guest)
    thread.start()
    try:
        result = env.backup("lab-vm1", run_id=run_id)
    finally:
        thread.join()
    env.knobs()
    assert "error" not in seen
    after = env.checksums("lab-vm1")
    assert seen["snapshot"] == before
    assert after == seen["live_during"] and after[0] != before[0] and after[1] != before[1]
    assert [d["mode"] for d in result["disks"]] == ["incremental", "incremental"]
    assert env.blockvault_snapshots("lab-vm1") == []
    for position, disk in enumerate(result["disks"]):
        assert sha256_file(env.restore_file(result["restore_point"]["id"], disk["key"])) == seen["snapshot"][position]
