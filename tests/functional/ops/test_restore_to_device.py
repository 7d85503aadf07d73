"""Restore a disk onto a block device (issue 11, defect 7): in place, zero chunks written as zeros, the device still a
device, and never while it is mounted. Loop devices stand in for a LUN; without them (not root, a container) these
tests skip saying so, while the refusals of a directory and of other special files are tested everywhere (unit tests).
"""
import hashlib
import os
import stat
import subprocess

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import RestoreRefusedError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import File

pytestmark = pytest.mark.lab

MIB = 1024 * 1024


def read_device(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_a_disk_restored_onto_a_larger_block_device_is_written_in_place(env, loop_devices):
    backup = env.backup("lab-vm1")
    disk = backup["disks"][0]
    live = env.checksums("lab-vm1")[0]
    capacity = env.lab.disks("lab-vm1")[0]["capacity"]
    device = loop_devices.attach(capacity + 16 * MIB, fill=b"\xaa\x55")   # not zeroed: zero chunks must be written

    result = env.restore(backup["restore_point"]["id"], File(path=device, disk=disk["key"], force=True))

    assert result["changed"] is True and result["path"] == device
    assert result["device"] == {"size": capacity + 16 * MIB, "bytes_past_disk": 16 * MIB}
    assert result["warnings"] == ["the block device %s holds %d bytes, %d more than disk %s: the disk is written onto its "
                                  "first %d bytes and the rest is left as it was" % (device, capacity + 16 * MIB, 16 * MIB,
                                                                                     disk["key"], capacity)]
    assert result["disks"][0]["sha256"] == disk["sha256"] and result["disks"][0]["chunks_zeroed"] > 0
    data = read_device(device)
    assert hashlib.sha256(data[:capacity]).hexdigest() == live
    assert data[capacity:] == b"\xaa\x55" * (8 * MIB)
    assert stat.S_ISBLK(os.stat(device).st_mode) and not os.path.exists(device + ".partial")


def test_a_mounted_block_device_is_refused_and_left_untouched(env, loop_devices, tmp_path):
    backup = env.backup("lab-vm1")
    capacity = env.lab.disks("lab-vm1")[0]["capacity"]
    device = loop_devices.attach(capacity + MIB)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", device], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip("cannot make a file system on a loop device here: %s" % made.stderr.strip())
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", device, str(mountpoint)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a loop device here: %s" % mounted.stderr.strip())
    try:
        (mountpoint / "keep").write_text("the file system's own data")
        os.sync()
        with pytest.raises(RestoreRefusedError) as refused:
            env.restore(backup["restore_point"]["id"], File(path=device, force=True))
        assert str(refused.value).startswith("The block device %s is in use (it is mounted on %s): a restore never writes "
                                             "onto a device in use. Unmount or release it first." % (device, mountpoint))
    finally:
        subprocess.run(["umount", str(mountpoint)], capture_output=True, check=False)
    # the file system is intact: its check passes and the file written before the refused restore reads back
    assert subprocess.run(["e2fsck", "-f", "-n", device], capture_output=True, check=False).returncode == 0
    kept = subprocess.run(["debugfs", "-R", "cat /keep", device], capture_output=True, text=True, check=False)
    assert kept.stdout == "the file system's own data"
