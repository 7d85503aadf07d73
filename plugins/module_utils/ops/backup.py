# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Back up one VM into one restore point.

Flow (every cleanup on the run's ExitStack, so a failure anywhere leaves no snapshot, no open VDDK handle and no
visible restore point): vCenter session -> find the VM -> idempotency (a restore point of this run id ends the
call unchanged) -> repository session (shared lock) -> refuse when another live backup lock of this VM exists
(its snapshot would otherwise be taken for an orphan) -> remove orphan ``blockvault-*`` snapshots of killed runs
-> enable CBT when off and possible -> backup snapshot -> per disk, full or incremental with the reason (the
planner, ops/_backup_plan.py) -> VDDK PrepareForAccess and one connection per disk reader -> the transfer pipeline
into the session, with a thread keeping the vCenter session (whose cookie VDDK uses) alive -> indexes, manifest
(commit) -> snapshot removed, EndAccess.

Limit: the concurrent-backup check sees the locks of this repository only; two repositories backing up one VM
at the same moment would still remove each other's snapshot.
"""

from __future__ import annotations

import logging
import time

from ..errors import BlockvaultError, ConfigurationError, LockError
from ..repo.format import isotime
from ..repo.locks import describe as describe_lock
from ..repo.model import DiskRecord, ManifestDraft, VmConfig, VmRecord
from ..transfer.pipeline import backup_disks
from ..vddk.connection import Connection
from ..vsphere.vm import find_vm
from ._backup_plan import BackupPlanner, select_disks
from ._engine import new_run_id
from .context import open_run
from .requests import BackupRequest, Endpoints, RunSettings

__all__ = ["backup_vm", "BackupRequest"]

log = logging.getLogger("blockvault.backup")

ACCESS_IDENTITY = "blockvault.vsphere"
_CHUNK_COUNTERS = ("chunks_read", "chunks_new", "chunks_deduped", "chunks_zero", "chunks_carried")


def backup_vm(request, endpoints, settings=RunSettings()):
    """Back up the VM of ``request`` (a BackupRequest) with ``endpoints`` and ``settings``; a result dict.

    ``{changed, run_id, restore_point: {id, vm, created}, disks: [{key, label, mode, reason, bytes_read, bytes_new,
    sha256}], bytes_read, bytes_written, duration, throughput_mbps, quiesced, skipped_disks}``, or in check mode
    ``{changed, run_id, vm, plan}``.
    """
    endpoints.require_vsphere("A backup")
    run_id = request.run_id or new_run_id()
    # the status file exists from the first moment (a poller learns at once that a login or lookup failed)
    with open_run(endpoints, settings, run_id, request.vm.describe()) as context:
        try:
            return _Backup(context, request).run()
        except BlockvaultError as exc:
            raise context.error_context(exc, "backup")


class _Backup:
    """One backup run: finds the VM, then plans, transfers and commits. Used once, by the run's thread."""

    def __init__(self, context, request):
        self.context = context
        self.request = request
        self.vm = None
        self.vm_key = None
        self.captured = None

    def run(self):
        context = self.context
        self.vm = find_vm(context.session, self.request.vm)
        self.captured = VmConfig.from_json(self.vm.capture_config())
        context.label = self.captured.name or self.vm.name
        self.vm_key = self.captured.instance_uuid or self.captured.bios_uuid or self.vm.moref
        repository = context.repository
        existing = repository.find_restore_point(self.vm_key, context.run_id)
        if existing:
            return _unchanged_result(repository.load_manifest(existing))
        previous = _previous_manifest(repository, self.vm_key)
        if self.request.mode == "incremental" and previous is None:
            raise ConfigurationError("VM %s has no restore point yet, so an incremental backup has nothing to build on: "
                                     "run with mode auto (or full) first." % context.label)
        live_disks, skipped = select_disks(self.vm.disks(), self.request.include_disks, self.request.exclude_disks)
        planner = BackupPlanner(self.request.mode, previous, repository.chunk_size)
        if context.check:
            return self._plan_only(planner, live_disks, skipped, previous)
        return self._transfer(planner, skipped)

    def _plan_only(self, planner, disks, skipped, previous):
        """Check mode: what the run would do, from the live configuration (no snapshot, no CBT query)."""
        enabled = self.vm.cbt_enabled()
        cbt_reason = None if enabled else "CBT will be enabled by the run"
        planned = []
        for disk in disks:
            reason = planner.full_reason(disk, enabled, cbt_reason)
            planned.append({"key": str(disk.key), "label": disk.label, "capacity": disk.capacity,
                            "mode": "full" if reason else "incremental", "reason": reason or planner.incremental_reason()})
        return {"changed": True, "run_id": self.context.run_id, "vm": self.context.label,
                "plan": {"disks": planned, "skipped": skipped, "previous_restore_point": previous.id if previous else None}}

    def _transfer(self, planner, skipped):
        context, request, vm = self.context, self.request, self.vm
        started, started_iso = time.monotonic(), isotime()
        stack = context.stack
        # the repository lock first, then the check for another backup of this VM, then the orphan cleanup: a
        # snapshot of a run that is still going is never taken for an orphan (write-then-check, as the locks do)
        session = stack.enter_context(context.repository.begin_backup(self.vm_key, context.run_id))
        context.releases("the run's repository lock")
        _refuse_concurrent_backup(context.repository, self.vm_key, context.label)
        context.set_phase("snapshot")
        vm.remove_orphan_snapshots(live_run_ids=[context.run_id])
        cbt_status = vm.ensure_cbt()
        snap = stack.enter_context(vm.backup_snapshot(context.run_id, quiesce=request.quiesce,
                                                      allow_crash_consistent=request.allow_crash_consistent))
        context.releases("the backup snapshot of VM %s" % context.label)
        snap_disks = select_disks(snap.disks(), request.include_disks, request.exclude_disks)[0]
        access = Connection(context.vddk_library(), context.connect_params(vm.moref, snap.moref), read_only=True)
        stack.callback(access.close)
        if access.prepare_for_access(ACCESS_IDENTITY):
            stack.callback(access.end_access, ACCESS_IDENTITY)
        context.set_phase("plan")
        planned = planner.plan(context, vm, snap, snap_disks, cbt_status, session)
        context.set_phase("transfer")
        context.keepalive()
        results = backup_disks(session, [item.transfer for item in planned], context.transfer_options())
        context.set_phase("commit")
        records = []
        for item in planned:
            result = results[item.key.value]
            session.add_disk_index(item.key.value, result.index)
            disk = item.disk
            records.append(DiskRecord(key=item.key, capacity=disk.capacity, mode=item.mode, reason=item.reason,
                                      label=disk.label, controller=disk.controller.to_dict(), unit_number=disk.unit_number,
                                      file_name=disk.file_name, uuid=disk.uuid, change_id=disk.change_id,
                                      bytes_read=result.bytes_read, bytes_new=result.bytes_new, sha256=result.blocksum))
        duration = max(time.monotonic() - started, 1e-6)
        bytes_read = sum(r.bytes_read for r in results.values())
        stats = {"bytes_read": bytes_read, "bytes_written": sum(r.bytes_new for r in results.values()),
                 "duration": round(duration, 3), "throughput_mbps": round(bytes_read / duration / 1e6, 3),
                 "quiesced": snap.quiesced, "transport": context.endpoints.vddk.transports, "skipped_disks": skipped,
                 "chunks": {name: sum(getattr(r, name) for r in results.values()) for name in _CHUNK_COUNTERS}}
        record = VmRecord(key=self.vm_key, name=context.label, moref=vm.moref, uuid=self.captured.bios_uuid,
                          instance_uuid=self.captured.instance_uuid, config=self.captured)
        with context.committing():
            committed = session.commit(ManifestDraft.build(context.run_id, record, records, stats=stats, started=started_iso))
        context.set_phase("cleanup")
        return _result(committed, changed=True)


