# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a restore goes: one class per target, each with its options and its own ``run(context, manifest)``.

- ``File``: one disk to an image file - raw (sparse), or qcow2 / VMDK (``ImageFormat``: qemu-img reading the restore
  point through a private NBD export, ops._exports) - written as ``PATH.partial`` and renamed when complete, so a
  failed restore never leaves a file that looks whole; or onto a block device (a LUN, a local disk), in place (transfer/block_device.py):
  with force only, never while it is mounted or held (LVM, dm, RAID), never one smaller than the disk. A directory or
  another special file (character device, FIFO, socket) is refused by name.
- ``NewVm``: a new VM created from the captured configuration (placed where the backed-up VM lived unless told
  otherwise). Until its disks are written it carries the advanced setting ``blockvault.restore.incomplete``, so a
  restore killed outright leaves a VM that says so (a rerun refuses it by name, force replaces it); a VM whose disks
  could not be written is destroyed again.
- ``InPlace``: the VM's own disks rolled back, writing only the chunks that differ (ops/_rollback.py); CBT goes off
  before the first write, so the next backup reads in full (result ``cbt_reset``).
- ``DiskToVm``: one disk added to an existing VM.

Safety: a new VM's name must be free, an in-place target powered off, a file absent, unless ``force`` (which
powers off / replaces). Targets are immutable values; ``run`` is called once per restore by the run's thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import stat

from ..errors import ChangeTrackingError, ConfigurationError, RestoreRefusedError
from ..export.image import ImageFormat, convert_image
from ..fileio import fsync_directory
from ..transfer.block_device import BlockDeviceTarget, device_in_use, device_size, special_file_kind
from ..transfer.endpoints import RawFileTarget
from ..vsphere.config import DISK_FORMATS, check_network_mapping, target_network_name
from ..vsphere.placement import resolve_placement
from ..vsphere.vm import VmSelector, create_vm, find_vm, find_vm_or_none, identity_conflicts
from . import _rollback
from ._exports import held
from ._restore_io import DiskWrite, restore_one_disk, write_vm_disks
from ._vddk_io import BeforeFirstWrite

__all__ = ["RestoreTarget", "File", "ImageFormat", "NewVm", "InPlace", "DiskToVm", "Placement", "INCOMPLETE_KEY"]

log = logging.getLogger("blockvault.restore")

#: advanced setting (extraConfig) of a VM whose restore has not finished writing its disks
INCOMPLETE_KEY = "blockvault.restore.incomplete"
INCOMPLETE_VALUE = "restore run %s of restore point %s has not finished writing the disks: delete this VM or restore again"
#: advanced setting of a VM a restore created: the restore point it holds (a rerun of the same restore converges on it)
RESTORED_FROM_KEY = "blockvault.restore.from"
#: advanced setting of a VM that received a disk: ``<prefix>.<restore point id>.<disk key>`` = the disk's file name
RESTORED_DISK_PREFIX = "blockvault.restore.disk"


