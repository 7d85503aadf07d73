"""vsphere.vm: the VM handle's vSphere rules (free unit numbers) and the selector."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import disks as vm_disks
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.disks import ControllerInfo
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.vm import VmHandle, VmSelector


class FakeVm:
    _moId = "vm-7"
    name = "web01"


def handle_with(monkeypatch, units, controller):
    disks = [type("Disk", (), {"unit_number": unit, "controller": controller})() for unit in units]
    monkeypatch.setattr(vm_disks, "list_disks", lambda vm: disks)
    return VmHandle(FakeVm())


@pytest.mark.parametrize("controller_type, used, expected", [
    ("pvscsi", [0, 1, 2, 3, 4, 5, 6], 8),          # a SCSI controller keeps unit 7 for itself
    ("lsilogic", [], 0),
    ("sata", list(range(29)), 29),
    ("nvme", [0, 2], 1),
])
def test_free_unit(monkeypatch, controller_type, used, expected):
    controller = ControllerInfo(key=1000, type=controller_type, bus_number=0)
    assert handle_with(monkeypatch, used, controller).free_unit(controller) == expected


@pytest.mark.parametrize("controller_type, used", [
    ("pvscsi", [u for u in range(16) if u != 7]),
    ("ide", [0, 1]),
])
def test_a_full_controller_is_a_clear_error(monkeypatch, controller_type, used):
    controller = ControllerInfo(key=200, type=controller_type, bus_number=0)
    with pytest.raises(ConfigurationError, match="Controller 200 of VM web01 has no free unit for another disk."):
        handle_with(monkeypatch, used, controller).free_unit(controller)


def test_handle_names_the_vm_by_moref():
    assert VmHandle(FakeVm()).moref == "vm-7" and repr(VmHandle(FakeVm())) == "VmHandle(vm-7)"


def test_selector():
    assert VmSelector.of({"name": "web01", "uuid": None}) == VmSelector(name="web01")
    assert VmSelector.of(None) is None
    assert VmSelector(moid="vm-9").describe() == "vm-9"
    assert VmSelector(uuid="4211", datacenter="DC0").as_spec() == {"uuid": "4211", "datacenter": "DC0"}