def _refuse_concurrent_backup(repository, vm_key, vm_label):
    """LockError when another live (not stale) backup lock of this VM exists besides this run's own.

    Two backups of one VM at once would each take the other's snapshot for an orphan of a killed run and
    remove it. Called after this run's lock is written, so of two runs starting together at least one sees
    the other (both may refuse; neither removes the other's snapshot).
    """
    purpose = "backup of %s" % repository.vm_tag(vm_key)
    live = [lock for lock in repository.list_locks() if lock.get("purpose") == purpose and not lock.get("stale")]
    if len(live) > 1:
        others = sorted(live, key=lambda lock: str(lock.get("created")))
        raise LockError("Another backup of VM %s is running (%d live backup locks of this VM in the repository at %s; "
                        "the oldest: %s): two backups of one VM at once would remove each other's snapshot."
                        % (vm_label, len(live), repository.location, describe_lock(others[0])),
                        hint="Wait for it to finish. If its process is gone on another host, remove its lock with "
                             "break_lock once it is stale.")


def _previous_manifest(repository, vm_key):
    points = repository.list_restore_points(vm_key)
    return repository.load_manifest(points[-1].id) if points else None


def _result(manifest, changed):
    """The module result of a committed restore point (this run's, or the one an earlier run of its id made)."""
    stats = manifest.stats
    return {"changed": changed, "run_id": manifest.run_id, "restore_point": manifest.reference(),
            "disks": [{"key": disk.key.value, "label": disk.label, "mode": disk.mode, "reason": disk.reason,
                       "bytes_read": disk.bytes_read, "bytes_new": disk.bytes_new, "sha256": disk.sha256}
                      for disk in manifest.disks],
            "bytes_read": stats.get("bytes_read", 0), "bytes_written": stats.get("bytes_written", 0),
            "duration": stats.get("duration", 0.0), "throughput_mbps": stats.get("throughput_mbps", 0.0),
            "quiesced": stats.get("quiesced"), "skipped_disks": stats.get("skipped_disks", {})}


def _unchanged_result(manifest):
    return dict(_result(manifest, changed=False),
                msg="restore point %s of run %s already exists" % (manifest.id, manifest.run_id))
