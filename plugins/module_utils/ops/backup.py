# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Back up one VM into one restore point.

Flow (every cleanup on one ExitStack, so a failure anywhere leaves no snapshot, no open VDDK handle and no
visible restore point): vCenter session -> find the VM -> idempotency (a restore point of this run id ends the
call unchanged) -> repository session (shared lock) -> refuse when another live backup lock of this VM exists
(its snapshot would otherwise be taken for an orphan) -> remove orphan ``blockvault-*`` snapshots of killed runs
-> enable CBT when off and possible -> backup snapshot -> per disk, full or incremental with the reason -> VDDK
PrepareForAccess and one connection per disk reader -> the transfer pipeline into the session, with a thread
keeping the vCenter session (whose cookie VDDK uses) alive -> indexes, manifest (commit) -> snapshot removed,
EndAccess.

Limit: the concurrent-backup check sees the locks of this repository only; two repositories backing up one VM
at the same moment would still remove each other's snapshot.

Per-disk mode: incremental needs the previous restore point of this VM to hold a changeId for a disk with
the same key, uuid, capacity and file, CBT to have been on before this run, and QueryChangedDiskAreas to
answer. Anything else reads that disk in full (allocated areas only) and the result says why; the other
disks stay incremental. Dedup makes a full cost reads, not storage.
"""

from __future__ import annotations

import contextlib
import logging
import time

from ..errors import BlockvaultError, ConfigurationError, LockError
from ..repo import DiskIndex
from ..repo.locks import describe as describe_lock
from ..transfer import TransferOptions
from ..transfer.pipeline import BackupDisk, backup_disks, plan_backup
from ..vddk import library as vddk_library
from ..vddk.connection import Connection
from ..vddk.retry import RetryingDisk, connection_factory
from ..vsphere import cbt, config, disks as vm_disks, inventory, snapshots
from ..vsphere.session import VSphereSession
from ._engine import MIB, RepositoryOpener, new_run_id, run_reporting, utc_iso
from ._vddk_io import SessionKeepalive, connect_arguments

__all__ = ["backup_vm", "MODES"]

log = logging.getLogger("blockvault.backup")

MODES = ("auto", "full", "incremental")
ACCESS_IDENTITY = "blockvault.vsphere"


def _select_disks(disks, include, exclude):
    """Disks to back up, and {label: reason} of those left out (filters, independent disks, physical RDMs)."""
    include = [str(item) for item in include or ()]
    exclude = [str(item) for item in exclude or ()]
    known = {str(disk.key) for disk in disks} | {disk.label for disk in disks}
    unknown = sorted(item for item in include + exclude if item not in known)
    if unknown:
        raise ConfigurationError("include_disks/exclude_disks name disk(s) %s that the VM does not have; its disks are %s."
                                 % (", ".join(unknown), ", ".join("%s (key %s)" % (d.label, d.key) for d in disks)))
    selected, skipped = [], {}
    for disk in disks:
        names = {str(disk.key), disk.label}
        if include and not names & set(include):
            skipped[disk.label] = "not in include_disks"
        elif names & set(exclude):
            skipped[disk.label] = "in exclude_disks"
        elif disk.skip_reason:
            skipped[disk.label] = disk.skip_reason
        else:
            selected.append(disk)
    if not selected:
        raise ConfigurationError("No disk of the VM is left to back up (%s)." % "; ".join("%s: %s" % item for item in skipped.items()))
    return selected, skipped


def _source_placement(vm_obj):
    """Where the VM lives (datacenter, cluster or host, folder), recorded so that a restore to a new VM defaults there."""
    try:
        datacenter = inventory.datacenter_of(vm_obj)
        return {"datacenter": datacenter.name if datacenter is not None else None,
                "compute": vm_obj.resourcePool.owner.name if vm_obj.resourcePool is not None else None,
                "folder": inventory.inventory_path(vm_obj.parent) if vm_obj.parent is not None else None}
    except Exception as exc:  # a template has no pool; an odd inventory must not fail the backup, only lose the default
        log.warning("could not record the placement of the VM: %s", exc)
        return {}


def _full_reason(disk, previous, previous_disk, cbt_status, mode):
    """Why ``disk`` must be read in full, or None when an incremental read may be tried."""
    if mode == "full":
        return "a full backup was requested"
    if previous is None:
        return "this is the VM's first restore point"
    if previous_disk is None:
        return "the previous restore point has no disk with key %s" % disk.key
    if not cbt_status.enabled:
        return cbt_status.reason or "Changed Block Tracking is off on the VM"
    if cbt_status.enabled_now:
        return "Changed Block Tracking was enabled by this run: changes before it are unknown"
    if previous_disk.get("uuid") and disk.uuid and previous_disk["uuid"] != disk.uuid:
        return "the disk's uuid changed since the previous restore point (a different disk)"
    if int(previous_disk["capacity"]) != disk.capacity:
        return "the disk's size changed from %d to %d bytes" % (int(previous_disk["capacity"]), disk.capacity)
    if previous_disk.get("file_name") and previous_disk["file_name"] != disk.file_name:
        return "the disk's file moved from %s to %s" % (previous_disk["file_name"], disk.file_name)
    if not previous_disk.get("change_id"):
        return "the previous restore point stored no change id for the disk"
    return None


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


def _unchanged_result(manifest):
    disks = [{key: disk.get(key) for key in ("key", "label", "mode", "reason", "bytes_read", "bytes_new", "sha256")}
             for disk in manifest["disks"]]
    stats = manifest.get("stats", {})
    return {"changed": False, "restore_point": {"id": manifest["id"], "vm": manifest["vm"]["name"], "created": manifest["created"]},
            "disks": disks, "bytes_read": stats.get("bytes_read", 0), "bytes_written": stats.get("bytes_written", 0),
            "duration": stats.get("duration", 0.0), "throughput_mbps": stats.get("throughput_mbps", 0.0),
            "quiesced": stats.get("quiesced"), "skipped_disks": stats.get("skipped_disks", {}),
            "run_id": manifest["run_id"], "msg": "restore point %s of run %s already exists" % (manifest["id"], manifest["run_id"])}


def _plan_only(disks, skipped, previous, cbt_status, mode, run_id, vm_name):
    """Check mode: what the run would do, from the live configuration (no snapshot, no CBT query)."""
    previous_disks = {d["key"]: d for d in previous["disks"]} if previous else {}
    planned = []
    for disk in disks:
        reason = _full_reason(disk, previous, previous_disks.get(str(disk.key)), cbt_status, mode)
        planned.append({"key": str(disk.key), "label": disk.label, "capacity": disk.capacity,
                        "mode": "full" if reason else "incremental", "reason": reason or "changed areas since %s"
                        % previous["id"]})
    return {"changed": True, "run_id": run_id, "vm": vm_name, "plan": {"disks": planned, "skipped": skipped,
            "previous_restore_point": previous["id"] if previous else None}}


def backup_vm(vsphere, vddk, repo, vm, mode="auto", quiesce=True, allow_crash_consistent=False,
              include_disks=None, exclude_disks=None, workers=4, memory_budget=256 * MIB,
              run_id=None, status_file=None, check=False):
    """Back up the VM selected by ``vm`` (a dict: name | uuid | instance_uuid | moid | path); see the module notes."""
    if mode not in MODES:
        raise ConfigurationError("mode %r: use one of %s." % (mode, ", ".join(MODES)))
    if int(workers) < 1:
        raise ConfigurationError("workers must be 1 or more.")
    run_id = run_id or new_run_id()
    vm_label = None
    # the status file exists from the first moment (a poller learns at once that a login or lookup failed)
    reporting = contextlib.nullcontext() if check else run_reporting(run_id, _selector_text(vm), status_file)
    try:
        with reporting as progress, contextlib.ExitStack() as stack:
            if progress is not None:
                progress.set_phase("connect")
            opening = stack.enter_context(RepositoryOpener(repo))
            session = stack.enter_context(VSphereSession.from_settings(vsphere, vddk_thumbprint=vddk.thumbprint))
            vm_obj = inventory.find_vm_by_spec(session, vm)
            captured = config.capture_config(vm_obj)
            repository = opening.result()
            captured["placement"] = _source_placement(vm_obj)
            vm_label = captured["name"]
            if progress is not None:
                progress.vm = vm_label
            vm_key = captured["instance_uuid"] or captured["bios_uuid"] or vm_obj._moId
            existing = repository.find_restore_point(vm_key, run_id)
            if existing:
                return _unchanged_result(repository.load_manifest(existing))
            previous = _previous_manifest(repository, vm_key)
            if mode == "incremental" and previous is None:
                raise ConfigurationError("VM %s has no restore point yet, so an incremental backup has nothing to build on: "
                                         "run with mode auto (or full) first." % vm_label)
            live_disks, skipped = _select_disks(vm_disks.list_disks(vm_obj), include_disks, exclude_disks)
            if check:
                enabled = cbt.is_cbt_enabled(vm_obj)
                status = cbt.CbtStatus(enabled=enabled, reason=None if enabled else "CBT will be enabled by the run")
                return _plan_only(live_disks, skipped, previous, status, mode, run_id, vm_label)
            try:
                return _run_backup(stack, session, vm_obj, captured, vm_key, previous, mode, quiesce, allow_crash_consistent,
                                   include_disks, exclude_disks, skipped, vddk, repository, workers, memory_budget, run_id,
                                   progress)
            except BlockvaultError as exc:
                # named here, before the repository session's exit fills in its vm key (the instance uuid)
                raise exc.with_context(vm=vm_label, run_id=run_id)
    except BlockvaultError as exc:
        raise exc.with_context(vm=vm_label, run_id=run_id, phase="backup")


def _selector_text(vm):
    """The VM as the user named it, for the status file until the VM is found."""
    return next((str(value) for value in dict(vm or {}).values() if value), None)


def _run_backup(stack, session, vm_obj, captured, vm_key, previous, mode, quiesce, allow_crash_consistent,
                include_disks, exclude_disks, skipped, vddk, repository, workers, memory_budget, run_id, progress):
    started = time.monotonic()
    started_iso = utc_iso()
    vm_label = captured["name"]
    # the repository lock first, then the check for another backup of this VM, then the orphan cleanup: a
    # snapshot of a run that is still going is never taken for an orphan (write-then-check, as the locks do)
    backup = stack.enter_context(repository.begin_backup(vm_key, run_id))
    _refuse_concurrent_backup(repository, vm_key, vm_label)
    progress.set_phase("snapshot")
    snapshots.remove_orphan_snapshots(vm_obj, live_run_ids=[run_id], vm_name=vm_label)
    cbt_status = cbt.ensure_cbt(vm_obj, vm_name=vm_label)
    library = vddk_library.initialize(vddk.libdir, vddk.config_file)
    snap = stack.enter_context(snapshots.backup_snapshot(vm_obj, run_id, quiesce=quiesce,
                                                         allow_crash_consistent=allow_crash_consistent, vm_name=vm_label))
    snap_disks = _select_disks(vm_disks.list_disks(snap.snapshot), include_disks, exclude_disks)[0]
    connect = connect_arguments(session, vddk, vm_obj._moId, snapshot_moref=snap.moref)
    access = Connection(library, read_only=True, **connect)
    stack.callback(access.close)
    if access.prepare_for_access(ACCESS_IDENTITY):
        stack.callback(access.end_access, ACCESS_IDENTITY)
    previous_disks = {d["key"]: d for d in previous["disks"]} if previous else {}
    chunk_size = repository.chunk_size
    items, decisions = [], {}
    progress.set_phase("plan")
    for disk in snap_disks:
        key = str(disk.key)
        previous_disk = previous_disks.get(key)
        reason = _full_reason(disk, previous, previous_disk, cbt_status, mode)
        changed = None
        if reason is None:
            try:
                changed = [(area.start, area.length) for area in
                           cbt.changed_areas(vm_obj, snap, disk.key, disk.capacity, previous_disk["change_id"], disk_label=disk.label)]
            except cbt.CbtReasonError as exc:
                reason = exc.reason
        source = RetryingDisk(connection_factory(library, disk.file_name, read_only=True, **connect), describe=disk.label)
        try:
            previous_index = backup.previous_index(previous["id"], key) if changed is not None else None
            plan = plan_backup(source, chunk_size, changed=changed, previous=previous_index)
        except BaseException:
            source.close()
            for item in items:
                item.source.close()
            raise
        decisions[key] = (disk, "full" if changed is None else "incremental",
                          reason or "changed areas since restore point %s" % previous["id"])
        if reason:
            log.info("disk %s of VM %s is read in full: %s", disk.label, vm_label, reason)
        items.append(BackupDisk(key=key, source=source, plan=plan, index=DiskIndex(disk.capacity, chunk_size),
                                previous=previous_index))
    progress.set_phase("transfer")
    stack.enter_context(SessionKeepalive(session, describe=vm_label))
    results = backup_disks(backup, items, TransferOptions(workers=int(workers), memory_budget=int(memory_budget),
                                                          progress=progress, vm=vm_label, run_id=run_id))
    progress.set_phase("commit")
    manifest_disks = []
    for key, (disk, disk_mode, reason) in decisions.items():
        result = results[key]
        backup.add_disk_index(key, result.index)
        manifest_disks.append({
            "key": key, "label": disk.label, "controller": disk.controller.to_dict(), "unit_number": disk.unit_number,
            "capacity": disk.capacity, "file_name": disk.file_name, "uuid": disk.uuid, "change_id": disk.change_id,
            "mode": disk_mode, "reason": reason, "bytes_read": result.bytes_read, "bytes_new": result.bytes_new,
            "sha256": result.blocksum,
        })
    duration = max(time.monotonic() - started, 1e-6)
    bytes_read = sum(r.bytes_read for r in results.values())
    bytes_written = sum(r.bytes_new for r in results.values())
    stats = {"bytes_read": bytes_read, "bytes_written": bytes_written, "duration": round(duration, 3),
             "throughput_mbps": round(bytes_read / duration / 1e6, 3), "quiesced": snap.quiesced,
             "transport": vddk.transports, "skipped_disks": skipped,
             "chunks": {name: sum(getattr(r, name) for r in results.values())
                        for name in ("chunks_read", "chunks_new", "chunks_deduped", "chunks_zero", "chunks_carried")}}
    modes = {entry["mode"] for entry in manifest_disks}
    manifest = {
        "run_id": run_id, "started": started_iso, "backup_mode": modes.pop() if len(modes) == 1 else "auto",
        "vm": {"key": vm_key, "name": vm_label, "moref": vm_obj._moId, "uuid": captured.get("bios_uuid"),
               "instance_uuid": captured.get("instance_uuid"), "config": captured},
        "disks": manifest_disks, "stats": stats,
    }
    rp_id = backup.commit(manifest)
    committed = repository.load_manifest(rp_id)
    progress.set_phase("cleanup")
    return {
        "changed": True, "run_id": run_id,
        "restore_point": {"id": rp_id, "vm": vm_label, "created": committed["created"]},
        "disks": [{name: entry[name] for name in ("key", "label", "mode", "reason", "bytes_read", "bytes_new")}
                  | {"sha256": committed_disk["sha256"]}
                  for entry, committed_disk in zip(manifest_disks, committed["disks"])],
        "bytes_read": bytes_read, "bytes_written": bytes_written, "duration": round(duration, 3),
        "throughput_mbps": stats["throughput_mbps"], "quiesced": snap.quiesced, "skipped_disks": skipped,
    }
