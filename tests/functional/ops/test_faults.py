"""Injected VDDK faults: a transient one is retried and the data is right; a permanent one fails cleanly (typed
error with its context, no snapshot left, repository valid, no new restore point)."""
import inspect
import json

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import VddkError
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.pipeline import backup_disks
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import VddkOutOfRangeError

from opslab import MIB, sha256_file  # pylint: disable=import-error

pytestmark = pytest.mark.lab

# The reader passes up to READ_BATCH read requests to VDDK in one batch of async reads. READ_BATCH + 1 guest writes,
# each in a chunk of its own 8 MiB read request, make the incremental issue exactly READ_BATCH + 1 read calls: one
# full batch, then a batch of one.
READ_BATCH = inspect.signature(backup_disks).parameters["read_batch"].default
WRITES = [(0, (1 + 8 * n) * MIB, 4096) for n in range(READ_BATCH + 1)]
CHANGED = len(WRITES) * MIB


def write_changed_chunks(env, seed):
    for disk, offset, length in WRITES:
        env.write("lab-vm1", disk, offset, length, seed=seed)


def test_transient_read_fault_is_retried_and_the_data_is_right(env):
    env.backup("lab-vm1")
    write_changed_chunks(env, seed=61)
    live = env.checksums("lab-vm1")
    stats = env.new_stats()
    # VIX_E_HOST_CONNECTION_LOST on the last read call, alone in its batch. Not earlier: the stand-in restarts its
    # call count at every ConnectEx and the retry repeats a whole batch after reconnecting, so a fault at a call
    # N <= READ_BATCH would hit the repeated batch again on every attempt.
    env.knobs(STATS=stats, FAIL_CODE=36, FAIL_READ_NTH=len(WRITES), FAIL_READ_TIMES=1)
    status = env.tmp_path / "transient.json"
    result = env.backup("lab-vm1", status_file=str(status))
    env.knobs()
    assert [(d["mode"], d["bytes_read"]) for d in result["disks"]] == [("incremental", CHANGED), ("incremental", 0)]
    counted = env.read_stats(stats)
    assert (counted["reads"], counted["bytes_read"]) == (len(WRITES), CHANGED)     # the failed call counts nothing
    run_log = (env.tmp_path / "transient.json.log").read_text()
    assert run_log.count("failed with a transient error (attempt 1 of 5)") == 1
    assert json.loads(status.read_text())["state"] == "succeeded"
    for position, disk in enumerate(result["disks"]):
        assert sha256_file(env.restore_file(result["restore_point"]["id"], disk["key"])) == live[position]


@pytest.mark.parametrize("code, error_class", [(1, VddkError), (16007, VddkOutOfRangeError)])
def test_permanent_read_fault_fails_cleanly(env, code, error_class):
    first = env.backup("lab-vm1")
    write_changed_chunks(env, seed=62)
    env.knobs(FAIL_CODE=code, FAIL_READ_NTH=2, FAIL_READ_TIMES=0)        # every Read from the second on fails
    status = env.tmp_path / "permanent.json"
    with pytest.raises(VddkError) as failed:
        env.backup("lab-vm1", run_id="permanent-%d" % code, status_file=str(status))
    env.knobs()
    error = failed.value
    assert error.error_class == error_class.__name__
    assert (error.code, error.function, error.phase, error.vm, error.disk, error.run_id) == (
        code, "VixDiskLib_ReadAsync", "vddk", "lab-vm1", "2000", "permanent-%d" % code)
    assert str(error).startswith("VDDK call VixDiskLib_ReadAsync([LocalDS_0] lab-vm1/lab-vm1.vmdk, offset %d, %d bytes) failed "
                                 "with error %d " % (9 * MIB, MIB, code))
    assert env.lab.info["password"] not in str(error.to_dict())
    document = json.loads(status.read_text())
    assert (document["state"], document["last_error"]["class"]) == ("failed", error_class.__name__)
    assert env.blockvault_snapshots("lab-vm1") == []
    assert env.restore_points() == [first["restore_point"]["id"]]
    quick, full = env.validate()
    assert quick["ok"] and full["ok"] and quick["restore_points"] == 1
    repository = env.repository()
    try:
        assert repository.list_locks() == []
    finally:
        repository.close()

    # the next run builds on the last committed restore point: the same chunks, read again, data right
    live = env.checksums("lab-vm1")
    retried = env.backup("lab-vm1")
    assert [(d["mode"], d["bytes_read"]) for d in retried["disks"]] == [("incremental", CHANGED), ("incremental", 0)]
    for position, disk in enumerate(retried["disks"]):
        assert sha256_file(env.restore_file(retried["restore_point"]["id"], disk["key"])) == live[position]
