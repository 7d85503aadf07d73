"""Faults during restores: a transient VDDK write failure is retried and the new VM is byte-identical; a permanent
one fails with its context and leaves no half-restored VM; a damaged chunk leaves no file that looks whole."""
import uuid

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import CorruptionError, VddkError, VMNotFoundError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory

from opslab import CHUNK  # pylint: disable=import-error
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import File, NewVm

pytestmark = pytest.mark.lab


def data_chunks(env, rp_id, disk_key):
    """How many chunks of the disk hold data (a restore into a new, zeroed disk writes exactly these)."""
    repository = env.repository()
    try:
        index = repository.load_disk_index(rp_id, disk_key)
        return sum(1 for i in range(index.count) if index.digest(i) != bytes(32))
    finally:
        repository.close()


def vm_exists(env, name):
    with env.session() as session:
        try:
            inventory.find_vm(session, name=name)
        except VMNotFoundError:
            return False
        return True


def test_transient_write_fault_is_retried(env):
    backup = env.backup("lab-vm1")
    live = env.checksums("lab-vm1")
    rp_id = backup["restore_point"]["id"]
    counts = [data_chunks(env, rp_id, disk["key"]) for disk in backup["disks"]]
    # The stand-in restarts its call count at each ConnectEx (each disk's connection, each reconnect): a disk with
    # at least nth writes fails once in the middle and, reconnected, has fewer than nth writes left; lab-vm1's data
    # depends on what other tests wrote, so the number of such disks is computed, not assumed.
    nth = max(counts) // 2 + 2
    assert all(n - (nth - 1) < nth for n in counts)
    retries = sum(1 for n in counts if n >= nth)
    assert retries >= 1
    stats = env.new_stats()
    env.knobs(STATS=stats, FAIL_CODE=36, FAIL_WRITE_NTH=nth, FAIL_WRITE_TIMES=1)
    name = "retried-%s" % uuid.uuid4().hex[:8]
    status = env.tmp_path / "restore.json"
    try:
        restored = env.restore(rp_id, NewVm(name), status_file=str(status))
        env.knobs()
        assert [(d["chunks_written"], d["bytes_written"]) for d in restored["disks"]] == [(n, n * CHUNK) for n in counts]
        counted = env.read_stats(stats)
        assert (counted["writes"], counted["bytes_written"]) == (sum(counts), sum(counts) * CHUNK)
        assert (env.tmp_path / "restore.json.log").read_text().count("failed with a transient error (attempt 1 of 5)") == retries
        assert env.checksums(name) == live
    finally:
        env.knobs()
        env.destroy(name)


def test_permanent_write_fault_leaves_no_half_restored_vm(env):
    backup = env.backup("lab-vm1")
    rp_id = backup["restore_point"]["id"]
    first_with_data = next(disk["key"] for disk in backup["disks"] if data_chunks(env, rp_id, disk["key"]))
    env.knobs(FAIL_CODE=1, FAIL_WRITE_NTH=1, FAIL_WRITE_TIMES=0)
    name = "failed-%s" % uuid.uuid4().hex[:8]
    try:
        with pytest.raises(VddkError) as failed:
            env.restore(rp_id, NewVm(name))
    finally:
        env.knobs()
    error = failed.value
    assert (type(error), error.code, error.phase, error.disk, error.vm) == (VddkError, 1, "vddk", first_with_data, "lab-vm1")
    assert error.run_id and str(error).startswith("VDDK call VixDiskLib_Write(")
    assert not vm_exists(env, name)


def test_damaged_chunk_leaves_no_file(env):
    backup = env.backup("lab-vm1")
    rp_id = backup["restore_point"]["id"]
    repository = env.repository()
    try:
        index = repository.load_disk_index(rp_id, "2016")
        digest = next(index.digest(i) for i in range(index.count) if index.digest(i) != bytes(32))
        name = repository.chunk_object_name(repository.codec.storage_id(digest))
    finally:
        repository.close()
    chunk_path = env.tmp_path / "repo" / name
    damaged = bytearray(chunk_path.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    chunk_path.write_bytes(bytes(damaged))
    target = env.tmp_path / "damaged.raw"
    with pytest.raises(CorruptionError) as failed:
        env.restore(rp_id, File(path=str(target), disk="2016"))
    assert failed.value.phase == "repository" and failed.value.run_id
    assert not target.exists() and not (env.tmp_path / "damaged.raw.partial").exists()
    assert not env.validate()[1]["ok"]
