# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup's planner: which disks, and for each one full or incremental, and why.

Per-disk mode: incremental needs the previous restore point of this VM to hold a changeId for a disk with the same
key, uuid, capacity and file, CBT to have been on before this run, and QueryChangedDiskAreas to answer. Anything
else reads that disk in full (allocated areas only) and the result says why; the other disks stay incremental.
Dedup makes a full cost reads, not storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from ..errors import CbtReasonError, ConfigurationError, RepositoryError
from ..repo import DiskIndex
from ..repo.model import DiskKey
from ..transfer.pipeline import BackupDisk, plan_backup
from ._disk_match import change_id_unusable

__all__ = ["BackupPlanner", "PlannedDisk", "select_disks", "transport_fallbacks"]

log = logging.getLogger("blockvault.backup")


def select_disks(disks, include, exclude):
    """Disks to back up, and {label: reason} of those left out (filters, independent disks, physical RDMs)."""
    include, exclude = set(include or ()), set(exclude or ())
    known = {str(disk.key) for disk in disks} | {disk.label for disk in disks}
    unknown = sorted(item for item in include | exclude if item not in known)
    if unknown:
        raise ConfigurationError("include_disks/exclude_disks name disk(s) %s that the VM does not have; its disks are %s."
                                 % (", ".join(unknown), ", ".join("%s (key %s)" % (d.label, d.key) for d in disks)))
    selected, skipped = [], {}
    for disk in disks:
        names = {str(disk.key), disk.label}
        if include and not names & include:
            skipped[disk.label] = "not in include_disks"
        elif names & exclude:
            skipped[disk.label] = "in exclude_disks"
        elif disk.skip_reason:
            skipped[disk.label] = disk.skip_reason
        else:
            selected.append(disk)
    if not selected:
        raise ConfigurationError("No disk of the VM is left to back up (%s)." % "; ".join("%s: %s" % item for item in skipped.items()))
    return selected, skipped


@dataclasses.dataclass(frozen=True)
class PlannedDisk:
    """One disk of the run: its live DiskInfo, mode and reason, the transfer's BackupDisk (which owns the source),
    and ``transport``: the VDDK transport mode the source's handle really uses (None when VDDK does not say); for an
    incremental, ``base_change_id``: the change id its changed areas are relative to (a checkpoint records it)."""

    key: DiskKey
    disk: object
    mode: str
    reason: str
    transfer: BackupDisk
    transport: str = None
    base_change_id: str = None


