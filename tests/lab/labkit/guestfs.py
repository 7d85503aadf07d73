"""Real guest filesystems on lab disks: a partition table and an ext4 or NTFS filesystem (or LVM volumes with XFS and
Btrfs) with files of known content.

    seed_disk(lab, "lab-fs", 0, FsLayout("ext4", files={"/etc/app.conf": b"v1\\n"}))
    write_file(lab, "lab-fs", 0, "/etc/app.conf", b"v2\\n")       # between two backups

Everything reaches the VM's disk through the lab's guest write path (POST /lab/write-bytes, PROTOCOL.md section 4),
so open snapshots keep their view and CBT records the change, as for a real guest: the filesystem is built or changed
offline in a scratch image made from the disk's current content, and only the byte ranges that differ are written.

Tools, all from Debian: sfdisk (fdisk) writes the partition table; ext4 is made by ``mkfs.ext4 -d`` and changed with
``debugfs -w`` (no mount, no appliance); NTFS is made with libguestfs's guestfish (mkntfs cannot create directories;
one appliance start per seeded NTFS disk) and changed with ``ntfscp`` (no mount, no appliance), which replaces a
file in an existing directory. One partition, from 1 MiB to the end of the disk (GPT keeps its backup header).
``seed_lvm_disk`` makes a disk of LVM logical volumes with XFS, Btrfs or ext4 on them, with guestfish (one appliance
start); those are not changed afterwards. A Windows system disk (NTFS on MBR with registry hives that libguestfs's
inspection reads) is labkit.winguest's, built on ``seed_disk``.

Not thread-safe: one seeding or write per disk at a time (the tests call it from their own thread).
"""
import dataclasses
import json
import os
import pathlib
import subprocess
import tempfile

__all__ = ["FsLayout", "LogicalVolume", "seed_disk", "seed_lvm_disk", "write_file", "partition_offset", "create_vm",
           "PIECE"]

MIB = 1 << 20
PART_START = MIB
# a change is sent in pieces of this size, only the pieces whose bytes differ from the disk's
PIECE = 64 * 1024
PART_TYPES = {("mbr", "ext4"): "83", ("mbr", "ntfs"): "7", ("gpt", "ext4"): "L", ("gpt", "ntfs"): "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"}
# How the lab's libguestfs appliances run (kvm, tcg or auto): TCG unless told, because a /dev/kvm that exists may
# still be unable to run the appliance (no nested virtualisation: the boot hangs); the tests read the same variable
APPLIANCE_ACCEL = os.environ.get("BLOCKVAULT_TEST_APPLIANCE_ACCEL", "tcg")
# a fixed time for seeded files, so that a restore that keeps times can be checked against it
SEED_MTIME = 1764547200     # 2025-12-01T00:00:00Z


@dataclasses.dataclass(frozen=True)
class FsLayout:
    """A disk to seed: partition table ``table`` (mbr or gpt), filesystem ``fstype`` (ext4 or ntfs) with ``label``,
    and ``files`` ({absolute guest path: bytes}; parent directories are made). ``disk_id``: the MBR's 32-bit disk
    identifier (byte 440; Windows's registry names a partition by it and its byte offset, see labkit.winguest);
    None: sfdisk picks one at random."""

    fstype: str
    files: dict = dataclasses.field(default_factory=dict)
    table: str = "mbr"
    label: str = "labfs"
    disk_id: int = None

    def __post_init__(self):
        if (self.table, self.fstype) not in PART_TYPES:
            raise ValueError("unsupported layout %s/%s: use mbr or gpt with ext4 or ntfs" % (self.table, self.fstype))
        if self.disk_id is not None and (self.table != "mbr" or not 0 < self.disk_id < 1 << 32):
            raise ValueError("disk_id is a 32-bit number other than 0, for an MBR table: %r" % self.disk_id)
        for path in self.files:
            if not path.startswith("/") or ".." in path.split("/"):
                raise ValueError("guest paths are absolute and without '..': %r" % path)


def _run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(map(str, args)), done.returncode, done.stdout, done.stderr))
    return done.stdout


def _flat(lab, vm, disk):
    return lab.disks(vm)[disk]["flat"]


def partition_offset(image):
    """(offset, size) in bytes of the first partition of the disk image ``image`` (from sfdisk --json)."""
    table = json.loads(_run(["sfdisk", "--json", str(image)]))["partitiontable"]
    sector = table.get("sectorsize", 512)
    first = table["partitions"][0]
    return first["start"] * sector, first["size"] * sector


