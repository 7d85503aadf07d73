# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where an export listens, and the NBD URI a client uses to reach it.

The rule this module enforces: never an unauthenticated listener on a public address. A Unix socket (the default)
lives in a 0700 directory only its owner can enter; TCP binds 127.0.0.1 unless an address is given, and an address
that is not loopback is accepted only with TLS required (a pre-shared key file or a certificates directory).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os

from ..errors import ConfigurationError

__all__ = ["Listen", "LISTEN_KINDS", "DEFAULT_PORT"]

LISTEN_KINDS = ("unix", "tcp")
#: the NBD port IANA assigned; an export of several disks listens on it and the ports after it, one per disk
DEFAULT_PORT = 10809


def _is_loopback(address):
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False        # a host name other than localhost may resolve to anything: treated as public


@dataclasses.dataclass(frozen=True)
class Listen:
    """How an export listens: ``kind`` unix (default) or tcp; for tcp ``address`` (default 127.0.0.1) and ``port``
    (the first disk's; the next disks take the ports after it); ``tls_psk_file`` (nbdkit's PSK file: lines of
    ``username:hexkey``) or ``tls_certificates`` (a directory with ca-cert.pem, server-cert.pem, server-key.pem)
    make nbdkit require TLS. Immutable (thread-safe); checked when built."""

    kind: str = "unix"
    address: str = None
    port: int = DEFAULT_PORT
    tls_psk_file: str = None
    tls_certificates: str = None
    tls_username: str = None

    def __post_init__(self):
        if self.kind not in LISTEN_KINDS:
            raise ConfigurationError("listen %r: use unix or tcp." % (self.kind,))
        if self.tls_psk_file and self.tls_certificates:
            raise ConfigurationError("tls_psk_file and tls_certificates are both given: nbdkit takes one of them.")
        if self.kind == "unix":
            if self.address or self.tls:
                raise ConfigurationError("address and TLS apply to listen: tcp; a Unix socket is reached only by users "
                                         "who may enter its private directory.")
            return
        object.__setattr__(self, "address", self.address or "127.0.0.1")
        if not 0 < int(self.port) < 65536:
            raise ConfigurationError("port %s: give a TCP port between 1 and 65535." % self.port)
        if not _is_loopback(self.address) and not self.tls:
            raise ConfigurationError(
                "address %s is not a loopback address: an export listens there only with TLS, never unauthenticated. "
                "Give tls_psk_file (nbdkit's PSK file) or tls_certificates, or listen on 127.0.0.1 or a Unix socket."
                % self.address)
        for path in (self.tls_psk_file, self.tls_certificates):
            if path and not os.path.exists(path):
                raise ConfigurationError("%s does not exist: give the TLS pre-shared key file or certificates "
                                         "directory nbdkit is to use." % path)

    @property
    def tls(self):
        return bool(self.tls_psk_file or self.tls_certificates)

    def describe(self):
        """A JSON-able view (no secret: a PSK file is named, never read)."""
        return {"kind": self.kind, "address": self.address, "port": int(self.port) if self.kind == "tcp" else None,
                "tls": "psk" if self.tls_psk_file else "certificates" if self.tls_certificates else None}

    def nbdkit_args(self, socket_path, position):
        """nbdkit's options to listen for the disk at ``position`` (0, 1, ...) of an export."""
        if self.kind == "unix":
            return ["--unix", socket_path]
        args = ["--ipaddr", self.address, "--port", str(int(self.port) + position)]
        if self.tls:
            args.append("--tls=require")
            args.append("--tls-psk=%s" % self.tls_psk_file if self.tls_psk_file else "--tls-certificates=%s" % self.tls_certificates)
        return args

    def uri(self, socket_path, position):
        """The NBD URI (the NBD project's URI specification, as nbdinfo, nbdcopy and qemu take it)."""
        if self.kind == "unix":
            return "nbd+unix:///?socket=%s" % socket_path
        host = "[%s]" % self.address if ":" in self.address else self.address
        port = int(self.port) + position
        if not self.tls:
            return "nbd://%s:%d/" % (host, port)
        if self.tls_psk_file:
            user = "%s@" % self.tls_username if self.tls_username else ""
            return "nbds://%s%s:%d/?tls-psk-file=%s" % (user, host, port, self.tls_psk_file)
        return "nbds://%s:%d/?tls-certificates=%s" % (host, port, self.tls_certificates)