class RestoreTarget:
    """Base of the restore targets: ``needs_vsphere`` says whether the run logs in to vCenter."""

    needs_vsphere = True

    def run(self, context, manifest):
        """Restore ``manifest`` (or plan it in check mode); the result dict (changed, disks, diff, ...)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class File(RestoreTarget):
    """One disk (``disk``: key or label; the first when None) to the image file ``path`` in ``image_format`` (an
    ImageFormat: raw by default), or onto the block device ``path`` (raw, in place; see the module docstring).
    ``force`` overwrites an existing file or a device."""

    path: str
    disk: str = None
    force: bool = False
    image_format: ImageFormat = ImageFormat()

    needs_vsphere = False

    def __post_init__(self):
        if not self.path:
            raise ConfigurationError("target file needs path: where to write the raw image.")
        if not isinstance(self.image_format, ImageFormat):
            raise ConfigurationError("image_format must be an ImageFormat, not %r." % (self.image_format,))

    def run(self, context, manifest):
        entry = manifest.disk(self.disk)
        path = os.path.abspath(self.path)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISBLK(mode):
            if self.image_format.name != "raw":
                raise RestoreRefusedError("%s is a block device: a disk is written onto a device raw only, not as %s. "
                                          "Choose a file path." % (path, self.image_format.describe()))
            return self._to_device(context, manifest, entry, path)
        kind = special_file_kind(mode) if mode is not None else None
        if kind == "directory":
            raise RestoreRefusedError("%s is a directory: path must name the raw image file to write (for example %s) or "
                                      "a block device." % (path, os.path.join(path, "disk-%s.raw" % entry.key.value)))
        if kind:
            raise RestoreRefusedError("%s is a %s: a restore writes a raw image to a regular file or onto a block device "
                                      "only. Choose another path." % (path, kind))
        exists = mode is not None
        if exists and not self.force:
            raise RestoreRefusedError("%s exists: restoring disk %s there would overwrite it. Choose another path or set force."
                                      % (path, entry.key))
        diff = {"before": {"path": path, "exists": exists},
                "after": {"path": path, "capacity": entry.capacity, "format": self.image_format.describe()}}
        if context.check:
            return {"changed": True, "path": path, "disks": [{"key": entry.key.value, "sha256": entry.sha256}], "diff": diff}
        partial = path + ".partial"
        try:
            if self.image_format.name == "raw":
                with contextlib.closing(RawFileTarget(partial, entry.capacity, create=True)) as target:
                    written = restore_one_disk(context, manifest, DiskWrite(entry=entry, disk=None), target)
            else:
                written = self._to_image(context, manifest, entry, partial)
            os.replace(partial, path)
            fsync_directory(os.path.dirname(path))   # the rename itself must survive a crash, not only the data
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        return {"changed": True, "path": path, "format": self.image_format.describe(), "disks": [written], "diff": diff}

    def _to_image(self, context, manifest, entry, partial):
        """qemu-img writing ``partial`` in the image format, reading the disk through a private read-only export:
        every chunk verified as the export reads it, zero chunks skipped through block status."""
        context.set_phase("transfer")
        with held("image-%s" % context.run_id, manifest, [entry], context.endpoints.repo) as state:
            with context.interruptible():
                convert_image(state.disks[0].uri, partial, self.image_format)
        return {"key": entry.key.value, "label": entry.label, "sha256": entry.sha256, "format": self.image_format.describe(),
                "bytes_written": os.path.getsize(partial)}

    def _to_device(self, context, manifest, entry, path):
        """Onto the block device ``path``, in place: refused without force, while in use, or when it is too small."""
        if not self.force:
            raise RestoreRefusedError("%s is a block device: restoring disk %s onto it overwrites its data. Set force to "
                                      "write the disk onto the device, or choose another path." % (path, entry.key))
        in_use = device_in_use(path)
        if in_use:
            raise RestoreRefusedError("The block device %s is in use (%s): a restore never writes onto a device in use. "
                                      "Unmount or release it first." % (path, in_use))
        size = device_size(path)
        if size < entry.capacity:
            raise RestoreRefusedError("The block device %s holds %d bytes, fewer than the %d bytes of disk %s: choose a "
                                      "device of at least the disk's size." % (path, size, entry.capacity, entry.key))
        warnings = []
        if size > entry.capacity:
            warnings.append("the block device %s holds %d bytes, %d more than disk %s: the disk is written onto its first "
                            "%d bytes and the rest is left as it was" % (path, size, size - entry.capacity, entry.key,
                                                                         entry.capacity))
        diff = {"before": {"path": path, "exists": True, "block_device": True, "size": size},
                "after": {"path": path, "capacity": entry.capacity}}
        result = {"changed": True, "path": path, "device": {"size": size, "bytes_past_disk": size - entry.capacity},
                  "diff": diff}
        if warnings:
            result["warnings"] = warnings
        if context.check:
            return dict(result, disks=[{"key": entry.key.value, "sha256": entry.sha256}])
        with contextlib.closing(BlockDeviceTarget(path, entry.capacity)) as target:
            written = restore_one_disk(context, manifest, DiskWrite(entry=entry, disk=None), target)
        return dict(result, disks=[written])


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a new VM goes, by inventory names; unset ones default to where the backed-up VM lived."""

    datacenter: str = None
    folder: str = None
    resource_pool: str = None       # a cluster, host or resource pool name
    host: str = None
    datastore: str = None

    def resolve(self, session, source, default_datastore):
        """The vsphere Placement: what the user gave, else the backed-up VM's (``source``: {datacenter, compute,
        folder}) when that still exists (a DR site may lack it: then the user's own options decide)."""
        given = {key: value for key, value in dataclasses.asdict(self).items() if value}
        defaults = {}
        if not (self.resource_pool or self.host) and source.get("compute"):
            defaults["resource_pool"] = source["compute"]
        if not self.folder and not self.datacenter and source.get("folder"):
            defaults["folder"] = source["folder"]
        if not self.datacenter and source.get("datacenter"):
            defaults["datacenter"] = source["datacenter"]
        if defaults:
            try:
                return resolve_placement(session, default_datastore=default_datastore, **dict(defaults, **given))
            except ConfigurationError as exc:
                log.info("the backed-up VM's placement %s is not usable here (%s); using the restore's own options", defaults, exc)
        return resolve_placement(session, default_datastore=default_datastore, **given)


