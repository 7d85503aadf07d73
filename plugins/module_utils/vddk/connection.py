# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A VDDK connection (VixDiskLib_ConnectEx) to one VM, optionally seen through one of its snapshots."""

from __future__ import annotations

import ctypes
import dataclasses
import re
import threading

from ..errors import ConfigurationError
from . import structs as S
from .disk import DiskHandle
from .library import LOGGER, SERIAL_LOCK

__all__ = ["Connection", "ConnectParams", "normalize_thumbprint", "session_cookie_value", "DEFAULT_TRANSPORT_MODES"]

DEFAULT_TRANSPORT_MODES = "nbdssl:nbd"
_KNOWN_MODES = ("file", "san", "hotadd", "nbdssl", "nbd")
_MOREF = re.compile(r"^[A-Za-z0-9_.:-]+$")


def normalize_thumbprint(thumbprint):
    """'aa bb..', 'AABB..' or 'aa:bb:..' (SHA-1, 20 bytes) -> 'AA:BB:...'; ConfigurationError otherwise."""
    hexdigits = re.sub(r"[\s:]", "", str(thumbprint or ""))
    if not re.fullmatch(r"[0-9A-Fa-f]{40}", hexdigits):
        raise ConfigurationError(
            "The VDDK thumbprint %r is not a SHA-1 fingerprint (20 hex bytes such as 'AA:BB:...:FF')." % (thumbprint,),
            hint="Get it with: openssl s_client -connect HOST:443 </dev/null | openssl x509 -noout -fingerprint -sha1")
    hexdigits = hexdigits.upper()
    return ":".join(hexdigits[i:i + 2] for i in range(0, 40, 2))


def session_cookie_value(cookie):
    """The vmware_soap_session value from a raw cookie ('vmware_soap_session="52.."; Path=/; ...') or the value."""
    text = str(cookie).strip()
    match = re.search(r"vmware_soap_session=([^;]*)", text)
    return (match.group(1) if match else text.split(";", maxsplit=1)[0]).strip()


def _check_modes(modes):
    parts = modes.split(":") if modes else []
    if not parts or any(p not in _KNOWN_MODES for p in parts):
        raise ConfigurationError("The VDDK transport modes %r are not a ':'-separated list of %s." % (modes, ", ".join(_KNOWN_MODES)),
                                 hint="For example 'nbdssl:nbd' or 'hotadd:nbdssl:nbd'.")
    return modes


@dataclasses.dataclass(frozen=True)
class ConnectParams:
    """Where and as whom a Connection connects: the VM ``vm_moref`` on ``server`` (vCenter or ESXi) whose certificate
    has SHA-1 ``thumbprint``, live or as snapshot ``snapshot_moref`` sees it, through ``transport_modes``.

    Credentials: ``user`` + ``password``, or ``session_cookie`` (the vmware_soap_session of a logged-in pyvmomi
    session, raw cookie header accepted) with optional ``user``/``session_key``. Validated when built
    (ConfigurationError naming the bad value); ``thumbprint`` is stored normalised ("AA:BB:..."), ``port`` as an int.
    Immutable and thread-safe, so one value may open many connections (retry factories); the secrets never appear
    in its repr. Not to be confused with ``structs.ConnectParams``, the C structure a Connection fills from it.
    """

    server: str
    vm_moref: str
    thumbprint: str
    user: str = None
    password: str = dataclasses.field(default=None, repr=False)
    session_cookie: str = dataclasses.field(default=None, repr=False)
    session_key: str = dataclasses.field(default=None, repr=False)
    port: int = 443
    snapshot_moref: str = None
    transport_modes: str = DEFAULT_TRANSPORT_MODES
    nfc_host_port: int = 902

    def __post_init__(self):
        if not self.server:
            raise ConfigurationError("The VDDK connection needs a server (vCenter or ESXi host name).")
        if not self.vm_moref or not _MOREF.match(self.vm_moref):
            raise ConfigurationError("The VM managed object id %r is not valid (expected e.g. 'vm-57')." % (self.vm_moref,))
        if self.snapshot_moref is not None and not _MOREF.match(self.snapshot_moref):
            raise ConfigurationError("The snapshot managed object id %r is not valid (expected e.g. 'snapshot-70')."
                                     % (self.snapshot_moref,))
        if self.session_cookie is None and (not self.user or self.password is None):
            raise ConfigurationError("The VDDK connection needs a user name and password, or a session cookie.")
        if not 0 < int(self.port) < 65536:
            raise ConfigurationError("The VDDK port %r is not a TCP port." % (self.port,))
        # normalised once here, so every Connection built from this value sees the same strings
        object.__setattr__(self, "port", int(self.port))
        object.__setattr__(self, "transport_modes", _check_modes(self.transport_modes or DEFAULT_TRANSPORT_MODES))
        object.__setattr__(self, "thumbprint", normalize_thumbprint(self.thumbprint))


