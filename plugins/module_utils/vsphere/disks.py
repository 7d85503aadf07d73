# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The virtual disks and controllers of a VM or of a snapshot, as plain dataclasses.

Design notes
- Disks are listed in device order (the order of ``config.hardware.device``), the order the
  lab's labctl and the restore mapping use.
- Capacity is ``capacityInBytes`` when set (vSphere 5.5+), else ``capacityInKB * 1024``.
- The datastore name is parsed from the backing file name ("[ds] dir/x.vmdk"), which costs no
  round trip; the backing's datastore object is only read when the name has no brackets.
- For a backup, read the disks from the SNAPSHOT (``list_disks(snapshot)``): its backing file
  names and change ids are those of the point in time VDDK must open.
The dataclasses are immutable values, safe to share between threads.
"""

from __future__ import annotations

import dataclasses
import re

from ._pyvmomi import require_pyvmomi, vim

__all__ = ["ControllerInfo", "DiskInfo", "list_controllers", "list_disks", "hardware_devices", "controller_type_name",
           "datastore_name_of", "disk_capacity_bytes"]

_DATASTORE_IN_PATH = re.compile(r"^\[([^\]]+)\]")


@dataclasses.dataclass(frozen=True)
class ControllerInfo:
    """A storage controller: ``type`` is pvscsi, lsilogic, lsilogicsas, buslogic, sata, ide, nvme (or 'scsi'/'other').

    Immutable value; thread-safe.
    """

    key: int
    type: str
    bus_number: int
    sharing: str = None

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DiskInfo:
    """One virtual disk. ``capacity`` is in bytes; ``change_id`` is None when CBT has not stamped one.

    Immutable value (JSON via to_dict/from_dict); thread-safe.
    """

    key: int
    label: str
    controller: ControllerInfo
    unit_number: int
    capacity: int
    file_name: str
    datastore: str
    disk_mode: str
    thin: bool
    uuid: str = None
    change_id: str = None
    backing_type: str = None
    compatibility_mode: str = None

    @property
    def skip_reason(self):
        """Why a snapshot-based backup cannot read this disk consistently (None when it can)."""
        if self.disk_mode and self.disk_mode.startswith("independent"):
            return "the disk is %s: snapshots do not include independent disks" % self.disk_mode
        if self.compatibility_mode == "physicalMode":
            return "the disk is a physical-mode RDM: vSphere cannot snapshot it"
        return None

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        values = dict(data)
        values["controller"] = ControllerInfo(**values["controller"])
        return cls(**values)


def _controller_types():
    device = vim.vm.device
    # order matters only for subclasses; all of these are distinct leaf classes
    return (
        (device.ParaVirtualSCSIController, "pvscsi"),
        (device.VirtualLsiLogicSASController, "lsilogicsas"),
        (device.VirtualLsiLogicController, "lsilogic"),
        (device.VirtualBusLogicController, "buslogic"),
        (device.VirtualAHCIController, "sata"),
        (device.VirtualIDEController, "ide"),
        (device.VirtualNVMEController, "nvme"),
        (device.VirtualSCSIController, "scsi"),
        (device.VirtualSATAController, "sata"),
    )


def controller_type_name(device):
    """The short type name of a storage controller device, or None when ``device`` is no storage controller."""
    require_pyvmomi()
    for klass, name in _controller_types():
        if isinstance(device, klass):
            return name
    return None


def hardware_devices(source):
    """The device list of a VM, a snapshot, a ConfigInfo, or a list of devices."""
    if isinstance(source, (list, tuple)):
        return list(source)
    # a ConfigInfo has .hardware itself; a VM or a snapshot has it under .config (one property fetch)
    config = source if getattr(source, "hardware", None) is not None else getattr(source, "config", None)
    if config is None:
        return []
    return list(getattr(config.hardware, "device", None) or ())


def list_controllers(source):
    """Storage controllers by key: ``{key: ControllerInfo}``."""
    require_pyvmomi()
    controllers = {}
    for device in hardware_devices(source):
        type_name = controller_type_name(device)
        if type_name is None:
            continue
        sharing = getattr(device, "sharedBus", None)
        controllers[device.key] = ControllerInfo(key=device.key, type=type_name, bus_number=int(device.busNumber or 0),
                                                 sharing=str(sharing) if sharing is not None else None)
    return controllers


def disk_capacity_bytes(disk):
    capacity = getattr(disk, "capacityInBytes", None)
    if capacity:
        return int(capacity)
    return int(getattr(disk, "capacityInKB", 0) or 0) * 1024


def datastore_name_of(backing):
    match = _DATASTORE_IN_PATH.match(str(getattr(backing, "fileName", "") or ""))
    if match:
        return match.group(1)
    datastore = getattr(backing, "datastore", None)
    return getattr(datastore, "name", None) if datastore is not None else None


def list_disks(source):
    """The virtual disks of ``source`` (VM, snapshot, ConfigInfo or device list) in device order."""
    require_pyvmomi()
    devices = hardware_devices(source)
    controllers = list_controllers(devices)
    disks = []
    for device in devices:
        if not isinstance(device, vim.vm.device.VirtualDisk):
            continue
        backing = device.backing
        controller = controllers.get(device.controllerKey) or ControllerInfo(key=device.controllerKey, type="other", bus_number=0)
        label = getattr(getattr(device, "deviceInfo", None), "label", None) or "Hard disk (key %d)" % device.key
        thin = getattr(backing, "thinProvisioned", None)
        disk_mode = getattr(backing, "diskMode", None)
        disks.append(DiskInfo(
            key=int(device.key),
            label=str(label),
            controller=controller,
            unit_number=int(device.unitNumber) if device.unitNumber is not None else None,
            capacity=disk_capacity_bytes(device),
            file_name=str(getattr(backing, "fileName", "") or ""),
            datastore=datastore_name_of(backing),
            disk_mode=str(disk_mode) if disk_mode is not None else None,
            thin=bool(thin),
            uuid=getattr(backing, "uuid", None) or None,
            change_id=getattr(backing, "changeId", None) or None,
            backing_type=getattr(type(backing), "_wsdlName", type(backing).__name__),
            compatibility_mode=getattr(backing, "compatibilityMode", None) or None,
        ))
    return disks
