# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VDDK (libvixDiskLib) through ctypes: loading, connections, disk handles, retries.

Typical use (a backup worker)::

    lib = initialize("/opt/vmware-vix-disklib-distrib")                 # main thread, once
    params = ConnectParams(server, "vm-57", thumbprint, user=u, password=p, snapshot_moref="snapshot-70")
    with Connection(lib, params) as conn:
        with conn.open_disk("[ds1] vm/vm.vmdk") as disk:                  # one handle per worker thread
            extents = disk.allocated_extents()                            # None: unknown, read everything
            disk.read_into(0, buffer)

Importing this package loads nothing; ``initialize`` does the dlopen.
"""

from .connection import ConnectParams, Connection, DEFAULT_TRANSPORT_MODES, normalize_thumbprint, session_cookie_value
from .disk import DiskHandle, DiskInfo, create_disk
from .library import VddkLibrary, current, initialize, shutdown
from .retry import RetryingDisk, connection_factory
from .vixerror import (VddkAccessError, VddkAuthenticationError, VddkNotFoundError, VddkOutOfRangeError,
                       VddkReadOnlyError, is_transient)

__all__ = [
    "ConnectParams", "Connection", "DEFAULT_TRANSPORT_MODES", "normalize_thumbprint", "session_cookie_value", "DiskHandle", "DiskInfo",
    "create_disk", "VddkLibrary", "current", "initialize", "shutdown", "RetryingDisk", "connection_factory",
    "VddkAccessError", "VddkAuthenticationError", "VddkNotFoundError", "VddkOutOfRangeError", "VddkReadOnlyError",
    "is_transient",
]
