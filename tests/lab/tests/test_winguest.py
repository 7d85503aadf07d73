"""The lab's Windows system disk (labkit.winguest), checked without a libguestfs appliance: the hives read back with
hivexregedit hold what libguestfs's inspection looks for, cmd.exe is a PE image to file(1), and the MBR carries the
disk identifier that drive C: is named by. (That libguestfs's inspection itself finds this Windows is the file-restore
tests' part: tests/functional/ops/test_file_restore_windows.py.)"""
import os
import struct
import subprocess
import uuid

import pytest
from pyVmomi import vmodl

from labkit.guestfs import PART_START, FsLayout, create_vm, seed_disk
from labkit.testing import wait_task
from labkit.winguest import WindowsSystem, console_exe, empty_hive, windows_files

MiB = 1 << 20
SYSTEM = WindowsSystem(product_name="Windows Server 2022 Standard", hostname="winlab-fs01", disk_id=0x57494E31)


def export(hive, tmp_path, prefix, key="\\"):
    """hivexregedit's .reg export of ``key`` in the hive bytes ``hive``, strings shown as text."""
    path = tmp_path / prefix.rsplit("\\", 1)[-1]
    path.write_bytes(hive)
    done = subprocess.run(["hivexregedit", "--export", "--unsafe-printable-strings", "--prefix", prefix, str(path),
                           key], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_empty_hive_opens_with_only_its_root_and_a_wrong_checksum_is_refused(tmp_path):
    hive = empty_hive("SOFTWARE")
    assert len(hive) == 0x2000 and hive[:4] == b"regf" and hive[0x1000:0x1004] == b"hbin"
    assert [line for line in export(hive, tmp_path, "HKLM\\SOFTWARE").splitlines() if line.startswith("[")] == [
        "[HKLM\\SOFTWARE\\]"]
    damaged = bytearray(hive)
    damaged[0x30] ^= 0xFF          # the file name, covered by the checksum at 0x1FC
    (tmp_path / "damaged").write_bytes(bytes(damaged))
    # HIVEX_DEBUG=1: hivex says why it refuses (without it, the Perl binding gives only errno's text)
    done = subprocess.run(["hivexregedit", "--export", str(tmp_path / "damaged"), "\\"], capture_output=True,
                          text=True, check=False, env=dict(os.environ, HIVEX_DEBUG="1"))
    assert done.returncode != 0 and "bad checksum in hive header" in done.stderr


def test_the_hives_hold_what_inspection_reads(tmp_path):
    files = windows_files(SYSTEM)
    software = export(files["/Windows/System32/config/SOFTWARE"], tmp_path, "HKEY_LOCAL_MACHINE\\SOFTWARE",
                      "\\Microsoft\\Windows NT\\CurrentVersion")
    for line in ('"ProductName"=str(1):"Windows Server 2022 Standard"', '"CurrentMajorVersionNumber"=dword:0000000a',
                 '"CurrentMinorVersionNumber"=dword:00000000', '"CurrentBuildNumber"=str(1):"20348"',
                 '"InstallationType"=str(1):"Server"'):
        assert line in software.splitlines()
    system = export(files["/Windows/System32/config/SYSTEM"], tmp_path, "HKEY_LOCAL_MACHINE\\SYSTEM").splitlines()
    assert '"Current"=dword:00000001' in system[system.index("[HKEY_LOCAL_MACHINE\\SYSTEM\\Select]") + 1:]
    assert '"Hostname"=str(1):"winlab-fs01"' in system
    assert '"ComputerName"=str(1):"WINLAB-FS01"' in system
    # drive C: = the disk identifier as the MBR stores it, then the partition's byte offset, both little-endian
    drive_c = struct.pack("<IQ", 0x57494E31, PART_START)
    assert '"\\\\DosDevices\\\\C:"=hex(3):' + ",".join("%02x" % byte for byte in drive_c) in system


def test_cmd_exe_is_a_64_bit_windows_console_program_to_file(tmp_path):
    (tmp_path / "cmd.exe").write_bytes(console_exe())
    kind = subprocess.run(["file", "-b", str(tmp_path / "cmd.exe")], capture_output=True, text=True, check=True)
    assert kind.stdout.startswith("PE32+ executable (console) x86-64")


def test_a_disk_id_is_refused_for_gpt_and_out_of_range():
    for table, disk_id in (("gpt", 1), ("mbr", 0), ("mbr", 1 << 32)):
        with pytest.raises(ValueError, match="disk_id"):
            FsLayout("ext4", table=table, disk_id=disk_id)


@pytest.mark.lab
def test_the_mbr_carries_the_disk_id_at_byte_440(lab, si):
    name = "lab-winid-%s" % uuid.uuid4().hex[:8]
    vm = create_vm(si, name, [16 * MiB])
    try:
        # ext4: the partition table is the same code path as for NTFS, and ext4 needs no appliance
        seed_disk(lab, name, 0, FsLayout("ext4", files={"/x": b"x"}, disk_id=SYSTEM.disk_id))
        with open(lab.disks(name)[0]["flat"], "rb") as flat:
            flat.seek(440)
            assert flat.read(4) == struct.pack("<I", SYSTEM.disk_id)
    finally:
        try:
            wait_task(vm.Destroy_Task())
        except vmodl.fault.ManagedObjectNotFound:
            pass