@dataclasses.dataclass(frozen=True)
class NewVm(RestoreTarget):
    """A new VM named ``name`` from the restore point's configuration; ``network_mapping`` maps the backed-up VM's
    networks to networks where it is restored; ``config_overrides`` changes captured settings (num_cpus,
    cores_per_socket, memory_mb, annotation, guest_id, hardware_version); ``keep_identity`` (a DR restore) gives the
    new VM the backed-up VM's BIOS and instance UUIDs and MAC addresses, refused when another VM has any of them.
    ``shared_network_mapping``: the mapping is one site's, shared by several VMs (a DR runbook), so entries for
    networks this VM never had are ignored instead of refused as typos."""

    name: str
    placement: Placement = Placement()
    network_mapping: dict = None
    disk_format: str = "same"
    power_on: bool = False
    force: bool = False
    config_overrides: dict = None
    keep_identity: bool = False
    shared_network_mapping: bool = False

    def __post_init__(self):
        if not self.name:
            raise ConfigurationError("target new_vm needs new_name: the name of the VM to create.")
        if self.disk_format not in DISK_FORMATS:
            raise ConfigurationError("disk_format %r is not one of %s." % (self.disk_format, ", ".join(DISK_FORMATS)))

    def run(self, context, manifest):
        captured = manifest.vm.config
        overrides = self._overrides(captured)
        check_network_mapping(captured.nics, overrides["network_map"])     # a typo is refused, in check mode too
        existing = find_vm_or_none(context.session, self.name)
        if existing is not None and not self.force and _restored_from(existing) == manifest.id:
            # a rerun of this restore (a DR playbook run again after a later step failed): the VM is what it asks for
            return {"changed": False, "vm": {"name": self.name, "moid": existing.moref, "powered_on": existing.is_powered_on},
                    "disks": [{"key": d.key.value, "sha256": d.sha256} for d in manifest.disks],
                    "diff": {"before": {"vm": self.name, "exists": True}, "after": {"vm": self.name, "exists": True}},
                    "msg": "VM %s was restored from restore point %s already: left as it is." % (self.name, manifest.id)}
        if existing is not None:
            self._check_replace(existing)
            if existing.is_powered_on and not context.check:
                existing.power_off()
        if self.keep_identity:
            self._check_identity_free(context.session, captured, existing)
        default_datastore = (captured.disks or [{}])[0].get("datastore")
        placement = self.placement.resolve(context.session, captured.placement or {}, default_datastore)
        diff = {"before": {"vm": self.name, "exists": existing is not None},
                "after": {"vm": self.name, "num_cpus": overrides.get("num_cpus", captured.num_cpus),
                          "memory_mb": overrides.get("memory_mb", captured.memory_mb),
                          "placement": placement.describe(),
                          "networks": [{"adapter": nic.get("label") or str(nic.get("key")), "backed_up_network": nic.get("network"),
                                        "network": target_network_name(nic, overrides)} for nic in captured.nics],
                          "disks": [{"key": d.key.value, "capacity": d.capacity} for d in manifest.disks],
                          "power_on": self.power_on}}
        if context.check:
            return {"changed": True, "vm": {"name": self.name},
                    "disks": [{"key": d.key.value, "sha256": d.sha256} for d in manifest.disks], "diff": diff}
        if existing is not None:
            existing.destroy()
        context.set_phase("create_vm")
        config = captured.with_disks(disk.key for disk in manifest.disks).to_json()
        # Until its disks are written the VM carries a marker: a restore killed on the way (kill -9, a crashed host)
        # leaves a VM that says it is incomplete, not a half-written one that looks good. The marker is part of the
        # creation itself: set by a reconfigure afterwards, a kill in between left an empty VM without it.
        marked = dict(overrides, extra_config={INCOMPLETE_KEY: INCOMPLETE_VALUE % (context.run_id, manifest.id)})
        created, new_disks = create_vm(context.session, config, marked, placement)
        try:
            writes = [DiskWrite(entry=entry, disk=_new_disk(new_disks, entry)) for entry in manifest.disks]
            written = write_vm_disks(context, manifest, created, writes, known_zeroed=True)
            created.set_extra_config({INCOMPLETE_KEY: "", RESTORED_FROM_KEY: manifest.id})
            if self.power_on:
                created.power_on()
        except BaseException:
            log.error("restore into new VM %s failed: destroying it so that no half-restored VM is left", self.name)
            with contextlib.suppress(Exception):
                created.destroy()
            raise
        return {"changed": True, "vm": {"name": self.name, "moid": created.moref, "powered_on": self.power_on},
                "disks": written, "diff": diff}

    def _network_mapping(self, captured):
        """network_mapping as this VM uses it: a shared (site) mapping keeps only the networks the VM had."""
        mapping = dict(self.network_mapping or {})
        if self.shared_network_mapping:
            had = {nic.get("network") for nic in captured.nics or ()}
            mapping = {name: target for name, target in mapping.items() if name in had}
        return mapping

    def _overrides(self, captured):
        """What vsphere.config changes in the captured configuration."""
        identity = {"keep_mac_addresses": True, "keep_uuids": True} if self.keep_identity else {}
        return dict(self.config_overrides or {}, name=self.name, disk_format=self.disk_format,
                    network_map=self._network_mapping(captured), **identity)

    def _check_identity_free(self, session, captured, existing):
        conflicts = identity_conflicts(session, captured.to_json(), ignore_moref=existing.moref if existing else None)
        if conflicts:
            raise RestoreRefusedError("VM %s cannot keep the identity of the backed-up VM %s: %s. Two VMs with one UUID or MAC "
                                      "address clash (vCenter silently changes a duplicate instance UUID; duplicate MACs "
                                      "break both VMs' network)." % (self.name, captured.name, "; ".join(conflicts)),
                                      hint="Restore without keep_identity, or remove or reconfigure the VM named first.")

    def _check_replace(self, existing):
        if self.force:
            return
        incomplete = False
        with contextlib.suppress(Exception):   # only refines the message
            incomplete = bool(existing.extra_config_value(INCOMPLETE_KEY))
        if incomplete:
            raise RestoreRefusedError("A VM named %s exists already, left by a restore that did not complete (its advanced "
                                      "setting %s says so): set force to replace it, or choose another new_name."
                                      % (self.name, INCOMPLETE_KEY))
        raise RestoreRefusedError("A VM named %s exists already: choose another new_name, or set force to replace it." % self.name)


