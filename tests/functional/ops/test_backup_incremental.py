"""Full, then incremental backup of lab-vm1: exactly the chunks the guest writes touched are read (counted by the
VDDK stand-in), and each restore point restores to the bytes the live disks held at its backup."""
import importlib.util
import json
import pathlib

import pytest


from opslab import CHUNK, MIB, blocksum_file, sha256_file  # pylint: disable=import-error

pytestmark = pytest.mark.lab

_spec = importlib.util.spec_from_file_location("blocksum_tool", str(pathlib.Path(__file__).resolve().parents[3] / "tools" / "blocksum.py"))
blocksum_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(blocksum_tool)

# (disk, offset, length) of the guest writes between the two backups, and the 1 MiB chunks they touch
WRITES = [(0, 5 * MIB + 4096, 4096), (0, 20 * MIB - 512, 1024), (0, 40 * MIB, 3 * MIB), (1, 16 * MIB - 4096, 4096)]
TOUCHED = {0: [5, 19, 20, 40, 41, 42], 1: [15]}
READ_REQUESTS = 4       # runs of consecutive chunks: [5], [19-20], [40-42] on disk 0, [15] on disk 1


def assert_restores_exactly(env, result, live_checksums):
    """Each disk of the restore point, restored to a file: plain SHA-256 = the lab's checksum of the live disk at
    backup time; blocksum (engine and the reference tool) = the recorded sha256."""
    rp_id = result["restore_point"]["id"]
    for position, disk in enumerate(result["disks"]):
        path = env.restore_file(rp_id, disk["key"])
        assert sha256_file(path) == live_checksums[position]
        assert blocksum_file(path) == disk["sha256"]
        assert blocksum_tool.blocksum(str(path), CHUNK) == disk["sha256"]


def test_full_then_incremental_reads_exactly_the_written_chunks(env):
    stats = env.new_stats()
    full = env.backup("lab-vm1")
    after_full = env.checksums("lab-vm1")
    full_stats = env.read_stats(stats)
    assert [(d["key"], d["mode"], d["reason"]) for d in full["disks"]] == [
        ("2000", "full", "this is the VM's first restore point"), ("2016", "full", "this is the VM's first restore point")]
    assert full_stats["bytes_read"] == full["bytes_read"] == sum(d["bytes_read"] for d in full["disks"])
    assert full_stats["writes"] == 0

    for disk, offset, length in WRITES:
        env.write("lab-vm1", disk, offset, length, seed=11)
    after_writes = env.checksums("lab-vm1")
    assert after_writes[0] != after_full[0] and after_writes[1] != after_full[1]

    stats = env.new_stats()
    status = env.tmp_path / "incremental.json"
    incremental = env.backup("lab-vm1", status_file=str(status))
    counted = env.read_stats(stats)
    document = json.loads(status.read_text())
    assert (document["state"], document["run_id"], document["bytes_done"], document["bytes_total"]) == (
        "succeeded", incremental["run_id"], 7 * CHUNK, 7 * CHUNK)
    reason = "changed areas since restore point %s" % full["restore_point"]["id"]
    assert [(d["key"], d["mode"], d["reason"], d["bytes_read"]) for d in incremental["disks"]] == [
        ("2000", "incremental", reason, len(TOUCHED[0]) * CHUNK), ("2016", "incremental", reason, len(TOUCHED[1]) * CHUNK)]
    assert incremental["bytes_read"] == counted["bytes_read"] == 7 * CHUNK
    assert counted["reads"] == READ_REQUESTS and counted["writes"] == 0
    assert env.blockvault_snapshots("lab-vm1") == []

    assert_restores_exactly(env, full, after_full)
    assert_restores_exactly(env, incremental, after_writes)
    quick, full_check = env.validate()
    assert quick["ok"] and full_check["ok"] and full_check["restore_points"] == 2


def test_incremental_without_changes_reads_nothing(env):
    first = env.backup("lab-vm1")
    live = env.checksums("lab-vm1")
    stats = env.new_stats()
    second = env.backup("lab-vm1")
    assert [(d["mode"], d["bytes_read"], d["bytes_new"]) for d in second["disks"]] == [("incremental", 0, 0)] * 2
    assert [d["sha256"] for d in second["disks"]] == [d["sha256"] for d in first["disks"]]
    assert second["bytes_written"] == 0
    assert env.read_stats(stats)["reads"] == 0
    assert_restores_exactly(env, second, live)
