"""CBT reset, an added disk and a grown disk: the next backup reads the affected disks in full, says why, and keeps
the other disks incremental; every restore point still restores byte-identical data."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import RestoreRefusedError

from opslab import MIB, sha256_file  # pylint: disable=import-error
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import InPlace

pytestmark = pytest.mark.lab


def modes(result):
    return [(d["key"], d["mode"]) for d in result["disks"]]


def assert_restores(env, result, live, positions=None):
    for position, disk in enumerate(result["disks"]):
        if positions is None or position in positions:
            assert sha256_file(env.restore_file(result["restore_point"]["id"], disk["key"])) == live[position]


def test_cbt_reset_add_disk_and_grow_disk(env, scratch_vm):
    vm = scratch_vm
    first = env.backup(vm)
    keys = [d["key"] for d in first["disks"]]
    assert modes(first) == [(keys[0], "full"), (keys[1], "full")]

    env.write(vm, 0, 1 * MIB, 4096, seed=51)
    baseline = env.backup(vm)
    assert modes(baseline) == [(keys[0], "incremental"), (keys[1], "incremental")]
    assert [d["bytes_read"] for d in baseline["disks"]] == [MIB, 0]

    # CBT reset (power loss): every disk of the VM gets a new epoch, so both are read in full, with the reason
    env.labctl("reset-cbt", "--vm", vm)
    env.write(vm, 1, 0, 4096, seed=52)
    after_reset = env.backup(vm)
    live = env.checksums(vm)
    assert modes(after_reset) == [(keys[0], "full"), (keys[1], "full")]
    for disk in after_reset["disks"]:
        reason = disk["reason"]
        assert reason.startswith("vSphere could not read the CBT change log of the disk (FileFault: ") and \
            reason.endswith("(change tracking was reset, switched or the disk was resized in between)): it was reset or lost"), reason
    assert_restores(env, after_reset, live)

    # an added disk: that disk full (no previous), the others incremental
    env.labctl("add-disk", "--vm", vm, "--size", "8M")
    env.write(vm, 2, 0, 1 * MIB, seed=53)
    env.write(vm, 0, 2 * MIB, 4096, seed=54)
    added = env.backup(vm)
    live = env.checksums(vm)
    new_key = added["disks"][2]["key"]
    assert modes(added) == [(keys[0], "incremental"), (keys[1], "incremental"), (new_key, "full")]
    assert added["disks"][2]["reason"] == "the previous restore point has no disk with key %s" % new_key
    assert [d["bytes_read"] for d in added["disks"][:2]] == [MIB, 0]
    assert added["disks"][2]["bytes_read"] == MIB
    assert_restores(env, added, live, positions=[2])

    # a grown disk: that disk full with the sizes in the reason, the others incremental
    env.labctl("grow-disk", "--vm", vm, "--disk", 1, "--size", "24M")
    env.write(vm, 1, 20 * MIB, 4096, seed=55)
    grown = env.backup(vm)
    live = env.checksums(vm)
    assert modes(grown) == [(keys[0], "incremental"), (keys[1], "full"), (new_key, "incremental")]
    assert grown["disks"][1]["reason"] == "the disk's size changed from %d to %d bytes" % (16 * MIB, 24 * MIB)
    assert [grown["disks"][0]["bytes_read"], grown["disks"][2]["bytes_read"]] == [0, 0]
    assert_restores(env, grown, live, positions=[1])

    # and the next run is incremental everywhere again
    env.write(vm, 1, 23 * MIB, 4096, seed=56)
    settled = env.backup(vm)
    assert modes(settled) == [(keys[0], "incremental"), (keys[1], "incremental"), (new_key, "incremental")]
    assert [d["bytes_read"] for d in settled["disks"]] == [0, MIB, 0]
    assert_restores(env, settled, env.checksums(vm))
    quick, full = env.validate()
    assert quick["ok"] and full["ok"]

    # rolling back in place to a restore point from before the grow: refused (the disk is larger now), nothing written
    with pytest.raises(RestoreRefusedError) as refused:
        env.restore(baseline["restore_point"]["id"], InPlace())
    assert str(refused.value) == ("VM %s has no disk %s of %d bytes to roll back: restore to a new VM instead."
                                  % (vm, keys[1], 16 * MIB))
