# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How to reach vCenter: the vSphere layer's own settings, validated once where they are built.

``ops.settings`` re-exports ``VSphereSettings`` under the same name for the modules and the operations.
"""

from __future__ import annotations

import dataclasses
import os

from ..errors import ConfigurationError

__all__ = ["VSphereSettings"]


@dataclasses.dataclass(frozen=True)
class VSphereSettings:
    """How to reach vCenter (or an ESXi host). TLS verification is on unless ``validate_certs`` is False.

    ``proxy_host``/``proxy_port``: an HTTP proxy the vSphere API is reached through (HTTP CONNECT: TLS runs end to
    end to vCenter and is verified as without a proxy). VDDK's data connections to the ESXi hosts do not use it.

    Immutable and thread-safe; ``repr`` never shows the password.
    """

    host: str
    username: str
    password: str = dataclasses.field(repr=False, default="")
    port: int = 443
    validate_certs: bool = True
    ca_bundle: str = None
    proxy_host: str = None
    proxy_port: int = None

    def __post_init__(self):
        if not self.host:
            raise ConfigurationError("hostname is empty: give the vCenter host name (or set VMWARE_HOST).")
        if not self.username:
            raise ConfigurationError("username is empty: give the vCenter user (or set VMWARE_USER).")
        if not 0 < int(self.port) < 65536:
            raise ConfigurationError("port %r is not a TCP port: give a number from 1 to 65535." % (self.port,))
        if self.proxy_port is not None and not self.proxy_host:
            raise ConfigurationError("proxy_port %r is given without proxy_host: give the HTTP proxy's host name too, or "
                                     "remove proxy_port." % (self.proxy_port,))
        if self.proxy_host and not 0 < int(self.proxy_port or 0) < 65536:
            raise ConfigurationError("proxy_port %r is not a TCP port: give the HTTP proxy's port, a number from 1 to "
                                     "65535." % (self.proxy_port,))
        if self.ca_bundle and not os.path.isfile(self.ca_bundle):
            raise ConfigurationError("ca_bundle %s does not exist: give the path of a PEM file with the CA certificates." % self.ca_bundle)
