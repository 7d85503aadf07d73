"""capture_config -> JSON -> build_config_spec -> (simulated) CreateVM -> disk mapping, and overrides."""
import json
from types import SimpleNamespace

import pytest
from pyVmomi import vim

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, VSphereError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import config as cfg
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.disks import list_disks
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.placement import Placement

dev = vim.vm.device
GIB = 1 << 30


def disk(key, controller_key, unit, capacity, thin=True, name="web"):
    return dev.VirtualDisk(key=key, controllerKey=controller_key, unitNumber=unit, capacityInBytes=capacity,
                           capacityInKB=capacity // 1024, deviceInfo=vim.Description(label="Hard disk %d" % (key - 1999), summary=""),
                           backing=dev.VirtualDisk.FlatVer2BackingInfo(fileName="[ds1] web/%s_%d.vmdk" % (name, key), diskMode="persistent",
                                                                       thinProvisioned=thin, changeId="52 aa/%d" % key))


def source_vm():
    devices = [
        dev.VirtualIDEController(key=200, busNumber=0), dev.VirtualIDEController(key=201, busNumber=1),
        dev.ParaVirtualSCSIController(key=1000, busNumber=0, sharedBus="noSharing"),
        dev.VirtualLsiLogicSASController(key=1001, busNumber=1, sharedBus="noSharing"),
        disk(2000, 1000, 0, 16 * GIB),
        disk(2001, 1001, 2, 3 * GIB + 512 * 1024, thin=False),
        disk(2002, 200, 1, GIB),
        dev.VirtualCdrom(key=3002, controllerKey=200, unitNumber=0),
        dev.VirtualVmxnet3(key=4000, controllerKey=100, unitNumber=7, addressType="assigned", macAddress="00:50:56:aa:bb:cc",
                           deviceInfo=vim.Description(label="Network adapter 1", summary=""),
                           backing=dev.VirtualEthernetCard.NetworkBackingInfo(deviceName="Prod LAN"),
                           connectable=dev.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True, connected=True)),
        dev.VirtualE1000e(key=4001, controllerKey=100, unitNumber=8, addressType="manual", macAddress="00:50:56:00:00:01",
                          backing=dev.VirtualEthernetCard.NetworkBackingInfo(deviceName="Backup LAN"),
                          connectable=dev.VirtualDevice.ConnectInfo(startConnected=False, allowGuestControl=True, connected=False)),
    ]
    config = vim.vm.ConfigInfo(name="web01", guestId="ubuntu64Guest", firmware="efi", version="vmx-19", template=False,
                               annotation="web server", uuid="4211-bios", instanceUuid="5011-inst",
                               hardware=vim.vm.VirtualHardware(numCPU=4, numCoresPerSocket=2, memoryMB=8192, device=devices))
    return SimpleNamespace(config=config, network=[], _moId="vm-42")


def captured_json():
    return json.loads(json.dumps(cfg.capture_config(source_vm())))


def test_capture():
    captured = captured_json()
    assert {k: captured[k] for k in ("format", "name", "guest_id", "firmware", "num_cpus", "cores_per_socket", "memory_mb", "annotation",
                                     "hardware_version", "template", "cdrom")} == {
        "format": 1, "name": "web01", "guest_id": "ubuntu64Guest", "firmware": "efi", "num_cpus": 4, "cores_per_socket": 2,
        "memory_mb": 8192, "annotation": "web server", "hardware_version": "vmx-19", "template": False, "cdrom": True}
    assert [(c["key"], c["type"], c["bus_number"], c["sharing"]) for c in captured["controllers"]] == [
        (200, "ide", 0, None), (201, "ide", 1, None), (1000, "pvscsi", 0, "noSharing"), (1001, "lsilogicsas", 1, "noSharing")]
    assert [(d["key"], d["controller"]["key"], d["unit_number"], d["capacity"], d["thin"], d["change_id"]) for d in captured["disks"]] == [
        (2000, 1000, 0, 16 * GIB, True, "52 aa/2000"), (2001, 1001, 2, 3 * GIB + 512 * 1024, False, "52 aa/2001"),
        (2002, 200, 1, GIB, True, "52 aa/2002")]
    assert captured["nics"][0] == {"key": 4000, "type": "vmxnet3", "label": "Network adapter 1", "network": "Prod LAN",
                                   "network_type": "standard", "mac_address_type": "assigned", "mac_address": "00:50:56:aa:bb:cc",
                                   "controller_key": 100, "unit_number": 7, "start_connected": True}
    assert (captured["nics"][1]["type"], captured["nics"][1]["start_connected"]) == ("e1000e", False)


