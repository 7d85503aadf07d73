# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resuming an interrupted backup: decide whether to adopt a dead run's snapshot and checkpoint, and apply its
progress to the new run's plan.

Decision (``find_resumable``, called once this run's repository lock is written and no other live backup lock of
the VM exists, so every earlier run of the VM is dead): the newest checkpoint of the VM is adopted when resume is
enabled (``resume_max_age`` > 0), it reads, the run asks for nothing it cannot give (a full backup requested
against an incremental run), the run's snapshot ``blockvault-<run>`` still exists and is younger than
``resume_max_age``, the restore point its incremental disks build on still loads, and the disks to back up are
the ones it planned. Anything else: the checkpoint is removed, the reason logged and returned, and the snapshot
is left to the orphan cleanup, so the run starts over. Older checkpoints of the VM are removed.

Applying (``ResumeState.apply``): a chunk the checkpoint lists is not read again when it is still stored (the
session's known-id set): its digest is carried into the new index. A listed chunk that is gone (a GC after the
checkpoint expired) is read again.
"""

from __future__ import annotations

import logging

from ..errors import BlockvaultError, NotFoundInBackendError
from ..repo import DiskIndex
from ..repo.checkpoint import delete_checkpoint, list_checkpoints, load_checkpoint
from ..transfer.plan import READ

__all__ = ["ResumeState", "find_resumable"]

log = logging.getLogger("blockvault.backup")


class ResumeState:
    """An adopted checkpoint: the dead run's ``checkpoint``, its ``found`` snapshot, the ``parent`` Manifest its
    incremental disks build on (or None), and the byte figures of what is left, filled by ``apply``.
    Used by the run's thread only."""

    def __init__(self, checkpoint, found, parent):
        self.checkpoint = checkpoint
        self.found = found
        self.parent = parent
        self.bytes_total = 0
        self.bytes_left = 0
        self.chunks_missing = 0

    @property
    def run_id(self):
        return self.checkpoint.run_id

    def planned(self, disk_key):
        """(mode, reason, base change id) the dead run planned for disk ``disk_key``."""
        disk = self.checkpoint.disk(disk_key)
        return disk.mode, disk.reason, disk.base_change_id

    def apply(self, disk_key, plan, previous_index, session):
        """(plan, previous index) of one disk with its done chunks carried over instead of read."""
        disk = self.checkpoint.disk(disk_key)
        carried = {}
        done = {chunk: digest for chunk, digest in disk.done_chunks().items() if chunk < plan.count and plan.action(chunk) == READ}
        stored = session.stored_chunks(done.values())       # asked in bulk: the dead run stored them after any GC
        for chunk, digest in done.items():
            if digest in stored:
                carried[chunk] = digest
            else:
                self.chunks_missing += 1
        base = previous_index if previous_index is not None else DiskIndex(plan.capacity, plan.chunk_size)
        for chunk, digest in carried.items():
            base.set(chunk, digest)
        resumed = plan.with_carried(carried)
        self.bytes_total += plan.bytes_to_read
        self.bytes_left += resumed.bytes_to_read
        if self.chunks_missing:
            log.warning("%d chunk(s) checkpoint %s lists are no longer stored: they are read again",
                        self.chunks_missing, self.checkpoint.name)
        return resumed, base

    def result(self):
        return {"from_run": self.run_id, "bytes_left": self.bytes_left, "bytes_total": self.bytes_total}

    def message(self):
        return "resumed from checkpoint of run %s, %d of %d bytes left" % (self.run_id, self.bytes_left, self.bytes_total)


def _committed_by(repository, vm_key, run_id):
    """The id of the VM's restore point that run ``run_id`` committed, itself or resumed by a later run, or None."""
    for point in reversed(repository.list_restore_points(vm_key)):
        try:
            manifest = repository.load_manifest(point.id)
        except BlockvaultError:
            continue            # a damaged manifest is validation's business, not a reason to stop here
        if manifest.run_id == run_id or (manifest.stats.get("resumed") or {}).get("from_run") == run_id:
            return point.id
    return None


def _disk_signature(disks):
    return sorted((str(disk.key), int(disk.capacity)) for disk in disks)


