# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository locks: shared (sessions: backup, copy, prune, delete, validation, export), gc (one GC at a time, beside
the sessions) and exclusive (excludes everything; what GC took before GC ran beside writers), write-then-check, with a
heartbeat.

The protocol and the argument that GC never removes a chunk an unfinished backup relies on are in
docs/repository-format.md section 9.1.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field

from ..errors import BackendError, ConfigurationError, LeaseLostError, LockError, NotFoundInBackendError
from ..lease import LeaseTimings, OwnerLease, default_timings, machine_identity, pid_alive
from . import validation
from .format import FORMAT_VERSION, LOCKS_PREFIX, isotime

SHARED = "shared"
EXCLUSIVE = "exclusive"
# GC: excludes another GC and an exclusive lock, not sessions (format section 9.1, "GC beside writers")
GC = "gc"


def kinds_conflict(wanted, held):
    """True when a lock of kind ``wanted`` may not be taken while a live lock of kind ``held`` exists."""
    return EXCLUSIVE in (wanted, held) or wanted == held == GC


def _default(name):
    return field(default_factory=lambda: getattr(default_timings(), name))  # pylint: disable=invalid-field-call


@dataclass
class LockSettings:
    """Timings of the lock protocol, in seconds (mutable per Repository; tests shorten them).

    The lease part (``refresh_interval``, ``stale_after``, ``skew_margin``) defaults to lease.default_timings():
    a lock of a dead process is taken for stale 2 minutes after its last heartbeat, whatever the host.
    """

    refresh_interval: float = _default("refresh_interval")
    stale_after: float = _default("stale_after")
    skew_margin: float = _default("skew_margin")
    backup_wait: float = 3600.0
    gc_wait: float = 600.0
    retry_interval: float = 5.0

    def lease_timings(self):
        """These timings as a LeaseTimings (checked: ConfigurationError when they cannot work)."""
        try:
            return LeaseTimings(self.refresh_interval, self.stale_after, self.skew_margin)
        except ValueError as exc:
            raise ConfigurationError("The lock timings do not work: %s." % exc) from None


def _parse_time(text):
    """Epoch seconds of a UTC time as locks write it (with or without a fraction), or None."""
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.datetime.strptime(text, layout).replace(tzinfo=datetime.timezone.utc).timestamp()
        except (TypeError, ValueError, OverflowError):
            continue
    return None


def _refreshed_epoch(lock):
    """When the lock was last refreshed (epoch seconds by its writer's clock, from its ``refreshed`` field), or None.
    A ``refreshed_epoch`` field in the object is not trusted: it is the reader's own (validation.check_lock)."""
    return _parse_time(lock.get("refreshed"))


def describe(lock):
    """One line for a message: kind, purpose, holder, age and id; a damaged lock says so and how to remove it."""
    if lock.get("damaged"):
        return "damaged lock %s%s (%s)" % (LOCKS_PREFIX, lock.get("id"), lock["damaged"])
    age = time.time() - (_refreshed_epoch(lock) or time.time())
    return "%s lock for %s by %s pid %s (refreshed %ds ago; lock id %s)" % (
        lock.get("kind", "?"), lock.get("purpose", "?"), lock.get("host", "?"), lock.get("pid", "?"), int(age), lock.get("id", "?"))


