# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup snapshots: create, remove, find and remove orphans of earlier runs, list the user's own.

Design notes
- A backup snapshot is named ``blockvault-<run_id>`` and its description says it belongs to
  blockvault and which run, so a snapshot left behind by a crash is recognised by the next run
  (``remove_orphan_snapshots``) and never confused with the user's snapshots.
- Its description also carries a lease (snapshot_lease.py) that the running backup renews: another run removes
  a blockvault snapshot only once its lease has expired, so runs into other repositories (or from other proxies)
  never remove each other's live snapshot.
- Memory is never included. ``quiesce=True`` asks VMware Tools for an application-consistent
  snapshot; when that fails the snapshot is retaken crash-consistent ONLY if the caller allows
  it, and ``BackupSnapshot.quiesced`` says which one was taken.
- Removal uses RemoveSnapshot_Task(removeChildren=False, consolidate=True).
- ``backup_snapshot(...)`` is a context manager meant for the caller's ExitStack: the lease's keeper thread
  runs while it is open, and the snapshot is removed on the way out; if the body failed, the body's error is what
  propagates and a removal failure is only logged. If the body succeeded (the restore point is committed), the
  removal's outcome (a SnapshotRemoval: removed, already_gone, left) goes to the caller's ``on_removed`` so that a
  cleanup failure never replaces the run's real outcome; without ``on_removed`` a failure to remove raises
  SnapshotError.
- A snapshot that no longer exists (removed from outside: vSphere answers ManagedObjectNotFound) counts as already
  gone, not as a failure. No pyVmomi fault leaves ``remove_snapshot``: every other failure is a SnapshotError.
Functions keep no state; concurrent calls on one VM are serialised by vSphere itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging

from ..errors import BlockvaultError, SnapshotError, SnapshotLeaseLostError, TaskError
from ._pyvmomi import fault_message, fault_name, is_fault, moref_id, object_properties
from .disks import list_disks
from .snapshot_lease import LeaseInfo, ServerClock, SnapshotLease, judge_lease
from .tasks import DEFAULT_TASK_TIMEOUT, wait_for_task

__all__ = ["SNAPSHOT_PREFIX", "SnapshotEntry", "BackupSnapshot", "LeasedSnapshot", "SnapshotRemoval", "snapshot_name",
           "is_blockvault_snapshot", "list_snapshots", "user_snapshots", "leased_snapshots", "find_orphan_snapshots",
           "remove_orphan_snapshots", "create_backup_snapshot", "remove_snapshot", "backup_snapshot", "adopted_snapshot",
           "FoundBackupSnapshot", "find_backup_snapshot"]

log = logging.getLogger(__name__)

SNAPSHOT_PREFIX = "blockvault-"


@dataclasses.dataclass(frozen=True)
class SnapshotEntry:
    """One snapshot of a VM's tree: ``path`` is the names from the root to it, joined with '/'. Immutable; thread-safe."""

    name: str
    moref: str
    snapshot: object
    description: str = ""
    create_time: datetime.datetime = None
    path: str = ""
    quiesced: bool = False


@dataclasses.dataclass(frozen=True)
class BackupSnapshot:
    """The snapshot a backup reads from. ``quiesce_error`` says why a quiesced snapshot could not be taken.

    ``snapshot`` is the vim.vm.Snapshot, ``moref`` its id for VDDK's ConnectEx; ``lease`` its SnapshotLease (a
    fence for BackupSession.add_fence; its keeper runs inside ``backup_snapshot``). Immutable; thread-safe.
    """

    snapshot: object
    moref: str
    name: str
    run_id: str
    quiesced: bool
    quiesce_error: str = None
    lease: SnapshotLease = None

    def disks(self):
        """DiskInfo of the snapshot's disks (file names and change ids of the point in time), in device order."""
        return list_disks(self.snapshot)


