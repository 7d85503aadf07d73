# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How an in-place rollback finds the chunks to rewrite on each disk: CBT since the restore point, else compare.

CBT ("cbt"): when the VM has Changed Block Tracking on and the restore point recorded a change id for a disk
whose uuid, capacity and file still match, a temporary snapshot ``blockvault-rollback-<run id>`` (crash-consistent;
the VM is powered off) is taken, QueryChangedDiskAreas answers what changed since the restore point's change
id, and the snapshot is removed again before anything is written (the writes go to the base disk). Only the
chunks those areas touch are rewritten; nothing is read from the disk.

Compare ("compare"): every chunk of the disk is read and hashed, and only the differing ones are written. It
is the fallback whenever CBT cannot answer (CBT off, a change id from an earlier CBT epoch, a different disk,
the snapshot could not be taken); ``reason`` says why.

The query must run before the rollback switches CBT off (its first write): it needs the current epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from ..errors import ChangeTrackingError, SnapshotError
from ..transfer.plan import chunk_indexes
from ..vsphere.snapshots import snapshot_name
from ._disk_match import change_id_unusable
from ._restore_io import DiskWrite

__all__ = ["CBT", "COMPARE", "DiskRollback", "plan_rollback"]

log = logging.getLogger("blockvault.restore")

CBT = "cbt"
COMPARE = "compare"


@dataclasses.dataclass(frozen=True)
class DiskRollback:
    """How one disk is rolled back: ``method`` CBT (``changed_chunks`` to rewrite) or COMPARE; ``reason`` says why.

    Immutable; thread-safe.
    """

    key: object
    method: str
    reason: str
    changed_chunks: frozenset = None

    def disk_write(self, entry, disk):
        """The DiskWrite of ``entry`` onto the live ``disk``: the changed chunks only, or read and compare every chunk."""
        if self.method == CBT:
            return DiskWrite(entry=entry, disk=disk, changed_chunks=self.changed_chunks)
        return DiskWrite(entry=entry, disk=disk, compare=True)


def _compare(key, reason):
    return DiskRollback(key=key, method=COMPARE, reason="every chunk is read and compared: %s" % reason)


def _query(vm, snapshot, entry, disk, chunk_size):
    try:
        areas = vm.changed_areas(snapshot, disk, entry.change_id)
    except ChangeTrackingError as exc:
        return _compare(entry.key, getattr(exc, "reason", None) or exc.message)
    changed = frozenset(chunk_indexes(areas, disk.capacity, chunk_size))
    return DiskRollback(key=entry.key, method=CBT, changed_chunks=changed,
                        reason="CBT reports %d chunk(s) changed since the restore point's change id %s"
                               % (len(changed), entry.change_id))


def plan_rollback(vm, pairs, run_id, chunk_size):
    """A DiskRollback for each (DiskEntry, live DiskInfo) pair, in order. ``vm`` (a VmHandle) must be powered off.

    Raises SnapshotError only when the temporary snapshot could not be removed (then nothing must be written:
    the disks would be written under a snapshot); every other CBT failure falls back to compare.
    """
    if not vm.cbt_enabled():
        return [_compare(entry.key, "Changed Block Tracking is off on VM %s" % vm.name) for entry, _disk in pairs]
    plans, candidates = {}, []
    for entry, disk in pairs:
        reason = change_id_unusable(entry, disk)
        if reason:
            plans[entry.key] = _compare(entry.key, reason)
        else:
            candidates.append((entry, disk))
    if candidates:
        try:
            plans.update(_query_all(vm, candidates, run_id, chunk_size))
        except SnapshotError as exc:    # only the removal gets here: writing now would write under the snapshot
            raise SnapshotError("VM %s: the snapshot %s taken to ask CBT what changed since the restore point could not be "
                                "removed, so the in-place restore wrote nothing: %s" % (vm.name, _snapshot_name(run_id), exc.message),
                                vm=vm.name, hint="Remove the snapshot in the vSphere client (the next backup also removes "
                                                 "it), then restore again.") from exc
    for plan in plans.values():
        log.info("in-place rollback of disk %s of VM %s: %s (%s)", plan.key, vm.name, plan.method, plan.reason)
    return [plans[entry.key] for entry, _disk in pairs]


def _snapshot_name(run_id):
    return snapshot_name("rollback-%s" % run_id)


def _query_all(vm, candidates, run_id, chunk_size):
    """{key: DiskRollback} of the candidates, from one temporary snapshot removed before returning."""
    with contextlib.ExitStack() as stack:
        try:
            snapshot = stack.enter_context(vm.backup_snapshot("rollback-%s" % run_id, quiesce=False))
        except SnapshotError as exc:
            reason = "the snapshot CBT is queried with could not be taken (%s)" % exc.message
            return {entry.key: _compare(entry.key, reason) for entry, _disk in candidates}
        return {entry.key: _query(vm, snapshot, entry, disk, chunk_size) for entry, disk in candidates}
