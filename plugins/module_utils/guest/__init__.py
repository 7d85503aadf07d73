# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guest filesystems inside a restore point's disks, through libguestfs (read-only, always).

``session.GuestSession`` owns one libguestfs appliance over some drives (NBD exports of a restore point, or raw
image files): inspection (operating systems, hostname, mount points, filesystems per disk), read-only mounting,
directory listings and copy-out. ``paths`` parses guest paths (POSIX and Windows), ``copyout`` puts copied files in
place on the proxy (staged, compared, never through a link). Importing this package loads nothing: libguestfs's
binding is loaded when a session starts (``_binding``).
"""

from .copyout import CopyRequest, copy_out
from .paths import GuestPath, local_name, parse_guest_path
from .session import ACCELERATIONS, Drive, Entry, Filesystem, GuestSession, GuestSettings, Inspection, OperatingSystem

__all__ = ["CopyRequest", "copy_out", "GuestPath", "local_name", "parse_guest_path", "ACCELERATIONS", "Drive", "Entry",
           "Filesystem", "GuestSession", "GuestSettings", "Inspection", "OperatingSystem"]
