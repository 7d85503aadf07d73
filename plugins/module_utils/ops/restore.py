# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a restore point: to a new VM, in place, one disk into an existing VM, or one disk to a raw file.

Every target gets the restore point's bytes verified on the way (each chunk against its digest) and the
disk's blocksum recomputed from what was written, which must equal the one recorded at backup time.

Safety: a new VM's name must be free, an in-place target must be powered off, a file must not exist, unless
``force`` (which powers off / replaces). A file restore writes ``PATH.partial`` and renames it when complete,
so a failed restore never leaves a file that looks whole. A new VM whose disks could not be written is
destroyed again (nothing half-restored is left looking usable); until its disks are written it carries the
advanced setting ``blockvault.restore.incomplete``, so a restore killed outright leaves a VM that says so (a rerun
refuses it by name, force replaces it). Disks are written through a RetryingDisk per disk (a transient VDDK
failure reconnects and repeats the write).

In-place rollback writes only the chunks that differ: those CBT reports changed since the restore point (nothing
read), else (CBT cannot answer) those found different by reading and comparing every chunk; each disk's result
says which (``method`` cbt or compare, and ``reason``; see _rollback.py). It switches CBT off before its first
write: writes from outside the guest invalidate the change ids stored with earlier backups, so the next backup
enables CBT again and reads in full (result ``cbt_reset``).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os

from ..errors import BlockvaultError, ChangeTrackingError, ConfigurationError, RestoreRefusedError, VMNotFoundError
from ..transfer import TransferOptions
from ..transfer.endpoints import RawFileTarget
from ..transfer.restore import DiskRestore, restore_disk
from ..vddk import library as vddk_library
from ..vddk.retry import RetryingDisk, connection_factory
from ..vsphere import cbt, config, disks as vm_disks, inventory
from ..vsphere.placement import resolve_placement
from ..vsphere.session import VSphereSession
from . import _rollback
from ._engine import MIB, RepositoryOpener, manifests_of, new_run_id, run_reporting
from ._vddk_io import BeforeFirstWrite, SessionKeepalive, VddkTarget, connect_arguments

__all__ = ["restore", "TARGETS", "select_restore_point"]

log = logging.getLogger("blockvault.restore")

TARGETS = ("new_vm", "in_place", "disk", "file")
#: advanced setting (extraConfig) of a VM whose restore has not finished writing its disks
INCOMPLETE_KEY = "blockvault.restore.incomplete"
INCOMPLETE_VALUE = "restore run %s of restore point %s has not finished writing the disks: delete this VM or restore again"
PLACEMENT_KEYS = ("datacenter", "folder", "resource_pool", "cluster", "host", "datastore")