@dataclasses.dataclass(frozen=True)
class SnapshotRemoval:
    """What became of a backup snapshot when its run ended: ``state`` is ``removed``, ``already_gone`` (someone
    removed it from outside) or ``left`` (``reason`` says why; the next run removes it as an orphan).
    Immutable; thread-safe."""

    name: str
    vm: str
    state: str
    reason: str = None

    def describe(self):
        """``removed``, ``already_gone`` or ``left (reason)``: the ``snapshot`` field of a backup's result."""
        return "left (%s)" % self.reason if self.state == "left" else self.state

    def warning(self):
        """The warning a user should see, or None when the snapshot was removed as planned."""
        if self.state == "already_gone":
            return "the backup snapshot %s of VM %s was already removed from outside" % (self.name, self.vm)
        if self.state == "left":
            return ("the backup snapshot %s of VM %s could not be removed (%s); the restore point is committed, and the next "
                    "backup of the VM removes the snapshot, or remove it in the vSphere client" % (self.name, self.vm, self.reason))
        return None


def snapshot_name(run_id):
    return SNAPSHOT_PREFIX + str(run_id)


def is_blockvault_snapshot(name):
    return str(name or "").startswith(SNAPSHOT_PREFIX)


def _vm_label(vm, vm_name=None):
    if vm_name:
        return vm_name
    try:
        return vm.name
    except Exception:  # only for messages
        return moref_id(vm) or "?"


def list_snapshots(vm):
    """All snapshots of ``vm``, depth-first, parents before children."""
    info = object_properties(vm, ["snapshot"])["snapshot"]
    entries = []

    def walk(trees, parent_path):
        for tree in trees or ():
            path = "%s/%s" % (parent_path, tree.name) if parent_path else str(tree.name)
            entries.append(SnapshotEntry(name=str(tree.name), moref=moref_id(tree.snapshot), snapshot=tree.snapshot,
                                         description=str(getattr(tree, "description", "") or ""),
                                         create_time=getattr(tree, "createTime", None), path=path,
                                         quiesced=bool(getattr(tree, "quiesced", False))))
            walk(getattr(tree, "childSnapshotList", None), path)

    walk(getattr(info, "rootSnapshotList", None) if info is not None else None, "")
    return entries


def user_snapshots(vm):
    """Snapshots that blockvault did not make."""
    return [entry for entry in list_snapshots(vm) if not is_blockvault_snapshot(entry.name)]


@dataclasses.dataclass(frozen=True)
class LeasedSnapshot:
    """A blockvault snapshot and its lease as judged now: ``lease`` (LeaseInfo, None when unreadable), ``expired``
    and ``why`` (a sentence for logs and messages). Immutable."""

    entry: SnapshotEntry
    lease: LeaseInfo
    expired: bool
    why: str


def leased_snapshots(vm, clock=None):
    """Every blockvault snapshot of ``vm`` with its lease judged by vCenter's clock (``clock``: a ServerClock)."""
    entries = [entry for entry in list_snapshots(vm) if is_blockvault_snapshot(entry.name)]
    if not entries:
        return []
    now = (clock or ServerClock(vm)).wall()
    judged = []
    for entry in entries:
        expired, why = judge_lease(entry, now)
        judged.append(LeasedSnapshot(entry=entry, lease=LeaseInfo.parse(entry.description), expired=expired, why=why))
    return judged


def find_orphan_snapshots(vm, live_run_ids=(), clock=None):
    """blockvault snapshots whose lease expired, except those of ``live_run_ids`` (pass the current run's id)."""
    live = {snapshot_name(run_id) for run_id in live_run_ids}
    return [leased.entry for leased in leased_snapshots(vm, clock) if leased.expired and leased.entry.name not in live]


