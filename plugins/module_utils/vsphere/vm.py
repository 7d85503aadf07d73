# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A VM as the layers above vSphere see it: a handle with verbs, and the selector that finds it.

The operations (ops/) never touch pyVmomi objects or their attributes (``_moId``, ``runtime.powerState``,
``resourcePool``): they find a ``VmHandle`` with ``find_vm(session, VmSelector)`` and call its methods, each a thin
wrapper over this package's functions (inventory, disks, snapshots, cbt, config). What is vSphere logic (the free
unit number of a controller, where a VM lives) lives here, where the vSphere rules are known.
"""

from __future__ import annotations

import dataclasses
import logging

from ..errors import ConfigurationError, VMNotFoundError
from . import cbt, config, disks, inventory, snapshots
from ._pyvmomi import moref_id, require_pyvmomi, vim

__all__ = ["VmSelector", "VmHandle", "find_vm", "find_vm_or_none", "create_vm", "identity_conflicts", "SCSI_RESERVED_UNIT"]

log = logging.getLogger(__name__)

#: the unit number a SCSI controller reserves for itself
SCSI_RESERVED_UNIT = 7
_SCSI_TYPES = ("pvscsi", "lsilogic", "lsilogicsas", "buslogic", "scsi")
#: how many units a controller offers (vSphere's configuration maximums); SCSI: 16, less the reserved one
_UNIT_COUNT = {"ide": 2, "sata": 30, "nvme": 15}
_DEFAULT_UNIT_COUNT = 16


@dataclasses.dataclass(frozen=True)
class VmSelector:
    """How a user names a VM: exactly one of name, path, uuid (BIOS, or instance with ``use_instance_uuid``),
    instance_uuid, moid; ``datacenter`` narrows the search, and ``folder`` (an inventory path, DATACENTER/vm/FOLDER,
    or relative to the datacenter's VM folder, as community.vmware takes it) narrows a search by name. Immutable."""

    name: str = None
    path: str = None
    uuid: str = None
    instance_uuid: str = None
    moid: str = None
    datacenter: str = None
    folder: str = None
    use_instance_uuid: bool = False

    @classmethod
    def of(cls, value):
        """A VmSelector from a selector, a dict of its fields, or None (None)."""
        if value is None or isinstance(value, cls):
            return value
        return cls(**{key: item for key, item in dict(value).items() if item not in (None, "")})

    def describe(self):
        """The VM as the user named it (for messages and the status file before the VM is found)."""
        for value in (self.name, self.path, self.uuid, self.instance_uuid, self.moid):
            if value:
                return str(value)
        return None

    def as_spec(self):
        return {key: value for key, value in dataclasses.asdict(self).items() if value}


class VmHandle:
    """One VM of one session. Immutable reference; the VM's state is read live by each call.

    Thread-safety: as the session's pyVmomi stub (calls may come from several threads; pyVmomi serialises them).
    """

    def __init__(self, managed_object):
        self._vm = managed_object
        self.moref = moref_id(managed_object)

    def __repr__(self):
        return "VmHandle(%s)" % self.moref

    @property
    def managed_object(self):
        """The pyVmomi object, for this package only."""
        return self._vm

    @property
    def name(self):
        return self._vm.name

    @property
    def power_state(self):
        """"poweredOn", "poweredOff" or "suspended"."""
        return config.power_state(self._vm)

    @property
    def is_powered_on(self):
        return self.power_state == "poweredOn"

    # -- configuration --------------------------------------------------------------------------

    def capture_config(self):
        """The configuration as a JSON-able dict (config.capture_config), plus where the VM lives (``placement``)."""
        captured = config.capture_config(self._vm)
        captured["placement"] = self.placement()
        return captured

    def placement(self):
        """{datacenter, compute, folder} of the VM, recorded so that a restore to a new VM defaults there; {} when
        the inventory cannot say (a template has no pool: the backup must not fail for a lost default)."""
        vm = self._vm
        try:
            datacenter = inventory.datacenter_of(vm)
            return {"datacenter": datacenter.name if datacenter is not None else None,
                    "compute": vm.resourcePool.owner.name if vm.resourcePool is not None else None,
                    "folder": inventory.inventory_path(vm.parent) if vm.parent is not None else None}
        except Exception as exc:  # pylint: disable=broad-exception-caught
            log.warning("could not record the placement of VM %s: %s", self.moref, exc)
            return {}

    def disks(self):
        """DiskInfo of every virtual disk, in device order."""
        return disks.list_disks(self._vm)

    def first_controller(self):
        """The VM's first disk controller (ControllerInfo), or ConfigurationError when it has none."""
        controller = next(iter(disks.list_controllers(self._vm).values()), None)
        if controller is None:
            raise ConfigurationError("VM %s has no disk controller to attach a disk to." % self.name)
        return controller

    def free_unit(self, controller):
        """The lowest free unit number of ``controller`` (a ControllerInfo); ConfigurationError when it is full."""
        used = {disk.unit_number for disk in self.disks() if disk.controller.key == controller.key}
        if controller.type in _SCSI_TYPES:
            used.add(SCSI_RESERVED_UNIT)
        for unit in range(_UNIT_COUNT.get(controller.type, _DEFAULT_UNIT_COUNT)):
            if unit not in used:
                return unit
        raise ConfigurationError("Controller %s of VM %s has no free unit for another disk." % (controller.key, self.name),
                                 hint="Add a controller to the VM, or remove a disk from this one.")

    def add_disk(self, controller, unit, capacity, thin=True):
        """Add a new disk of ``capacity`` bytes at (controller, unit); its DiskInfo."""
        return config.add_disk(self._vm, controller.key, unit, config.DiskSpec(capacity, thin=thin))

    def extra_config_value(self, key):
        return config.extra_config_value(self._vm, key)

    def set_extra_config(self, values):
        config.set_extra_config(self._vm, values)

    # -- power and life -------------------------------------------------------------------------

    def power_on(self):
        config.power_on(self._vm)

    def power_off(self):
        config.power_off(self._vm)

    def destroy(self):
        config.destroy_vm(self._vm)

    # -- change tracking and snapshots ----------------------------------------------------------

    def cbt_enabled(self):
        return cbt.is_cbt_enabled(self._vm)

    def ensure_cbt(self):
        return cbt.ensure_cbt(self._vm, vm_name=self.name)

    def disable_cbt(self):
        cbt.disable_cbt(self._vm, vm_name=self.name)

    def changed_areas(self, snapshot, disk, change_id):
        """CBT's changed areas of ``disk`` (a DiskInfo) between ``change_id`` and ``snapshot`` (a BackupSnapshot)."""
        return cbt.changed_areas(self._vm, snapshot, disk.key, disk.capacity, change_id, disk_label=disk.label)

    def remove_orphan_snapshots(self, live_run_ids):
        """Remove the blockvault snapshots whose lease expired (killed runs), except those of ``live_run_ids``;
        snapshots of live runs (other repositories, proxies) are left alone. Their names."""
        return snapshots.remove_orphan_snapshots(self._vm, live_run_ids=live_run_ids, vm_name=self.name)

    def leased_snapshots(self):
        """Every blockvault snapshot of the VM with its lease judged now (snapshots.LeasedSnapshot list)."""
        return snapshots.leased_snapshots(self._vm)

    def backup_snapshot(self, run_id, quiesce=False, allow_crash_consistent=False, on_removed=None):
        """Context manager yielding the BackupSnapshot ``blockvault-<run_id>``, its lease renewed while open (its
        ``lease`` is the fence to give BackupSession.add_fence), removed on the way out; after a body that
        succeeded, ``on_removed`` receives the SnapshotRemoval (see snapshots.backup_snapshot)."""
        return snapshots.backup_snapshot(self._vm, run_id, quiesce=quiesce, allow_crash_consistent=allow_crash_consistent,
                                         vm_name=self.name, on_removed=on_removed)

    def find_backup_snapshot(self, run_id):
        """The FoundBackupSnapshot ``blockvault-<run_id>`` of an earlier run (with its age), or None."""
        return snapshots.find_backup_snapshot(self._vm, run_id)

    def adopt_snapshot(self, leased, run_id):
        """Context manager taking over ``leased`` (a LeasedSnapshot whose lease expired, e.g. a killed run's that a
        checkpoint names) for ``run_id``: yields a BackupSnapshot as ``backup_snapshot`` does, removed on the way out."""
        return snapshots.adopted_snapshot(self._vm, leased, run_id, vm_name=self.name)


def find_vm(session, selector):
    """The VmHandle of the one VM ``selector`` (a VmSelector) names; VMNotFoundError or AmbiguousObjectError."""
    return VmHandle(inventory.find_vm_by_spec(session, VmSelector.of(selector).as_spec()))


def find_vm_or_none(session, name):
    """The VmHandle of the VM named ``name``, or None when there is none."""
    try:
        return VmHandle(inventory.find_vm(session, name=name))
    except VMNotFoundError:
        return None


def create_vm(session, captured, overrides, placement):
    """Create a powered-off VM from a captured configuration (a dict) at ``placement`` (placement.Placement).

    Returns (VmHandle, {captured disk key: DiskInfo of the new VM}); see config.create_vm.
    """
    created = config.create_vm(session, captured, overrides, placement)
    return VmHandle(created.vm), created.disks


def identity_conflicts(session, captured, ignore_moref=None):
    """What a VM recreated with the identity of ``captured`` (its BIOS and instance UUIDs, its MAC addresses) would
    clash with in this vCenter: sentences naming the VM that already has each (``ignore_moref``: a VM about to be
    replaced). vCenter silently changes a duplicate instance UUID, and two NICs with one MAC break both VMs' network."""
    macs = {nic.get("mac_address").lower() for nic in captured.get("nics") or () if nic.get("mac_address")}
    conflicts = []
    for vm in inventory.list_vms(session):
        if vm["moref"] == ignore_moref:
            continue
        for what, key in (("BIOS UUID", "bios_uuid"), ("instance UUID", "instance_uuid")):
            if captured.get(key) and vm[key] and vm[key].lower() == captured[key].lower():
                conflicts.append("VM %s (%s) has the %s %s" % (vm["name"], vm["moref"], what, captured[key]))
    if macs:
        require_pyvmomi()
        for vm_obj, props in inventory.retrieve_properties(session, vim.VirtualMachine, ["name", "config.hardware.device"]):
            if moref_id(vm_obj) == ignore_moref:
                continue
            for device in props.get("config.hardware.device") or ():
                mac = str(getattr(device, "macAddress", "") or "").lower()
                if mac in macs:
                    conflicts.append("VM %s (%s) has the MAC address %s" % (props.get("name"), moref_id(vm_obj), mac))
    return conflicts
