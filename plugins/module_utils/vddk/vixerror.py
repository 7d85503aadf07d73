# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VixError codes and their translation into the engine's exception tree.

``error_for(code, text, function, context)`` picks the exception class from the code: transient codes (worth a
reconnect and retry) become VddkTransientError, a few permanent ones get a class of their own with a hint saying
what to do. Pure functions, thread-safe.
"""

from __future__ import annotations

from ..errors import (VddkAccessError, VddkAuthenticationError, VddkError, VddkNotFoundError, VddkOutOfRangeError,
                      VddkReadOnlyError, VddkTransientError)

__all__ = [
    "VIX_E_FAIL", "VIX_E_INVALID_ARG", "VIX_E_FILE_NOT_FOUND", "VIX_E_OBJECT_IS_BUSY", "VIX_E_FILE_READ_ONLY",
    "VIX_E_FILE_ACCESS_ERROR", "VIX_E_HOST_NOT_CONNECTED", "VIX_E_AUTHENTICATION_FAIL", "VIX_E_HOST_CONNECTION_LOST",
    "VIX_E_VM_NOT_FOUND", "VIX_E_HOST_TCP_CONN_LOST", "VIX_E_DISK_OUTOFRANGE", "VIX_E_CANNOT_CONNECT_TO_HOST",
    "VddkAuthenticationError", "VddkNotFoundError", "VddkAccessError", "VddkOutOfRangeError", "VddkReadOnlyError",
    "is_transient", "error_for",
]

VIX_E_FAIL = 1
VIX_E_INVALID_ARG = 3
VIX_E_FILE_NOT_FOUND = 4
VIX_E_OBJECT_IS_BUSY = 5
VIX_E_FILE_READ_ONLY = 11
VIX_E_FILE_ACCESS_ERROR = 13
VIX_E_HOST_NOT_CONNECTED = 26
VIX_E_AUTHENTICATION_FAIL = 35
VIX_E_HOST_CONNECTION_LOST = 36
VIX_E_VM_NOT_FOUND = 4000
VIX_E_HOST_TCP_CONN_LOST = 14011
VIX_E_DISK_OUTOFRANGE = 16007
VIX_E_CANNOT_CONNECT_TO_HOST = 18000

_TRANSIENT = frozenset((VIX_E_OBJECT_IS_BUSY, VIX_E_HOST_NOT_CONNECTED, VIX_E_HOST_CONNECTION_LOST,
                        VIX_E_HOST_TCP_CONN_LOST, VIX_E_CANNOT_CONNECT_TO_HOST))
_HTTP_RANGE = range(30001, 30203)
_SNAPSHOT_RANGE = range(13000, 13025)


def is_transient(code):
    """True for codes worth a reconnect and retry: lost/failed connections, HTTP errors, a busy object."""
    return code in _TRANSIENT or code in _HTTP_RANGE


def _classify(code, function):
    if is_transient(code):
        return VddkTransientError, "The connection to the host failed or was lost; it is retried after a reconnect."
    if code == VIX_E_AUTHENTICATION_FAIL:
        return VddkAuthenticationError, "Check the vCenter user name and password (or that the session is still valid)."
    if code == VIX_E_VM_NOT_FOUND:
        return VddkNotFoundError, "Check that the VM still exists."
    if code in _SNAPSHOT_RANGE:
        return VddkNotFoundError, "Check that the snapshot still exists (it may have been removed during the run)."
    if code == VIX_E_FILE_NOT_FOUND:
        return VddkNotFoundError, "Check that the disk file still exists on its datastore."
    if code == VIX_E_FILE_ACCESS_ERROR:
        return VddkAccessError, ("Check the transport modes: none of them may be usable from this host "
                                 "(hotadd needs a proxy VM, san a SAN path); include nbdssl or nbd.")
    if code == VIX_E_DISK_OUTOFRANGE:
        return VddkOutOfRangeError, "The disk is smaller than expected: check that it was not resized during the run."
    if code == VIX_E_FILE_READ_ONLY:
        return VddkReadOnlyError, "The disk was opened read-only."
    if code == VIX_E_FAIL and function == "VixDiskLib_Open":
        return VddkError, ("VDDK reports a wrong server certificate thumbprint this way: check the thumbprint "
                           "(SHA-1, 'AA:BB:...') of the vCenter/ESXi certificate, then the VDDK log.")
    return VddkError, "See the VDDK log (logger blockvault.vddk) for details."


def error_for(err, text, function, context=None):
    """The exception for VixError ``err`` returned by ``function`` (``context`` names the object, no secrets)."""
    code = int(err) & 0xFFFF
    cls, hint = _classify(code, function)
    what = "%s(%s)" % (function, context) if context else function
    message = "VDDK call %s failed with error %d (%s)." % (what, code, text or "no error text")
    return cls(message, code=code, text=text, function=function, hint=hint)
