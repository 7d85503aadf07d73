"""The File restore target's refusals: a directory, a special file, a block device without force, in use, too small.

What it writes (a regular file or a block device) is tested against the lab in tests/functional/ops/test_restore_to_device.py;
these refusals come before any repository access, so a manifest and a context of a few fields are enough.
"""
import os
import stat
from types import SimpleNamespace

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import RestoreRefusedError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.targets import File
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import DiskKey

MIB = 1024 * 1024


class OneDisk:
    """A manifest of one 2 MiB disk 2000 (only what File.run reads before writing)."""

    def __init__(self, capacity=2 * MIB):
        self.entry = SimpleNamespace(key=DiskKey("2000"), capacity=capacity, sha256="ab" * 32)

    def disk(self, _key):
        return self.entry


CHECK = SimpleNamespace(check=True)


def refusal(path, force=True, manifest=None):
    with pytest.raises(RestoreRefusedError) as refused:
        File(path=str(path), force=force).run(CHECK, manifest or OneDisk())
    return str(refused.value)


def test_a_directory_is_refused_by_name(tmp_path):
    assert refusal(tmp_path).startswith(
        "%s is a directory: path must name the raw image file to write (for example %s) or a block device."
        % (tmp_path, os.path.join(str(tmp_path), "disk-2000.raw")))


@pytest.mark.parametrize("make, kind", [
    (lambda tmp_path: "/dev/null", "character device"),
    (lambda tmp_path: (os.mkfifo(tmp_path / "pipe"), tmp_path / "pipe")[1], "named pipe (FIFO)"),
])
def test_a_character_device_or_other_special_file_is_refused_even_with_force(tmp_path, make, kind):
    path = make(tmp_path)
    assert refusal(path).startswith("%s is a %s: a restore writes a raw image to a regular file or onto a block device "
                                    "only. Choose another path." % (path, kind))
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)        # still the device it was


def test_a_regular_file_still_needs_force_and_plans_in_check_mode(tmp_path):
    image = tmp_path / "disk.raw"
    image.write_bytes(b"old")
    assert refusal(image, force=False).startswith("%s exists: restoring disk 2000 there would overwrite it." % image)
    planned = File(path=str(image), force=True).run(CHECK, OneDisk())
    assert planned["diff"]["before"] == {"path": str(image), "exists": True}


def test_a_block_device_needs_force(loop_devices):
    device = loop_devices.attach(4 * MIB)
    assert refusal(device, force=False).startswith("%s is a block device: restoring disk 2000 onto it overwrites its data. "
                                                   "Set force to write the disk onto the device" % device)


def test_a_block_device_smaller_than_the_disk_is_refused(loop_devices):
    device = loop_devices.attach(MIB)
    assert refusal(device).startswith("The block device %s holds %d bytes, fewer than the %d bytes of disk 2000"
                                      % (device, MIB, 2 * MIB))


def test_a_larger_block_device_is_planned_and_says_so(loop_devices):
    device = loop_devices.attach(4 * MIB)
    planned = File(path=device, force=True).run(CHECK, OneDisk())
    assert planned["device"] == {"size": 4 * MIB, "bytes_past_disk": 2 * MIB}
    assert planned["warnings"] == ["the block device %s holds %d bytes, %d more than disk 2000: the disk is written onto "
                                   "its first %d bytes and the rest is left as it was" % (device, 4 * MIB, 2 * MIB, 2 * MIB)]
    assert stat.S_ISBLK(os.stat(device).st_mode)
