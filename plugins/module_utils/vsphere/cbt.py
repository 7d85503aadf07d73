# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Changed Block Tracking: state, enabling it safely, and the changed areas of a disk.

Design notes
- CBT is enabled only on a VM without snapshots (ReconfigVM_Task changeTrackingEnabled=True),
  followed by a stun/unstun (create and remove a snapshot) so it takes effect at once. When it
  cannot be enabled, ``ensure_cbt`` returns a reason the caller reports; the backup then reads
  every disk in full. It never raises for "CBT unavailable": that is a normal situation.
- ``changed_areas`` pages QueryChangedDiskAreas: each answer covers [startOffset, startOffset +
  length); the next call starts there, until the capacity is reached. It never asks at
  startOffset == capacity (an InvalidArgument fault on ESXi). Areas are clipped to the capacity,
  sorted and merged (touching areas too). CBT may over-report, never under-report.
- Faults (FileFault with the cbt keys, InvalidArgument for a change id from an earlier epoch,
  NotFound, ...) become ChangeTrackingError with ``reason``, a sentence a user can read; the
  caller answers with a full read of that disk.
All functions are stateless and thread-safe as far as pyVmomi's stub is.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

from ..errors import BlockvaultError, CbtReasonError, ChangeTrackingError
from ._pyvmomi import fault_message, fault_name, is_fault, require_pyvmomi, vim
from .snapshots import SNAPSHOT_PREFIX, BackupSnapshot, list_snapshots, remove_snapshot
from .tasks import DEFAULT_TASK_TIMEOUT, wait_for_task

__all__ = ["ChangedArea", "CbtStatus", "is_cbt_enabled", "cbt_supported", "ensure_cbt", "disable_cbt", "changed_areas",
           "merge_areas"]

log = logging.getLogger(__name__)

#: a VM's full page count guard: a misbehaving server that never advances must not loop forever
_MAX_PAGES = 1 << 20


@dataclasses.dataclass(frozen=True)
class ChangedArea:
    """A byte range [start, start + length) of a disk. Immutable; thread-safe."""

    start: int
    length: int

    @property
    def end(self):
        return self.start + self.length


@dataclasses.dataclass(frozen=True)
class CbtStatus:
    """``enabled``: CBT is on (usable for the NEXT snapshot if ``enabled_now``); ``reason`` says why it is off.

    Immutable; thread-safe.
    """

    enabled: bool
    enabled_now: bool = False
    reason: str = None


def is_cbt_enabled(vm):
    config = vm.config
    return bool(getattr(config, "changeTrackingEnabled", False))


def cbt_supported(vm):
    capability = getattr(vm, "capability", None)
    return bool(getattr(capability, "changeTrackingSupported", False))


def ensure_cbt(vm, timeout=DEFAULT_TASK_TIMEOUT, vm_name=None):
    """Enable CBT when possible; return a CbtStatus. Errors of the enabling tasks raise ChangeTrackingError."""
    label = vm_name or vm.name
    if is_cbt_enabled(vm):
        return CbtStatus(enabled=True)
    if not cbt_supported(vm):
        return CbtStatus(enabled=False, reason="VM %s does not support CBT (virtual hardware version 7 or later is needed): "
                                               "this backup reads in full." % label)
    snapshots = list_snapshots(vm)
    if snapshots:
        user = [entry.name for entry in snapshots if not entry.name.startswith(SNAPSHOT_PREFIX)]
        what = "user snapshots (%s)" % ", ".join(user) if user else "snapshots"
        return CbtStatus(enabled=False, reason="VM %s has %s: CBT cannot be enabled; this backup reads in full." % (label, what))
    require_pyvmomi()
    try:
        wait_for_task(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(changeTrackingEnabled=True)), timeout=timeout,
                      what="enable CBT on VM %s" % label)
        # the setting takes effect at the next stun/unstun of the VM: a snapshot create + remove
        stun_name = "%scbt-enable-%s" % (SNAPSHOT_PREFIX, uuid.uuid4().hex[:8])
        snapshot = wait_for_task(vm.CreateSnapshot_Task(name=stun_name, description="blockvault: activates CBT, removed at once",
                                                        memory=False, quiesce=False),
                                 timeout=timeout, what="create snapshot %s of VM %s to activate CBT" % (stun_name, label))
        remove_snapshot(snapshot, timeout=timeout, what="remove snapshot %s of VM %s" % (stun_name, label))
    except BlockvaultError as exc:
        raise ChangeTrackingError("Enabling CBT on VM %s failed: %s" % (label, exc.message), vm=label) from exc
    log.info("enabled CBT on VM %s", label)
    return CbtStatus(enabled=True, enabled_now=True)


