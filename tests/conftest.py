"""Test-wide setup: make the collection importable as ansible_collections.blockvault.vsphere."""
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
_LINK = ROOT / "build" / "collections" / "ansible_collections" / "blockvault" / "vsphere"
if not _LINK.exists():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(ROOT, _LINK.parent), _LINK)


# -- loop devices: a real block device for the restore-to-device tests -----------------------------------------------
import shutil  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402


class LoopDevices:
    """Attaches image files as loop devices (``losetup``, root only) and detaches them at the end of the test."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.attached = []

    def attach(self, size, fill=b"\0", name="device.img"):
        """A loop device over a new ``size``-byte image file filled with ``fill`` repeated; its path (/dev/loopN)."""
        image = self.tmp_path / name
        image.write_bytes((fill * (size // len(fill) + 1))[:size])
        done = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip("loop devices are not available here (losetup: %s)" % (done.stderr.strip() or done.returncode))
        device = done.stdout.strip()
        self.attached.append(device)
        return device

    def detach_all(self):
        for device in self.attached:
            subprocess.run(["losetup", "--detach", device], capture_output=True, check=False)


@pytest.fixture
def loop_devices(tmp_path):
    """LoopDevices, skipped with the reason where loop devices cannot be made (not root, no losetup, a container)."""
    if shutil.which("losetup") is None:
        pytest.skip("loop devices are not available here: losetup is not installed (util-linux)")
    if os.geteuid() != 0:
        pytest.skip("loop devices are not available here: attaching one needs root")
    devices = LoopDevices(tmp_path)
    yield devices
    devices.detach_all()
