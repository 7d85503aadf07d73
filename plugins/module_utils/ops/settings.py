# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Settings the operations take: where vCenter is, where VDDK is, where the repository is.

These are plain, immutable values built by the caller (an Ansible module, a test, a script) and
validated here once, so every operation gets the same checks and the same error messages. Their
``repr`` never shows a secret.
"""

from __future__ import annotations

import dataclasses
import os
import re

from ..errors import ConfigurationError

_THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){19}$")
_TRANSPORTS = ("file", "san", "hotadd", "nbdssl", "nbd")


@dataclasses.dataclass(frozen=True)
class VSphereSettings:
    """How to reach vCenter (or an ESXi host). TLS verification is on unless ``validate_certs`` is False."""

    host: str
    username: str
    password: str = dataclasses.field(repr=False, default="")
    port: int = 443
    validate_certs: bool = True
    ca_bundle: str = None

    def __post_init__(self):
        if not self.host:
            raise ConfigurationError("hostname is empty: give the vCenter host name (or set VMWARE_HOST).")
        if not self.username:
            raise ConfigurationError("username is empty: give the vCenter user (or set VMWARE_USER).")
        if not 0 < int(self.port) < 65536:
            raise ConfigurationError("port %r is not a TCP port: give a number from 1 to 65535." % (self.port,))
        if self.ca_bundle and not os.path.isfile(self.ca_bundle):
            raise ConfigurationError("ca_bundle %s does not exist: give the path of a PEM file with the CA certificates." % self.ca_bundle)


@dataclasses.dataclass(frozen=True)
class VddkSettings:
    """Where VDDK is installed and how it may move data.

    ``libdir`` is the VDDK install directory (holding lib64/libvixDiskLib.so.N). ``thumbprint`` is
    the SHA-1 of the ESXi/vCenter certificate ("AA:BB:..."); when None the engine uses the one it
    read from the verified TLS connection. ``transports`` is VDDK's colon-separated mode list.
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


@dataclasses.dataclass(frozen=True)
class RepositorySettings:
    """Where the repository is and how to open it.

    ``location`` is a local directory (NFS mounts included) or ``s3://bucket/prefix``. Exactly one
    of ``passphrase`` and ``key_file`` opens an encrypted repository; neither opens an unencrypted one.
    """

    location: str
    passphrase: str = dataclasses.field(default=None, repr=False)
    key_file: str = None
    s3_endpoint_url: str = None
    region: str = None
    access_key: str = None
    secret_key: str = dataclasses.field(default=None, repr=False)
    session_token: str = dataclasses.field(default=None, repr=False)
    object_lock_days: int = None
    validate_certs: bool = True

    def __post_init__(self):
        if not self.location:
            raise ConfigurationError("repository is empty: give a directory or s3://bucket/prefix.")
        if self.passphrase and self.key_file:
            raise ConfigurationError("passphrase and key_file are both given: open the repository with one of them.")
        if self.key_file and not os.path.isfile(self.key_file):
            raise ConfigurationError("key_file %s does not exist: give the path of the repository key file." % self.key_file)
        if self.object_lock_days is not None and int(self.object_lock_days) < 1:
            raise ConfigurationError("object_lock_days must be 1 or more (or unset for no Object Lock).")
        if not self.is_s3 and (self.s3_endpoint_url or self.object_lock_days):
            raise ConfigurationError("s3_endpoint_url and object_lock_days apply to s3:// repositories only, not %s." % self.location)

    @property
    def is_s3(self):
        return self.location.startswith("s3://")