def disable_cbt(vm, timeout=DEFAULT_TASK_TIMEOUT, vm_name=None):
    """Switch CBT off (nothing to do when it is off); True when it was on. ChangeTrackingError when it fails.

    For writers outside the guest (an in-place restore through VDDK): such writes invalidate the change ids
    stored with earlier backups, so CBT goes off and the next backup enables it again and reads in full.
    """
    label = vm_name or vm.name
    if not is_cbt_enabled(vm):
        return False
    require_pyvmomi()
    try:
        wait_for_task(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(changeTrackingEnabled=False)), timeout=timeout,
                      what="disable CBT on VM %s" % label)
    except BlockvaultError as exc:
        raise ChangeTrackingError("Disabling CBT on VM %s failed: %s" % (label, exc.message), vm=label) from exc
    log.info("disabled CBT on VM %s", label)
    return True


def merge_areas(areas):
    """Sort and merge overlapping or touching areas; drop empty ones. Returns a list of ChangedArea."""
    merged = []
    for start, length in sorted((int(a[0]), int(a[1])) for a in areas):
        if length <= 0:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], start + length)
        else:
            merged.append([start, start + length])
    return [ChangedArea(start, end - start) for start, end in merged]


def _reason_for(exc, change_id):
    name = fault_name(exc)
    text = fault_message(exc)
    if is_fault(exc, "InvalidArgument"):
        return ("vSphere refused the stored change id %s (%s): CBT was reset since the last backup (power loss, storage "
                "vMotion, disk resize, CBT switched off and on)" % (change_id, text))
    if is_fault(exc, "FileFault"):
        return "vSphere could not read the CBT change log of the disk (%s: %s): it was reset or lost" % (name, text)
    if is_fault(exc, "NotFound", "ManagedObjectNotFound"):
        return "vSphere no longer knows the snapshot or disk asked about (%s: %s)" % (name, text)
    if is_fault(exc, "NotSupported", "NotImplemented", "MethodNotFound"):
        return "this vSphere does not answer changed-area queries (%s)" % name
    return "QueryChangedDiskAreas failed (%s: %s)" % (name, text)


def changed_areas(vm, snapshot, disk_key, capacity, change_id, disk_label=None):
    """The areas of disk ``disk_key`` changed between ``change_id`` and ``snapshot``, merged, within [0, capacity).

    ``snapshot`` is a vim.vm.Snapshot or a BackupSnapshot. ``change_id`` "*" asks for the allocated
    areas (VMFS only). Raises ChangeTrackingError (a CbtReasonError with ``reason``) when vSphere
    cannot answer; the caller reads the disk in full.
    """
    if isinstance(snapshot, BackupSnapshot):
        snapshot = snapshot.snapshot
    disk = disk_label or "disk %s" % disk_key
    if not change_id:
        raise CbtReasonError("No change id is known for %s: it is read in full." % disk, disk=disk,
                             reason="no change id was stored for this disk by the previous backup")
    capacity = int(capacity)
    areas = []
    offset = 0
    pages = 0
    while offset < capacity:
        pages += 1
        try:
            info = vm.QueryChangedDiskAreas(snapshot=snapshot, deviceKey=disk_key, startOffset=offset, changeId=change_id)
        except Exception as exc:
            if not hasattr(type(exc), "_wsdlName"):
                raise
            reason = _reason_for(exc, change_id)
            raise CbtReasonError("Changed areas of %s are unavailable: %s. It is read in full." % (disk, reason),
                                 reason=reason, fault=fault_name(exc), disk=disk) from exc
        for area in getattr(info, "changedArea", None) or ():
            start, end = int(area.start), min(int(area.start) + int(area.length), capacity)
            if end > start:
                areas.append((start, end - start))
        next_offset = int(info.startOffset) + int(info.length)
        if next_offset <= offset or pages > _MAX_PAGES:
            reason = "vSphere answered a changed-area query at offset %d without advancing" % offset
            raise CbtReasonError("Changed areas of %s are unavailable: %s. It is read in full." % (disk, reason), reason=reason,
                                 disk=disk)
        offset = next_offset
    return merge_areas(areas)
