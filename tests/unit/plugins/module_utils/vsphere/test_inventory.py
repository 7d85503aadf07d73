"""Finders: property-collector paging, name unescaping, disambiguation, selectors and not-found messages."""
from types import SimpleNamespace

import pytest
from pyVmomi import vim, vmodl

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, VMNotFoundError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.inventory import (
    AmbiguousObjectError, ObjectNotFoundError, find_resource_pool, find_vm, inventory_path, retrieve_properties)


def node(name, parent, moref):
    return SimpleNamespace(name=name, parent=parent, _moId=moref)


ROOT = SimpleNamespace(name="Datacenters", parent=None, _moId="group-d1")
DC0 = node("DC0", ROOT, "datacenter-2")
VM_FOLDER = node("vm", DC0, "group-v3")
PROD = node("prod", VM_FOLDER, "group-v10")


class FakeCollector:
    """RetrievePropertiesEx answers in pages of ``page`` objects with a token, like a big vCenter."""

    def __init__(self, rows, page):
        self.rows = rows
        self.page = page
        self.calls = []

    def _answer(self, start):
        chunk = self.rows[start:start + self.page]
        objects = [SimpleNamespace(obj=obj, propSet=[SimpleNamespace(name=k, val=v) for k, v in props.items()], missingSet=missing)
                   for obj, props, missing in chunk]
        token = str(start + self.page) if start + self.page < len(self.rows) else None
        return SimpleNamespace(objects=objects, token=token)

    def RetrievePropertiesEx(self, specSet, options):
        self.calls.append(("retrieve", options.maxObjects, specSet[0].propSet[0].type, list(specSet[0].propSet[0].pathSet)))
        return self._answer(0)

    def ContinueRetrievePropertiesEx(self, token):
        self.calls.append(("continue", token))
        return self._answer(int(token))


class FakeSession:
    host = "vc1"

    def __init__(self, rows=(), page=2, search=None, morefs=None):
        self.collector = FakeCollector(list(rows), page)
        self.views = []
        self.search = search or SimpleNamespace()
        self.morefs = morefs or {}
        self.content = SimpleNamespace(rootFolder=ROOT, propertyCollector=self.collector, searchIndex=self.search,
                                       viewManager=SimpleNamespace(CreateContainerView=self._view))

    def _view(self, container, types, recursive):
        self.views.append((container, types, recursive))
        return vim.view.ContainerView("session[1]view-%d" % len(self.views))

    def managed_object(self, vim_type, moref):
        return self.morefs[moref]


def vm_row(name, parent=VM_FOLDER, moref=None, missing=None):
    return (node(name, parent, moref or "vm-" + name), {"name": name}, missing)


def test_retrieve_properties_follows_tokens_and_skips_unreadable_objects():
    rows = [vm_row("a"), vm_row("b"), vm_row("c", missing=[object()]), vm_row("d"), vm_row("e")]
    session = FakeSession(rows, page=2)
    result = retrieve_properties(session, vim.VirtualMachine, ["name"], page_size=2)
    assert [props["name"] for _obj, props in result] == ["a", "b", "d", "e"]
    assert session.collector.calls == [("retrieve", 2, vim.VirtualMachine, ["name"]), ("continue", "2"), ("continue", "4")]
    assert session.views == [(ROOT, [vim.VirtualMachine], True)]


def test_find_vm_by_name_across_pages_and_with_escaped_characters():
    rows = [vm_row("web01"), vm_row("db01"), vm_row("a%2fb%25c", moref="vm-99"), vm_row("x")]
    session = FakeSession(rows, page=1)
    assert find_vm(session, name="a/b%c")._moId == "vm-99"
    assert find_vm(session, name="x")._moId == "vm-x"


def test_ambiguous_name_lists_paths_and_morefs():
    rows = [vm_row("web", VM_FOLDER, "vm-1"), vm_row("other"), vm_row("web", PROD, "vm-2")]
    with pytest.raises(AmbiguousObjectError) as caught:
        find_vm(FakeSession(rows), name="web")
    assert caught.value.matches == ["DC0/vm/prod/web (vm-2)", "DC0/vm/web (vm-1)"]
    assert str(caught.value) == ("2 VMs are named 'web' in vCenter vc1: DC0/vm/prod/web (vm-2); DC0/vm/web (vm-1). "
                                 "Identify the VM by its path or moref instead.")


def test_unknown_name_is_vm_not_found():
    with pytest.raises(VMNotFoundError) as caught:
        find_vm(FakeSession([vm_row("web")]), name="Web")
    assert str(caught.value).startswith("No VM named 'Web' in vCenter vc1.")


def test_exactly_one_selector():
    with pytest.raises(ConfigurationError, match=r"exactly one of .* \(got name, moref\)"):
        find_vm(FakeSession(), name="a", moref="vm-1")
    with pytest.raises(ConfigurationError, match=r"\(got none\)"):
        find_vm(FakeSession())


def test_find_by_path_requires_a_vm():
    vm = vim.VirtualMachine("vm-5")
    paths = {"DC0/vm/web": vm, "DC0/vm": vim.Folder("group-v3")}

    def find_by_inventory_path(inventoryPath):
        return paths.get(inventoryPath)

    search = SimpleNamespace(FindByInventoryPath=find_by_inventory_path)
    session = FakeSession(search=search)
    assert find_vm(session, path="DC0/vm/web") is vm
    with pytest.raises(VMNotFoundError, match=r"No VM at inventory path 'DC0/vm' in vCenter vc1 \(it is not a VM\)"):
        find_vm(session, path="DC0/vm")
    with pytest.raises(VMNotFoundError, match=r"No VM at inventory path 'DC0/vm/nope' in vCenter vc1\."):
        find_vm(session, path="DC0/vm/nope")


