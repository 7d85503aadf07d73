"""The lab's guest filesystems (labkit.guestfs) and the raw guest write they go through (POST /lab/write-bytes)."""
import hashlib
import subprocess
import uuid

import pytest
from pyVmomi import vmodl

from labkit import LabError
from labkit.guestfs import SEED_MTIME, FsLayout, create_vm, partition_offset, seed_disk, write_file
from labkit.testing import changed_areas, disks_of, read_flat, remove_snapshot, set_cbt, snapshot, wait_task

pytestmark = pytest.mark.lab

MiB = 1 << 20


@pytest.fixture
def fs_vm(si):
    """A new VM with one 32 MiB disk (its name), destroyed after the test."""
    name = "lab-fs-%s" % uuid.uuid4().hex[:8]
    vm = create_vm(si, name, [32 * MiB])
    yield name, vm
    try:
        wait_task(vm.Destroy_Task())
    except vmodl.fault.ManagedObjectNotFound:
        pass


def debugfs_cat(flat, path):
    """The content of ``path`` in the ext4 filesystem of the disk image ``flat`` (read offline by debugfs)."""
    offset = partition_offset(flat)[0]
    done = subprocess.run(["debugfs", "-R", "cat %s" % path, "%s?offset=%d" % (flat, offset)], capture_output=True,
                          check=True)
    return done.stdout


def test_write_bytes_is_a_guest_write_that_snapshots_and_cbt_see(lab, fs_vm):
    name, vm = fs_vm
    set_cbt(vm, True)
    key = disks_of(vm)[0].key
    before = lab.checksum(name, 0)
    snap = snapshot(vm, "before")
    change_id = disks_of(snap)[0].backing.changeId
    payload = bytes(range(256)) * 300 + b"tail"
    answer = lab.write_bytes(name, 0, 3 * MiB + 7, payload)
    assert answer["offset"] == 3 * MiB + 7 and answer["length"] == len(payload)
    image = read_flat(lab.disks(name)[0]["flat"])
    assert image[3 * MiB + 7:3 * MiB + 7 + len(payload)] == payload
    assert lab.checksum(name, 0, snapshot="before") == before         # the snapshot keeps its view
    areas = changed_areas(vm, None, key, change_id)[0]
    assert any(start <= 3 * MiB + 7 and start + length >= 3 * MiB + 7 + len(payload) for start, length in areas)
    remove_snapshot(snap)


def test_write_bytes_refuses_a_write_past_the_end_and_an_empty_body(lab, fs_vm):
    name = fs_vm[0]
    with pytest.raises(LabError, match="past the end"):
        lab.write_bytes(name, 0, 32 * MiB - 2, b"abcd")
    with pytest.raises(LabError, match="between 1 and"):
        lab.write_bytes(name, 0, 0, b"")


def test_ext4_seed_and_a_file_written_between_snapshots(lab, fs_vm):
    name, vm = fs_vm
    offset, size = seed_disk(lab, name, 0, FsLayout("ext4", files={"/etc/app/app.conf": b"version 1\n",
                                                                   "/srv/data.bin": bytes(range(256)) * 4096}))
    flat = lab.disks(name)[0]["flat"]
    assert (offset, size) == partition_offset(flat) and offset == MiB
    assert debugfs_cat(flat, "/etc/app/app.conf") == b"version 1\n"
    assert debugfs_cat(flat, "/srv/data.bin") == bytes(range(256)) * 4096
    stat = subprocess.run(["debugfs", "-R", "stat /etc/app/app.conf", "%s?offset=%d" % (flat, offset)],
                          capture_output=True, text=True, check=True).stdout
    assert "mtime: 0x%08x" % SEED_MTIME in stat
    seeded = hashlib.sha256(read_flat(flat)).hexdigest()
    snap = snapshot(vm, "v1")
    written = write_file(lab, name, 0, "/etc/app/app.conf", b"version 2, longer than the first\n")
    assert 0 < written < 2 * MiB                      # the changed ranges only, not the whole filesystem
    assert debugfs_cat(flat, "/etc/app/app.conf") == b"version 2, longer than the first\n"
    assert debugfs_cat(flat, "/srv/data.bin") == bytes(range(256)) * 4096
    assert lab.checksum(name, 0, snapshot="v1") == seeded
    write_file(lab, name, 0, "/home/new/dir/file.txt", b"made with its parents\n")
    assert debugfs_cat(flat, "/home/new/dir/file.txt") == b"made with its parents\n"
    remove_snapshot(snap)


def test_a_layout_refuses_relative_and_dotdot_paths():
    with pytest.raises(ValueError, match="absolute"):
        FsLayout("ext4", files={"etc/x": b""})
    with pytest.raises(ValueError, match="absolute"):
        FsLayout("ext4", files={"/etc/../x": b""})
    with pytest.raises(ValueError, match="unsupported"):
        FsLayout("xfs")


def test_labctl_seeds_a_filesystem_and_writes_a_file_into_it(lab, labctl, fs_vm, tmp_path):
    name = fs_vm[0]
    source = tmp_path / "tree"
    (source / "etc").mkdir(parents=True)
    (source / "etc" / "motd").write_bytes(b"hello from labctl\n")
    labctl("seed-fs", "--vm", name, "--disk", 0, "--fs", "ext4", "--table", "gpt", "--from", source)
    flat = lab.disks(name)[0]["flat"]
    assert debugfs_cat(flat, "/etc/motd") == b"hello from labctl\n"
    new = tmp_path / "motd.v2"
    new.write_bytes(b"second version\n")
    labctl("write-file", "--vm", name, "--disk", 0, "--path", "/etc/motd", "--from", new)
    assert debugfs_cat(flat, "/etc/motd") == b"second version\n"
    failed = labctl("seed-fs", "--vm", name, "--disk", 0, "--fs", "ext4", "--from", tmp_path / "missing", check=False)
    assert failed.returncode == 1 and "not a directory" in failed.stderr