def remove_orphan_snapshots(vm, live_run_ids=(), timeout=DEFAULT_TASK_TIMEOUT, vm_name=None, clock=None):
    """Remove the blockvault snapshots of earlier runs whose lease expired; return their names.

    A snapshot whose lease is still renewed belongs to a live run (of another repository, proxy or controller):
    it is left alone, and logged. Tries every orphan; raises one SnapshotError listing the ones that could not
    be removed.
    """
    removed, failed = [], []
    label = _vm_label(vm, vm_name)
    live = {snapshot_name(run_id) for run_id in live_run_ids}
    for leased in leased_snapshots(vm, clock):
        entry = leased.entry
        if entry.name in live:
            continue
        if not leased.expired:
            log.info("leaving snapshot %s of VM %s alone: %s", entry.name, label, leased.why)
            continue
        log.warning("removing snapshot %s of VM %s left behind by an earlier blockvault run (%s)", entry.name, label,
                    leased.why)
        try:
            remove_snapshot(entry.snapshot, timeout=timeout, what="remove orphan snapshot %s of VM %s" % (entry.name, label))
        except BlockvaultError as exc:
            failed.append("%s (%s)" % (entry.name, exc))
        else:
            removed.append(entry.name)
    if failed:
        raise SnapshotError("Could not remove %d snapshot(s) left by earlier blockvault runs on VM %s: %s." % (
            len(failed), label, "; ".join(failed)), vm=label,
            hint="Remove them in the vSphere client (Snapshots > Manage) and check for disks needing consolidation.")
    return removed


REMOVED = "removed"
ALREADY_GONE = "already_gone"


def remove_snapshot(snapshot, timeout=DEFAULT_TASK_TIMEOUT, what=None):
    """Remove one snapshot, consolidating its delta disks; ``removed``, or ``already_gone`` when the snapshot no
    longer exists (removed from outside). Any other failure raises SnapshotError (never a raw pyVmomi fault)."""
    what = what or "remove snapshot %s" % moref_id(snapshot)
    hint = "If disks need consolidation, consolidate the VM in the vSphere client."
    try:
        task = snapshot.RemoveSnapshot_Task(removeChildren=False, consolidate=True)
        wait_for_task(task, timeout=timeout, what=what)
    except TaskError as exc:
        if exc.fault == "ManagedObjectNotFound":
            return ALREADY_GONE
        raise SnapshotError(exc.message, hint=hint) from exc
    except Exception as exc:  # a SOAP fault raised by the call itself: the snapshot's moref is unknown to vCenter now
        if is_fault(exc, "ManagedObjectNotFound"):
            return ALREADY_GONE
        if not is_fault(exc, "MethodFault"):
            raise
        message = "%s failed: %s (%s)." % (what[:1].upper() + what[1:], fault_message(exc).rstrip("."), fault_name(exc))
        raise SnapshotError(message, hint=hint) from None
    return REMOVED


def _description(run_id, quiesce):
    return ("Made by blockvault for backup run %s (%s). blockvault removes it when the run ends, or on its next run if "
            "this one was interrupted." % (run_id, "quiesced" if quiesce else "crash-consistent"))


def _take(vm, name, lease, quiesce, timeout, label):
    started, description = lease.first_description(_description(lease.run_id, quiesce))
    task = vm.CreateSnapshot_Task(name=name, description=description, memory=False, quiesce=quiesce)
    snapshot = wait_for_task(task, timeout=timeout, what="create %s snapshot %s of VM %s" % (
        "quiesced" if quiesce else "crash-consistent", name, label))
    lease.attach(snapshot, started)
    return snapshot


