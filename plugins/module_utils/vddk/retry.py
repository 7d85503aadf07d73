# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retrying transient VDDK failures by reconnecting: a wrapper around a disk-handle factory."""

from __future__ import annotations

import logging
import time

from ..errors import VddkTransientError
from .connection import Connection

__all__ = ["RetryingDisk", "connection_factory"]

LOGGER = logging.getLogger("blockvault.vddk")


class RetryingDisk:
    """Same I/O surface as DiskHandle, but a transient failure (VddkTransientError) of a call closes the handle,
    waits (exponential backoff), reopens through ``open_disk()`` and repeats the call, at most ``attempts`` times
    in all. Permanent errors propagate at once. Reads and writes of whole sector ranges are idempotent, so
    repeating them is safe.

    ``open_disk`` is a callable returning a fresh, open DiskHandle-like object whose ``close()`` also releases its
    connection (see ``connection_factory``). Thread-safety: like DiskHandle, one worker thread per instance.
    """

    def __init__(self, open_disk, attempts=5, backoff=1.0, max_backoff=30.0, sleep=time.sleep, describe="disk"):
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._open_disk = open_disk
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self.describe = describe
        self._disk = None
        self.retries = 0            # how many times a call was repeated (for progress reports)

    def _current(self):
        if self._disk is None:
            self._disk = self._open_disk()
        return self._disk

    def _drop(self):
        disk, self._disk = self._disk, None
        if disk is not None:
            try:
                disk.close()
            except Exception as exc:      # the connection is already broken: closing it may fail too
                LOGGER.debug("closing %s after a transient failure failed too: %s", self.describe, exc)

    def _call(self, name, *args):
        return self._attempt(name, lambda disk: getattr(disk, name)(*args))

    def _attempt(self, name, operation):
        for attempt in range(1, self.attempts + 1):
            try:
                return operation(self._current())
            except VddkTransientError as exc:
                self._drop()
                if attempt == self.attempts:
                    raise
                delay = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
                LOGGER.warning("%s: %s failed with a transient error (attempt %d of %d), reconnecting in %.1f s: %s",
                               self.describe, name, attempt, self.attempts, delay, exc)
                self.retries += 1
                self._sleep(delay)
        raise VddkTransientError("%s: no attempt was made" % self.describe)    # unreachable: attempts >= 1

    @property
    def capacity(self):
        return self._attempt("capacity", lambda disk: disk.capacity)

    @property
    def transport_mode(self):
        """The transport VDDK chose for the current handle (a reconnect may choose another one)."""
        return self._attempt("transport_mode", lambda disk: disk.transport_mode)

    def read_into(self, offset, buffer):
        return self._call("read_into", offset, buffer)

    def write(self, offset, buffer):
        return self._call("write", offset, buffer)

    def read_into_many(self, requests):
        requests = list(requests)
        return self._call("read_into_many", requests)

    def write_many(self, requests):
        requests = list(requests)
        return self._call("write_many", requests)

    def allocated_extents(self, start=0, length=None, chunk_size=65536):
        return self._call("allocated_extents", start, length, chunk_size)

    def flush(self):
        return self._call("flush")

    def close(self):
        disk, self._disk = self._disk, None
        if disk is not None:
            disk.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connection_factory(library, path, params, read_only=True):
    """A zero-argument callable opening ``path`` on a new Connection(library, params, read_only) it owns.

    ``params`` is a ConnectParams (immutable, so every reconnect uses the same one)."""
    def open_disk():
        conn = Connection(library, params, read_only=read_only).connect()
        try:
            return conn.open_disk(path, read_only=read_only, own_connection=True)
        except BaseException:
            conn.close()
            raise
    return open_disk