def _restored_from(vm):
    """The restore point a complete restore wrote on ``vm``, or None (never restored, or not complete)."""
    try:
        if vm.extra_config_value(INCOMPLETE_KEY):
            return None
        return vm.extra_config_value(RESTORED_FROM_KEY) or None
    except Exception as exc:  # pylint: disable=broad-exception-caught
        log.debug("cannot read the restore marks of VM %s: %s", vm.name, exc)   # then it is not recognised as ours
        return None


def _new_disk(new_disks, entry):
    for key, disk in new_disks.items():
        if str(key) == entry.key.value:
            return disk
    raise ConfigurationError("The new VM has no disk for backed-up disk %s." % entry.key)


@dataclasses.dataclass(frozen=True)
class InPlace(RestoreTarget):
    """The backed-up VM itself (or ``vm``), its disks rolled back to the restore point; ``force`` powers it off,
    ``power_on`` powers it on once the disks are written."""

    vm: VmSelector = None
    force: bool = False
    power_on: bool = False

    def __post_init__(self):
        object.__setattr__(self, "vm", VmSelector.of(self.vm))

    def run(self, context, manifest):
        backed_up = manifest.vm
        selector = self.vm or (VmSelector(instance_uuid=backed_up.instance_uuid) if backed_up.instance_uuid
                               else VmSelector(name=backed_up.name))
        vm = find_vm(context.session, selector)
        pairs = _in_place_disks(vm, manifest)
        powered_on = vm.is_powered_on
        if powered_on and not self.force:
            raise RestoreRefusedError("VM %s is powered on: an in-place restore would overwrite the disks of a running VM. Power "
                                      "it off first, or set force to have it powered off." % vm.name)
        planned = [{"key": entry.key.value, "sha256": entry.sha256} for entry, _disk in pairs]
        chunk_size = context.repository.chunk_size
        # what the rollback does to the VM, said before it does it: powered off (force), how many chunks written
        diff = {"before": {"vm": vm.name, "power_state": vm.power_state},
                "after": {"vm": vm.name, "power_state": "poweredOff", "powered_off_by_restore": powered_on,
                          "disks": [dict(disk, chunks_to_write=_up_to_chunks(entry.capacity, chunk_size))
                                    for disk, (entry, _live) in zip(planned, pairs)]}}
        if context.check:
            return {"changed": True, "vm": {"name": vm.name, "moid": vm.moref}, "disks": planned, "diff": diff}
        if powered_on:
            vm.power_off()
        # CBT since the restore point says which chunks to rewrite; asked before CBT goes off below (it needs the epoch)
        context.set_phase("plan")
        methods = _rollback.plan_rollback(vm, pairs, context.run_id, context.repository.chunk_size)
        # Writes from outside the guest invalidate the change ids of earlier backups (CBT may not see them): CBT goes off
        # before the first write, so the next backup enables it again and reads in full. Nothing to write, no reset.
        cbt_reset = BeforeFirstWrite(lambda: _switch_cbt_off_before_rollback(vm))
        writes = [plan.disk_write(entry, disk) for plan, (entry, disk) in zip(methods, pairs)]
        written = write_vm_disks(context, manifest, vm, writes, known_zeroed=False, before_write=cbt_reset)
        for disk, plan in zip(written, methods):
            disk.update(method=plan.method, reason=plan.reason)
        # a chunk that held data where the restore point has zeros is zeroed, not written: a change too
        changed = any(d["chunks_written"] or d["chunks_zeroed"] for d in written)
        for side, disk in zip(diff["after"]["disks"], written):     # the real figures replace the estimate
            side["chunks_to_write"] = disk["chunks_written"] + disk["chunks_zeroed"]
        if self.power_on and not vm.is_powered_on:
            vm.power_on()
            changed = True
        return {"changed": changed or powered_on, "vm": {"name": vm.name, "moid": vm.moref, "powered_on": vm.is_powered_on},
                "disks": written, "diff": diff, "cbt_reset": cbt_reset.done}


