# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GuestSession: one read-only libguestfs appliance over a restore point's disks.

    drives = (Drive("2000", "nbd+unix:///?socket=/run/x.sock"), Drive("2001", "/tmp/disk.raw"))
    with GuestSession(drives, GuestSettings(accel="tcg")) as guest:
        guest.inspect()                      # Inspection: operating systems, filesystems per disk
        guest.mount(filesystem=None)         # the one OS (its mount points) or the one filesystem, read-only
        guest.list_dir(parse_guest_path("/etc"))     # guest.paths
        guest.download(path, local) / guest.tar_out(path, local_tar)

Every drive is added read-only (libguestfs's readonly flag: the appliance gets a throw-away overlay, nothing is
ever written to the export or the file) and every filesystem is mounted read-only. The appliance start is the
expensive step (seconds under KVM, tens of seconds under TCG): one session serves every call of a run.
"""

from __future__ import annotations

import dataclasses
import re
import stat
import time
import urllib.parse

from ..errors import ConfigurationError, GuestError
from . import _binding
from ._launch import LaunchWatchdog

__all__ = ["Drive", "GuestSettings", "GuestSession", "Entry", "Inspection", "OperatingSystem", "Filesystem",
           "ACCELERATIONS"]

ACCELERATIONS = ("auto", "kvm", "tcg")
_TYPES = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "link"), (stat.S_ISCHR, "char"),
          (stat.S_ISBLK, "block"), (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"))


@dataclasses.dataclass(frozen=True)
class Drive:
    """A disk for the appliance: ``key`` (the restore point's disk key) read from ``source``, an NBD URI
    (nbd+unix:///EXPORT?socket=PATH, nbd://HOST:PORT/EXPORT) or a raw image file."""

    key: str
    source: str


@dataclasses.dataclass(frozen=True)
class GuestSettings:
    """How the appliance runs: ``accel`` auto (KVM when it works, else TCG: libguestfs decides), kvm, or tcg (forced:
    for machines whose /dev/kvm exists but cannot run the appliance, e.g. without nested virtualisation);
    ``memory_mb`` (None: libguestfs's default); ``trace`` logs libguestfs's calls to stderr; ``launch_timeout``:
    seconds the appliance may take to start before it is killed and the run fails (guest._launch)."""

    accel: str = "auto"
    memory_mb: int = None
    trace: bool = False
    launch_timeout: int = 600

    def __post_init__(self):
        if self.accel not in ACCELERATIONS:
            raise ConfigurationError("appliance_accel %r: use one of %s." % (self.accel, ", ".join(ACCELERATIONS)))
        if self.memory_mb is not None and int(self.memory_mb) < 256:
            raise ConfigurationError("appliance_memory_mb is %s: give 256 or more." % self.memory_mb)
        if int(self.launch_timeout) <= 0:
            raise ConfigurationError("appliance_timeout is %s: give the seconds the appliance may take to start, more "
                                     "than 0." % self.launch_timeout)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One directory entry (or the stat of one path): name, guest path, type (file, directory, link, ...), size in
    bytes, mtime (seconds since the epoch), mode (permission bits), uid and gid, and the target of a link."""

    name: str
    path: str
    type: str
    size: int
    mtime: int
    mode: int
    uid: int
    gid: int
    target: str = None

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Filesystem:
    """A filesystem of the guest: appliance ``device`` (/dev/sda1, /dev/vg/lv), the restore point's ``disk`` key it
    lives on (for a logical volume, the disk of its volume group; None for a volume group spanning disks), ``type``
    (ext4, ntfs, xfs, ...), ``label``, ``uuid``, ``size``."""

    device: str
    disk: str
    type: str
    label: str
    uuid: str
    size: int

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class OperatingSystem:
    """An operating system inspection found: its ``root`` filesystem, type (linux, windows), distro, product
    name, version, hostname, ``mountpoints`` ({guest mount point: device}) and Windows ``drives`` ({letter: device})."""

    root: str
    type: str
    distro: str
    product_name: str
    version: str
    hostname: str
    mountpoints: tuple
    drives: tuple

    def as_dict(self):
        out = dataclasses.asdict(self)
        out["mountpoints"] = dict(self.mountpoints)
        out["drives"] = dict(self.drives)
        return out


@dataclasses.dataclass(frozen=True)
class Inspection:
    """What a session found: ``operating_systems`` and ``filesystems`` (tuples of the dataclasses above)."""

    operating_systems: tuple
    filesystems: tuple

    def as_dict(self):
        return {"operating_systems": [os_.as_dict() for os_ in self.operating_systems],
                "filesystems": [fs.as_dict() for fs in self.filesystems]}


def _drive_options(drive, label):
    """add_drive_opts keywords of ``drive`` (always read-only, raw)."""
    options = {"readonly": True, "format": "raw", "label": label}
    source = drive.source
    if source.startswith(("nbd:", "nbd+unix:", "nbd+tcp:")):
        uri = urllib.parse.urlsplit(source)
        query = urllib.parse.parse_qs(uri.query)
        export = urllib.parse.unquote(uri.path.lstrip("/"))
        if "socket" in query:
            server = ["unix:" + query["socket"][0]]
        elif uri.hostname:
            server = ["%s:%d" % (uri.hostname, uri.port or 10809)]
        else:
            raise ConfigurationError("The NBD URI %r of disk %s names no server (socket or host)." % (source, drive.key))
        options.update(filename=export, protocol="nbd", server=server)
    else:
        options["filename"] = source
    return options


class GuestSession:
    """One read-only libguestfs appliance over ``drives`` (a sequence of Drive).

    Contract: use as a context manager (``__enter__`` launches, ``__exit__`` shuts the appliance down and closes the
    handle, whatever happened); ``mount`` once before listing or copying; everything is read-only. Errors of
    libguestfs become GuestError naming the path or filesystem. Thread-safety: none; one thread owns a session
    (libguestfs handles are not to be shared between threads without locking, and calls are serial anyway).
    """

    def __init__(self, drives, settings=GuestSettings()):
        if not drives:
            raise ConfigurationError("No disk to look into: the restore point has no disk matching the selection.")
        self.drives = tuple(drives)
        self.settings = settings
        self._handle = None
        self._labels = {}           # appliance disk label -> disk key
        self._mounted = None        # description of what is mounted at /
        self._case_insensitive = False
        self._letters = {}
        self._root_device = None
        self._inspection = None
        self.launch_seconds = None    # how long the appliance took to start (results report it: it dominates a run)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self):
        guestfs = _binding.load()
        handle = guestfs.GuestFS(python_return_dict=True, close_on_exit=False)
        watchdog = None
        try:
            if self.settings.accel == "tcg":
                handle.set_backend_settings(["force_tcg"])
            elif self.settings.accel == "kvm":
                handle.set_backend_settings(["force_kvm"])
            if self.settings.memory_mb:
                handle.set_memsize(int(self.settings.memory_mb))
            handle.set_trace(bool(self.settings.trace))
            for index, drive in enumerate(self.drives):
                label = _label(index)      # labels are letters only: the key maps back through this table
                self._labels[label] = drive.key
                handle.add_drive_opts(**_drive_options(drive, label))
            began = time.monotonic()
            with LaunchWatchdog(self.settings.launch_timeout) as watchdog:
                handle.launch()
            self.launch_seconds = round(time.monotonic() - began, 2)
        except RuntimeError as exc:
            handle.close()
            if watchdog is not None and watchdog.fired:
                raise GuestError("The libguestfs appliance did not start within %d s (accel %s), and was stopped. Where "
                                 "/dev/kvm exists but cannot run a guest (no nested virtualisation), set appliance_accel: "
                                 "tcg; under TCG on a busy machine, raise appliance_timeout. `libguestfs-test-tool` shows "
                                 "where the start stops." % (self.settings.launch_timeout, self.settings.accel)) from exc
            raise GuestError("The libguestfs appliance did not start (accel %s): %s. Check `libguestfs-test-tool`; "
                             "where /dev/kvm exists but cannot run it, set appliance_accel: tcg."
                             % (self.settings.accel, exc)) from exc
        except BaseException:
            handle.close()
            raise
        self._handle = handle
        return self

    def __exit__(self, *exc):
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.shutdown()
            except RuntimeError:
                pass        # the appliance is gone already; close() still frees the handle
            handle.close()

    @property
    def g(self):
        if self._handle is None:
            raise GuestError("The guest session is not open.")
        return self._handle

    # -- inspection --------------------------------------------------------------------------------------------
    def _disk_of(self, device):
        """The disk key of appliance ``device`` (/dev/sdb1 -> the key of the second drive; a logical volume -> the
        disk of its volume group's physical volumes), or None (a volume group spanning disks)."""
        try:
            if self.g.is_lv(device):
                return self._disk_of_logical_volume(device)
            whole = self.g.part_to_dev(device) if re.search(r"\d$", device) else device
        except RuntimeError:
            return None
        for label, dev in self.g.list_disk_labels().items():
            if dev == whole:
                return self._labels.get(label)
        return None

    def _disk_of_logical_volume(self, device):
        group = self.g.lvm_canonical_lv_name(device).split("/")[2]      # /dev/VG/LV
        in_group = {uuid.replace("-", "") for uuid in self.g.vgpvuuids(group)}
        disks = {self._disk_of(pv["pv_name"]) for pv in self.g.pvs_full() if pv["pv_uuid"].replace("-", "") in in_group}
        return disks.pop() if len(disks) == 1 else None

    def inspect(self):
        """The Inspection of the drives: every operating system libguestfs's inspection finds, every filesystem.
        Computed once per session (the drives are read-only, so it cannot change; it mounts every filesystem)."""
        if self._inspection is None:
            self._inspection = self._inspect()
        return self._inspection

    def _inspect(self):
        g = self.g
        systems = []
        for root in g.inspect_os():
            mountpoints = tuple(sorted(g.inspect_get_mountpoints(root).items()))
            try:
                drives = tuple(sorted(g.inspect_get_drive_mappings(root).items()))
            except RuntimeError:
                drives = ()
            systems.append(OperatingSystem(
                root=root, type=g.inspect_get_type(root), distro=g.inspect_get_distro(root),
                product_name=g.inspect_get_product_name(root),
                version="%d.%d" % (g.inspect_get_major_version(root), g.inspect_get_minor_version(root)),
                hostname=g.inspect_get_hostname(root), mountpoints=mountpoints, drives=drives))
        filesystems = []
        for device, fstype in sorted(g.list_filesystems().items()):
            if fstype == "unknown":
                continue
            label = uuid = ""
            try:
                label = g.vfs_label(device)
                uuid = g.vfs_uuid(device)
            except RuntimeError:
                pass
            try:
                size = g.blockdev_getsize64(device)
            except RuntimeError:
                size = 0
            filesystems.append(Filesystem(device=device, disk=self._disk_of(device), type=fstype, label=label,
                                          uuid=uuid, size=size))
        return Inspection(operating_systems=tuple(systems), filesystems=tuple(filesystems))

    # -- mounting ----------------------------------------------------------------------------------------------
    def mount(self, filesystem=None, inspection=None):
        """Mount read-only what paths refer to: ``filesystem`` (an appliance device or a filesystem label) at /;
        else the one operating system's filesystems at their mount points; else the one filesystem there is.
        Returns a description of what is mounted (for results and messages)."""
        inspection = inspection or self.inspect()
        self.g.umount_all()     # a session serves several operations: each mounts what it needs afresh
        self._mounted = self._root_device = None
        self._letters = {}
        mountable = [fs for fs in inspection.filesystems if fs.type != "swap"]
        if filesystem:
            chosen = [fs for fs in mountable if filesystem in (fs.device, fs.label, fs.uuid)]
            if not chosen:
                raise ConfigurationError("No filesystem %r in the restore point's disks; there are: %s."
                                         % (filesystem, _describe(mountable)))
            self._mount_one(chosen[0])
        elif len(inspection.operating_systems) == 1:
            system = inspection.operating_systems[0]
            # shortest mount point first: / before /boot before /boot/efi
            for point, device in sorted(system.mountpoints, key=lambda item: len(item[0])):
                try:
                    self.g.mount_ro(device, point)
                except RuntimeError as exc:
                    if point == "/":
                        raise GuestError("The root filesystem %s of %s could not be mounted read-only: %s."
                                         % (device, system.product_name, exc)) from exc
            self._case_insensitive = system.type == "windows"
            self._letters = {letter.upper(): device for letter, device in system.drives}
            self._root_device = dict(system.mountpoints).get("/")
            self._mounted = "%s %s (root %s)" % (system.type, system.product_name, system.root)
        elif len(mountable) == 1:
            self._mount_one(mountable[0])
        else:
            raise ConfigurationError(
                "The restore point's disks hold %s and %d filesystems: say which with filesystem (a device or label "
                "from operation=inspect): %s." % ("%d operating systems" % len(inspection.operating_systems)
                                                  if inspection.operating_systems else "no operating system",
                                                  len(mountable), _describe(mountable)))
        return self._mounted

    def _mount_one(self, fs):
        try:
            self.g.mount_ro(fs.device, "/")
        except RuntimeError as exc:
            raise GuestError("The filesystem %s (%s) could not be mounted read-only: %s." % (fs.device, fs.type, exc)) \
                from exc
        self._case_insensitive = fs.type in ("ntfs", "vfat", "exfat")
        self._root_device = fs.device
        self._mounted = "%s (%s%s)" % (fs.device, fs.type, ", label %s" % fs.label if fs.label else "")

    # -- paths -------------------------------------------------------------------------------------------------
    def resolve(self, guest_path):
        """The appliance path of ``guest_path`` (a GuestPath) in what is mounted; GuestError naming it when missing."""
        if self._mounted is None:
            raise GuestError("Nothing is mounted: call mount() first.")
        # a drive letter must be the mounted filesystem's when the guest's registry says which letter is which;
        # without it (a data disk, no Windows found) the letter can only mean the selected filesystem
        if guest_path.letter and self._letters and self._letters.get(guest_path.letter) != self._root_device:
            raise ConfigurationError("The guest path %r is on drive %s, which is %s, not the mounted %s: select it with "
                                     "filesystem." % (guest_path.text, guest_path.letter,
                                                      self._letters.get(guest_path.letter, "not a drive of this guest"),
                                                      self._root_device))
        path = guest_path.path
        if self._case_insensitive or guest_path.windows:
            try:
                path = self.g.case_sensitive_path(path)
            except RuntimeError:
                pass    # a missing component: the existence check below names the path
        if not self.g.exists(path) and not self._is_link(path):
            raise GuestError("%s does not exist in the restore point (in %s)." % (guest_path.text, self._mounted))
        return path

    def _is_link(self, path):
        try:
            return self.g.is_symlink(path)
        except RuntimeError:
            return False

    def stat(self, path, name=None):
        """The Entry of appliance path ``path`` (not following a last-component link)."""
        st = self.g.lstatns(path)
        return self._entry(path, name or path.rsplit("/", 1)[-1] or "/", st)

    def _entry(self, path, name, st):
        mode = st["st_mode"]
        kind = next((label for test, label in _TYPES if test(mode)), "unknown")
        target = None
        if kind == "link":
            try:
                target = self.g.readlink(path)
            except RuntimeError:
                target = None
        return Entry(name=name, path=path, type=kind, size=st["st_size"], mtime=st["st_mtime_sec"],
                     mode=stat.S_IMODE(mode), uid=st["st_uid"], gid=st["st_gid"], target=target)

    def list_dir(self, guest_path):
        """The Entries of the directory ``guest_path`` (a GuestPath), sorted by name; the Entry itself for a file."""
        path = self.resolve(guest_path)
        top = self.stat(path)
        if top.type != "directory":
            return (top,)
        names = self.g.ls(path)
        stats = self.g.lstatnslist(path, names) if names else []
        base = path.rstrip("/")
        return tuple(self._entry("%s/%s" % (base, name), name, st) for name, st in zip(names, stats))

    # -- copying out -------------------------------------------------------------------------------------------
    def download(self, path, local):
        """Copy the regular file ``path`` to the local file ``local`` (created or replaced)."""
        try:
            self.g.download(path, local)
        except RuntimeError as exc:
            raise GuestError("Copying %s out of the restore point failed: %s." % (path, exc)) from exc

    def tar_out(self, path, local_tar):
        """Write the directory tree ``path`` as an uncompressed tar (numeric owners, with xattrs) to ``local_tar``."""
        try:
            self.g.tar_out(path, local_tar, numericowner=True)
        except RuntimeError as exc:
            raise GuestError("Copying the tree %s out of the restore point failed: %s." % (path, exc)) from exc


def _label(index):
    """The appliance label of the drive at ``index``: disk, diska ... diskz, diskba ... (libguestfs accepts letters)."""
    letters = ""
    while True:
        letters = chr(ord("a") + index % 26) + letters
        index //= 26
        if not index:
            return "disk" + letters


def _describe(filesystems):
    return ", ".join("%s (%s%s%s)" % (fs.device, fs.type, ", label %s" % fs.label if fs.label else "",
                                      ", disk %s" % fs.disk if fs.disk else "") for fs in filesystems) or "none"