def create_backup_snapshot(vm, run_id, quiesce=False, allow_crash_consistent=False, timeout=DEFAULT_TASK_TIMEOUT, vm_name=None,
                           lease=None):
    """Take the backup snapshot ``blockvault-<run_id>`` of ``vm`` and return a BackupSnapshot.

    With ``quiesce`` and a failure to quiesce: retake crash-consistent when ``allow_crash_consistent``,
    else raise SnapshotError. ``lease`` (default: a SnapshotLease on vCenter's clock) is written into the
    description at creation; its keeper is not started here (``backup_snapshot`` does).
    """
    name = snapshot_name(run_id)
    label = _vm_label(vm, vm_name)
    lease = lease or SnapshotLease(ServerClock(vm), run_id, label=label)
    quiesce_error = None
    try:
        snapshot = _take(vm, name, lease, bool(quiesce), timeout, label)
        quiesced = bool(quiesce)
    except TaskError as exc:
        _remove_leftovers(vm, name, timeout, label)
        if not quiesce:
            raise SnapshotError(exc.message, vm=label, run_id=run_id,
                                hint="Check the datastore's free space and the VM's snapshot tree in the vSphere client.") from exc
        if not allow_crash_consistent:
            raise SnapshotError(
                "Could not take a quiesced snapshot of VM %s: %s" % (label, exc.message), vm=label, run_id=run_id,
                hint="Check VMware Tools in the guest, or allow a crash-consistent snapshot when quiescing fails.") from exc
        quiesce_error = exc.message
        log.warning("quiescing VM %s failed (%s); taking a crash-consistent snapshot instead", label, exc.message)
        try:
            snapshot = _take(vm, name, lease, False, timeout, label)
        except TaskError as retry_exc:
            _remove_leftovers(vm, name, timeout, label)
            raise SnapshotError(retry_exc.message, vm=label, run_id=run_id) from retry_exc
        quiesced = False
    return BackupSnapshot(snapshot=snapshot, moref=moref_id(snapshot), name=name, run_id=str(run_id), quiesced=quiesced,
                          quiesce_error=quiesce_error, lease=lease)


def _remove_leftovers(vm, name, timeout, label):
    """A failed CreateSnapshot_Task may leave a snapshot behind on some versions: remove ours."""
    try:
        for entry in list_snapshots(vm):
            if entry.name == name:
                remove_snapshot(entry.snapshot, timeout=timeout, what="remove failed snapshot %s of VM %s" % (name, label))
    except Exception as exc:  # the creation error is what the caller needs; the next run cleans orphans up
        log.warning("could not check VM %s for a leftover snapshot %s: %s", label, name, exc)


@contextlib.contextmanager
def backup_snapshot(vm, run_id, quiesce=False, allow_crash_consistent=False, vm_name=None, lease=None,
                    on_removed=None):
    """Context manager: take the backup snapshot, keep its lease renewed, yield the BackupSnapshot, remove it on the
    way out (the lease's keeper stops first). After a body that succeeded, ``on_removed`` (when given) receives the
    SnapshotRemoval and nothing is raised; without it a snapshot that could not be removed raises SnapshotError."""
    label = _vm_label(vm, vm_name)
    taken = create_backup_snapshot(vm, run_id, quiesce=quiesce, allow_crash_consistent=allow_crash_consistent,
                                   vm_name=label, lease=lease)
    with _leased_then_removed(taken, DEFAULT_TASK_TIMEOUT, label, on_removed):
        yield taken


@contextlib.contextmanager
def adopted_snapshot(vm, leased, run_id, vm_name=None, lease=None, on_removed=None):
    """Context manager: take over ``leased`` (a LeasedSnapshot of ``leased_snapshots``, e.g. the snapshot of a killed
    run that a checkpoint names) for run ``run_id``: write this run's lease, keep it renewed, yield a BackupSnapshot
    of it, remove it on the way out. SnapshotError when its lease is still held by another live run."""
    label = _vm_label(vm, vm_name)
    entry = leased.entry
    owner = leased.lease.run_id if leased.lease is not None else None
    if not leased.expired and owner != str(run_id):
        raise SnapshotError("Snapshot %s of VM %s cannot be taken over: %s." % (entry.name, label, leased.why), vm=label,
                            run_id=str(run_id), hint="Wait for that run to end, or for its lease to expire.")
    lease = lease or SnapshotLease(ServerClock(vm), run_id, label=label)
    lease.adopt(entry.snapshot, entry.description)
    log.info("run %s took over snapshot %s of VM %s (%s)", run_id, entry.name, label, leased.why)
    taken = BackupSnapshot(snapshot=entry.snapshot, moref=entry.moref, name=entry.name, run_id=str(run_id),
                           quiesced=entry.quiesced, lease=lease)
    with _leased_then_removed(taken, DEFAULT_TASK_TIMEOUT, label, on_removed):
        yield taken


