# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lease of a backup snapshot: who reads from it, until when, kept in the snapshot's own description.

Why on the snapshot: every run that may meet it (another repository, another proxy, another controller) sees the
VM, not each other's repositories. A run that finds a ``blockvault-*`` snapshot of another run removes it only when
its lease has expired (or the run is dead on this very machine), so two backups of one VM into two repositories
both succeed, each with its own snapshot, and a killed run's snapshot goes within ``stale_after`` (2 minutes).

The lease is the last line of the description: ``blockvault-lease: {"run", "host", "machine", "pid", "renewed",
"expires"}``, times in ISO 8601 UTC **by vCenter's clock** (ServiceInstance.CurrentTime): the owner and every judge
read the same clock, so hosts' clock skew does not matter for snapshots. The owner rewrites it (RenameSnapshot,
description only) every ``refresh_interval`` from a keeper thread and judges its own right to use the snapshot on
its monotonic clock (lease.OwnerLease): once its deadline passed the lease is lost for good, and a backup
fenced by it commits nothing (what it read after the snapshot may have been removed is not trusted).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import socket
import threading
import time

from ..errors import SnapshotError, SnapshotLeaseLostError
from ..lease import OwnerLease, default_timings, machine_identity, pid_alive
from ._pyvmomi import fault_message, is_fault, moref_id, vim

__all__ = ["LEASE_TAG", "LeaseInfo", "ServerClock", "SnapshotLease", "judge_lease", "CREATION_ALLOWANCE",
           "UNLEASED_AFTER"]

log = logging.getLogger(__name__)

LEASE_TAG = "blockvault-lease: "
#: how long a snapshot being created is leased for beyond stale_after (a quiesced snapshot can take minutes); the
#: keeper's first renewal, at once after the creation, shortens it to stale_after
CREATION_ALLOWANCE = 600.0
#: a blockvault snapshot without a readable lease (made by a version before leases) counts as dead at this age
UNLEASED_AFTER = 2 * 3600.0
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime(_TIME_FORMAT)


def _epoch(text):
    try:
        return datetime.datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class LeaseInfo:
    """A snapshot lease as written in the description (times: epoch seconds by vCenter's clock). Immutable."""

    run_id: str
    host: str
    machine: str
    pid: int
    renewed: float
    expires: float

    def render(self):
        return LEASE_TAG + json.dumps({"run": self.run_id, "host": self.host, "machine": self.machine, "pid": self.pid,
                                       "renewed": _iso(self.renewed), "expires": _iso(self.expires)}, sort_keys=True)

    @classmethod
    def parse(cls, description):
        """The lease of a snapshot description, or None when it has none (or an unreadable one)."""
        for line in reversed(str(description or "").splitlines()):
            if not line.startswith(LEASE_TAG):
                continue
            try:
                fields = json.loads(line[len(LEASE_TAG):])
            except ValueError:
                return None
            if not isinstance(fields, dict):
                return None
            renewed, expires = _epoch(fields.get("renewed")), _epoch(fields.get("expires"))
            pid = fields.get("pid")
            if renewed is None or expires is None or not isinstance(fields.get("run"), str):
                return None
            return cls(run_id=fields["run"], host=str(fields.get("host") or ""), machine=fields.get("machine"),
                       pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
                       renewed=renewed, expires=expires)
        return None


def description_head(description):
    """The description without its lease line (the human part)."""
    return "\n".join(line for line in str(description or "").splitlines() if not line.startswith(LEASE_TAG))


def with_lease(head, info):
    return "%s\n%s" % (head, info.render()) if head else info.render()


class ServerClock:
    """Time as vCenter tells it (``wall()``, epoch seconds) and this process's monotonic clock (``monotonic()``).

    Thread-safety: as the session's pyVmomi stub.
    """

    def __init__(self, managed_object):
        self._stub = managed_object._stub  # pylint: disable=protected-access

    def wall(self):
        return vim.ServiceInstance("ServiceInstance", self._stub).CurrentTime().timestamp()

    @staticmethod
    def monotonic():
        return time.monotonic()


def judge_lease(entry, now, here=None):
    """(expired, why) of a blockvault snapshot ``entry`` (a SnapshotEntry) at ``now`` (vCenter epoch seconds).

    Expired: its lease's ``expires`` is past; or it was written on this machine (same host and machine id) by a
    process that no longer exists; or it has no readable lease and was created more than UNLEASED_AFTER ago.
    ``here`` is (host, machine) of this process (default: this host).
    """
    host, machine = here if here is not None else (socket.gethostname(), machine_identity())
    info = LeaseInfo.parse(entry.description)
    if info is None:
        created = entry.create_time.timestamp() if entry.create_time is not None else None
        if created is None or now - created > UNLEASED_AFTER:
            return True, "it has no lease and was made %s" % (
                "at an unknown time" if created is None else "%d s ago" % (now - created))
        return False, "it has no lease and was made %d s ago (taken for dead after %d s)" % (now - created, UNLEASED_AFTER)
    if now > info.expires:
        return True, "its lease by run %s on %s expired %d s ago" % (info.run_id, info.host, now - info.expires)
    if machine is not None and info.host == host and info.machine == machine and info.pid is not None \
            and not pid_alive(info.pid):
        return True, "its run %s was process %d of this machine, which no longer exists" % (info.run_id, info.pid)
    return False, "run %s on %s (pid %s) renews its lease, valid %d s more" % (
        info.run_id, info.host, info.pid, info.expires - now)