def _send_changes(lab, vm, disk, flat, image, offset=0):
    """Write through the lab every PIECE of ``image`` that differs from the disk's bytes at ``offset`` onwards;
    returns the number of bytes written."""
    written = 0
    with open(flat, "rb") as current, open(image, "rb") as wanted:
        current.seek(offset)
        position = offset
        while True:
            new = wanted.read(PIECE)
            if not new:
                return written
            if current.read(len(new)) != new:
                lab.write_bytes(vm, disk, position, new)
                written += len(new)
            position += len(new)


def _populate_dir(root, files):
    for path, data in files.items():
        target = pathlib.Path(root) / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.utime(target, (SEED_MTIME, SEED_MTIME))


def _make_ext4(part, size, layout, scratch):
    source = pathlib.Path(scratch) / "root"
    source.mkdir()
    _populate_dir(source, layout.files)
    for directory in sorted({p for p in source.rglob("*") if p.is_dir()}, reverse=True):
        os.utime(directory, (SEED_MTIME, SEED_MTIME))
    with open(part, "r+b") as image:
        image.truncate(size)
    # no lazy init: every byte of the metadata is written now, so the image is the whole truth of the filesystem
    _run(["mkfs.ext4", "-q", "-F", "-L", layout.label, "-E", "lazy_itable_init=0,lazy_journal_init=0",
          "-d", str(source), str(part)])


def _upload_commands(files, scratch, tag):
    """guestfish commands that write ``files`` ({guest path: bytes}) into the mounted filesystem, times SEED_MTIME."""
    commands = []
    for index, (path, data) in enumerate(sorted(files.items())):
        local = pathlib.Path(scratch) / ("%s-file-%d" % (tag, index))
        local.write_bytes(data)
        parent = path.rsplit("/", 1)[0] or "/"
        commands += ["mkdir-p '%s'" % parent, "upload '%s' '%s'" % (local, path),
                     "utimens '%s' %d 0 %d 0" % (path, SEED_MTIME, SEED_MTIME)]
    return commands


def _guestfish(image, commands, scratch):
    """Run the guestfish ``commands`` (after "run") on the raw ``image``: one appliance start."""
    script = pathlib.Path(scratch) / "seed.gf"
    script.write_text("\n".join(["run"] + commands) + "\n")
    env = dict(os.environ, LIBGUESTFS_BACKEND=os.environ.get("LIBGUESTFS_BACKEND", "direct"))
    if APPLIANCE_ACCEL in ("tcg", "kvm"):
        env["LIBGUESTFS_BACKEND_SETTINGS"] = "force_" + APPLIANCE_ACCEL
    _run(["guestfish", "--format=raw", "-a", str(image), "-f", str(script)], env=env)


def _make_ntfs(part, layout, scratch):
    commands = ["mkfs ntfs /dev/sda label:%s" % layout.label, "mount /dev/sda /"]
    commands += _upload_commands(layout.files, scratch, "ntfs") + ["umount-all"]
    _guestfish(part, commands, scratch)


@dataclasses.dataclass(frozen=True)
class LogicalVolume:
    """A logical volume for seed_lvm_disk: ``name``, filesystem ``fstype`` (xfs, btrfs or ext4; XFS needs 300 MiB or
    more, Btrfs 110 MiB) with ``label``, ``files`` ({absolute guest path: bytes}) and ``size_mib`` (None: what the
    volume group has left)."""

    name: str
    fstype: str
    label: str
    files: dict = dataclasses.field(default_factory=dict)
    size_mib: int = None


def seed_lvm_disk(lab, vm, disk, group, volumes):
    """Give disk ``disk`` of VM ``vm`` one MBR partition of type LVM holding the volume group ``group`` and the
    LogicalVolumes ``volumes`` (in order; at most one without a size, the last), each with its filesystem and files,
    as a guest would (the differing bytes sent through the lab's guest write path). Built with guestfish: one
    appliance start."""
    commands = ["part-disk /dev/sda mbr", "part-set-mbr-id /dev/sda 1 0x8e", "pvcreate /dev/sda1",
                "vgcreate %s /dev/sda1" % group]
    for volume in volumes:
        commands.append("lvcreate %s %s %d" % (volume.name, group, volume.size_mib) if volume.size_mib
                        else "lvcreate-free %s %s 100" % (volume.name, group))
    with tempfile.TemporaryDirectory(prefix="labfs-") as scratch:
        for volume in volumes:
            device = "/dev/%s/%s" % (group, volume.name)
            commands += ["mkfs %s %s label:%s" % (volume.fstype, device, volume.label), "mount %s /" % device]
            commands += _upload_commands(volume.files, scratch, volume.name) + ["umount-all"]
        image = pathlib.Path(scratch) / "disk.img"
        with open(image, "wb") as out:
            out.truncate(lab.disks(vm)[disk]["capacity"])
        _guestfish(image, commands, scratch)
        return _send_changes(lab, vm, disk, _flat(lab, vm, disk), image)


