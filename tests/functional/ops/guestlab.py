"""What the file-level restore tests share: a lab VM with real guest filesystems backed up twice.

``guest_vm_points`` builds, once per test module, a VM with an ext4 disk (a small Linux root: /etc/os-release,
hostname, fstab), an NTFS disk (GPT) and an LVM disk (XFS, ext3 and Btrfs logical volumes), writes version 1 of some
files, backs it up, writes version 2 through the lab's guest write path, backs it up again: ``GuestPoints.v1`` /
``.v2`` are the two restore point ids.

``windows_vm_points`` does the same for a second VM whose one disk is a Windows system disk (MBR, NTFS, the registry
hives libguestfs's inspection reads: labkit.winguest), so that inspection finds a Windows guest with its drive C:
and a ``C:\\...`` path is resolved through that drive letter.
"""
import contextlib
import dataclasses
import uuid

from labkit.guestfs import FsLayout, LogicalVolume, create_vm, seed_disk, seed_lvm_disk, write_file
from labkit.winguest import WindowsSystem, seed_windows_disk
from labkit.testing import wait_task
from opslab import Env

MIB = 1 << 20
OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
LINUX_V1 = {
    "/etc/os-release": OS_RELEASE,
    "/etc/hostname": b"labguest\n",
    "/etc/fstab": b"LABEL=labroot / ext4 defaults 0 1\n",
    "/bin/sh": b"#!placeholder\n",
    "/etc/app/app.conf": b"listen = 8080\nmode = v1\n",
    "/srv/data/report.csv": b"id,value\n" + b"".join(b"%d,%d\n" % (n, n * n) for n in range(2000)),
}
LINUX_V2 = {"/etc/app/app.conf": b"listen = 9090\nmode = v2 (after the change window)\n"}
WINDOWS_V1 = {
    "/Users/alice/Documents/budget.txt": b"budget 2026, version 1\r\n",
    "/Users/alice/notes.txt": b"first notes\r\n",
}
WINDOWS_V2 = {"/Users/alice/Documents/budget.txt": b"budget 2026, version 2 with more lines\r\nsecond line\r\n"}
# the third disk: LVM (volume group labdata) with XFS, ext3 and Btrfs volumes, unchanged between the points
XFS_FILES = {"/pgdata/postgresql.conf": b"shared_buffers = 128MB\n", "/pgdata/base/1/PG_VERSION": b"15\n"}
BTRFS_FILES = {"/home/bob/.profile": b"export EDITOR=vi\n", "/home/bob/photos/list.txt": b"beach.jpg\nsnow.jpg\n"}
EXT3_FILES = {"/legacy/app.ini": b"[app]\nversion = 3\n"}
LVM_VOLUMES = (LogicalVolume("xfsdata", "xfs", "labxfs", XFS_FILES, size_mib=304),
               LogicalVolume("legacy", "ext3", "labext3", EXT3_FILES, size_mib=24),
               LogicalVolume("home", "btrfs", "labbtrfs", BTRFS_FILES))
# the Windows guest: what its registry says (disk_id: the MBR identifier its drive C: is named by) and carol's files
WINDOWS_SYSTEM = WindowsSystem(product_name="Windows Server 2022 Standard", hostname="winlab-fs01",
                               disk_id=0x57494E31, label="System")
CAROL_V1 = {
    "/Users/carol/Documents/plan.txt": b"Migration plan, version 1\r\n",
    "/Users/carol/Desktop/todo.txt": b"call the vendor\r\n",
    "/Users/carol/ntuser.ini": b"[profile]\r\n",
}
CAROL_V2 = {"/Users/carol/Documents/plan.txt": b"Migration plan, version 2: moved to March\r\nwith a rollback step\r\n"}


@dataclasses.dataclass(frozen=True)
class GuestPoints:
    """The guest VM ``vm`` and its two restore points (ids) ``v1`` and ``v2`` (``v2_created``: its creation time);
    ``env`` is an opslab.Env; ``disk_keys``: the keys of the VM's disks in the restore points (windows_vm_points sets
    them)."""

    env: Env
    vm: str
    v1: str
    v2: str
    v2_created: str
    disk_keys: tuple = ()


@contextlib.contextmanager
def guest_vm_points(lab, si, tmp_path, monkeypatch):
    """The GuestPoints of a new VM (destroyed on exit); see the module notes."""
    name = "guestfs-%s" % uuid.uuid4().hex[:8]
    vm = create_vm(si, name, [48 * MIB, 24 * MIB, 480 * MIB])
    try:
        seed_disk(lab, name, 0, FsLayout("ext4", files=LINUX_V1, label="labroot"))
        seed_disk(lab, name, 1, FsLayout("ntfs", files=WINDOWS_V1, table="gpt", label="DATA"))
        seed_lvm_disk(lab, name, 2, "labdata", LVM_VOLUMES)
        env = Env(lab, tmp_path, monkeypatch)
        v1 = env.backup(name)["restore_point"]["id"]
        for path, data in LINUX_V2.items():
            write_file(lab, name, 0, path, data)
        for path, data in WINDOWS_V2.items():
            write_file(lab, name, 1, path, data)
        v2 = env.backup(name)["restore_point"]
        yield GuestPoints(env=env, vm=name, v1=v1, v2=v2["id"], v2_created=v2["created"])
    finally:
        wait_task(vm.Destroy_Task())


@contextlib.contextmanager
def windows_vm_points(lab, si, tmp_path, monkeypatch):
    """The GuestPoints of a new Windows VM (destroyed on exit) with one disk, WINDOWS_SYSTEM's system disk holding
    CAROL_V1 at ``v1`` and CAROL_V2 at ``v2``; ``disk_keys``: the key of that disk in the restore points."""
    name = "winguest-%s" % uuid.uuid4().hex[:8]
    vm = create_vm(si, name, [32 * MIB], guest_id="windows2019srv_64Guest")
    try:
        seed_windows_disk(lab, name, 0, WINDOWS_SYSTEM, CAROL_V1)
        env = Env(lab, tmp_path, monkeypatch)
        first = env.backup(name)
        for path, data in CAROL_V2.items():
            write_file(lab, name, 0, path, data)
        v2 = env.backup(name)["restore_point"]
        yield GuestPoints(env=env, vm=name, v1=first["restore_point"]["id"], v2=v2["id"], v2_created=v2["created"],
                          disk_keys=tuple(disk["key"] for disk in first["disks"]))
    finally:
        wait_task(vm.Destroy_Task())