class Connection:
    """One VixDiskLib connection to the VM of ``params`` (a ConnectParams): its live disks, or as its snapshot sees them.

    The secrets of ``params`` are copied into C buffers owned by this object (the Connection keeps no reference to
    ``params``), zeroed on close, and never appear in repr, logs or errors.

    Use as a context manager (``with Connection(library, params) as conn``) or call ``connect()``/``close()``.
    ``close()`` closes the disk handles still open on it first (VDDK forbids Disconnect with open handles).
    Thread-safety: connect/close/open_disk may be called from any thread (they take the process-wide VDDK lock);
    each DiskHandle then belongs to one worker thread.
    """

    def __init__(self, library, params, read_only=True):
        self.library = library
        self.server = params.server
        self.port = params.port
        self.vm_moref = params.vm_moref
        self.snapshot_moref = params.snapshot_moref
        self.read_only = bool(read_only)
        self.transport_modes = params.transport_modes
        self.thumbprint = params.thumbprint
        self.user = params.user
        self._buffers = {}          # name -> ctypes string buffer, alive as long as VDDK may read them
        self._alloc_ptr = None      # params allocated by VixDiskLib_AllocateConnectParams, when used
        self._params = None
        self._closed = False
        self._fields = self._prepare_fields(params)
        self._handle = None
        self._disks = set()
        self._lock = threading.Lock()

    def __repr__(self):
        return "Connection(server=%r, port=%d, vm=%r, snapshot=%r, read_only=%r, modes=%r, %s)" % (
            self.server, self.port, self.vm_moref, self.snapshot_moref, self.read_only, self.transport_modes,
            "connected" if self._handle else "not connected")

    # -- parameters ---------------------------------------------------------------------------------------------

    def _cstr(self, name, value):
        if value is None:
            return None
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        self._buffers[name] = buf
        return ctypes.cast(buf, ctypes.c_char_p)

    def _prepare_fields(self, params):
        """The parameter values as C strings owned by this object (copied into the structure on demand)."""
        fields = {
            "vmxSpec": self._cstr("vmxSpec", "moref=%s" % self.vm_moref),
            "serverName": self._cstr("serverName", self.server),
            "thumbPrint": self._cstr("thumbPrint", self.thumbprint),
            "port": self.port,
            "nfcHostPort": int(params.nfc_host_port or 0),
            "specType": S.SPEC_VMX,
        }
        if params.session_cookie is not None:
            fields["credType"] = S.CRED_SESSIONID
            fields["creds.sessionId"] = (self._cstr("cookie", session_cookie_value(params.session_cookie)),
                                         self._cstr("sessionUser", params.user), self._cstr("key", params.session_key))
        else:
            fields["credType"] = S.CRED_UID
            fields["creds.uid"] = (self._cstr("userName", params.user), self._cstr("password", params.password))
        return fields

    def _ensure_params(self):
        """The VixDiskLibConnectParams structure, allocated and filled on first use (freed by _free_params)."""
        if self._closed:
            raise ConfigurationError("This VDDK connection was closed; create a new one.")
        if self._params is not None:
            return self._params
        lib = self.library
        params = None
        if lib.has("AllocateConnectParams"):
            # VDDK >= 6.7 sizes the structure itself (it may grow beyond the 128 bytes we know)
            self._alloc_ptr = lib.fn("AllocateConnectParams")()
            params = self._alloc_ptr.contents if self._alloc_ptr else None
        if params is None:
            params = S.ConnectParams()
        fields = self._fields
        for name in ("vmxSpec", "serverName", "thumbPrint", "port", "nfcHostPort", "specType", "credType"):
            setattr(params, name, fields[name])
        if "creds.sessionId" in fields:
            (params.creds.sessionId.cookie, params.creds.sessionId.userName,
             params.creds.sessionId.key) = fields["creds.sessionId"]
        else:
            params.creds.uid.userName, params.creds.uid.password = fields["creds.uid"]
        self._params = params
        return params

    def _params_ptr(self):
        params = self._ensure_params()
        return self._alloc_ptr if self._alloc_ptr else ctypes.pointer(params)

    def _free_params(self):
        alloc, self._alloc_ptr, self._params = self._alloc_ptr, None, None
        if alloc:
            with SERIAL_LOCK:
                self.library.fn("FreeConnectParams")(alloc)

    def _wipe(self):
        for name in ("password", "cookie", "key"):
            buf = self._buffers.get(name)
            if buf is not None:
                ctypes.memset(buf, 0, ctypes.sizeof(buf))

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def connect(self):
        """VixDiskLib_ConnectEx; returns self. Raises the VddkError subclass of the failure."""
        with self._lock:
            if self._handle is not None:
                return self
            params = self._params_ptr()
            self.library.check_process()
            handle = ctypes.c_void_p()
            snapshot = self.snapshot_moref.encode() if self.snapshot_moref else None
            LOGGER.debug("VDDK ConnectEx to %s:%d for %s (snapshot %s, modes %s)", self.server, self.port,
                         self.vm_moref, self.snapshot_moref, self.transport_modes)
            with SERIAL_LOCK:
                err = self.library.fn("ConnectEx")(params, b"\1" if self.read_only else b"\0", snapshot,
                                                   self.transport_modes.encode(), ctypes.byref(handle))
            if err:
                self._free_params()         # nothing leaks when a failed Connection is dropped without close()
            self.library.check(err, "ConnectEx", "%s:%d, %s%s" % (self.server, self.port, self.vm_moref,
                                                                  ", " + self.snapshot_moref if self.snapshot_moref else ""))
            self._handle = handle
            return self

    @property
    def connected(self):
        return self._handle is not None

    def raw_handle(self):
        if self._handle is None:
            raise ConfigurationError("The VDDK connection to %s is not connected." % self.server)
        return self._handle

    def open_disk(self, path, read_only=None, unbuffered=False, own_connection=False):
        """Open the disk ``path`` ('[datastore] dir/name.vmdk'); read-only by default on a read-only connection.

        ``own_connection=True`` makes the handle close this connection when it is closed (retry factories).
        """
        if read_only is None:
            read_only = self.read_only
        handle = DiskHandle(self, path, read_only=read_only, unbuffered=unbuffered, own_connection=own_connection)
        with self._lock:
            self._disks.add(handle)
        return handle

    def _forget(self, disk):
        with self._lock:
            self._disks.discard(disk)

    def close(self):
        """Close remaining disks, VixDiskLib_Disconnect, wipe secrets. Idempotent; raises the Disconnect error."""
        with self._lock:
            disks = list(self._disks)
        for disk in disks:
            disk.close()
        with self._lock:
            handle, self._handle = self._handle, None
        try:
            if handle is not None:
                with SERIAL_LOCK:
                    err = self.library.fn("Disconnect")(handle)
                self.library.check(err, "Disconnect", self.server)
        finally:
            self._closed = True
            self._free_params()
            self._wipe()

    def __enter__(self):
        return self.connect()

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except Exception as close_error:      # keep the error that is already on its way up
            LOGGER.warning("closing the VDDK connection to %s after an error failed too: %s", self.server, close_error)

    # -- process-level helpers that use the same parameters ------------------------------------------------------

    def _params_call(self, name, *args):
        self.library.check_process()
        params = self._params_ptr()
        try:
            with SERIAL_LOCK:
                return self.library.fn(name)(params, *args)
        finally:
            if self._handle is None:
                self._free_params()         # not connected: nothing to keep (and nothing leaks if never closed)

    def prepare_for_access(self, identity):
        """VixDiskLib_PrepareForAccess (blocks Storage vMotion of the VM during a backup). False when unsupported."""
        if not self.library.has("PrepareForAccess"):
            LOGGER.warning("This VDDK has no VixDiskLib_PrepareForAccess: Storage vMotion is not blocked during the run")
            return False
        self.library.check(self._params_call("PrepareForAccess", identity.encode()), "PrepareForAccess", self.vm_moref)
        return True

    def end_access(self, identity):
        """VixDiskLib_EndAccess, the pair of prepare_for_access. False when unsupported."""
        if not self.library.has("EndAccess"):
            return False
        self.library.check(self._params_call("EndAccess", identity.encode()), "EndAccess", self.vm_moref)
        return True

    def cleanup(self):
        """VixDiskLib_Cleanup (release HotAdd leftovers): (cleaned, remaining), or None when unsupported."""
        if not self.library.has("Cleanup"):
            return None
        cleaned, remaining = ctypes.c_uint32(0), ctypes.c_uint32(0)
        err = self._params_call("Cleanup", ctypes.byref(cleaned), ctypes.byref(remaining))
        self.library.check(err, "Cleanup", self.server)
        return cleaned.value, remaining.value