def seed_disk(lab, vm, disk, layout):
    """Give disk ``disk`` (0-based) of VM ``vm`` the partition table and filesystem of ``layout`` (an FsLayout),
    through the lab's guest write path. Returns the partition's (offset, size) in bytes."""
    info = lab.disks(vm)[disk]
    capacity = info["capacity"]
    with tempfile.TemporaryDirectory(prefix="labfs-") as scratch:
        image = pathlib.Path(scratch) / "disk.img"
        with open(image, "wb") as out:
            out.truncate(capacity)
        table = "label: %s\n" % ("dos" if layout.table == "mbr" else "gpt")
        if layout.disk_id is not None:
            table += "label-id: 0x%08x\n" % layout.disk_id
        table += "start=%d, type=%s\n" % (PART_START // 512, PART_TYPES[(layout.table, layout.fstype)])
        _run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(image)], input=table)
        offset, size = partition_offset(image)
        part = pathlib.Path(scratch) / "part.img"
        with open(part, "wb") as out:
            out.truncate(size)
        if layout.fstype == "ext4":
            _make_ext4(part, size, layout, scratch)
        else:
            _make_ntfs(part, layout, scratch)
        with open(image, "r+b") as out, open(part, "rb") as src:
            out.seek(offset)
            while True:
                block = src.read(4 * MIB)
                if not block:
                    break
                out.write(block)
        # the whole disk: the lab's disks start full of generated data, and the partition table must replace it
        _send_changes(lab, vm, disk, _flat(lab, vm, disk), image)
    return offset, size


def _fs_type(part):
    with open(part, "rb") as image:
        head = image.read(16)
    return "ntfs" if head[3:11] == b"NTFS    " else "ext4"


def write_file(lab, vm, disk, path, data):
    """Write ``data`` as the file ``path`` of the filesystem seed_disk made on disk ``disk`` of VM ``vm``, as the guest
    would: the filesystem is changed in a scratch copy of the partition and the differing bytes are guest writes.
    ext4 makes missing parent directories; NTFS (ntfscp) needs the parent directory to exist. Returns the bytes
    written to the disk."""
    flat = _flat(lab, vm, disk)
    offset, size = partition_offset(flat)
    with tempfile.TemporaryDirectory(prefix="labfs-") as scratch:
        part = pathlib.Path(scratch) / "part.img"
        with open(flat, "rb") as src, open(part, "wb") as out:
            src.seek(offset)
            remaining = size
            while remaining:
                block = src.read(min(4 * MIB, remaining))
                out.write(block)
                remaining -= len(block)
        local = pathlib.Path(scratch) / "content"
        local.write_bytes(data)
        if _fs_type(part) == "ntfs":
            _run(["ntfscp", "-f", "-q", str(part), str(local), path])
        else:
            commands = []
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts)):
                commands.append("mkdir /%s" % "/".join(parts[:depth]))     # an existing one only prints an error
            commands += ["rm %s" % path, "write %s %s" % (local, path)]
            script = pathlib.Path(scratch) / "debugfs.cmd"
            script.write_text("\n".join(commands) + "\n")
            _run(["debugfs", "-w", "-f", str(script), str(part)])
        return _send_changes(lab, vm, disk, flat, part, offset)


def create_vm(si, name, sizes, guest_id="otherLinux64Guest"):
    """Create VM ``name`` (guest OS ``guest_id``) with one thin disk per size in ``sizes`` (bytes, on one pvscsi
    controller) through the lab's vCenter API, as a restore would; returns the vim.VirtualMachine (destroy it with
    Destroy_Task)."""
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel  # labctl's seeding needs no pyVmomi
    from labkit.testing import wait_task  # pylint: disable=import-outside-toplevel

    pool = si.content.searchIndex.FindByInventoryPath("DC0/host/DC0_C0/Resources")
    folder = si.content.rootFolder.childEntity[0].vmFolder
    changes = [vim.vm.device.VirtualDeviceSpec(operation="add", device=vim.vm.device.ParaVirtualSCSIController(
        key=-100, busNumber=0, sharedBus="noSharing"))]
    for index, size in enumerate(sizes):
        disk = vim.vm.device.VirtualDisk(
            key=-101 - index, controllerKey=-100, unitNumber=index, capacityInKB=size // 1024, capacityInBytes=size,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName="", diskMode="persistent",
                                                                  thinProvisioned=True))
        changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk))
    spec = vim.vm.ConfigSpec(name=name, guestId=guest_id, numCPUs=1, memoryMB=512,
                             files=vim.vm.FileInfo(vmPathName="[LocalDS_0]"), deviceChange=changes)
    return wait_task(folder.CreateVM_Task(config=spec, pool=pool))
