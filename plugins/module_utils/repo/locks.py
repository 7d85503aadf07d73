# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository locks: shared (backup, prune, delete) and exclusive (GC), write-then-check, with a heartbeat.

The protocol and the argument that GC never removes a chunk an unfinished backup relies on are in
docs/repository-format.md section 9.1.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass

from ..errors import BackendError, LockError, NotFoundInBackendError
from .format import FORMAT_VERSION, LOCKS_PREFIX, isotime

SHARED = "shared"
EXCLUSIVE = "exclusive"


@dataclass
class LockSettings:
    """Timings of the lock protocol, in seconds (mutable per Repository; tests shorten them)."""

    refresh_interval: float = 300.0
    stale_after: float = 1800.0
    backup_wait: float = 3600.0
    gc_wait: float = 600.0
    retry_interval: float = 5.0


def _parse_time(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


def machine_identity():
    """Kernel boot id and PID namespace of this process: a dead-pid check is only meaningful for a lock written
    under the same kernel and PID namespace (two containers may share a host name but not their PIDs)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot_id = handle.read().strip()
        return "%s/%s" % (boot_id, os.readlink("/proc/self/ns/pid"))
    except (OSError, ValueError):
        return None  # unknown: never judge a lock by its pid


def describe(lock):
    age = time.time() - (_parse_time(lock.get("refreshed")) or time.time())
    return "%s lock for %s by %s pid %s (refreshed %ds ago)" % (
        lock.get("kind", "?"), lock.get("purpose", "?"), lock.get("host", "?"), lock.get("pid", "?"), int(age))


class LockManager:
    """Reads, takes and judges locks of one repository. Thread-safe (stateless apart from settings)."""

    def __init__(self, backend, repository_id, settings):
        self.backend = backend
        self.repository_id = repository_id
        self.settings = settings
        self.host = socket.gethostname()
        self.machine = machine_identity()

    def list_locks(self):
        """Every readable lock as a dict with an extra ``stale`` flag (unreadable ones count as held)."""
        locks = []
        for info in self.backend.list(LOCKS_PREFIX):
            lock_id = info.name[len(LOCKS_PREFIX):]
            try:
                lock = json.loads(self.backend.get(info.name))
                if not isinstance(lock, dict):
                    raise ValueError
            except NotFoundInBackendError:
                continue  # released meanwhile
            except ValueError:
                lock = {"id": lock_id, "kind": EXCLUSIVE, "purpose": "unreadable lock object", "refreshed": isotime()}
                lock["refreshed_epoch"] = info.mtime
            lock["id"] = lock_id
            lock["stale"] = self.is_stale(lock)
            locks.append(lock)
        return locks

    def is_stale(self, lock):
        refreshed = lock.get("refreshed_epoch") or _parse_time(lock.get("refreshed"))
        if refreshed is None or time.time() - refreshed > self.settings.stale_after:
            return True
        same_machine = self.machine is not None and lock.get("host") == self.host and lock.get("machine") == self.machine
        return same_machine and not _pid_alive(lock.get("pid"))

    def acquire(self, kind, purpose, wait=None):
        """Take a lock (write-then-check); returns a started HeldLock. LockError after ``wait`` seconds of conflict."""
        if wait is None:
            wait = self.settings.gc_wait if kind == EXCLUSIVE else self.settings.backup_wait
        deadline = time.monotonic() + wait
        lock = HeldLock(self, kind, purpose)
        while True:
            lock.write()
            conflicts = [other for other in self.list_locks()
                         if other["id"] != lock.lock_id and not other["stale"] and (kind == EXCLUSIVE or other.get("kind") == EXCLUSIVE)]
            if not conflicts:
                lock.start_heartbeat()
                return lock
            lock.delete()
            if time.monotonic() >= deadline:
                raise LockError("The repository at %s is busy: cannot take a %s lock for %s after waiting %ds; held by: %s." % (
                    self.backend.location, kind, purpose, int(wait), "; ".join(describe(other) for other in conflicts)),
                    hint="Wait for these operations to finish, or remove a lock left by a dead host with break_lock.")
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


class HeldLock:
    """A lock this process holds. A heartbeat thread rewrites it every ``refresh_interval``.

    ``ensure_valid()`` (called before a manifest write or a GC deletion batch) refreshes the lock now and
    raises LockError if the lock object vanished (someone judged it stale) or the last successful refresh is
    older than half the stale time. Once lost, a lock is never rewritten: rewriting a lock that another host
    may already have judged stale would let both sides proceed. Thread-safe.
    """

    def __init__(self, manager, kind, purpose):
        self.manager = manager
        self.kind = kind
        self.purpose = purpose
        self.lock_id = secrets.token_hex(16)
        self.name = LOCKS_PREFIX + self.lock_id
        self.created = isotime()
        self.last_refresh = None
        self.lost = False
        self._stop = threading.Event()
        self._thread = None
        self._mutex = threading.Lock()

    def _document(self):
        return json.dumps({"format": "blockvault-lock", "version": FORMAT_VERSION, "id": self.lock_id, "kind": self.kind,
                           "purpose": self.purpose, "host": self.manager.host, "machine": self.manager.machine, "pid": os.getpid(),
                           "repository": self.manager.repository_id, "created": self.created,
                           "refreshed": isotime()}).encode("utf-8")

    def write(self):
        started = time.monotonic()
        self.manager.backend.put(self.name, self._document())
        self.last_refresh = started

    def delete(self):
        self.manager.backend.delete(self.name)

    def refresh(self):
        with self._mutex:
            if self.lost:
                return False
            started = time.monotonic()
            if started - (self.last_refresh or 0) > self.manager.settings.stale_after / 2:
                # others may already judge this lock stale (and GC may have started): never resurrect it
                self.lost = True
                return False
            if not self.manager.backend.exists(self.name):
                self.lost = True
                return False
            self.manager.backend.put(self.name, self._document())
            self.last_refresh = started
            return True

    def ensure_valid(self):
        try:
            self.refresh()
        except BackendError:
            pass  # judged below by the age of the last successful refresh
        age = time.monotonic() - (self.last_refresh or 0)
        if self.lost or age > self.manager.settings.stale_after / 2:
            raise LockError("The %s lock for %s on %s was lost (%s); stopping before writing anything that depends on it." % (
                self.kind, self.purpose, self.manager.backend.location,
                "not refreshed in time or removed by another host as stale" if self.lost else "not refreshed for %ds" % int(age)),
                hint="Check the connection to the repository and the clocks of the hosts, then run the operation again.")

    def start_heartbeat(self):
        self._thread = threading.Thread(target=self._beat, name="blockvault-lock-%s" % self.lock_id[:8], daemon=True)
        self._thread.start()

    def _beat(self):
        while not self._stop.wait(self.manager.settings.refresh_interval):
            try:
                self.refresh()
            except Exception:  # a failed refresh is retried next beat; ensure_valid judges the age
                continue

    def release(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        with self._mutex:
            self.lost = True  # a heartbeat still running (hung backend) must not rewrite it after the delete
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