class LockManager:
    """Reads, takes and judges locks of one repository. Thread-safe (stateless apart from settings).

    A lock object that cannot be read as a lock (not JSON, wrong field types: validation.check_lock) is **damaged**.
    It may be a live lock of a newer blockvault or a live lock damaged in storage, so it is held, as exclusive, until
    its object is older than ``stale_after`` by the backend's modification time: a live owner would have rewritten it
    by then (every ``refresh_interval``). It is then stale like any other lock (GC removes it). Until then every
    message about it names it and its id, for break_lock.

    ``clock`` is the monotonic clock the locks it hands out judge their own lease by (tests replace it).
    """

    def __init__(self, backend, repository_id, settings, clock=time.monotonic):
        self.clock = clock
        self.backend = backend
        self.repository_id = repository_id
        self.settings = settings
        self.host = socket.gethostname()
        self.machine = machine_identity()

    def list_locks(self):
        """Every lock as a dict with extra ``id``, ``stale`` and ``damaged`` (None, or why it cannot be read) fields."""
        locks = []
        for info in self.backend.list(LOCKS_PREFIX):
            lock_id = info.name[len(LOCKS_PREFIX):]
            try:
                lock = validation.check_lock(validation.load_json_object(self.backend.get(info.name)), lock_id)
                lock["damaged"] = None
                refreshed = _parse_time(lock["refreshed"])
                if refreshed is None:  # never "stale at once": that would let GC remove what may be a live lock
                    raise validation.Damaged("field refreshed %s is not a time" % lock["refreshed"])
                if refreshed > time.time() + self.settings.stale_after:
                    raise validation.Damaged("refreshed %s lies in the future" % lock["refreshed"])
            except NotFoundInBackendError:
                continue  # released meanwhile
            except validation.Damaged as exc:
                lock = {"kind": EXCLUSIVE, "purpose": None, "host": None, "pid": None, "refreshed": None,
                        "damaged": str(exc), "object_mtime": info.mtime}
            lock["id"] = lock_id
            lock["stale"] = self.is_stale(lock)
            locks.append(lock)
        return locks

    def is_stale(self, lock, now=None):
        """True when the lock's last refresh is older than stale_after by this host's clock (``now``, epoch seconds,
        defaults to it), or when it was written on this machine by a process that no longer exists. A damaged lock
        is judged by its object's age (see the class docstring)."""
        now = time.time() if now is None else now
        if lock.get("damaged"):
            mtime = lock.get("object_mtime")
            return isinstance(mtime, (int, float)) and now - mtime > self.settings.stale_after
        refreshed = _refreshed_epoch(lock)
        if refreshed is None or now - refreshed > self.settings.stale_after:
            return True
        same_machine = self.machine is not None and lock.get("host") == self.host and lock.get("machine") == self.machine
        return same_machine and not pid_alive(lock.get("pid"))

    def acquire(self, kind, purpose, wait=None):
        """Take a lock (write-then-check); returns a started HeldLock. LockError after ``wait`` seconds of conflict."""
        if wait is None:
            wait = self.settings.gc_wait if kind in (EXCLUSIVE, GC) else self.settings.backup_wait
        deadline = time.monotonic() + wait
        lock = HeldLock(self, kind, purpose)
        warned = set()
        while True:
            lock.write()
            conflicts = [other for other in self.list_locks()
                         if other["id"] != lock.lock_id and not other["stale"] and kinds_conflict(kind, other.get("kind"))]
            if not conflicts:
                lock.start_heartbeat()
                return lock
            lock.delete()
            for other in conflicts:  # said in the run log at once, not only when the wait ends
                if other.get("damaged") and other["id"] not in warned:
                    warned.add(other["id"])
                    logging.getLogger(__name__).warning("Waiting for %s on %s. %s", describe(other), self.backend.location,
                                                        _busy_hint([other], self.settings.stale_after))
            if time.monotonic() >= deadline:
                raise LockError("The repository at %s is busy: cannot take a %s lock for %s after waiting %ds; held by: %s." % (
                    self.backend.location, kind, purpose, int(wait), "; ".join(describe(other) for other in conflicts)),
                    hint=_busy_hint(conflicts, self.settings.stale_after))
            time.sleep(min(max(0.0, deadline - time.monotonic()),
                           random.uniform(0.5, 1.5) * self.settings.retry_interval))

    def remove_stale(self):
        """Delete stale locks (called by GC while it holds the exclusive lock); returns their descriptions."""
        removed = []
        for lock in self.list_locks():
            if lock["stale"]:
                self.backend.delete(LOCKS_PREFIX + lock["id"])
                removed.append(describe(lock))
        return removed


def _busy_hint(conflicts, stale_after):
    damaged = [lock for lock in conflicts if lock.get("damaged")]
    if not damaged:
        return ("Wait for these operations to finish, or remove a lock left by a dead host with break_lock (lock_id %s)."
                % ", ".join(lock["id"] for lock in conflicts))
    return ("A damaged lock is held until its object is %ds old (a live owner rewrites its lock long before); if no "
            "blockvault operation is running on this repository, remove it now with break_lock (lock_id %s)." % (
                int(stale_after), ", ".join(lock["id"] for lock in damaged)))


