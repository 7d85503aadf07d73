"""A minimal Windows system disk for the lab: enough of Windows that libguestfs's inspection finds it, so the
file-level restore of a Windows guest (operating system, hostname, drive letters, ``C:\\...`` paths) runs for real.

    system = WindowsSystem(product_name="Windows Server 2022 Standard", hostname="winlab01", disk_id=0x57494E31)
    seed_windows_disk(lab, "lab-win", 0, system, files={"/Users/carol/plan.txt": b"v1\\r\\n"})
    write_file(lab, "lab-win", 0, "/Users/carol/plan.txt", b"v2\\r\\n")     # labkit.guestfs, between two backups

The disk: an MBR with a known disk identifier, one NTFS partition at 1 MiB (labkit.guestfs.seed_disk: one
guestfish appliance start) holding the ``files`` and what libguestfs 1.48's inspection (daemon/inspect_fs_windows.ml)
looks for on a Windows root filesystem:

- ``/Windows/System32`` and ``/Windows/System32/config`` directories and a ``/Windows/System32/cmd.exe`` file; the
  architecture comes from ``file(1)`` on cmd.exe, and a filesystem whose cmd.exe is not a PE image fails the whole
  inspection, so cmd.exe is a PE32+ header (x86-64, console) and nothing else;
- the SOFTWARE hive: ``Microsoft\\Windows NT\\CurrentVersion`` ProductName, CurrentMajorVersionNumber and
  CurrentMinorVersionNumber (CurrentVersion is read only when those are missing; "6.3" on Windows 10 and later, as
  on a real one), CurrentBuildNumber and InstallationType;
- the SYSTEM hive: ``Select\\Current`` (1: ControlSet001), the hostname from
  ``ControlSet001\\Services\\Tcpip\\Parameters\\Hostname`` (what libguestfs reads; ``Control\\ComputerName`` too,
  upper case, as Windows keeps it) and ``MountedDevices``: ``\\DosDevices\\C:`` is 12 bytes on an MBR disk, the disk
  identifier (as stored at byte 440) and the partition's byte offset (64-bit little-endian), which libguestfs matches
  against the disks it has to map the letter to a partition.

Debian has no tool that makes a new hive, only ``hivexregedit --merge`` (libwin-hivex-perl) that adds keys to one:
``empty_hive`` makes the smallest hive hivex opens (layout below), and the keys are merged into it from a .reg file.
"""
import dataclasses
import pathlib
import struct
import tempfile

from labkit.guestfs import PART_START, SEED_MTIME, FsLayout, _run, seed_disk

__all__ = ["WindowsSystem", "empty_hive", "build_hive", "reg_text", "console_exe", "windows_files",
           "seed_windows_disk"]

REGF_BLOCK = 0x1000
# FILETIME (100 ns since 1601-01-01) of SEED_MTIME: the hives' keys carry the seeded files' time
SEED_FILETIME = (SEED_MTIME + 11644473600) * 10 ** 7
# nk flags of a hive's root key: KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME (name in Latin-1, not UTF-16)
ROOT_KEY_FLAGS = 0x04 | 0x08 | 0x20
NO_CELL = 0xFFFFFFFF


def _cell(payload):
    """A used cell: its size (negative: allocated; 8-byte multiple, the size field included), then ``payload``."""
    size = (4 + len(payload) + 7) & ~7
    return struct.pack("<i", -size) + payload.ljust(size - 4, b"\0")


