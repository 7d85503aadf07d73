# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Leases: a short claim that its owner renews, and the owner-side rule that fences the owner's writes.

A repository lock (repo/locks.py) and a backup snapshot (vsphere/snapshot_lease.py) are both held by a lease: the
owner rewrites a time stamp every ``refresh_interval``; anyone else takes the claim for dead once the stamp is older
than ``stale_after`` (by the judge's clock). The owner judges its own lease on its monotonic clock only: a renewal
that started at monotonic time ``t`` keeps the owner entitled to write until ``t + stale_after - skew_margin``
(its *deadline*). A renewal that completes after the previous deadline, or a check after it, loses the lease for
good: it is never written again (rewriting a claim someone may already have judged dead would let both proceed).
The argument, and what clock skew it tolerates, is in docs/repository-format.md section 9.1.

This is a bottom module: it imports nothing of the collection.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

__all__ = ["LeaseTimings", "DEFAULT_TIMINGS", "OwnerLease", "machine_identity", "pid_alive", "default_timings",
           "set_default_timings"]


@dataclasses.dataclass(frozen=True)
class LeaseTimings:
    """How a lease is kept, in seconds. Immutable and thread-safe.

    ``refresh_interval``: how often the owner renews. ``stale_after``: how old a stamp must be before others take
    the claim for dead. ``skew_margin``: how much earlier than that the owner stops writing; it is the clock skew
    between hosts that is tolerated (plus the time one write may take once checked). Keep ``refresh_interval`` a
    fraction of ``stale_after - skew_margin`` (the default: a quarter) so that a few failed renewals are ridden out.
    """

    refresh_interval: float = 20.0
    stale_after: float = 120.0
    skew_margin: float = 40.0

    def __post_init__(self):
        values = (self.refresh_interval, self.stale_after, self.skew_margin)
        if not all(isinstance(value, (int, float)) and value > 0 for value in values):
            raise ValueError("lease timings must be positive numbers of seconds, got %r" % (values,))
        if self.write_limit <= 0:
            raise ValueError("skew_margin (%r s) must be shorter than stale_after (%r s)" % (self.skew_margin, self.stale_after))

    @property
    def write_limit(self):
        """How long after a renewal started its owner may still write."""
        return self.stale_after - self.skew_margin


DEFAULT_TIMINGS = LeaseTimings()
_defaults = [DEFAULT_TIMINGS]


def default_timings():
    """The timings new locks and snapshot leases use (``set_default_timings`` changes them, for tests)."""
    return _defaults[0]


def set_default_timings(timings):
    """Make ``timings`` (a LeaseTimings) the default of every lock and snapshot lease made from now on; returns
    the previous default. For tests and test children that need leases of seconds, not minutes."""
    previous, _defaults[0] = _defaults[0], timings
    return previous


class OwnerLease:
    """The owner's record of one lease: when it may still write, judged on its own monotonic clock.

    Protocol: ``started = begin_renewal()`` (None: the lease is lost, do not write), write the stamp, then
    ``renewed(started, length)``: True when the write completed before the previous deadline (the new deadline is
    ``started + length - skew_margin``). ``problem()`` says why the owner may not write now (None: it may).
    ``on_lost`` callbacks run once, on the thread that finds the lease lost. Thread-safe.
    """

    def __init__(self, timings, clock=time.monotonic):
        self.timings = timings
        self._clock = clock
        self._mutex = threading.Lock()
        self._deadline = None
        self._renewed_at = None
        self._lost = None
        self._callbacks = []

    @property
    def lost(self):
        return self._lost is not None

    @property
    def lost_reason(self):
        return self._lost

    def on_lost(self, callback):
        """Call ``callback(reason)`` once when the lease is lost (at once if it already is)."""
        with self._mutex:
            if self._lost is None:
                self._callbacks.append(callback)
                return
            reason = self._lost
        callback(reason)

    def begin_renewal(self):
        """The monotonic start of a renewal, or None when the lease is lost (or its deadline passed: then lost now)."""
        now = self._clock()
        if self._deadline is not None and now > self._deadline:
            self.lose("not renewed for %ds, longer than the %ds its owner may write after a renewal"
                      % (now - self._renewed_at, self._deadline - self._renewed_at))
        return None if self.lost else now

    def renewed(self, started, length=None):
        """Record a renewal that started at ``started`` and wrote a stamp valid ``length`` s (default stale_after)."""
        done = self._clock()
        if self._deadline is not None and done > self._deadline:
            self.lose("a renewal completed %ds after the previous one, longer than the %ds its owner may write after "
                      "a renewal" % (done - self._renewed_at, self._deadline - self._renewed_at))
        with self._mutex:
            if self._lost is not None:
                return False
            length = self.timings.stale_after if length is None else length
            self._deadline = started + length - self.timings.skew_margin
            self._renewed_at = started
            return True

    def age(self):
        """Seconds since the last successful renewal started (None before the first)."""
        return None if self._renewed_at is None else self._clock() - self._renewed_at

    def problem(self):
        """Why the owner may not write now, or None when it may."""
        if self._deadline is None and self._lost is None:
            return "never written"
        self.begin_renewal()  # loses the lease when its deadline has passed
        return self._lost

    def lose(self, reason, notify=True):
        """Mark the lease lost for good (first reason wins) and run the on_lost callbacks (unless ``notify`` is
        False: the owner gave it up itself, e.g. released its lock)."""
        with self._mutex:
            if self._lost is not None:
                return
            self._lost = reason
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks if notify else ():
            callback(reason)


def pid_alive(pid):
    """False only when no process ``pid`` exists on this machine (unknown answers count as alive)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


def machine_identity():
    """Kernel boot id and PID namespace of this process: a dead-pid check is only meaningful for a claim written
    under the same kernel and PID namespace (two containers may share a host name but not their PIDs)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot_id = handle.read().strip()
        return "%s/%s" % (boot_id, os.readlink("/proc/self/ns/pid"))
    except (OSError, ValueError):
        return None  # unknown: never judge a claim by its pid