def _refusal(context, vm, vm_key, checkpoint, request, snap_disks_of):
    """(reason, found snapshot, parent manifest): reason is None when ``checkpoint`` can be adopted."""
    max_age = request.resume_max_age
    if max_age <= 0:
        return "resume is disabled (resume_max_age is 0)", None, None
    committed = _committed_by(context.repository, vm_key, checkpoint.run_id)
    if committed:       # killed between its commit and the removal of its checkpoint
        return "its restore point %s was committed" % committed, None, None
    if checkpoint.chunk_size != context.repository.chunk_size:
        return "its chunk size differs from the repository's", None, None
    if request.mode == "full" and any(disk.mode != "full" for disk in checkpoint.disks):
        return "it was an incremental backup and this run asks for a full one", None, None
    snapshot = "blockvault-%s" % checkpoint.run_id
    found = vm.find_backup_snapshot(checkpoint.run_id)
    if found is None:
        return "its snapshot %s no longer exists" % snapshot, None, None
    if not found.leased.expired:    # its run may live on another host: its snapshot is not ours to take
        return "its snapshot %s is still leased (%s)" % (snapshot, found.leased.why), None, None
    age = found.age()
    if age is None:
        return "vSphere does not say when its snapshot %s was taken" % snapshot, found, None
    if age > max_age:
        return ("its snapshot %s is %d s old, older than resume_max_age (%d s): its delta disk keeps growing on the "
                "datastore" % (snapshot, age, max_age)), found, None
    parent = None
    if checkpoint.parent and any(disk.mode != "full" for disk in checkpoint.disks):
        try:
            parent = context.repository.load_manifest(checkpoint.parent)
        except BlockvaultError as exc:
            return "the restore point %s it builds on cannot be loaded (%s)" % (checkpoint.parent, exc.message), found, None
    if _disk_signature(snap_disks_of(found)) != _disk_signature(checkpoint.disks):
        return "the disks to back up differ from the ones it was backing up", found, None
    return None, found, parent


def find_resumable(context, vm, vm_key, request, snap_disks_of):
    """(ResumeState or None, declined) for this run: ``declined`` is {from_run, reason} when a checkpoint of the VM
    was found and not adopted (None otherwise). ``snap_disks_of(snapshot)`` gives the disks this run would back
    up of a BackupSnapshot (the include/exclude filters). Removes every checkpoint of the VM it does not adopt,
    except those of runs still alive: a checkpoint whose recorded lock is live (not gone, not stale) is left alone,
    whatever the caller's concurrency rules."""
    repository = context.repository
    checkpoints = []
    declined = None
    for name in list_checkpoints(repository, vm_key):
        try:
            checkpoints.append(load_checkpoint(repository, name))
        except NotFoundInBackendError:
            continue
        except BlockvaultError as exc:
            log.warning("removing checkpoint %s: %s", name, exc.message)
            declined = {"from_run": None, "reason": exc.message.rstrip(".")}
            delete_checkpoint(repository, name)
    if not checkpoints:
        return None, declined
    live_locks = {lock["id"] for lock in repository.list_locks() if not lock.get("stale")}
    running = [item for item in checkpoints if item.lock_id in live_locks]
    if running:     # never adopt, nor remove, the checkpoint of a run that is alive: its lock says so
        log.warning("not resuming run %s of VM %s: it is still running (its repository lock %s is live)",
                    running[0].run_id, context.label, running[0].lock_id)
        checkpoints = [item for item in checkpoints if item not in running]
        if not checkpoints:
            return None, None
    checkpoints.sort(key=lambda item: (item.created, item.updated))
    newest = checkpoints.pop()
    for older in checkpoints:
        log.warning("removing checkpoint %s of run %s: a newer interrupted run (%s) supersedes it",
                    older.name, older.run_id, newest.run_id)
        delete_checkpoint(repository, older.name)
    reason, found, parent = _refusal(context, vm, vm_key, newest, request, snap_disks_of)
    if reason is None:
        log.info("resuming interrupted run %s of VM %s from its checkpoint and snapshot", newest.run_id, context.label)
        return ResumeState(newest, found, parent), None
    log.warning("not resuming interrupted run %s of VM %s: %s; the backup starts over (a snapshot of that run is removed)",
                newest.run_id, context.label, reason)
    delete_checkpoint(repository, newest.name)
    return None, {"from_run": newest.run_id, "reason": reason}