def empty_hive(name):
    """The bytes of an empty registry hive (regf) whose root key is ``name``: what hivex opens, to merge keys into.

    Layout (offsets of cells count from the first hbin, at 0x1000):
    - base block (4 KiB): "regf", sequence numbers 1 and 1 (equal: the hive was written out cleanly), version 1.5,
      primary file, root cell offset, size of the hbins, the file name (UTF-16LE), and at 0x1FC the XOR of the 127
      dwords before it (hivex refuses a hive whose checksum differs);
    - one hbin (4 KiB): "hbin", its offset (0) and size, then the cells: the root key (nk), its security cell (sk:
      hivex makes every new key share its parent's, so one must exist; a self-relative descriptor without owner or
      DACL, which nothing in the lab reads) and one free cell filling the rest (hivex walks every cell of a page).
    """
    label = name.encode("latin-1")
    root_at = 0x20
    nk_size = len(_cell(b"\0" * (76 + len(label))))
    sk_at = root_at + nk_size
    nk = b"nk" + struct.pack(
        "<HqIIIIIIIIIIHHIIIIHH", ROOT_KEY_FLAGS, SEED_FILETIME, 0, 0,
        0, 0, NO_CELL, NO_CELL,          # subkeys and volatile subkeys: none, no list
        0, NO_CELL,                      # values: none, no list
        sk_at, NO_CELL,                  # security cell; no class name
        0, 0, 0, 0, 0, 0, len(label), 0) + label
    descriptor = struct.pack("<BBHIIII", 1, 0, 0x8000, 0, 0, 0, 0)      # revision 1, SE_SELF_RELATIVE, no parts
    # a lone sk cell is its own previous and next in the hive's ring of security cells; one key refers to it
    sk = b"sk" + struct.pack("<HIIII", 0, sk_at, sk_at, 1, len(descriptor)) + descriptor
    cells = _cell(nk) + _cell(sk)
    free = REGF_BLOCK - root_at - len(cells)
    hbin = b"hbin" + struct.pack("<IIQqI", 0, REGF_BLOCK, 0, SEED_FILETIME, 0) + cells
    hbin += struct.pack("<i", free) + b"\0" * (free - 4)
    base = bytearray(REGF_BLOCK)
    struct.pack_into("<4sIIqIIIIIII", base, 0, b"regf", 1, 1, SEED_FILETIME, 1, 5, 0, 1, root_at, len(hbin), 1)
    file_name = name.encode("utf-16-le")[:64]
    base[0x30:0x30 + len(file_name)] = file_name
    checksum = 0
    for (word,) in struct.iter_unpack("<I", bytes(base[:0x1FC])):
        checksum ^= word
    struct.pack_into("<I", base, 0x1FC, checksum)
    return bytes(base) + hbin


def _reg_quote(text):
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def _reg_value(value):
    """A value in .reg syntax: str -> REG_SZ, int -> REG_DWORD, bytes -> REG_BINARY."""
    if isinstance(value, str):
        return _reg_quote(value)
    if isinstance(value, bool) or not isinstance(value, (int, bytes)):
        raise TypeError("registry values here are str, int or bytes: %r" % (value,))
    if isinstance(value, int):
        return "dword:%08x" % value
    return "hex:" + ",".join("%02x" % byte for byte in value)


def reg_text(prefix, keys):
    """A .reg file adding ``keys`` ({key path under the hive root, backslash-separated: {value name: value}}) under
    ``prefix`` (e.g. HKEY_LOCAL_MACHINE\\SOFTWARE). Every ancestor key gets its own section, parents first:
    hivexregedit --merge does not make missing parents."""
    paths = set()
    for path in keys:
        parts = path.split("\\")
        paths.update("\\".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    lines = ["Windows Registry Editor Version 5.00", ""]
    for path in sorted(paths, key=lambda p: p.lower().split("\\")):
        lines.append("[%s\\%s]" % (prefix, path))
        lines += ["%s=%s" % (_reg_quote(name), _reg_value(value)) for name, value in sorted(keys.get(path, {}).items())]
        lines.append("")
    return "\r\n".join(lines)


def build_hive(target, prefix, keys):
    """Write at ``target`` a hive holding ``keys`` (see reg_text), its root named after the last part of ``prefix``:
    an empty hive with the keys merged in by hivexregedit."""
    target = pathlib.Path(target)
    target.write_bytes(empty_hive(prefix.rsplit("\\", 1)[-1]))
    source = target.with_name(target.name + ".reg")
    source.write_text(reg_text(prefix, keys), encoding="utf-8")
    _run(["hivexregedit", "--merge", "--prefix", prefix, str(target), str(source)])
    source.unlink()
    return target


def console_exe():
    """The headers of a PE32+ console program for x86-64 with no sections: ``file`` calls it "PE32+ executable
    (console) x86-64, for MS Windows", which is all libguestfs asks of cmd.exe (it cannot be run)."""
    dos = bytearray(64)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, len(dos))       # e_lfanew: the PE header follows the DOS header
    optional = bytearray(0xF0)
    struct.pack_into("<H", optional, 0, 0x20B)        # PE32+
    struct.pack_into("<H", optional, 68, 3)           # subsystem: Windows console
    # machine x86-64, no sections, no symbols, the optional header's size, executable image | large address aware
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0x8664, 0, SEED_MTIME, 0, 0, len(optional), 0x0022)
    return bytes(dos) + coff + bytes(optional)