class SnapshotLease:
    """The owner side of one backup snapshot's lease. Thread-safe.

    Use: ``lease = SnapshotLease(clock, run_id)``; ``started, description = lease.first_description(head)`` for
    CreateSnapshot_Task (or ``adopt`` an existing snapshot); ``lease.attach(snapshot, started)`` once it exists;
    ``lease.start()`` starts the keeper thread (renews every ``refresh_interval``); ``lease.stop()`` ends it;
    ``keep()`` makes the context managers of snapshots.py keep the snapshot and ``hand_over()`` its lease.
    Fencing: ``ensure_valid()`` renews now and raises SnapshotLeaseLostError unless the owner may still trust the
    snapshot; ``check_valid()`` judges without a request. ``on_lost(callback)`` is called once with the reason
    (e.g. to set a transfer's cancel event).
    """

    def __init__(self, clock, run_id, timings=None, label=None):
        self.clock = clock
        self.run_id = str(run_id)
        self.timings = timings or default_timings()
        self.label = label or self.run_id
        self.owner = OwnerLease(self.timings, clock.monotonic)
        self.snapshot = None
        self._head = ""
        self._host, self._machine, self._pid = socket.gethostname(), machine_identity(), os.getpid()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.kept = False

    @property
    def lost(self):
        return self.owner.lost

    def keep(self):
        """Ask ``backup_snapshot``/``adopted_snapshot`` to keep the snapshot at the end instead of removing it (for a
        resume): its lease is then handed over (``hand_over``) so that the next run may adopt it at once."""
        self.kept = True

    def hand_over(self):
        """Stop renewing and write a lease that has expired now: any run may adopt (or remove) the snapshot at once.
        False when the lease was already lost (then it is left as it is and expires by itself)."""
        self.stop()
        with self._mutex:
            started = self.owner.begin_renewal()
            if started is None or self.snapshot is None:
                return False
            try:
                now = self.clock.wall()
                self.snapshot.RenameSnapshot(description=with_lease(self._head, self._info(now, 0.0)))
            except Exception as exc:  # pylint: disable=broad-exception-caught  # then it expires by itself
                log.warning("handing over the lease of snapshot blockvault-%s failed: %s", self.run_id, fault_message(exc))
                return False
            self.owner.lose("handed over", notify=False)
            return True

    def on_lost(self, callback):
        self.owner.on_lost(callback)

    def _info(self, now, length):
        return LeaseInfo(run_id=self.run_id, host=self._host, machine=self._machine, pid=self._pid, renewed=now,
                         expires=now + length)

    def first_description(self, head):
        """(started, description) for the snapshot about to be created: leased for stale_after + CREATION_ALLOWANCE."""
        self._head = description_head(head)
        started = self.clock.monotonic()
        return started, with_lease(self._head, self._info(self.clock.wall(), self._creation_length()))

    def _creation_length(self):
        return self.timings.stale_after + CREATION_ALLOWANCE

    def attach(self, snapshot, started, head=None):
        """The snapshot now exists with the lease written at ``started``; renewals go to it from now on."""
        with self._mutex:
            self.snapshot = snapshot
            if head is not None:
                self._head = description_head(head)
            self.owner.renewed(started, self._creation_length())

    def adopt(self, snapshot, description):
        """Take over an existing snapshot (whose lease expired, or this run's own): write this run's lease now."""
        with self._mutex:
            self.snapshot = snapshot
            self._head = description_head(description)
        try:
            renewed = self.renew()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise SnapshotError("Could not take over snapshot %s of VM %s: writing its lease failed: %s" % (
                moref_id(snapshot), self.label, fault_message(exc)), vm=self.label, run_id=self.run_id) from exc
        if not renewed:
            self.check_valid()

    def renew(self):
        """Rewrite the lease now; False when it is lost (then it is never written again)."""
        with self._mutex:
            if self.snapshot is None:
                return False
            started = self.owner.begin_renewal()
            if started is None:
                return False
            description = with_lease(self._head, self._info(self.clock.wall(), self.timings.stale_after))
            try:
                self.snapshot.RenameSnapshot(description=description)
            except Exception as exc:  # pylint: disable=broad-exception-caught
                if is_fault(exc, "ManagedObjectNotFound", "NotFound"):
                    self.owner.lose("the snapshot was removed (%s)" % fault_message(exc))
                    return False
                raise
            return self.owner.renewed(started)

    def ensure_valid(self):
        """Renew now (a failed renewal is judged by the deadline), then check_valid()."""
        try:
            self.renew()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            log.warning("renewing the lease of snapshot blockvault-%s failed: %s", self.run_id, exc)
        self.check_valid()

    def check_valid(self):
        """Raise SnapshotLeaseLostError unless the lease's deadline is still ahead (no request)."""
        problem = self.owner.problem()
        if problem:
            raise SnapshotLeaseLostError(
                "The lease of backup snapshot blockvault-%s of VM %s was lost (%s): another run may have removed the "
                "snapshot, so nothing read from it is committed." % (self.run_id, self.label, problem), reason=problem,
                vm=self.label, run_id=self.run_id,
                hint="Check the load of this host and its connection to vCenter, then run the backup again.")

    def start(self):
        """Start the keeper thread (idempotent); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._keep, name="blockvault-snapshot-lease-%s" % self.run_id, daemon=True)
            self._thread.start()
        return self

    def _keep(self):
        # the first renewal at once: it replaces the creation's longer lease by a stale_after one
        wait = 0.0
        while not self._stop.wait(wait):
            wait = self.timings.refresh_interval
            try:
                if not self.renew():
                    return  # lost for good
            except Exception as exc:  # pylint: disable=broad-exception-caught  # retried next time; the deadline judges
                log.warning("renewing the lease of snapshot blockvault-%s failed (retried): %s", self.run_id, exc)

    def stop(self):
        """Stop renewing (before the snapshot is removed, or when the run ends)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
        return False
