# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VM configuration for restore: capture it as a JSON-able dict, rebuild a VM from it.

Design notes
- ``capture_config(vm)`` records what a restore needs to recreate the VM (CPU, memory, firmware,
  guest OS, hardware version, controllers, disks as disks.py describes them, NICs, CD-ROM
  presence). The dict is plain JSON (format version in "format"), stored with each restore point.
- ``build_config_spec`` turns such a dict plus overrides into a ConfigSpec for CreateVM_Task:
  controllers and disks get negative temporary keys (a disk's controllerKey names its
  controller's temporary key), disks are created (fileOperation=create) with capacityInBytes.
  IDE controllers are not created: every new VM has IDE 0 (key 200) and IDE 1 (key 201).
  MAC addresses are dropped (new ones generated) unless ``keep_mac_addresses`` is set.
  RDM disks are recreated as flat virtual disks of the same capacity.
- ``create_vm`` creates the VM and maps each new disk to the captured disk it replaces, by
  (controller type, bus number, unit number), which the spec preserves. A restore writes the
  backup of captured disk K into ``CreatedVM.disks[K]``.
Functions are stateless; concurrent calls are safe as far as pyVmomi's stub is.
"""

from __future__ import annotations

import dataclasses
import logging

from ..errors import ConfigurationError, VSphereError
from ._pyvmomi import moref_id, object_properties, require_pyvmomi, vim
from .disks import DiskInfo, list_controllers, list_disks
from .inventory import ObjectNotFoundError, datacenter_of, find_network
from .tasks import DEFAULT_TASK_TIMEOUT, wait_for_task

__all__ = ["CONFIG_FORMAT", "CreatedVM", "DiskSpec", "capture_config", "build_config_spec", "create_vm", "add_disk",
           "set_extra_config", "extra_config_value", "power_state", "power_on", "power_off", "destroy_vm", "DISK_FORMATS",
           "OVERRIDE_KEYS"]

log = logging.getLogger(__name__)

CONFIG_FORMAT = 1
DISK_FORMATS = ("same", "thin", "thick", "eagerzeroedthick")
#: overrides build_config_spec accepts
OVERRIDE_KEYS = ("name", "disk_format", "network_map", "keep_mac_addresses", "keep_uuids", "num_cpus", "cores_per_socket",
                 "memory_mb", "annotation", "guest_id", "hardware_version", "extra_config")
_IDE_DEFAULT_KEYS = {0: 200, 1: 201}


@dataclasses.dataclass(frozen=True)
class CreatedVM:
    """A VM made by create_vm: ``disks`` maps each captured disk key to the new VM's DiskInfo. Immutable; thread-safe."""

    vm: object
    moref: str
    name: str
    disks: dict


@dataclasses.dataclass(frozen=True)
class DiskSpec:
    """A new virtual disk for ``add_disk``: ``capacity`` in bytes, thin or thick, in the VM's own folder unless
    ``datastore_name`` says where, in ``disk_mode`` ("persistent", "independent_persistent", ...). Immutable; thread-safe.
    """

    capacity: int
    thin: bool = True
    datastore_name: str = None
    disk_mode: str = "persistent"


def _nic_types():
    device = vim.vm.device
    return (("e1000e", device.VirtualE1000e), ("e1000", device.VirtualE1000), ("vmxnet3", device.VirtualVmxnet3),
            ("vmxnet2", device.VirtualVmxnet2), ("vmxnet", device.VirtualVmxnet), ("pcnet32", device.VirtualPCNet32),
            ("sriov", device.VirtualSriovEthernetCard))


def _controller_classes():
    device = vim.vm.device
    return {"pvscsi": device.ParaVirtualSCSIController, "lsilogic": device.VirtualLsiLogicController,
            "lsilogicsas": device.VirtualLsiLogicSASController, "buslogic": device.VirtualBusLogicController,
            "sata": device.VirtualAHCIController, "nvme": device.VirtualNVMEController}


# -- capture ---------------------------------------------------------------------------------

def _nic_network_name(backing, networks_by_key):
    if isinstance(backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
        port = backing.port
        return networks_by_key.get(getattr(port, "portgroupKey", None), getattr(port, "portgroupKey", None)), "distributed"
    if isinstance(backing, vim.vm.device.VirtualEthernetCard.OpaqueNetworkBackingInfo):
        return networks_by_key.get(backing.opaqueNetworkId, backing.opaqueNetworkId), "opaque"
    network = getattr(backing, "network", None)
    name = getattr(backing, "deviceName", None)
    if not name and network is not None:
        name = networks_by_key.get(moref_id(network)) or getattr(network, "name", None)
    return name, "standard"


def _networks_by_key(vm):
    """Names of the VM's networks by moref, distributed port group key and opaque network id (one round trip each)."""
    names = {}
    for network in object_properties(vm, ["network"])["network"] or ():
        try:
            name = network.name
            names[moref_id(network)] = name
            key = getattr(network, "key", None) if isinstance(network, vim.dvs.DistributedVirtualPortgroup) else None
            if key:
                names[key] = name
            if isinstance(network, vim.OpaqueNetwork):
                names[network.summary.opaqueNetworkId] = name
        except Exception as exc:  # a network we may not read: the NIC then keeps its key as the name
            log.debug("cannot read network %s: %s", moref_id(network), exc)
    return names


def capture_config(vm):
    """The VM's configuration as a JSON-able dict (see the module notes)."""
    require_pyvmomi()
    config = vm.config
    hardware = config.hardware
    devices = list(hardware.device or ())
    networks_by_key = _networks_by_key(vm)
    nics = []
    for device in devices:
        if not isinstance(device, vim.vm.device.VirtualEthernetCard):
            continue
        nic_type = next((name for name, klass in _nic_types() if isinstance(device, klass)), type(device).__name__)
        network, network_type = _nic_network_name(device.backing, networks_by_key)
        connectable = getattr(device, "connectable", None)
        nics.append({
            "key": device.key, "type": nic_type, "label": getattr(device.deviceInfo, "label", None) if device.deviceInfo else None,
            "network": network, "network_type": network_type,
            "mac_address_type": getattr(device, "addressType", None), "mac_address": getattr(device, "macAddress", None),
            "controller_key": device.controllerKey, "unit_number": device.unitNumber,
            "start_connected": bool(getattr(connectable, "startConnected", True)) if connectable is not None else True,
        })
    return {
        "format": CONFIG_FORMAT,
        "name": config.name,
        "guest_id": config.guestId,
        "firmware": config.firmware or "bios",
        "num_cpus": hardware.numCPU,
        "cores_per_socket": hardware.numCoresPerSocket or 1,
        "memory_mb": hardware.memoryMB,
        "annotation": config.annotation or "",
        "hardware_version": config.version,
        "template": bool(config.template),
        "bios_uuid": config.uuid,
        "instance_uuid": config.instanceUuid,
        "controllers": [controller.to_dict() for controller in list_controllers(devices).values()],
        "disks": [disk.to_dict() for disk in list_disks(devices)],
        "nics": nics,
        "cdrom": any(isinstance(device, vim.vm.device.VirtualCdrom) for device in devices),
    }


# -- spec ------------------------------------------------------------------------------------

def _check_overrides(overrides):
    unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
    if unknown:
        raise ConfigurationError("Unknown restore override(s) %s: use %s." % (", ".join(unknown), ", ".join(OVERRIDE_KEYS)))
    disk_format = overrides.get("disk_format") or "same"
    if disk_format not in DISK_FORMATS:
        raise ConfigurationError("disk_format %r is not one of %s." % (disk_format, ", ".join(DISK_FORMATS)))
    return disk_format


def _nic_backing(network_name, network):
    card = vim.vm.device.VirtualEthernetCard
    if network is not None and isinstance(network, vim.dvs.DistributedVirtualPortgroup):
        port = vim.dvs.PortConnection(portgroupKey=network.key, switchUuid=network.config.distributedVirtualSwitch.uuid)
        return card.DistributedVirtualPortBackingInfo(port=port)
    if network is not None and isinstance(network, vim.OpaqueNetwork):
        return card.OpaqueNetworkBackingInfo(opaqueNetworkId=network.summary.opaqueNetworkId,
                                             opaqueNetworkType=network.summary.opaqueNetworkType)
    return card.NetworkBackingInfo(deviceName=network_name, network=network)


def target_network_name(nic, overrides):
    """The network a captured NIC connects to after ``network_map`` (the restore's network_mapping option)."""
    return (overrides.get("network_map") or {}).get(nic["network"], nic["network"])


def check_network_mapping(nics, mapping):
    """ConfigurationError when ``mapping`` (network_mapping: backed-up network name -> target network name) names a
    network none of the captured ``nics`` was on: a typo would otherwise go unnoticed and leave the NIC on its old
    network. Pure: no vCenter call."""
    had = sorted({nic.get("network") for nic in nics or () if nic.get("network")})
    unknown = sorted(set(mapping or {}) - set(had))
    if unknown:
        raise ConfigurationError(
            "network_mapping names network(s) %s that the backed-up VM had no network adapter on; %s." % (
                ", ".join(repr(name) for name in unknown),
                "its networks were %s" % ", ".join(repr(name) for name in had) if had else "it had no network adapter"),
            hint="Map only the networks the backed-up VM had (check the spelling): network_mapping's keys are the "
                 "backed-up VM's network names, its values the networks where it is restored.")


def build_config_spec(captured, overrides=None, datastore_name=None, networks=None):
    """Return ``(ConfigSpec, {temporary disk key: captured disk key})`` for CreateVM_Task.

    ``datastore_name`` holds the VM files and disks. ``networks`` maps target network names to
    vim.Network objects (create_vm resolves them); without it NICs get name-only backings.
    """
    require_pyvmomi()
    overrides = dict(overrides or {})
    disk_format = _check_overrides(overrides)
    check_network_mapping(captured.get("nics"), overrides.get("network_map"))
    if not datastore_name:
        raise ConfigurationError("No datastore given for the restored VM's files and disks.")
    device_spec = vim.vm.device.VirtualDeviceSpec
    next_key = [0]

    def temporary_key():
        next_key[0] -= 1
        return next_key[0]

    changes = []
    controller_keys = {}
    controller_classes = _controller_classes()
    for controller in captured.get("controllers", ()):
        if controller["type"] == "ide":
            if controller["bus_number"] not in _IDE_DEFAULT_KEYS:
                raise VSphereError("Cannot recreate IDE controller on bus %s (a VM has IDE 0 and 1)." % controller["bus_number"])
            controller_keys[controller["key"]] = _IDE_DEFAULT_KEYS[controller["bus_number"]]
            continue
        klass = controller_classes.get(controller["type"])
        if klass is None:
            raise VSphereError("Cannot recreate a storage controller of type %r (key %s)." % (controller["type"], controller["key"]))
        device = klass(key=temporary_key(), busNumber=controller["bus_number"])
        if isinstance(device, vim.vm.device.VirtualSCSIController):
            device.sharedBus = controller.get("sharing") or "noSharing"
        controller_keys[controller["key"]] = device.key
        changes.append(device_spec(operation="add", device=device))

    disk_keys = {}
    used_ide_slots = set()
    for disk in captured.get("disks", ()):
        controller_key = controller_keys.get(disk["controller"]["key"])
        if controller_key is None:
            raise VSphereError("Disk %s (key %s) is on controller key %s, which the captured configuration lacks." % (
                disk["label"], disk["key"], disk["controller"]["key"]))
        if disk["controller"]["type"] == "ide":
            used_ide_slots.add((controller_key, disk["unit_number"]))
        thin = disk["thin"] if disk_format == "same" else disk_format == "thin"
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName="[%s]" % datastore_name, diskMode=_disk_mode(disk.get("disk_mode")), thinProvisioned=bool(thin),
            eagerlyScrub=disk_format == "eagerzeroedthick")
        capacity = int(disk["capacity"])
        device = vim.vm.device.VirtualDisk(key=temporary_key(), controllerKey=controller_key, unitNumber=disk["unit_number"],
                                           capacityInBytes=capacity, capacityInKB=(capacity + 1023) // 1024, backing=backing)
        disk_keys[device.key] = disk["key"]
        changes.append(device_spec(operation="add", fileOperation="create", device=device))

    for nic in captured.get("nics", ()):
        changes.append(device_spec(operation="add", device=_nic_device(nic, overrides, networks, temporary_key())))

    if captured.get("cdrom"):
        changes.append(device_spec(operation="add", device=_cdrom_device(used_ide_slots, temporary_key())))

    spec = vim.vm.ConfigSpec(
        name=overrides.get("name") or captured["name"],
        guestId=overrides.get("guest_id") or captured.get("guest_id") or "otherGuest64",
        files=vim.vm.FileInfo(vmPathName="[%s]" % datastore_name),
        numCPUs=int(overrides.get("num_cpus") or captured.get("num_cpus") or 1),
        numCoresPerSocket=int(overrides.get("cores_per_socket") or captured.get("cores_per_socket") or 1),
        memoryMB=int(overrides.get("memory_mb") or captured.get("memory_mb") or 1024),
        annotation=overrides["annotation"] if overrides.get("annotation") is not None else captured.get("annotation", ""),
        firmware=captured.get("firmware") or "bios",
        deviceChange=changes)
    if overrides.get("extra_config"):   # set by the creation itself: the VM never exists without these settings
        spec.extraConfig = [vim.option.OptionValue(key=str(key), value=str(value))
                            for key, value in sorted(overrides["extra_config"].items())]
    version = overrides["hardware_version"] if "hardware_version" in overrides else captured.get("hardware_version")
    if version:
        spec.version = version
    if overrides.get("keep_uuids"):     # a DR restore: the VM keeps its identity (licences, agents, CMDB keys)
        spec.uuid = captured.get("bios_uuid")
        spec.instanceUuid = captured.get("instance_uuid")
    return spec, disk_keys


def _disk_mode(mode):
    # a restore writes the disk through VDDK; non-persistent modes would discard it at power off
    return mode if mode in ("persistent", "independent_persistent") else "persistent"


def _nic_device(nic, overrides, networks, key):
    nic_classes = dict(_nic_types())
    klass = nic_classes.get(nic["type"])
    if klass is None or nic["type"] == "sriov":
        log.warning("NIC %s of type %s is recreated as vmxnet3", nic.get("label") or nic["key"], nic["type"])
        klass = nic_classes["vmxnet3"]
    name = target_network_name(nic, overrides)
    network = (networks or {}).get(name)
    device = klass(key=key, backing=_nic_backing(name, network),
                   connectable=vim.vm.device.VirtualDevice.ConnectInfo(startConnected=nic.get("start_connected", True),
                                                                       allowGuestControl=True, connected=False))
    if overrides.get("keep_mac_addresses") and nic.get("mac_address") and nic.get("mac_address_type") in ("manual", "assigned"):
        device.addressType = "manual"
        device.macAddress = nic["mac_address"]
    else:
        device.addressType = "generated"
    return device


def _cdrom_device(used_ide_slots, key):
    for slot in ((200, 0), (200, 1), (201, 0), (201, 1)):
        if slot not in used_ide_slots:
            return vim.vm.device.VirtualCdrom(
                key=key, controllerKey=slot[0], unitNumber=slot[1],
                backing=vim.vm.device.VirtualCdrom.RemotePassthroughBackingInfo(deviceName="", exclusive=False),
                connectable=vim.vm.device.VirtualDevice.ConnectInfo(startConnected=False, allowGuestControl=True, connected=False))
    raise VSphereError("No free IDE slot for the CD-ROM: all four are used by disks.")


# -- creating and handling VMs ---------------------------------------------------------------

def _resolve_networks(session, captured, overrides, datacenter):
    networks = {}
    for nic in captured.get("nics", ()):
        name = target_network_name(nic, overrides)
        if name in networks or not name:
            continue
        try:
            networks[name] = find_network(session, name, datacenter)
        except ObjectNotFoundError:
            raise ConfigurationError("Network %r (of NIC %s) does not exist where the VM is restored." % (
                name, nic.get("label") or nic["key"]), hint="Map it to an existing network with network_mapping.") from None
    return networks


def map_new_disks(captured, new_disks):
    """``{captured disk key: DiskInfo of the new VM}``, matching (controller type, bus, unit); raise VSphereError if incomplete."""
    by_slot = {(d.controller.type, d.controller.bus_number, d.unit_number): d for d in new_disks}
    mapping, missing = {}, []
    for disk in captured.get("disks", ()):
        slot = (disk["controller"]["type"], disk["controller"]["bus_number"], disk["unit_number"])
        new = by_slot.get(slot)
        if new is None or new.capacity < int(disk["capacity"]):
            missing.append("%s (%s bus %s unit %s, %d bytes)" % (disk["label"], slot[0], slot[1], slot[2], int(disk["capacity"])))
        else:
            mapping[disk["key"]] = new
    if missing:
        raise VSphereError("The new VM lacks disk(s) matching %s." % "; ".join(missing))
    return mapping


def create_vm(session, captured, overrides, placement, timeout=DEFAULT_TASK_TIMEOUT):
    """Create a VM from a captured configuration where ``placement`` (a placement.Placement) says; return CreatedVM
    (with the disk mapping).

    ``placement.datastore`` is a vim.Datastore or a datastore name; ``placement.host`` may be None. The VM is left
    powered off. If the disk mapping fails the new VM is destroyed before the error is raised.
    """
    require_pyvmomi()
    overrides = dict(overrides or {})
    datastore = placement.datastore
    datastore_name = datastore if isinstance(datastore, str) else datastore.name
    check_network_mapping(captured.get("nics"), overrides.get("network_map"))
    networks = _resolve_networks(session, captured, overrides, datacenter_of(placement.folder))
    spec, _disk_keys = build_config_spec(captured, overrides, datastore_name, networks)
    task = placement.folder.CreateVM_Task(config=spec, pool=placement.resource_pool, host=placement.host)
    vm = wait_for_task(task, timeout=timeout, what="create VM %s" % spec.name)
    try:
        disks = map_new_disks(captured, list_disks(vm))
    except VSphereError:
        try:
            destroy_vm(vm, timeout=timeout)
        except Exception as exc:  # the mapping error is the cause; say what is left behind
            log.error("could not destroy the incomplete VM %s (%s): %s", spec.name, moref_id(vm), exc)
        raise
    return CreatedVM(vm=vm, moref=moref_id(vm), name=spec.name, disks=disks)


def add_disk(vm, controller_key, unit, spec, timeout=DEFAULT_TASK_TIMEOUT):
    """Add the new virtual disk ``spec`` (a DiskSpec) at (controller_key, unit); return its DiskInfo."""
    require_pyvmomi()
    file_name = "[%s]" % spec.datastore_name if spec.datastore_name else ""
    capacity = int(spec.capacity)
    device = vim.vm.device.VirtualDisk(
        key=-1, controllerKey=controller_key, unitNumber=unit, capacityInBytes=capacity, capacityInKB=(capacity + 1023) // 1024,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=file_name, diskMode=spec.disk_mode,
                                                              thinProvisioned=bool(spec.thin)))
    change = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=device)])
    wait_for_task(vm.ReconfigVM_Task(spec=change), timeout=timeout,
                  what="add a %d-byte disk at controller %s unit %s of VM %s" % (capacity, controller_key, unit, moref_id(vm)))
    for disk in list_disks(vm):
        if disk.controller.key == controller_key and disk.unit_number == unit:
            return disk
    raise VSphereError("The disk added to VM %s at controller %s unit %s is not in its configuration." % (
        moref_id(vm), controller_key, unit))


