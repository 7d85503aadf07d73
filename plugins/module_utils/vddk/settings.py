# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where VDDK is and how it may move data: the VDDK layer's own settings, validated once where they are built.

``ops.settings`` re-exports ``VddkSettings`` under the same name for the modules and the operations.
"""

from __future__ import annotations

import dataclasses
import os
import re

from ..errors import ConfigurationError

__all__ = ["VddkSettings"]

_THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){19}$")
_TRANSPORTS = ("file", "san", "hotadd", "nbdssl", "nbd")


@dataclasses.dataclass(frozen=True)
class VddkSettings:
    """Where VDDK is installed and how it may move data.

    ``libdir`` is the VDDK install directory (holding lib64/libvixDiskLib.so.N). ``thumbprint`` is
    the SHA-1 of the ESXi/vCenter certificate ("AA:BB:..."); when None the engine uses the one it
    read from the verified TLS connection. ``transports`` is VDDK's colon-separated mode list.
    Immutable and thread-safe.
    """

    libdir: str
    thumbprint: str = None
    transports: str = "nbdssl:nbd"
    config_file: str = None

    def __post_init__(self):
        if not self.libdir:
            raise ConfigurationError("vddk_libdir is empty: give the directory where VDDK is unpacked (it holds lib64/).")
        if not os.path.isdir(self.libdir):
            raise ConfigurationError("vddk_libdir %s is not a directory: unpack VDDK there or fix the path." % self.libdir)
        if self.thumbprint and not _THUMBPRINT.match(self.thumbprint):
            raise ConfigurationError("vddk_thumbprint %r is not a SHA-1 thumbprint: give 20 hex pairs separated by colons "
                                     "(openssl x509 -noout -fingerprint -sha1)." % self.thumbprint)
        modes = [mode for mode in (self.transports or "").split(":") if mode]
        unknown = [mode for mode in modes if mode not in _TRANSPORTS]
        if not modes or unknown:
            raise ConfigurationError("transports %r: use modes from %s separated by ':' (e.g. 'hotadd:nbdssl:nbd')."
                                     % (self.transports, ", ".join(_TRANSPORTS)))
        if self.config_file and not os.path.isfile(self.config_file):
            raise ConfigurationError("vddk_config_file %s does not exist." % self.config_file)