class HeldLock:
    """A lock this process holds, kept by a lease (lease.OwnerLease): a heartbeat thread rewrites it every
    ``refresh_interval``.

    Fencing: ``ensure_valid()`` (called before every write that depends on the lock: each disk index, the manifest,
    a GC deletion batch) refreshes the lock now and raises LeaseLostError when the lock object vanished (someone
    judged it stale) or the owner's deadline (its last successful refresh plus stale_after - skew_margin, on this
    process's monotonic clock) has passed. ``check_valid()`` judges the deadline without writing: called after such
    a write returned, it proves the write landed before anyone could take the lock for stale. Once lost, a lock is
    never rewritten: rewriting a lock another host may already have judged stale would let both sides proceed.
    Thread-safe.
    """

    def __init__(self, manager, kind, purpose):
        self.manager = manager
        self.kind = kind
        self.purpose = purpose
        self.lock_id = secrets.token_hex(16)
        self.name = LOCKS_PREFIX + self.lock_id
        self.created = isotime()
        self._clock = manager.clock
        self.lease = OwnerLease(manager.settings.lease_timings(), self._clock)
        self._stop = threading.Event()
        self._thread = None
        self._mutex = threading.Lock()

    @property
    def lost(self):
        return self.lease.lost

    def _document(self):
        return json.dumps({"format": "blockvault-lock", "version": FORMAT_VERSION, "id": self.lock_id, "kind": self.kind,
                           "purpose": self.purpose, "host": self.manager.host, "machine": self.manager.machine, "pid": os.getpid(),
                           "repository": self.manager.repository_id, "created": self.created,
                           "refreshed": isotime()}).encode("utf-8")

    def write(self):
        """Write the lock object afresh (acquiring: a new lease, as a retry follows a delete)."""
        with self._mutex:
            self.lease = OwnerLease(self.manager.settings.lease_timings(), self._clock)
            started = self.lease.begin_renewal()
            self.manager.backend.put(self.name, self._document())
            self.lease.renewed(started)

    def delete(self):
        self.manager.backend.delete(self.name)

    def refresh(self):
        """Rewrite the lock now; False when the lease is lost (then it is never written again)."""
        with self._mutex:
            started = self.lease.begin_renewal()
            if started is None:
                return False
            if not self.manager.backend.exists(self.name):
                self.lease.lose("its lock object was removed by another host as stale")
                return False
            self.manager.backend.put(self.name, self._document())
            return self.lease.renewed(started)

    def ensure_valid(self):
        """Refresh now, then raise LeaseLostError unless this process may still write under the lock."""
        try:
            self.refresh()
        except BackendError:
            pass  # judged below by the deadline of the last successful refresh
        self.check_valid()

    def check_valid(self):
        """Raise LeaseLostError unless the last successful refresh's deadline is still ahead (no backend request)."""
        problem = self.lease.problem()
        if problem:
            raise LeaseLostError("The %s lock for %s on %s was lost (%s); stopping before writing anything that depends on it." % (
                self.kind, self.purpose, self.manager.backend.location, problem), reason=problem,
                hint="Check the connection to the repository, the load of this host and the clocks of the hosts, then run "
                     "the operation again.")

    def start_heartbeat(self):
        self._thread = threading.Thread(target=self._beat, name="blockvault-lock-%s" % self.lock_id[:8], daemon=True)
        self._thread.start()

    def _beat(self):
        while not self._stop.wait(self.manager.settings.refresh_interval):
            try:
                if not self.refresh():
                    return  # lost for good: nothing more to renew
            except Exception:  # pylint: disable=broad-exception-caught  # retried next beat; the deadline judges
                continue

    def release(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        # a heartbeat still running (hung backend) must not rewrite it after the delete
        self.lease.lose("released", notify=False)
        self.delete()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        try:
            self.release()
        except BackendError:
            if exc_info[0] is None:
                raise
        return False