def test_spec_uses_temporary_keys_creates_disks_and_drops_macs():
    captured = captured_json()
    spec, disk_keys = cfg.build_config_spec(captured, {"name": "web01-restored", "network_map": {"Prod LAN": "DR LAN"}}, "ds2")
    assert (spec.name, spec.guestId, spec.numCPUs, spec.numCoresPerSocket, spec.memoryMB, spec.firmware, spec.version,
            spec.files.vmPathName, spec.annotation) == ("web01-restored", "ubuntu64Guest", 4, 2, 8192, "efi", "vmx-19", "[ds2]", "web server")
    changes = spec.deviceChange
    controllers = [c.device for c in changes if isinstance(c.device, dev.VirtualController)]
    assert [(type(c), c.key, c.busNumber, c.sharedBus) for c in controllers] == [
        (dev.ParaVirtualSCSIController, -1, 0, "noSharing"), (dev.VirtualLsiLogicSASController, -2, 1, "noSharing")]
    disks = [c for c in changes if isinstance(c.device, dev.VirtualDisk)]
    assert [(c.operation, c.fileOperation, c.device.key, c.device.controllerKey, c.device.unitNumber, c.device.capacityInBytes,
             c.device.capacityInKB, c.device.backing.fileName, c.device.backing.thinProvisioned) for c in disks] == [
        ("add", "create", -3, -1, 0, 16 * GIB, 16 * GIB // 1024, "[ds2]", True),
        ("add", "create", -4, -2, 2, 3 * GIB + 512 * 1024, (3 * GIB + 512 * 1024) // 1024, "[ds2]", False),
        ("add", "create", -5, 200, 1, GIB, GIB // 1024, "[ds2]", True)]
    assert disk_keys == {-3: 2000, -4: 2001, -5: 2002}
    nics = [c.device for c in changes if isinstance(c.device, dev.VirtualEthernetCard)]
    assert [(type(n), n.key, n.backing.deviceName, n.addressType, n.macAddress, n.connectable.startConnected) for n in nics] == [
        (dev.VirtualVmxnet3, -6, "DR LAN", "generated", None, True), (dev.VirtualE1000e, -7, "Backup LAN", "generated", None, False)]
    cdroms = [c.device for c in changes if isinstance(c.device, dev.VirtualCdrom)]
    # IDE 0 unit 1 holds a disk; the CD-ROM takes the first free IDE slot (200, 0)
    assert [(c.key, c.controllerKey, c.unitNumber) for c in cdroms] == [(-8, 200, 0)]
    assert all(c.fileOperation is None for c in changes if not isinstance(c.device, dev.VirtualDisk))


def test_disk_format_and_mac_overrides():
    captured = captured_json()
    spec = cfg.build_config_spec(captured, {"disk_format": "thin", "keep_mac_addresses": True}, "ds2")[0]
    assert [c.device.backing.thinProvisioned for c in spec.deviceChange if isinstance(c.device, dev.VirtualDisk)] == [True, True, True]
    nics = [c.device for c in spec.deviceChange if isinstance(c.device, dev.VirtualEthernetCard)]
    assert [(n.addressType, n.macAddress) for n in nics] == [("manual", "00:50:56:aa:bb:cc"), ("manual", "00:50:56:00:00:01")]
    spec = cfg.build_config_spec(captured, {"disk_format": "eagerzeroedthick"}, "ds2")[0]
    assert {(c.device.backing.thinProvisioned, c.device.backing.eagerlyScrub) for c in spec.deviceChange
            if isinstance(c.device, dev.VirtualDisk)} == {(False, True)}


def test_bad_overrides_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="Unknown restore override"):
        cfg.build_config_spec(captured_json(), {"colour": "red"}, "ds2")
    with pytest.raises(ConfigurationError, match="disk_format 'sparse' is not one of"):
        cfg.build_config_spec(captured_json(), {"disk_format": "sparse"}, "ds2")
    with pytest.raises(ConfigurationError, match="No datastore"):
        cfg.build_config_spec(captured_json(), {}, "")


def done(result=None):
    return SimpleNamespace(info=SimpleNamespace(state="success", result=result, error=None, progress=None, cancelable=False))


class FakeNewVM:
    _moId = "vm-77"

    def __init__(self, folder, config):
        self.folder, self.config = folder, config
        self.runtime = SimpleNamespace(powerState="poweredOff")

    def Destroy_Task(self):
        self.folder.destroyed = True
        return done()


class FakeFolder:
    """CreateVM_Task as vSphere does it: real keys for the devices, controller references resolved, default IDE controllers."""

    def __init__(self, drop_disk=False):
        self.drop_disk = drop_disk
        self.created = []
        self.destroyed = False

    def CreateVM_Task(self, config, pool, host):
        self.created.append((config, pool, host))
        keys, devices = {}, [dev.VirtualIDEController(key=200, busNumber=0), dev.VirtualIDEController(key=201, busNumber=1)]
        next_key = {dev.VirtualController: 1000, dev.VirtualDisk: 2000}
        for change in config.deviceChange:
            device = change.device
            if isinstance(device, dev.VirtualController):
                keys[device.key] = next_key[dev.VirtualController]
                next_key[dev.VirtualController] += 1
                devices.append(type(device)(key=keys[device.key], busNumber=device.busNumber))
            elif isinstance(device, dev.VirtualDisk) and not (self.drop_disk and device.unitNumber == 2):
                devices.append(dev.VirtualDisk(key=next_key[dev.VirtualDisk], controllerKey=keys.get(device.controllerKey, device.controllerKey),
                                               unitNumber=device.unitNumber, capacityInBytes=device.capacityInBytes,
                                               backing=dev.VirtualDisk.FlatVer2BackingInfo(fileName="[ds2] %s/%s_%d.vmdk" % (
                                                   config.name, config.name, next_key[dev.VirtualDisk]), diskMode="persistent")))
                next_key[dev.VirtualDisk] += 1
        new_vm = FakeNewVM(self, vim.vm.ConfigInfo(name=config.name, hardware=vim.vm.VirtualHardware(device=devices)))
        return done(new_vm)


def placed_in(folder):
    """A placement in ``folder``, resource pool "pool", on datastore "ds2" (by name)."""
    return Placement(datacenter=None, folder=folder, resource_pool="pool", datastore="ds2")


def test_create_vm_maps_new_disks_to_captured_keys(monkeypatch):
    networks = {"DR LAN": None, "Backup LAN": None}
    resolved = []
    monkeypatch.setattr(cfg, "find_network", lambda session, name, dc: resolved.append(name) or networks[name])
    monkeypatch.setattr(cfg, "datacenter_of", lambda folder: None)
    folder = FakeFolder()
    created = cfg.create_vm(object(), captured_json(), {"name": "copy", "network_map": {"Prod LAN": "DR LAN"}}, placed_in(folder))
    assert (created.moref, created.name) == ("vm-77", "copy")
    assert sorted(resolved) == ["Backup LAN", "DR LAN"]
    assert {key: (d.key, d.controller.type, d.controller.bus_number, d.unit_number, d.capacity) for key, d in created.disks.items()} == {
        2000: (2000, "pvscsi", 0, 0, 16 * GIB), 2001: (2001, "lsilogicsas", 1, 2, 3 * GIB + 512 * 1024), 2002: (2002, "ide", 0, 1, GIB)}
    assert [d.key for d in list_disks(created.vm)] == [2000, 2001, 2002]


def test_create_vm_with_missing_disk_destroys_it_and_raises(monkeypatch):
    monkeypatch.setattr(cfg, "find_network", lambda session, name, dc: None)
    monkeypatch.setattr(cfg, "datacenter_of", lambda folder: None)
    folder = FakeFolder(drop_disk=True)
    with pytest.raises(VSphereError, match=r"The new VM lacks disk\(s\) matching Hard disk 2 \(lsilogicsas bus 1 unit 2, 3221749760 bytes\)"):
        cfg.create_vm(object(), captured_json(), {}, placed_in(folder))
    assert folder.destroyed


def test_unknown_target_network_is_a_configuration_error(monkeypatch):
    def missing(session, name, dc):
        raise cfg.ObjectNotFoundError("no")
    monkeypatch.setattr(cfg, "find_network", missing)
    monkeypatch.setattr(cfg, "datacenter_of", lambda folder: None)
    with pytest.raises(ConfigurationError, match=r"Network 'Prod LAN' \(of NIC Network adapter 1\) does not exist .* network_mapping"):
        cfg.create_vm(object(), captured_json(), {}, placed_in(FakeFolder()))


def test_extra_config_is_part_of_the_creation_spec():
    spec = cfg.build_config_spec(captured_json(), {"extra_config": {"blockvault.restore.incomplete": "restore run r1"}}, "ds2")[0]
    assert [(o.key, o.value) for o in spec.extraConfig] == [("blockvault.restore.incomplete", "restore run r1")]
    assert not cfg.build_config_spec(captured_json(), {}, "ds2")[0].extraConfig


def test_a_network_mapping_for_a_network_the_vm_never_had_is_refused_naming_its_networks(monkeypatch):
    resolved = []
    monkeypatch.setattr(cfg, "find_network", lambda session, name, dc: resolved.append(name))
    monkeypatch.setattr(cfg, "datacenter_of", lambda folder: None)
    folder = FakeFolder()
    with pytest.raises(ConfigurationError) as caught:
        cfg.create_vm(object(), captured_json(), {"name": "copy", "network_map": {"Prod LAN": "DR LAN", "Prod-LAN": "DR LAN"}},
                      placed_in(folder))
    assert caught.value.message == ("network_mapping names network(s) 'Prod-LAN' that the backed-up VM had no network adapter "
                                    "on; its networks were 'Backup LAN', 'Prod LAN'.")
    assert caught.value.hint.startswith("Map only the networks the backed-up VM had (check the spelling)")
    assert resolved == [] and folder.created == []          # refused before any vCenter call
    with pytest.raises(ConfigurationError, match="^network_mapping names network"):
        cfg.build_config_spec(captured_json(), {"network_map": {"Prod-LAN": "DR LAN"}}, "ds2")


def test_network_mapping_check_of_a_vm_without_network_adapters():
    cfg.check_network_mapping([], None)
    cfg.check_network_mapping([], {})
    with pytest.raises(ConfigurationError, match=r"^network_mapping names network\(s\) 'VM Network' that the backed-up VM "
                                                 r"had no network adapter on; it had no network adapter\. Map only"):
        cfg.check_network_mapping([], {"VM Network": "Isolated"})