@contextlib.contextmanager
def _leased_then_removed(taken, timeout, label, on_removed=None):
    """Keep ``taken``'s lease renewed while the body runs; then stop renewing and remove the snapshot (or keep it)."""
    what = "remove backup snapshot %s of VM %s" % (taken.name, label)
    taken.lease.start()
    try:
        yield taken
    except BaseException as body_error:
        taken.lease.stop()
        lost = taken.lease.owner.problem() if isinstance(body_error, BlockvaultError) else None
        try:
            _end(taken, timeout, what, label)
        except Exception as exc:  # keep the body's error: it is the cause; the next run removes the orphan
            log.error("%s failed after an earlier error (the next run will remove it): %s", what, exc)
        if lost and not isinstance(body_error, SnapshotLeaseLostError) and not getattr(body_error, "reason", None):
            # the lapsed lease is the cause (e.g. a read failed because another run removed the snapshot): say so
            raise SnapshotLeaseLostError(
                "The lease of backup snapshot %s of VM %s was lost (%s), so another run may have removed it; the run "
                "failed meanwhile: %s" % (taken.name, label, lost, body_error), reason=lost, vm=label, run_id=taken.run_id,
                hint="Nothing was committed. Check the load of this host and its connection to vCenter, then run the "
                     "backup again.") from body_error
        raise
    taken.lease.stop()
    try:
        removal = SnapshotRemoval(taken.name, label, _end(taken, timeout, what, label))
    except Exception as exc:  # the restore point is committed: a cleanup failure is reported, never the outcome
        if on_removed is None:
            if isinstance(exc, BlockvaultError):
                raise exc.with_context(vm=label, run_id=taken.run_id)
            raise
        removal = SnapshotRemoval(taken.name, label, "left", getattr(exc, "message", None) or str(exc) or type(exc).__name__)
    if removal.warning():
        log.warning("%s", removal.warning())
    if on_removed is not None:
        on_removed(removal)


def _end(taken, timeout, what, label):
    """Remove the snapshot (REMOVED or ALREADY_GONE), or keep it with its lease handed over when the run asked
    (``taken.lease.keep()``: then "kept")."""
    if not taken.lease.kept:
        return remove_snapshot(taken.snapshot, timeout=timeout, what=what)
    handed = taken.lease.hand_over()
    log.info("keeping snapshot %s of VM %s for the next run (%s)", taken.name, label,
             "its lease handed over" if handed else "its lease expires by itself")
    return "kept"


# -- resuming an interrupted run: find its snapshot and its age ---------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FoundBackupSnapshot:
    """The snapshot ``blockvault-<run_id>`` of an earlier run, as found on the VM, with its lease judged now
    (``leased``, a LeasedSnapshot); ``created`` is vSphere's createTime (None when vSphere does not say).
    Immutable; thread-safe."""

    leased: LeasedSnapshot
    created: datetime.datetime = None

    def disks(self):
        """DiskInfo of the snapshot's disks, in device order."""
        return list_disks(self.leased.entry.snapshot)

    def age(self, now=None):
        """Seconds since the snapshot was taken (by this host's clock), or None when its time is unknown."""
        if self.created is None:
            return None
        created = self.created if self.created.tzinfo else self.created.replace(tzinfo=datetime.timezone.utc)
        return ((now or datetime.datetime.now(datetime.timezone.utc)) - created).total_seconds()


def find_backup_snapshot(vm, run_id):
    """The FoundBackupSnapshot of run ``run_id`` on ``vm``, or None when the VM has no such snapshot."""
    name = snapshot_name(run_id)
    for leased in leased_snapshots(vm):
        if leased.entry.name == name:
            return FoundBackupSnapshot(leased=leased, created=leased.entry.create_time)
    return None