class BackupPlanner:
    """Decides full or incremental per disk against the previous restore point (a Manifest, or None).

    Pure apart from ``plan``, which asks CBT and opens the disks. Immutable after construction; one run's thread.
    """

    def __init__(self, mode, previous, chunk_size, no_previous_reason=None):
        self.mode = mode
        self.previous = previous
        self.chunk_size = chunk_size
        self.no_previous_reason = no_previous_reason     # why ``previous`` is None when the VM had restore points
        self._previous_disks = {disk.key: disk for disk in previous.disks} if previous is not None else {}

    def incremental_reason(self):
        return "changed areas since restore point %s" % self.previous.id

    def full_reason(self, disk, cbt_enabled, cbt_reason=None, cbt_enabled_now=False):
        """Why ``disk`` (a live DiskInfo) must be read in full, or None when an incremental read may be tried."""
        if self.mode == "full":
            return "a full backup was requested"
        if self.previous is None:
            return self.no_previous_reason or "this is the VM's first restore point"
        entry = self._previous_disks.get(DiskKey.of(disk.key))
        if entry is None:
            return "the previous restore point has no disk with key %s" % disk.key
        if not cbt_enabled:
            return cbt_reason or "Changed Block Tracking is off on the VM"
        if cbt_enabled_now:
            return "Changed Block Tracking was enabled by this run: changes before it are unknown"
        return change_id_unusable(entry, disk)

    def previous_index(self, session, key):
        """(a copy of the previous restore point's index of disk ``key`` to carry chunks over from, None), or (None,
        why the disk is read in full) when a prune removed that restore point since it was chosen (prune removes a
        manifest, then its indexes, under a shared lock that backups do not exclude)."""
        try:
            return session.previous_index(self.previous.id, key.value), None
        except RepositoryError:
            if session.repository.restore_point_exists(self.previous.id):
                raise       # damage, not a prune: say so
            return None, "the previous restore point %s was removed while this backup started" % self.previous.id

    def plan(self, context, vm, snapshot, disks, cbt_status, session, resume=None):
        """A PlannedDisk for each of ``disks`` (DiskInfo of ``snapshot``), each with its own VDDK source opened.

        An incremental disk reads CBT's changed areas since the previous change id and carries the rest over
        from the previous index; when CBT cannot answer, that disk is read in full and the reason says why.
        With ``resume`` (an ops._resume.ResumeState: ``snapshot`` is the interrupted run's), each disk keeps the
        mode and reason that run planned, and the chunks its checkpoint lists are carried over, not read.
        """
        planned = []
        with contextlib.ExitStack() as opened:      # closes the sources opened so far if planning fails
            for disk in disks:
                key = DiskKey.of(disk.key)
                reason, changed, base_change_id = self._decide(vm, snapshot, disk, cbt_status, resume)
                previous_index = None
                if changed is not None:
                    previous_index, vanished = self.previous_index(session, key)
                    if previous_index is None:      # pruned meanwhile: this disk is read in full, saying why
                        reason, changed, base_change_id = vanished, None, None
                source = context.open_disk(vm.moref, disk, read_only=True, snapshot_moref=snapshot.moref)
                opened.callback(source.close)
                plan = plan_backup(source, self.chunk_size, changed=changed, previous=previous_index)
                if previous_index is not None:
                    condemned = session.condemned_positions(previous_index)
                    if condemned:       # chunks a GC running beside us may delete: read them again, never carried
                        log.info("disk %s of VM %s: %d unchanged chunk(s) are read again: the repository's GC "
                                 "condemned them", disk.label, context.label, len(condemned))
                        plan = plan.with_read(condemned)
                if resume is not None:
                    plan, previous_index = resume.apply(key.value, plan, previous_index, session)
                # asked while the handle planning opened is still the one the transfer starts with
                transport = source.transport_mode
                if reason and changed is None:
                    log.info("disk %s of VM %s is read in full: %s", disk.label, context.label, reason)
                transfer = BackupDisk(key=key.value, source=source, plan=plan, index=DiskIndex(disk.capacity, self.chunk_size),
                                      previous=previous_index, done=bytearray((plan.count + 7) // 8))
                planned.append(PlannedDisk(key=key, disk=disk, mode="full" if changed is None else "incremental",
                                           reason=reason or self.incremental_reason(), transfer=transfer,
                                           transport=transport, base_change_id=base_change_id))
            opened.pop_all()        # the sources belong to the transfer from here on
        return planned

    def _decide(self, vm, snapshot, disk, cbt_status, resume):
        """(reason for a full read or None, changed areas or None for a full read, the base change id)."""
        if resume is not None:
            mode, reason, base_change_id = resume.planned(str(disk.key))
            if mode == "full":
                return reason, None, None
        else:
            reason = self.full_reason(disk, cbt_status.enabled, cbt_status.reason, cbt_status.enabled_now)
            if reason is not None:
                return reason, None, None
            base_change_id = self._previous_disks[DiskKey.of(disk.key)].change_id
        try:
            changed = [(area.start, area.length) for area in vm.changed_areas(snapshot, disk, base_change_id)]
        except CbtReasonError as exc:
            return exc.reason, None, None
        return reason, changed, base_change_id


#: how fast a VDDK transport mode moves data, roughly: a mode asked for ahead of the one VDDK chose that ranks
#: higher was not usable, and the backup ran slower than planned (hotadd -> nbd is the classic silent slowdown);
#: nbdssl -> nbd is no slowdown (nbd skips TLS), so both rank the same
_TRANSPORT_SPEED = {"file": 3, "san": 2, "hotadd": 2, "nbdssl": 1, "nbd": 1}


def transport_fallbacks(requested, disks):
    """Warnings, one per disk of ``disks`` (DiskEntry or DiskRecord, with ``transport``) that VDDK read with a slower
    mode than one asked for before it in ``requested`` (VDDK's colon-separated list); none for unknown modes."""
    asked = [mode for mode in (requested or "").split(":") if mode]
    warnings = []
    for disk in disks:
        used = disk.transport
        if not used or used not in asked:
            continue
        faster = [mode for mode in asked[:asked.index(used)] if _TRANSPORT_SPEED.get(mode, 0) > _TRANSPORT_SPEED.get(used, 0)]
        if faster:
            name = "%s (key %s)" % (disk.label, disk.key) if disk.label else "key %s" % disk.key
            warnings.append("Disk %s was read with transport %s although %s was asked for first (transports %s): VDDK "
                            "could not use %s for it, so this backup ran slower than planned. hotadd needs the proxy to be "
                            "a VM that can reach the disk's datastore; san needs the datastore's LUNs visible to the proxy."
                            % (name, used, faster[0], ":".join(asked), faster[0]))
    return warnings
