# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File-level restore: look inside a restore point's disks and copy files out, without restoring a disk.

``file_restore(FileRestoreRequest(source, operation, ...), endpoints, settings)`` serves the restore point's disks
read-only over NBD (ops.export's ``exported``: nbdkit reading through the repository, only the chunks a read
touches), starts one libguestfs appliance over them (guest.GuestSession, read-only drives and mounts) and runs one
operation:

- ``inspect``: operating systems (type, distro, version, hostname, mount points, drive letters) and every filesystem
  with the disk it lives on, so a user finds the right disk and filesystem without knowing the layout;
- ``list``: the entries of directories (type, size, mtime, mode, uid/gid, link target);
- ``restore``: copy files and trees to ``dest`` on the proxy (guest.copyout: staged, compared, put in place; a
  destination that already holds identical files is not changed).

``run_in(guest, request, restore_point)`` runs an operation in a session the caller holds, so that several
operations share one appliance start. Paths are parsed when the request is built: a relative path or one with
``..`` is refused before anything is exported or started.
"""

from __future__ import annotations

import contextlib
import dataclasses

from ..errors import BlockvaultError, ConfigurationError
from ..guest import CopyRequest, Drive, GuestSession, GuestSettings, copy_out, parse_guest_path
from .export import exported
from .requests import RestorePointQuery, RunSettings

# GuestSettings is re-exported: the modules reach the engine through ops only
__all__ = ["FileRestoreRequest", "file_restore", "run_in", "OPERATIONS", "GuestSettings"]

OPERATIONS = ("inspect", "list", "restore")


@dataclasses.dataclass(frozen=True)
class FileRestoreRequest:
    """One file-level operation on the restore point ``source`` (a RestorePointQuery): ``operation`` (inspect, list,
    restore); ``paths`` (guest paths: directories to list, files or trees to restore); ``dest`` (proxy directory of
    a restore); ``disks`` (keys or labels to export; None: every disk); ``filesystem`` (device or label to mount when
    the disks hold no single operating system); ``keep_owner``/``keep_times`` (of restored files); ``guest``
    (GuestSettings of the appliance)."""

    source: RestorePointQuery
    operation: str = "list"
    paths: tuple = ()
    dest: str = None
    disks: tuple = None
    filesystem: str = None
    keep_owner: bool = False
    keep_times: bool = True
    guest: GuestSettings = GuestSettings()

    def __post_init__(self):
        if self.operation not in OPERATIONS:
            raise ConfigurationError("operation %r: use one of %s." % (self.operation, ", ".join(OPERATIONS)))
        if isinstance(self.paths, str):
            object.__setattr__(self, "paths", (self.paths,))
        object.__setattr__(self, "paths", tuple(parse_guest_path(path) if isinstance(path, str) else path
                                                for path in self.paths or ()))
        if self.disks is not None:
            object.__setattr__(self, "disks", tuple(str(disk) for disk in self.disks))
        if self.operation == "restore":
            # checked now (CopyRequest's rules: absolute dest, paths present, no two with one name), not after the
            # appliance start
            self.copy_request(check=False)
        elif self.operation == "list" and not self.paths:
            object.__setattr__(self, "paths", (parse_guest_path("/"),))
        elif self.operation == "inspect" and self.paths:
            raise ConfigurationError("operation=inspect takes no paths: it describes the disks (use list for paths).")

    def copy_request(self, check):
        return CopyRequest(paths=self.paths, dest=self.dest, keep_owner=self.keep_owner, keep_times=self.keep_times,
                           check=check)


def run_in(guest, request, restore_point, check=False):
    """Run ``request``'s operation in the open GuestSession ``guest``; returns the operation's result dict."""
    inspection = guest.inspect()
    base = {"changed": False, "restore_point": restore_point, "operation": request.operation,
            "appliance_start_seconds": guest.launch_seconds}
    if request.operation == "inspect":
        return dict(base, **inspection.as_dict())
    mounted = guest.mount(request.filesystem, inspection)
    base["mounted"] = mounted
    if request.operation == "list":
        entries = []
        for path in request.paths:
            entries.extend(entry.as_dict() for entry in guest.list_dir(path))
        return dict(base, entries=entries)
    outcome = copy_out(guest, request.copy_request(check))
    updated = outcome["updated"]
    result = dict(base, **outcome)
    result["diff"] = {"before": {"dest": request.dest, "updated": []},
                      "after": {"dest": request.dest, "updated": updated}}
    return result


def file_restore(request, endpoints, settings=RunSettings()):
    """Run ``request`` (see the module notes). Returns {changed, restore_point, operation, ...the operation's fields}."""
    with contextlib.ExitStack() as stack:
        try:
            export = stack.enter_context(exported(request.source, endpoints, settings, disks=request.disks))
            drives = [Drive(key, uri) for key, uri in sorted(export.uris.items())]
            guest = stack.enter_context(GuestSession(drives, request.guest))
            return run_in(guest, request, export.restore_point, check=settings.check)
        except BlockvaultError as exc:
            raise exc.with_context(phase="file_restore", vm=request.source.vm_name)
