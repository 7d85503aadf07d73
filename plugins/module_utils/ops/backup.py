# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Back up one VM into one restore point.

Flow (every cleanup on the run's ExitStack, so a failure anywhere leaves no snapshot, no open VDDK handle and no
visible restore point): vCenter session -> find the VM -> idempotency (a restore point of this run id ends the
call unchanged) -> repository session (shared lock) -> refuse when another live backup lock of this VM exists in
this repository -> adopt the snapshot of a killed run whose checkpoint is young enough (ops/_resume.py) -> remove
the ``blockvault-*`` snapshots whose lease expired (killed runs; a live run into another repository renews its
snapshot's lease, so both backups proceed, each with its own snapshot) -> enable CBT when off and possible ->
backup snapshot (unless one was adopted; its lease renewed while the run lasts) -> per disk, full or incremental
with the reason (the planner, ops/_backup_plan.py) -> VDDK PrepareForAccess and one connection per disk reader ->
the transfer pipeline into the session, with a thread keeping the vCenter session (whose cookie VDDK uses) alive
and one rewriting the run's checkpoint (ops/_checkpointing.py) -> indexes, manifest (commit, fenced by the lock's
and the snapshot's leases) -> checkpoint and snapshot removed, EndAccess.
"""

from __future__ import annotations

import logging
import time

from ..errors import BlockvaultError, ConfigurationError, LockError
from ..repo.checkpoint import delete_checkpoint
from ..repo.format import isotime
from ..repo.locks import describe as describe_lock
from ..repo.model import DiskRecord, ManifestDraft, VmConfig, VmRecord
from ..transfer.pipeline import backup_disks
from ..vddk.connection import Connection
from ..vsphere.vm import find_vm
from ._backup_plan import BackupPlanner, select_disks, transport_fallbacks
from ._checkpointing import resume_fields, start_recorder
from ._resume import find_resumable
from ._engine import new_run_id
from .context import open_run
from .requests import BackupRequest, RunSettings

__all__ = ["backup_vm", "BackupRequest"]

log = logging.getLogger("blockvault.backup")

ACCESS_IDENTITY = "blockvault.vsphere"
_CHUNK_COUNTERS = ("chunks_read", "chunks_new", "chunks_deduped", "chunks_zero", "chunks_carried")


def backup_vm(request, endpoints, settings=RunSettings()):
    """Back up the VM of ``request`` (a BackupRequest) with ``endpoints`` and ``settings``; a result dict.

    ``{changed, run_id, restore_point: {id, vm, created}, disks: [{key, label, mode, reason, transport, bytes_read,
    bytes_new, bytes_stored, sha256}], bytes_read, bytes_written, duration, throughput_mbps, quiesced, skipped_disks,
    transports_requested, snapshot: removed | already_gone | left (reason) | not_taken, warnings, diff}``, or in check
    mode ``{changed, run_id, vm, plan, diff}``. ``warnings`` names each disk VDDK read with a slower transport than one
    asked for first, and a backup snapshot that could not be removed after the commit (a warning, not a failure: the
    restore point exists); ``diff`` is the VM's previous restore point (before) and the new or planned one (after).
    """
    endpoints.require_vsphere("A backup")
    run_id = request.run_id or new_run_id()
    # the status file exists from the first moment (a poller learns at once that a login or lookup failed)
    with open_run(endpoints, settings, run_id, request.vm.describe()) as context:
        try:
            result = _Backup(context, request).run()
        except BlockvaultError as exc:
            raise context.error_context(exc, "backup")
    return context.with_cleanup_outcomes(result)     # the snapshot is removed when the run's stack unwinds


class _Backup:
    """One backup run: finds the VM, then plans, transfers and commits. Used once, by the run's thread."""

    def __init__(self, context, request):
        self.context = context
        self.request = request
        self.vm = None
        self.vm_key = None
        self.captured = None
        self.resume_declined = None

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
        previous, no_previous = _previous_manifest(repository, self.vm_key)
        if self.request.mode == "incremental" and previous is None and no_previous is None:
            raise ConfigurationError("VM %s has no restore point yet, so an incremental backup has nothing to build on: "
                                     "run with mode auto (or full) first." % context.label)
        live_disks, skipped = select_disks(self.vm.disks(), self.request.include_disks, self.request.exclude_disks)
        planner = BackupPlanner(self.request.mode, previous, repository.chunk_size, no_previous_reason=no_previous)
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
        after = {"restore_point": "(new, of this run)", "vm": self.context.label,
                 "transports_requested": self.context.endpoints.vddk.transports, "disks": planned}
        return {"changed": True, "run_id": self.context.run_id, "vm": self.context.label,
                "plan": {"disks": planned, "skipped": skipped, "previous_restore_point": previous.id if previous else None},
                "diff": {"before": _diff_side(previous), "after": after}}

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
        resume, self.resume_declined = find_resumable(context, vm, self.vm_key, request, self._selected_disks)
        vm.remove_orphan_snapshots(live_run_ids=[context.run_id] + ([resume.run_id] if resume else []))
        cbt_status = vm.ensure_cbt()
        if resume is not None:      # the interrupted run's snapshot: its checkpoint's chunks are of that point in time
            snap = stack.enter_context(vm.adopt_snapshot(resume.found.leased, context.run_id))
            planner = BackupPlanner(request.mode, resume.parent, context.repository.chunk_size)
        else:
            snap = stack.enter_context(vm.backup_snapshot(context.run_id, quiesce=request.quiesce,
                                                          allow_crash_consistent=request.allow_crash_consistent,
                                                          on_removed=context.record_snapshot_removal))
        snap_disks = self._selected_disks(snap)
        session.add_fence(snap.lease)  # nothing read from a snapshot whose lease lapsed is committed
        context.releases("the backup snapshot of VM %s" % context.label)
        access = Connection(context.vddk_library(), context.connect_params(vm.moref, snap.moref), read_only=True)
        stack.callback(access.close)
        if access.prepare_for_access(ACCESS_IDENTITY):
            stack.callback(_end_access, context, access)
        context.set_phase("plan")
        planned = planner.plan(context, vm, snap, snap_disks, cbt_status, session, resume=resume)
        context.set_phase("transfer")
        context.keepalive()
        recorder = start_recorder(context, session, request, self.vm_key, planned, resume,
                                  planner.previous.id if planner.previous is not None else None)
        results = backup_disks(session, [item.transfer for item in planned], context.transfer_options())
        recorder.stop()         # no checkpoint after this: the commit removes it
        context.set_phase("commit")
        records = []
        for item in planned:
            result = results[item.key.value]
            session.add_disk_index(item.key.value, result.index)
            disk = item.disk
            records.append(DiskRecord(key=item.key, capacity=disk.capacity, mode=item.mode, reason=item.reason,
                                      label=disk.label, controller=disk.controller.to_dict(), unit_number=disk.unit_number,
                                      file_name=disk.file_name, uuid=disk.uuid, change_id=disk.change_id,
                                      bytes_read=result.bytes_read, bytes_new=result.bytes_new, sha256=result.blocksum,
                                      bytes_stored=result.bytes_stored, transport=item.transport))
        duration = max(time.monotonic() - started, 1e-6)
        bytes_read = sum(r.bytes_read for r in results.values())
        stats = {"bytes_read": bytes_read, "bytes_written": sum(r.bytes_stored for r in results.values()),
                 "duration": round(duration, 3), "throughput_mbps": round(bytes_read / duration / 1e6, 3),
                 "quiesced": snap.quiesced, "transports_requested": context.endpoints.vddk.transports, "skipped_disks": skipped,
                 "chunks": {name: sum(getattr(r, name) for r in results.values()) for name in _CHUNK_COUNTERS},
                 # how the run learnt which chunks were stored, and what it cost (docs/repository-format.md 9.1, "The presence filter")
                 "chunk_presence": {"method": session.chunk_presence, "requests": session.presence_requests}}
        if resume is not None:      # the next run must know this killed run's work is committed (ops/_resume.py)
            stats["resumed"] = resume.result()
        record = VmRecord(key=self.vm_key, name=context.label, moref=vm.moref, uuid=self.captured.bios_uuid,
                          instance_uuid=self.captured.instance_uuid, config=self.captured)
        with context.committing():
            committed = session.commit(ManifestDraft.build(context.run_id, record, records, stats=stats, started=started_iso))
        delete_checkpoint(context.repository, recorder.template.name)
        context.set_phase("cleanup")
        result = dict(_result(committed, changed=True), **resume_fields(resume, self.resume_declined))
        for warning in result["warnings"]:
            log.warning("%s", warning)          # the run log says it too, for a run polled under async
        result["diff"] = {"before": _diff_side(planner.previous), "after": _diff_side(committed)}
        return result

    def _selected_disks(self, snapshot):
        """The disks of ``snapshot`` (a BackupSnapshot) this run backs up."""
        return select_disks(snapshot.disks(), self.request.include_disks, self.request.exclude_disks)[0]


def _end_access(context, access):
    """VDDK's EndAccess, which lets vSphere migrate the VM again. Its failure (an idled-out session, a lost vCenter)
    never replaces the run's outcome, committed or failed: it is a warning saying what to check."""
    try:
        access.end_access(ACCESS_IDENTITY)
    except BlockvaultError as exc:
        warning = ("VDDK's EndAccess for VM %s failed (%s): vSphere may keep migrations (vMotion) of the VM disabled "
                   "until the next backup's EndAccess, or until the method is re-enabled in vCenter." % (context.label, exc))
        log.warning("%s", warning)
        context.warnings.append(warning)


def _refuse_concurrent_backup(repository, vm_key, vm_label):
    """LockError when another live (not stale) backup lock of this VM exists in this repository besides this run's.

    Not a safety rule (snapshot leases keep runs from removing each other's snapshot, and backups of one VM into
    other repositories proceed): two runs into one repository would only store the same restore point twice, and
    a run resuming this repository's checkpoint must be its only writer. Called after this run's lock is written,
    so of two runs starting together at least one sees the other (both may refuse).
    """
    purpose = "backup of %s" % repository.vm_tag(vm_key)
    live = [lock for lock in repository.list_locks() if lock.get("purpose") == purpose and not lock.get("stale")]
    if len(live) > 1:
        others = sorted(live, key=lambda lock: str(lock.get("created")))
        raise LockError("Another backup of VM %s is running (%d live backup locks of this VM in the repository at %s; "
                        "the oldest: %s): one backup of a VM writes to a repository at a time."
                        % (vm_label, len(live), repository.location, describe_lock(others[0])),
                        hint="Wait for it to finish: the lock of a process that is gone is ignored %d s after its "
                             "last refresh." % repository.lock_settings.stale_after)


def _previous_manifest(repository, vm_key):
    """(the Manifest to build on, or None; why there is none, or None): the newest restore point of the VM that loads.

    Chosen from what loads, not from what was listed: a prune may remove the newest between the listing and the
    read (prune takes a shared lock, as backups do), so a vanished one means the next older one; a damaged one is
    passed over too, saying so. When none is left the run reads in full and says why.
    """
    vanished, damaged = None, None
    for read in repository.read_manifests(vm_key, newest_first=True):
        if read.manifest is not None:
            if vanished or damaged:
                log.info("building on restore point %s: %s", read.manifest.id,
                         _why_not_newer(vanished, damaged) or "the newer ones do not load")
            return read.manifest, None
        if read.gone:
            vanished = vanished or read.point.id
        else:
            log.warning("restore point %s of this VM: its manifest is damaged (%s); skipped", read.point.id, read.error.message)
            damaged = damaged or (read.point.id, read.error.message)
    return None, _why_not_newer(vanished, damaged)


def _why_not_newer(vanished, damaged):
    if vanished:
        return "the previous restore point %s was removed while this backup started" % vanished
    if damaged:
        return "the previous restore point %s cannot be read (its manifest is damaged: %s)" % damaged
    return None


def _requested_transports(manifest):
    # restore points written before transports_requested existed kept the list as "transport"
    return manifest.stats.get("transports_requested", manifest.stats.get("transport"))


def _result(manifest, changed):
    """The module result of a committed restore point (this run's, or the one an earlier run of its id made)."""
    stats = manifest.stats
    return {"changed": changed, "run_id": manifest.run_id, "restore_point": manifest.reference(),
            "disks": [{"key": disk.key.value, "label": disk.label, "mode": disk.mode, "reason": disk.reason,
                       "transport": disk.transport, "bytes_read": disk.bytes_read, "bytes_new": disk.bytes_new,
                       "bytes_stored": disk.bytes_stored, "sha256": disk.sha256}
                      for disk in manifest.disks],
            "bytes_read": stats.get("bytes_read", 0), "bytes_written": stats.get("bytes_written", 0),
            "duration": stats.get("duration", 0.0), "throughput_mbps": stats.get("throughput_mbps", 0.0),
            "quiesced": stats.get("quiesced"), "skipped_disks": stats.get("skipped_disks", {}),
            "chunk_presence": stats.get("chunk_presence"),
            "transports_requested": _requested_transports(manifest),
            "warnings": transport_fallbacks(_requested_transports(manifest), manifest.disks)}


def _diff_side(manifest):
    """A restore point as one side of the backup's diff: {} when there is none (the VM's first backup)."""
    if manifest is None:
        return {}
    return {"restore_point": manifest.id, "vm": manifest.vm.name, "created": manifest.created,
            "transports_requested": _requested_transports(manifest),
            "disks": [{"key": disk.key.value, "label": disk.label, "capacity": disk.capacity, "mode": disk.mode,
                       "reason": disk.reason, "transport": disk.transport} for disk in manifest.disks]}


def _unchanged_result(manifest):
    side = _diff_side(manifest)         # the result's shape of a run that made it; the diff shows no change
    return dict(_result(manifest, changed=False), snapshot="not_taken", diff={"before": side, "after": side},
                **resume_fields(None, None),
                msg="restore point %s of run %s already exists" % (manifest.id, manifest.run_id))