def set_extra_config(vm, values, timeout=DEFAULT_TASK_TIMEOUT):
    """Set advanced configuration (extraConfig) keys of the VM; a value of "" removes the key on vSphere."""
    require_pyvmomi()
    options = [vim.option.OptionValue(key=str(key), value=str(value)) for key, value in values.items()]
    wait_for_task(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=options)), timeout=timeout,
                  what="set advanced settings %s of VM %s" % (", ".join(sorted(values)), moref_id(vm)))


def extra_config_value(vm, key):
    """The value of extraConfig ``key`` of the VM ("" when absent; the last entry wins if listed twice)."""
    value = ""
    for option in getattr(vm.config, "extraConfig", None) or ():
        if option.key == key:
            value = str(option.value or "")
    return value


def power_state(vm):
    """"poweredOn", "poweredOff" or "suspended"."""
    return str(vm.runtime.powerState)


def power_on(vm, timeout=DEFAULT_TASK_TIMEOUT):
    """Power the VM on (nothing to do when it is on)."""
    if power_state(vm) != "poweredOn":
        wait_for_task(vm.PowerOnVM_Task(), timeout=timeout, what="power on VM %s" % moref_id(vm))


def power_off(vm, timeout=DEFAULT_TASK_TIMEOUT):
    """Power the VM off, hard (nothing to do when it is off)."""
    if power_state(vm) != "poweredOff":
        wait_for_task(vm.PowerOffVM_Task(), timeout=timeout, what="power off VM %s" % moref_id(vm))


def destroy_vm(vm, timeout=DEFAULT_TASK_TIMEOUT):
    """Power off (if needed) and delete the VM with its disks."""
    power_off(vm, timeout=timeout)
    wait_for_task(vm.Destroy_Task(), timeout=timeout, what="destroy VM %s" % moref_id(vm))


def disk_info_from_dict(data):
    """A captured disk dict back to DiskInfo."""
    return DiskInfo.from_dict(data)