@dataclasses.dataclass(frozen=True)
class WindowsSystem:
    """What the registry of the seeded Windows says: ``product_name``, version ``major``.``minor`` and ``build``,
    ``installation_type`` (Server, Client), ``hostname``; the MBR ``disk_id`` that drive C: names in
    MountedDevices; the NTFS ``label``."""

    product_name: str
    hostname: str
    disk_id: int
    major: int = 10
    minor: int = 0
    build: str = "20348"
    installation_type: str = "Server"
    label: str = "System"

    def software_keys(self):
        return {"Microsoft\\Windows NT\\CurrentVersion": {
            "ProductName": self.product_name, "CurrentVersion": "6.3", "CurrentMajorVersionNumber": self.major,
            "CurrentMinorVersionNumber": self.minor, "CurrentBuildNumber": self.build, "CurrentBuild": self.build,
            "InstallationType": self.installation_type, "SystemRoot": "C:\\Windows"}}

    def system_keys(self):
        drive_c = struct.pack("<IQ", self.disk_id, PART_START)
        return {
            "Select": {"Current": 1, "Default": 1, "LastKnownGood": 1, "Failed": 0},
            "ControlSet001\\Control\\ComputerName\\ComputerName": {"ComputerName": self.hostname.upper()},
            "ControlSet001\\Services\\Tcpip\\Parameters": {"Hostname": self.hostname},
            "MountedDevices": {"\\DosDevices\\C:": drive_c},
        }


def windows_files(system):
    """{guest path: bytes} of the Windows system files of ``system`` (a WindowsSystem): the two hives and cmd.exe."""
    with tempfile.TemporaryDirectory(prefix="labwin-") as scratch:
        software = build_hive(pathlib.Path(scratch) / "SOFTWARE", "HKEY_LOCAL_MACHINE\\SOFTWARE",
                              system.software_keys())
        hive_system = build_hive(pathlib.Path(scratch) / "SYSTEM", "HKEY_LOCAL_MACHINE\\SYSTEM", system.system_keys())
        return {"/Windows/System32/config/SOFTWARE": software.read_bytes(),
                "/Windows/System32/config/SYSTEM": hive_system.read_bytes(),
                "/Windows/System32/cmd.exe": console_exe()}


def seed_windows_disk(lab, vm, disk, system, files):
    """Make disk ``disk`` of VM ``vm`` the Windows system disk of ``system`` (a WindowsSystem) holding ``files``
    ({guest path with / separators, e.g. /Users/carol/plan.txt: bytes}) besides the system files, through the lab's
    guest write path (labkit.guestfs.seed_disk; write_file changes a file later). Returns the partition's (offset,
    size) in bytes."""
    system_files = windows_files(system)
    clash = set(files) & set(system_files)
    if clash:
        raise ValueError("these are the system files of the seeded Windows: %s" % ", ".join(sorted(clash)))
    layout = FsLayout("ntfs", files={**system_files, **files}, table="mbr", label=system.label,
                      disk_id=system.disk_id)
    return seed_disk(lab, vm, disk, layout)
