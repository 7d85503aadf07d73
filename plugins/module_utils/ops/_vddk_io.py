# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A VDDK disk handle seen as the transfer layer's DiskTarget, and the connection settings of a run.

The transfer layer knows sources and targets, not VDDK; this adapter gives a DiskHandle (or a RetryingDisk)
the ``zero`` and ``known_zeroed`` a restore target needs. VDDK allows one writer per disk, so the restore
pipeline shares one adapter between its workers under its lock (the adapter has no ``clone``).

Also here: ``BeforeFirstWrite`` (an action run once before a restore's first write: the in-place rollback's
CBT reset) and ``SessionKeepalive`` (keeps the vCenter session VDDK logs in with alive during a transfer).
"""

from __future__ import annotations

import logging
import threading

from ..transfer.endpoints import HandleTarget
from ..vddk.connection import ConnectParams

log = logging.getLogger("blockvault.vddk")


class VddkTarget(HandleTarget):
    """The transfer layer's HandleTarget over a VDDK handle, plus ``before_write``: a callable run before every write
    or zeroing (an in-place rollback's ``BeforeFirstWrite``, which switches CBT off once before the first write).
    ``known_zeroed``: the disk was just created (thin or zeroed), so zero chunks need no write. No ``clone``: VDDK
    allows one writer per disk, so the restore pipeline serializes calls on it.
    """

    def __init__(self, handle, known_zeroed, before_write=None):
        super().__init__(handle, known_zeroed=known_zeroed)
        self._before_write = before_write

    def write(self, offset, data):
        if self._before_write is not None:
            self._before_write()
        return super().write(offset, data)

    def zero(self, offset, length):
        if self._before_write is not None:
            self._before_write()
        super().zero(offset, length)


class BeforeFirstWrite:
    """Calls ``action()`` once, before the first write of any VddkTarget sharing this object; ``done`` says whether
    it ran. An exception of ``action`` propagates to the write (nothing is written) and the next write tries again.
    Thread-safe.
    """

    def __init__(self, action):
        self._action = action
        self._lock = threading.Lock()
        self.done = False

    def __call__(self):
        if self.done:
            return
        with self._lock:
            if not self.done:
                self._action()
                self.done = True


def vddk_thumbprint(session, vddk):
    """The thumbprint VDDK is given: the user's (already compared with the verified certificate by the session),
    else the one of the verified TLS connection; unverified only when the user turned validate_certs off."""
    if session.thumbprint_verified or vddk.thumbprint:
        return vddk.thumbprint or session.thumbprint
    log.warning("validate_certs is off and no vddk_thumbprint was given: VDDK is told the thumbprint this run saw, unverified")
    return session.thumbprint


def connect_params(session, vddk, vm_moref, snapshot_moref=None):
    """The vddk ConnectParams for ``vm_moref`` (through the session's cookie, never the password)."""
    return ConnectParams(server=session.host, port=session.port, vm_moref=vm_moref, thumbprint=vddk_thumbprint(session, vddk),
                         user=session.user, session_cookie=session.session_cookie, snapshot_moref=snapshot_moref,
                         transport_modes=vddk.transports)


class SessionKeepalive:
    """Context manager: a daemon thread calls ``session.keepalive()`` every ``interval`` seconds while VDDK works.

    VDDK connects with the vCenter session's cookie; a transfer longer than vCenter's idle timeout (30 minutes by
    default) would otherwise lose the session and with it every reconnect of a retried VDDK call. A failed keepalive
    is logged, not raised: the transfer's own calls report the real error. ``calls`` counts successful keepalives.
    Thread-safety: start and stop from one thread; the counter is only written by the keepalive thread.
    """

    interval = 240.0

    def __init__(self, session, describe="", interval=None):
        self._session = session
        self._describe = describe
        if interval is not None:
            self.interval = interval
        self._stop = threading.Event()
        self._thread = None
        self.calls = 0

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self._session.keepalive()
                self.calls += 1
            except Exception as exc:  # logged only: see the class docstring
                log.warning("keeping the vCenter session alive during the transfer of %s failed: %s", self._describe, exc)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, name="bv-keepalive", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        return False