def _up_to_chunks(capacity, chunk_size):
    """The check mode's bound on the chunks a rollback writes: it learns which differ only by asking CBT (which
    takes a snapshot) or comparing every chunk, so at most all of them."""
    count = -(-capacity // chunk_size)
    return "up to %d (of %d; only those that differ from the restore point are written)" % (count, count)


def _in_place_disks(vm, manifest):
    """(DiskEntry, live DiskInfo) pairs of an in-place rollback; RestoreRefusedError for a missing disk."""
    live = {str(d.key): d for d in vm.disks()}
    pairs = []
    for entry in manifest.disks:
        disk = live.get(entry.key.value)
        if disk is None or disk.capacity != entry.capacity:
            raise RestoreRefusedError("VM %s has no disk %s of %d bytes to roll back: restore to a new VM instead." % (
                vm.name, entry.key, entry.capacity))
        pairs.append((entry, disk))
    return pairs


def _switch_cbt_off_before_rollback(vm):
    try:
        vm.disable_cbt()
    except ChangeTrackingError as exc:
        raise ChangeTrackingError("VM %s: switching Changed Block Tracking off before the in-place restore failed, so nothing "
                                  "was written (the restore's writes would make the change ids of earlier backups wrong): %s"
                                  % (vm.name, exc.message), vm=vm.name,
                                  hint="Fix the cause (a VM with snapshots cannot always be reconfigured), or restore to a new "
                                       "VM.") from exc


@dataclasses.dataclass(frozen=True)
class DiskToVm(RestoreTarget):
    """One disk (``disk``: key or label; the first when None) added to the existing VM ``vm``."""

    vm: VmSelector
    disk: str = None
    disk_format: str = "same"

    def __post_init__(self):
        object.__setattr__(self, "vm", VmSelector.of(self.vm))
        if self.vm is None:
            raise ConfigurationError("target disk needs the VM that receives the disk (target_vm).")

    def run(self, context, manifest):
        entry = manifest.disk(self.disk)
        vm = find_vm(context.session, self.vm)
        mark = "%s.%s.%s" % (RESTORED_DISK_PREFIX, manifest.id, entry.key)
        done = vm.extra_config_value(mark)
        if done and any(disk.file_name == done for disk in vm.disks()):
            return {"changed": False, "vm": {"name": vm.name, "moid": vm.moref},
                    "disks": [{"key": entry.key.value, "sha256": entry.sha256, "file_name": done}],
                    "diff": {"before": {"vm": vm.name}, "after": {"vm": vm.name}},
                    "msg": "VM %s has disk %s of restore point %s already (%s): left as it is." % (
                        vm.name, entry.name, manifest.id, done)}
        controller = vm.first_controller()
        unit = vm.free_unit(controller)
        diff = {"before": {"vm": vm.name}, "after": {"vm": vm.name, "new_disk": {"capacity": entry.capacity, "unit_number": unit}}}
        if context.check:
            return {"changed": True, "vm": {"name": vm.name, "moid": vm.moref},
                    "disks": [{"key": entry.key.value, "sha256": entry.sha256}], "diff": diff}
        thick = self.disk_format in ("thick", "eagerzeroedthick")
        new_disk = vm.add_disk(controller, unit, entry.capacity, thin=not thick)
        written = write_vm_disks(context, manifest, vm, [DiskWrite(entry=entry, disk=new_disk)], known_zeroed=True)
        vm.set_extra_config({mark: new_disk.file_name})     # only once written: a rerun after a failure writes again
        return {"changed": True, "vm": {"name": vm.name, "moid": vm.moref}, "disks": written, "diff": diff}
