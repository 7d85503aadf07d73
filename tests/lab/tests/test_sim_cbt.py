"""Point-in-time snapshots and Changed Block Tracking of the lab simulator (PROTOCOL.md sections 2 and 3)."""
import hashlib
import os
import threading

import pytest
from pyVmomi import vim, vmodl

from labkit.testing import (COW_BLOCK, allocated_extents, changed_areas, disks_of, find_vm, merge, read_flat,
                            remove_snapshot, set_cbt, snapshot, wait_task, write_pattern)

pytestmark = pytest.mark.lab

MiB = 1 << 20


@pytest.fixture
def vm2(si):
    """lab-vm2 with CBT on and no snapshots; restores CBT off and removes leftover snapshots afterwards."""
    vm = find_vm(si, "lab-vm2")
    wait_task(vm.RemoveAllSnapshots_Task())
    set_cbt(vm, True)
    yield vm
    wait_task(vm.RemoveAllSnapshots_Task())
    set_cbt(vm, False)


def epoch_of(change_id):
    return change_id.split("/")[0]


def test_snapshot_freezes_a_point_in_time_view_of_the_disk(lab, si, labctl, vm2):
    flat = lab.disks("lab-vm2")[0]["flat"]
    image = bytearray(read_flat(flat))
    before = labctl("checksum", "--vm", "lab-vm2", "--disk", "0").stdout.strip()
    assert before == hashlib.sha256(image).hexdigest()
    snap = snapshot(vm2, "pit")
    moref = snap._moId  # pylint: disable=protected-access
    snap_dir = flat + ".snap/" + moref
    change_id = disks_of(snap)[0].backing.changeId
    meta = dict(line.split(" ", 1) for line in open(snap_dir + "/meta", encoding="ascii").read().splitlines())
    assert (meta["capacity"], meta["changeid"]) == (str(16 * MiB), change_id)
    assert open(snap_dir + "/map", "rb").read() == bytes(16 * MiB // COW_BLOCK)
    assert os.path.getsize(snap_dir + "/data") == 16 * MiB
    assert labctl("checksum", "--vm", "lab-vm2", "--disk", "0", "--snapshot", "pit").stdout.strip() == before

    offset, length = 3 * COW_BLOCK - 100, 2 * COW_BLOCK + 200  # touches blocks 2..5
    labctl("write", "--vm", "lab-vm2", "--disk", "0", "--offset", offset, "--length", length, "--seed", 42)
    image[offset:offset + length] = write_pattern(42, offset, length)
    live = labctl("checksum", "--vm", "lab-vm2", "--disk", "0").stdout.strip()
    assert live == hashlib.sha256(image).hexdigest() != before
    assert read_flat(flat)[offset:offset + length] == write_pattern(42, offset, length)
    assert labctl("checksum", "--vm", "lab-vm2", "--disk", "0", "--snapshot", "pit").stdout.strip() == before
    assert labctl("checksum", "--vm", "lab-vm2", "--disk", "0", "--snapshot", moref).stdout.strip() == before
    block_map = open(snap_dir + "/map", "rb").read()
    assert [b for b, flag in enumerate(block_map) if flag] == [2, 3, 4, 5]

    remove_snapshot(snap)
    assert not os.path.exists(snap_dir)
    assert not os.path.exists(flat + ".snap")


def test_snapshot_taken_during_concurrent_writes_sees_a_prefix_of_them(lab, vm2):
    flat = lab.disks("lab-vm2")[0]["flat"]
    base = read_flat(flat)
    base_change_id = disks_of(vm2)[0].backing.changeId
    writes = [((i * 397 * 4096 + i * 13) % (15 * MiB), 4096 + (i * 7919) % 150000, 1000 + i) for i in range(30)]
    started, done = [0], [0]

    def writer():
        for offset, length, seed in writes:
            started[0] += 1
            lab.write("lab-vm2", 0, offset, length, seed)
            done[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    while done[0] < 5:
        pass
    low = done[0]
    snap = snapshot(vm2, "concurrent")
    high = started[0]
    thread.join()

    image = bytearray(base)
    sums = [hashlib.sha256(image).hexdigest()]
    for offset, length, seed in writes:
        image[offset:offset + length] = write_pattern(seed, offset, length)
        sums.append(hashlib.sha256(image).hexdigest())
    frozen = lab.checksum("lab-vm2", 0, snapshot="concurrent")
    assert frozen in sums
    prefix = sums.index(frozen)
    assert low <= prefix <= high
    assert lab.checksum("lab-vm2", 0) == sums[-1]
    key = disks_of(snap)[0].key
    areas = changed_areas(vm2, snap, key, base_change_id)[0]
    assert areas == merge([(offset, length) for offset, length, _seed in writes[:prefix]])
    assert disks_of(snap)[0].backing.changeId == f"{epoch_of(base_change_id)}/{int(base_change_id.split('/')[1]) + prefix}"


def test_changed_areas_are_exactly_the_writes_between_two_snapshots(lab, si, labctl):
    vm = find_vm(si, "lab-vm1")
    wait_task(vm.RemoveAllSnapshots_Task())
    set_cbt(vm, True)
    try:
        first = snapshot(vm, "cbt-a")
        key0, key1 = (d.key for d in disks_of(first))
        base = disks_of(first)[0].backing.changeId
        base1 = disks_of(first)[1].backing.changeId
        assert disks_of(vm)[0].backing.changeId == base
        writes = [(0, 4096), (4096, 4096),            # adjacent: merged
                  (100000, 5000), (102000, 10000),    # overlapping: merged
                  (MiB, 65536), (3 * MiB, 1), (5 * MiB + 7, 100), (10 * MiB, 200000), (20 * MiB, 4096),
                  (30 * MiB, 1), (63 * MiB, MiB)]     # up to the end of the disk
        for seed, (offset, length) in enumerate(writes):
            labctl("write", "--vm", "lab-vm1", "--disk", 0, "--offset", offset, "--length", length, "--seed", seed)
        second = snapshot(vm, "cbt-b")
        expected = [(0, 8192), (100000, 12000), (MiB, 65536), (3 * MiB, 1), (5 * MiB + 7, 100), (10 * MiB, 200000),
                    (20 * MiB, 4096), (30 * MiB, 1), (63 * MiB, MiB)]
        areas, pages = changed_areas(vm, second, key0, base)
        assert (areas, pages) == (expected, 3)  # page limit 4: 4 + 4 + 1
        info = vm.QueryChangedDiskAreas(snapshot=second, deviceKey=key0, startOffset=0, changeId=base)
        assert (info.startOffset, info.length) == (0, 3 * MiB + 1)  # the page ends at the end of its last area
        areas = changed_areas(vm, second, key0, base, start=106000)[0]
        assert areas == [(106000, 6000)] + expected[2:]
        assert changed_areas(vm, second, key1, base1) == ([], 1)
        final = disks_of(second)[0].backing.changeId
        assert final == f"{epoch_of(base)}/{int(base.split('/')[1]) + len(writes)}"
        assert disks_of(vm)[0].backing.changeId == final
        assert changed_areas(vm, second, key0, final) == ([], 1)
        with pytest.raises(vim.fault.FileFault) as newer:
            vm.QueryChangedDiskAreas(snapshot=first, deviceKey=key0, startOffset=0, changeId=final)
        assert "it is newer than the snapshot" in newer.value.msg

        flat = lab.disks("lab-vm1")[0]["flat"]
        allocated = allocated_extents(flat)
        assert changed_areas(vm, second, key0, "*")[0] == allocated
        hole = next(start + length for start, length in allocated if (start + length) % COW_BLOCK == 0
                    and all(not (s < start + length + COW_BLOCK and start + length < s + n) for s, n in allocated))
        labctl("write", "--vm", "lab-vm1", "--disk", 0, "--offset", hole, "--length", COW_BLOCK)
        assert changed_areas(vm, second, key0, "*")[0] == allocated  # the snapshot still sees a hole there
        assert changed_areas(vm, None, key0, "*")[0] == merge(allocated + [(hole, COW_BLOCK)])
    finally:
        wait_task(vm.RemoveAllSnapshots_Task())
        set_cbt(vm, False)


def test_cbt_faults_are_vsphere_faults(lab, si, labctl, vm2):
    set_cbt(vm2, False)
    snap = snapshot(vm2, "faults")
    key = disks_of(snap)[0].key
    with pytest.raises(vim.fault.FileFault) as off:
        vm2.QueryChangedDiskAreas(snapshot=snap, deviceKey=key, startOffset=0, changeId="*")
    assert off.value.file == "[LocalDS_0] lab-vm2/lab-vm2.vmdk"
    assert [m.key for m in off.value.faultMessage] == ["vim.hostd.vmsvc.cbt.noTrack"]
    assert disks_of(snap)[0].backing.changeId is None
    remove_snapshot(snap)

    set_cbt(vm2, True)
    old = snapshot(vm2, "before-reset")
    old_id = disks_of(old)[0].backing.changeId
    reset = labctl("reset-cbt", "--vm", "lab-vm2").stdout
    new = snapshot(vm2, "after-reset")
    new_id = disks_of(new)[0].backing.changeId
    assert epoch_of(new_id) != epoch_of(old_id) and new_id.endswith("/0")
    assert f'"changeId": "{new_id}"' in reset
    with pytest.raises(vim.fault.FileFault) as stale:
        vm2.QueryChangedDiskAreas(snapshot=new, deviceKey=key, startOffset=0, changeId=old_id)
    assert "cannotGetChanges" in stale.value.msg and "noEpoch" in stale.value.msg
    assert [m.key for m in stale.value.faultMessage] == ["vim.hostd.vmsvc.cbt.noEpoch"]
    with pytest.raises(vim.fault.FileFault):  # the older snapshot belongs to the old epoch too
        vm2.QueryChangedDiskAreas(snapshot=old, deviceKey=key, startOffset=0, changeId=old_id)
    assert changed_areas(vm2, new, key, new_id) == ([], 1)

    for start in (16 * MiB, 16 * MiB + 1):
        with pytest.raises(vmodl.fault.InvalidArgument) as beyond:
            vm2.QueryChangedDiskAreas(snapshot=new, deviceKey=key, startOffset=start, changeId=new_id)
        assert beyond.value.invalidProperty == "startOffset"
    with pytest.raises(vmodl.fault.InvalidArgument) as bad_key:
        vm2.QueryChangedDiskAreas(snapshot=new, deviceKey=key + 1, startOffset=0, changeId=new_id)
    assert bad_key.value.invalidProperty == "deviceKey"
    with pytest.raises(vmodl.fault.InvalidArgument) as bad_id:
        vm2.QueryChangedDiskAreas(snapshot=new, deviceKey=key, startOffset=0, changeId="52 3c 1a/7")
    assert bad_id.value.invalidProperty == "changeId"
    ghost = vim.vm.Snapshot("snapshot-999999", stub=si._stub)  # pylint: disable=protected-access
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        vm2.QueryChangedDiskAreas(snapshot=ghost, deviceKey=key, startOffset=0, changeId=new_id)

    set_cbt(vm2, False)  # switching CBT off and on starts a new epoch too
    set_cbt(vm2, True)
    switched = snapshot(vm2, "after-switch")
    assert epoch_of(disks_of(switched)[0].backing.changeId) != epoch_of(new_id)
    assert epoch_of(disks_of(vm2)[0].backing.changeId) == epoch_of(disks_of(switched)[0].backing.changeId)
    with pytest.raises(vim.fault.FileFault):
        vm2.QueryChangedDiskAreas(snapshot=switched, deviceKey=key, startOffset=0, changeId=new_id)


def test_remove_all_snapshots_removes_their_directories(lab, vm2):
    flat = lab.disks("lab-vm2")[0]["flat"]
    snaps = [snapshot(vm2, f"tree-{i}") for i in range(3)]
    assert sorted(os.listdir(flat + ".snap")) == sorted(s._moId for s in snaps)  # pylint: disable=protected-access
    wait_task(vm2.RemoveAllSnapshots_Task())
    assert not os.path.exists(flat + ".snap")