def test_uuid_lookup_uses_find_all_and_reports_duplicates():
    one, two = vim.VirtualMachine("vm-1"), vim.VirtualMachine("vm-2")
    calls = []

    def find_all(datacenter, uuid, vmSearch, instanceUuid):
        calls.append((uuid, vmSearch, instanceUuid))
        return {"u1": [one], "dup": [one, two]}.get(uuid, [])

    session = FakeSession(search=SimpleNamespace(FindAllByUuid=find_all))
    assert find_vm(session, bios_uuid="u1") is one
    assert find_vm(session, instance_uuid="u1") is one
    assert calls[:2] == [("u1", True, False), ("u1", True, True)]
    with pytest.raises(AmbiguousObjectError, match="2 VMs with BIOS UUID 'dup'"):
        find_vm(session, bios_uuid="dup")
    with pytest.raises(VMNotFoundError, match="No VM with instance UUID 'zz' in vCenter vc1"):
        find_vm(session, instance_uuid="zz")


def test_uuid_lookup_falls_back_to_find_by_uuid_when_find_all_is_missing():
    vm = vim.VirtualMachine("vm-3")

    def find_all(**kwargs):
        raise vmodl.fault.MethodNotFound(msg="no such method")

    search = SimpleNamespace(FindAllByUuid=find_all, FindByUuid=lambda datacenter, uuid, vmSearch, instanceUuid: vm if uuid == "u" else None)
    session = FakeSession(search=search)
    assert find_vm(session, bios_uuid="u") is vm
    with pytest.raises(VMNotFoundError):
        find_vm(session, bios_uuid="other")


def test_moref_lookup_translates_missing_object():
    class Gone:
        @property
        def name(self):
            raise vmodl.fault.ManagedObjectNotFound(msg="The object 'vim.VirtualMachine:vm-404' has already been deleted")

    live = SimpleNamespace(name="web")
    session = FakeSession(morefs={"vm-404": Gone(), "vm-7": live})
    assert find_vm(session, moref="vm-7") is live
    with pytest.raises(VMNotFoundError) as caught:
        find_vm(session, moref="vm-404")
    assert str(caught.value) == "No VM with moref 'vm-404' in vCenter vc1 (ManagedObjectNotFound). A VM moref looks like vm-123."


def test_inventory_path_skips_root_folder():
    assert inventory_path(node("web", PROD, "vm-1")) == "DC0/vm/prod/web"
    assert inventory_path(DC0) == "DC0"


def test_resource_pool_by_cluster_name_is_its_root_pool(monkeypatch):
    root_pool = SimpleNamespace(name="Resources")
    found = []

    def fake_find(session, vim_type, kind, name, datacenter=None, hint=None):
        found.append(vim_type)
        if vim_type is vim.ComputeResource and name == "C0":
            return SimpleNamespace(resourcePool=root_pool)
        raise ObjectNotFoundError("none")

    monkeypatch.setattr(inventory, "_find_by_name", fake_find)
    assert find_resource_pool(FakeSession(), "C0") is root_pool
    with pytest.raises(ObjectNotFoundError):
        find_resource_pool(FakeSession(), "nope")
    assert found[-3:] == [vim.ComputeResource, vim.HostSystem, vim.ResourcePool]


def test_datastore_not_found_and_ambiguous():
    dc1 = node("DC1", ROOT, "datacenter-9")
    rows = [(node("ds1", DC0, "datastore-1"), {"name": "ds1"}, None), (node("ds1", dc1, "datastore-2"), {"name": "ds1"}, None)]
    session = FakeSession(rows)
    with pytest.raises(ObjectNotFoundError, match="No datastore named 'ds9' in vCenter vc1"):
        inventory.find_datastore(session, "ds9")
    with pytest.raises(AmbiguousObjectError) as caught:
        inventory.find_datastore(session, "ds1")
    assert caught.value.matches == ["DC0/ds1 (datastore-1)", "DC1/ds1 (datastore-2)"]


def test_list_vms_one_pass_sorted():
    rows = [(node("web", VM_FOLDER, "vm-2"), {"name": "web", "config.uuid": "b2", "config.instanceUuid": "i2", "config.template": False,
                                              "runtime.powerState": "poweredOn"}, None),
            (node("a%2fb", VM_FOLDER, "vm-1"), {"name": "a%2fb", "config.uuid": "b1", "config.instanceUuid": "i1", "config.template": True,
                                                "runtime.powerState": "poweredOff"}, None)]
    session = FakeSession(rows, page=1)
    assert inventory.list_vms(session) == [
        {"name": "a/b", "moref": "vm-1", "bios_uuid": "b1", "instance_uuid": "i1", "template": True, "power_state": "poweredOff"},
        {"name": "web", "moref": "vm-2", "bios_uuid": "b2", "instance_uuid": "i2", "template": False, "power_state": "poweredOn"}]
    assert session.collector.calls[0][3] == ["name", "config.uuid", "config.instanceUuid", "config.template", "runtime.powerState"]
