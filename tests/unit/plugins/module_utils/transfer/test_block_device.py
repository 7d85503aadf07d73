"""Block devices as restore targets: what counts as in use, exact bytes written in place, zeros written as zeros."""
import os
import stat

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import TransferError
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.block_device import (
    BlockDeviceTarget, device_in_use, device_size, special_file_kind)
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.endpoints import DiskTarget

MIB = 1024 * 1024


def test_special_files_are_named(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "file").write_bytes(b"x")
    kinds = {name: special_file_kind(os.stat(path).st_mode) for name, path in [
        ("dir", tmp_path), ("pipe", tmp_path / "pipe"), ("null", "/dev/null"), ("file", tmp_path / "file")]}
    assert kinds == {"dir": "directory", "pipe": "named pipe (FIFO)", "null": "character device", "file": None}
    assert special_file_kind(stat.S_IFBLK | 0o600) is None and special_file_kind(stat.S_IFSOCK) == "socket"


@pytest.fixture
def fake_device(tmp_path):
    """A block device node 7:200 in tmp_path (root only) with fake /proc and /sys trees, one partition 259:9."""
    node = tmp_path / "disk"
    try:
        os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(7, 200))
    except PermissionError:
        pytest.skip("making a device node needs root")
    sys_root, proc_root = tmp_path / "sys", tmp_path / "proc"
    base = sys_root / "dev" / "block" / "7:200"
    (base / "holders").mkdir(parents=True)
    (base / "disk1").mkdir()
    (base / "disk1" / "partition").write_text("1\n")
    (base / "disk1" / "dev").write_text("259:9\n")
    (sys_root / "dev" / "block" / "259:9" / "holders").mkdir(parents=True)
    (proc_root / "self").mkdir(parents=True)
    (proc_root / "self" / "mountinfo").write_text("22 27 0:21 / /proc rw,relatime - proc proc rw\n")
    return node, proc_root, sys_root


def test_an_unused_device_is_free(fake_device):
    node, proc_root, sys_root = fake_device
    assert device_in_use(str(node), proc_root=str(proc_root), sys_root=str(sys_root)) is None


@pytest.mark.parametrize("line, reason", [
    ("40 27 7:200 / /mnt/backup\\040data rw - ext4 /dev/loop9 rw", "it is mounted on /mnt/backup data"),
    ("40 27 259:9 / /srv rw - xfs /dev/loop9p1 rw", "its partition 259:9 is mounted on /srv"),
])
def test_a_mounted_device_or_partition_is_in_use(fake_device, line, reason):
    node, proc_root, sys_root = fake_device
    with open(proc_root / "self" / "mountinfo", "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    assert device_in_use(str(node), proc_root=str(proc_root), sys_root=str(sys_root)) == reason


def test_a_device_mounted_under_its_path_is_in_use_whatever_mountinfo_says_of_its_number(fake_device):
    node, proc_root, sys_root = fake_device
    (proc_root / "self" / "mountinfo").write_text("40 27 0:55 / /data rw - btrfs %s rw\n" % node)
    assert device_in_use(str(node), proc_root=str(proc_root), sys_root=str(sys_root)) == "it is mounted on /data"


def test_a_device_held_by_lvm_or_dm_is_in_use(fake_device):
    node, proc_root, sys_root = fake_device
    (sys_root / "dev" / "block" / "259:9" / "holders" / "dm-3").mkdir()
    assert device_in_use(str(node), proc_root=str(proc_root), sys_root=str(sys_root)) == (
        "its partition 259:9 is held by dm-3 (LVM, device-mapper or RAID)")


def test_writes_land_in_place_and_zero_runs_are_written_as_zeros(loop_devices):
    device = loop_devices.attach(4 * MIB, fill=b"\xaa")
    capacity = 3 * MIB + 512                     # a disk smaller than the device, not a multiple of 4 KiB
    data = bytes(range(256)) * (MIB // 256)
    with BlockDeviceTarget(device, capacity) as target:
        assert isinstance(target, DiskTarget) and target.known_zeroed is False and target.device_size == 4 * MIB
        target.write(0, data)
        clone = target.clone()
        clone.write(MIB, data[:MIB // 2])
        clone.zero(MIB + MIB // 2, MIB // 2)      # BLKZEROOUT (or zero writes) over old 0xaa bytes
        clone.zero(2 * MIB + 100, 412)            # an unaligned range: zero writes
        clone.write(3 * MIB, b"\x55" * 512)       # the disk's last, unaligned sector: the page cache path
        clone.flush()
        clone.close()
        target.flush()
    with open(device, "rb") as handle:
        written = handle.read()
    assert written[:MIB] == data
    assert written[MIB:MIB + MIB // 2] == data[:MIB // 2]
    assert written[MIB + MIB // 2:2 * MIB] == bytes(MIB // 2)
    assert written[2 * MIB:2 * MIB + 100] == b"\xaa" * 100
    assert written[2 * MIB + 100:2 * MIB + 512] == bytes(412)
    assert written[3 * MIB:capacity] == b"\x55" * 512
    assert written[capacity:] == b"\xaa" * (4 * MIB - capacity)   # past the disk: left as it was
    assert device_size(device) == 4 * MIB


def test_a_device_smaller_than_the_disk_is_refused(loop_devices):
    device = loop_devices.attach(MIB)
    with pytest.raises(TransferError) as refused:
        BlockDeviceTarget(device, 2 * MIB)
    assert str(refused.value) == ("The block device %s holds %d bytes, fewer than the %d bytes of the disk to restore."
                                  % (device, MIB, 2 * MIB))


def test_the_first_handle_holds_the_device_exclusively(loop_devices):
    device = loop_devices.attach(MIB)
    with BlockDeviceTarget(device, MIB):
        with pytest.raises(TransferError) as refused:
            BlockDeviceTarget(device, MIB)
    assert str(refused.value).startswith("The block device %s is in use (mounted, a swap area, or part of an LVM" % device)