def _parse_time(value):
    text = str(value).strip().replace("Z", "+00:00")
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError("before %r is not a time: give ISO-8601, e.g. 2026-11-26T03:00:00Z." % (value,)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def select_restore_point(repository, restore_point="latest", vm_name=None, before=None):
    """The manifest of ``restore_point`` (an id), or of the latest (before ``before``) of the VM named ``vm_name``."""
    if restore_point and restore_point != "latest":
        return repository.load_manifest(restore_point)
    if not vm_name:
        raise ConfigurationError("restore_point is 'latest': give the name of the backed-up VM too (name).")
    limit = _parse_time(before) if before else None
    candidates = [manifest for manifest in manifests_of(repository, vm_name)
                  if limit is None or _parse_time(manifest["created"]) < limit]
    if not candidates:
        raise ConfigurationError("No restore point of VM %s%s in the repository: check the name (backup_info lists them)."
                                 % (vm_name, " before %s" % before if before else ""))
    return candidates[-1]


def _disk_entry(manifest, disk):
    for entry in manifest["disks"]:
        if disk is not None and str(disk) in (entry["key"], entry.get("label")):
            return entry
    raise ConfigurationError("Restore point %s has no disk %r; its disks are %s." % (
        manifest["id"], disk, ", ".join("%s (key %s)" % (e.get("label"), e["key"]) for e in manifest["disks"])))


def _restore_one(repository, manifest, entry, target, workers, memory_budget, progress, run_id, compare=False,
                 changed_chunks=None):
    index = repository.load_disk_index(manifest["id"], entry["key"])
    if progress is not None:
        progress.set_phase("transfer")

    def fetch(digest):
        return repository.read_chunk(repository.codec.storage_id(digest))

    result = restore_disk(DiskRestore(entry["key"], index, fetch, target, changed_chunks=changed_chunks, compare=compare),
                          TransferOptions(workers=workers, memory_budget=memory_budget, progress=progress,
                                          vm=manifest["vm"]["name"], run_id=run_id))
    if result.blocksum != entry["sha256"]:
        raise BlockvaultError("Disk %s restored to data whose SHA-256 %s differs from the recorded %s." % (
            entry["key"], result.blocksum, entry["sha256"]), phase="restore", disk=entry["key"])
    return {"key": entry["key"], "label": entry.get("label"), "sha256": result.blocksum, "bytes_written": result.bytes_written,
            "chunks_written": result.chunks_written, "chunks_zeroed": result.chunks_zeroed, "bytes_zeroed": result.bytes_zeroed,
            "chunks_unchanged": result.chunks_unchanged}


def _fsync_directory(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _restore_file(repository, manifest, disk, path, force, workers, memory_budget, progress, run_id, check):
    entry = _disk_entry(manifest, disk if disk is not None else manifest["disks"][0]["key"])
    if not path:
        raise ConfigurationError("target file needs path: where to write the raw image.")
    path = os.path.abspath(path)
    if os.path.exists(path) and not force:
        raise RestoreRefusedError("%s exists: restoring disk %s there would overwrite it. Choose another path or set force."
                                  % (path, entry["key"]))
    diff = {"before": {"path": path, "exists": os.path.exists(path)}, "after": {"path": path, "capacity": entry["capacity"]}}
    if check:
        return {"changed": True, "path": path, "disks": [{"key": entry["key"], "sha256": entry["sha256"]}], "diff": diff}
    partial = path + ".partial"
    target = RawFileTarget(partial, entry["capacity"], create=True)
    try:
        with contextlib.closing(target):
            written = _restore_one(repository, manifest, entry, target, workers, memory_budget, progress, run_id)
        os.replace(partial, path)
        _fsync_directory(os.path.dirname(path))   # the rename itself must survive a crash, not only the data
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return {"changed": True, "path": path, "disks": [written], "diff": diff}


def _write_vm_disks(session, library, vddk, repository, manifest, vm_moref, pairs, known_zeroed, workers, memory_budget,
                    progress, run_id, before_write=None, options=None):
    """Write each (manifest disk entry, target disk file name) pair, one disk after the other.

    ``options``: {disk key: keyword arguments of restore_disk} (compare, changed_chunks) of an in-place rollback.

    Each disk gets its own read-write VDDK connection behind a RetryingDisk, as the backup's readers do: a
    transient failure (lost connection) reconnects and repeats the write (idempotent) instead of failing a
    restore that may have run for hours (and, for a new VM, destroying it).
    """
    results = []
    connect = connect_arguments(session, vddk, vm_moref)
    with SessionKeepalive(session, describe="VM %s" % vm_moref):
        for entry, file_name in pairs:
            handle = RetryingDisk(connection_factory(library, file_name, read_only=False, **connect),
                                  describe="disk %s of VM %s" % (entry.get("label") or entry["key"], vm_moref))
            with contextlib.closing(VddkTarget(handle, known_zeroed, before_write=before_write)) as target:
                results.append(_restore_one(repository, manifest, entry, target, workers, memory_budget, progress, run_id,
                                            **(options or {}).get(entry["key"], {})))
    return results


def _existing_vm(session, name):
    try:
        return inventory.find_vm(session, name=name)
    except VMNotFoundError:
        return None


def _power_state(vm):
    return str(vm.runtime.powerState)


def _placement(session, captured, placement_args):
    """Resolve where the new VM goes: what the user gave, else where the backed-up VM was (when that still exists)."""
    default_datastore = (captured.get("disks") or [{}])[0].get("datastore")
    source = captured.get("placement") or {}
    defaults = {}
    if not any(placement_args.get(key) for key in ("resource_pool", "host")) and source.get("compute"):
        defaults["resource_pool"] = source["compute"]
    if not placement_args.get("folder") and source.get("folder") and not placement_args.get("datacenter"):
        defaults["folder"] = source["folder"]
    if not placement_args.get("datacenter") and source.get("datacenter"):
        defaults["datacenter"] = source["datacenter"]
    if defaults:
        try:
            return resolve_placement(session, default_datastore=default_datastore, **dict(defaults, **placement_args))
        except ConfigurationError as exc:   # the original place is gone (a DR site): say what the user must set
            log.info("the backed-up VM's placement %s is not usable here (%s); using the restore's own options", defaults, exc)
    return resolve_placement(session, default_datastore=default_datastore, **placement_args)


def _restore_new_vm(session, vddk, repository, manifest, new_name, overrides, force, workers, memory_budget, progress,
                    run_id, check):
    overrides = dict(overrides or {})
    power_on = bool(overrides.pop("power_on", False))
    placement_args = {key: overrides.pop(key) for key in PLACEMENT_KEYS if overrides.get(key)}
    if "cluster" in placement_args:
        placement_args.setdefault("resource_pool", placement_args.pop("cluster"))
    name = new_name or overrides.pop("name", None)
    if not name:
        raise ConfigurationError("target new_vm needs new_name: the name of the VM to create.")
    overrides["name"] = name
    if "network_mapping" in overrides:
        overrides["network_map"] = overrides.pop("network_mapping")
    captured = manifest["vm"]["config"]
    existing = _existing_vm(session, name)
    diff = {"before": {"vm": name, "exists": existing is not None},
            "after": {"vm": name, "num_cpus": overrides.get("num_cpus", captured.get("num_cpus")),
                      "memory_mb": overrides.get("memory_mb", captured.get("memory_mb")),
                      "disks": [{"key": d["key"], "capacity": d["capacity"]} for d in manifest["disks"]], "power_on": power_on}}
    if existing is not None:
        if not force:
            if _is_incomplete_restore(existing):
                raise RestoreRefusedError("A VM named %s exists already, left by a restore that did not complete (its advanced "
                                          "setting %s says so): set force to replace it, or choose another new_name."
                                          % (name, INCOMPLETE_KEY))
            raise RestoreRefusedError("A VM named %s exists already: choose another new_name, or set force to replace it." % name)
        if _power_state(existing) == "poweredOn" and not check:
            config.power_off(existing)
    placement = _placement(session, captured, placement_args)
    if check:
        return {"changed": True, "vm": {"name": name}, "disks": [{"key": d["key"], "sha256": d["sha256"]} for d in manifest["disks"]],
                "diff": diff}
    if existing is not None:
        config.destroy_vm(existing)
    backed_up = {d["key"] for d in manifest["disks"]}
    captured = dict(captured, disks=[d for d in captured.get("disks", []) if str(d["key"]) in backed_up])
    if progress is not None:
        progress.set_phase("create_vm")
    created = config.create_vm(session, captured, overrides, placement.folder, placement.resource_pool, placement.datastore,
                               host=placement.host)
    try:
        # Until its disks are written the VM carries a marker: a restore killed on the way (kill -9, a crashed host)
        # leaves a VM that says it is incomplete, not a half-written one that looks good.
        config.set_extra_config(created.vm, {INCOMPLETE_KEY: INCOMPLETE_VALUE % (run_id, manifest["id"])})
        library = vddk_library.initialize(vddk.libdir, vddk.config_file)
        pairs = [(entry, created.disks[_captured_key(created.disks, entry["key"])].file_name) for entry in manifest["disks"]]
        written = _write_vm_disks(session, library, vddk, repository, manifest, created.moref, pairs, True, workers,
                                  memory_budget, progress, run_id)
        config.set_extra_config(created.vm, {INCOMPLETE_KEY: ""})
        if power_on:
            config.power_on(created.vm)
    except BaseException:
        log.error("restore into new VM %s failed: destroying it so that no half-restored VM is left", name)
        with contextlib.suppress(Exception):
            config.destroy_vm(created.vm)
        raise
    return {"changed": True, "vm": {"name": name, "moid": created.moref, "powered_on": power_on}, "disks": written, "diff": diff}


def _is_incomplete_restore(vm):
    try:
        return bool(config.extra_config_value(vm, INCOMPLETE_KEY))
    except Exception:  # only refines a message
        return False


def _captured_key(mapping, key):
    for candidate in mapping:
        if str(candidate) == str(key):
            return candidate
    raise ConfigurationError("The new VM has no disk for backed-up disk %s." % key)


def _in_place_disks(vm, manifest):
    """(manifest disk entry, live DiskInfo) pairs of an in-place rollback; RestoreRefusedError for a missing disk."""
    live = {str(d.key): d for d in vm_disks.list_disks(vm)}
    pairs = []
    for entry in manifest["disks"]:
        disk = live.get(entry["key"])
        if disk is None or disk.capacity != entry["capacity"]:
            raise RestoreRefusedError("VM %s has no disk %s of %d bytes to roll back: restore to a new VM instead." % (
                vm.name, entry["key"], entry["capacity"]))
        pairs.append((entry, disk))
    return pairs


def _restore_in_place(session, vddk, repository, manifest, vm_selector, force, workers, memory_budget, progress,
                      run_id, check):
    backed_up = manifest["vm"]
    selector = vm_selector or ({"instance_uuid": backed_up["instance_uuid"]} if backed_up.get("instance_uuid") else {"name": backed_up["name"]})
    vm = inventory.find_vm_by_spec(session, selector)
    disk_pairs = _in_place_disks(vm, manifest)
    powered_on = _power_state(vm) == "poweredOn"
    if powered_on and not force:
        raise RestoreRefusedError("VM %s is powered on: an in-place restore would overwrite the disks of a running VM. Power "
                                  "it off first, or set force to have it powered off." % vm.name)
    planned = [{"key": entry["key"], "sha256": entry["sha256"]} for entry, _disk in disk_pairs]
    diff = {"before": {"vm": vm.name, "power_state": _power_state(vm)}, "after": {"vm": vm.name, "disks": planned}}
    if check:
        return {"changed": True, "vm": {"name": vm.name, "moid": vm._moId}, "disks": planned, "diff": diff}
    if powered_on:
        config.power_off(vm)
    # CBT since the restore point says which chunks to rewrite; asked before CBT goes off below (it needs the epoch)
    if progress is not None:
        progress.set_phase("plan")
    methods = {plan.key: plan for plan in _rollback.plan_rollback(vm, disk_pairs, run_id, repository.chunk_size)}
    library = vddk_library.initialize(vddk.libdir, vddk.config_file)
    # Writes from outside the guest invalidate the change ids of earlier backups (CBT may not see them): CBT goes off
    # before the first write, so the next backup enables it again and reads in full. Nothing to write, no reset.
    cbt_reset = BeforeFirstWrite(lambda: _switch_cbt_off_before_rollback(vm))
    written = _write_vm_disks(session, library, vddk, repository, manifest, vm._moId,
                              [(entry, disk.file_name) for entry, disk in disk_pairs], False, workers, memory_budget, progress,
                              run_id, before_write=cbt_reset, options={key: plan.restore_options() for key, plan in methods.items()})
    for disk in written:
        disk.update(method=methods[disk["key"]].method, reason=methods[disk["key"]].reason)
    # a chunk that held data where the restore point has zeros is zeroed, not written: a change too
    changed = any(d["chunks_written"] or d["chunks_zeroed"] for d in written)
    return {"changed": changed, "vm": {"name": vm.name, "moid": vm._moId}, "disks": written, "diff": diff,
            "cbt_reset": cbt_reset.done}


def _switch_cbt_off_before_rollback(vm):
    try:
        cbt.disable_cbt(vm, vm_name=vm.name)
    except ChangeTrackingError as exc:
        raise ChangeTrackingError("VM %s: switching Changed Block Tracking off before the in-place restore failed, so nothing "
                                  "was written (the restore's writes would make the change ids of earlier backups wrong): %s"
                                  % (vm.name, exc.message), vm=vm.name,
                                  hint="Fix the cause (a VM with snapshots cannot always be reconfigured), or restore to a new "
                                       "VM.") from exc


def _restore_disk_to_vm(session, vddk, repository, manifest, disk, vm_selector, overrides, workers, memory_budget,
                        progress, run_id, check):
    entry = _disk_entry(manifest, disk if disk is not None else manifest["disks"][0]["key"])
    if not vm_selector:
        raise ConfigurationError("target disk needs the VM that receives the disk (target_vm).")
    vm = inventory.find_vm_by_spec(session, vm_selector)
    controller = next(iter(vm_disks.list_controllers(vm).values()), None)
    if controller is None:
        raise ConfigurationError("VM %s has no disk controller to attach the restored disk to." % vm.name)
    used = {d.unit_number for d in vm_disks.list_disks(vm) if d.controller.key == controller.key}
    unit = next(u for u in range(16) if u != 7 and u not in used)
    diff = {"before": {"vm": vm.name}, "after": {"vm": vm.name, "new_disk": {"capacity": entry["capacity"], "unit_number": unit}}}
    if check:
        return {"changed": True, "vm": {"name": vm.name, "moid": vm._moId}, "disks": [{"key": entry["key"], "sha256": entry["sha256"]}],
                "diff": diff}
    thick = (overrides or {}).get("disk_format") in ("thick", "eagerzeroedthick")
    new_disk = config.add_disk(vm, controller.key, unit, entry["capacity"], thin=not thick)
    library = vddk_library.initialize(vddk.libdir, vddk.config_file)
    written = _write_vm_disks(session, library, vddk, repository, manifest, vm._moId, [(entry, new_disk.file_name)], True,
                              workers, memory_budget, progress, run_id)
    return {"changed": True, "vm": {"name": vm.name, "moid": vm._moId}, "disks": written, "diff": diff}


def restore(vsphere, vddk, repo, restore_point="latest", vm_name=None, before=None, target="new_vm",
            new_name=None, disk=None, path=None, overrides=None, force=False, workers=4, memory_budget=256 * MIB,
            status_file=None, check=False, target_vm=None):
    """Restore (see the module notes). Returns {changed, restore_point, vm or path, disks: [{key, sha256, ...}], diff}."""
    if target not in TARGETS:
        raise ConfigurationError("target %r: use one of %s." % (target, ", ".join(TARGETS)))
    run_id = new_run_id()
    # the status file exists from the first moment (a poller learns at once that opening or selecting failed)
    reporting = contextlib.nullcontext() if check else run_reporting(run_id, vm_name or restore_point, status_file)
    try:
        with reporting as progress, contextlib.ExitStack() as stack:
            if progress is not None:
                progress.set_phase("connect")
            opening = stack.enter_context(RepositoryOpener(repo))
            if target != "file":     # logged in while the repository opens
                session = stack.enter_context(VSphereSession.from_settings(vsphere, vddk_thumbprint=vddk.thumbprint))
            repository = opening.result()
            manifest = select_restore_point(repository, restore_point, vm_name, before)
            if progress is not None:
                progress.vm = manifest["vm"]["name"]
            common = dict(workers=int(workers), memory_budget=int(memory_budget), progress=progress, run_id=run_id, check=check)
            if target == "file":
                result = _restore_file(repository, manifest, disk, path, force, **common)
            elif target == "new_vm":
                result = _restore_new_vm(session, vddk, repository, manifest, new_name, overrides, force, **common)
            elif target == "in_place":
                result = _restore_in_place(session, vddk, repository, manifest, target_vm, force, **common)
            else:
                result = _restore_disk_to_vm(session, vddk, repository, manifest, disk, target_vm, overrides, **common)
            result["restore_point"] = {"id": manifest["id"], "vm": manifest["vm"]["name"], "created": manifest["created"]}
            return result
    except BlockvaultError as exc:
        raise exc.with_context(run_id=run_id, phase="restore")
