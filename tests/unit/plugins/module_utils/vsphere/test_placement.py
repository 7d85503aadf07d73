"""resolve_placement defaults and errors; find_vm_by_spec selectors; VSphereSession from its settings."""
from types import SimpleNamespace

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory, placement
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.session import VSphereSession

DC = SimpleNamespace(name="DC0", vmFolder="vm-folder")
CLUSTER = SimpleNamespace(name="C0", resourcePool="cluster-pool")
STANDALONE = SimpleNamespace(name="H9", resourcePool="standalone-pool")
HOST = SimpleNamespace(name="esx1", parent=CLUSTER)


@pytest.fixture
def finders(monkeypatch):
    calls = []
    datastores = {"ds1": "ds1-object", "old-ds": "old-ds-object"}

    def find_datastore(session, name, datacenter=None):
        calls.append(("datastore", name))
        if name not in datastores:
            raise inventory.ObjectNotFoundError("No datastore named %r in vCenter vc1 in datacenter DC0." % name)
        return datastores[name]

    monkeypatch.setattr(placement, "find_datacenter", lambda session, name=None: DC)
    monkeypatch.setattr(placement, "find_folder", lambda session, path, dc: "folder:" + path)
    monkeypatch.setattr(placement, "find_host", lambda session, name, dc: HOST)
    monkeypatch.setattr(placement, "find_resource_pool", lambda session, name, dc: "pool:" + name)
    monkeypatch.setattr(placement, "find_datastore", find_datastore)
    compute = [CLUSTER]
    monkeypatch.setattr(placement, "retrieve_properties", lambda session, vim_type, props, container=None: [(c, {}) for c in compute])
    return SimpleNamespace(calls=calls, compute=compute)


def test_defaults_with_one_compute_resource(finders):
    where = placement.resolve_placement(object(), default_datastore="old-ds")
    assert where == placement.Placement(datacenter=DC, folder="vm-folder", resource_pool="cluster-pool", datastore="old-ds-object", host=None)


def test_explicit_names_win(finders):
    where = placement.resolve_placement(object(), folder="restored", resource_pool="gold", datastore="ds1", default_datastore="old-ds")
    assert (where.folder, where.resource_pool, where.datastore) == ("folder:restored", "pool:gold", "ds1-object")
    assert finders.calls == [("datastore", "ds1")]


def test_host_gives_its_compute_resource_pool(finders):
    where = placement.resolve_placement(object(), host="esx1", datastore="ds1")
    assert (where.host, where.resource_pool) == (HOST, "cluster-pool")


def test_several_compute_resources_need_a_choice(finders):
    finders.compute.append(STANDALONE)
    with pytest.raises(ConfigurationError, match="Datacenter DC0 has 2 clusters/hosts: say where the VM runs with resource_pool"):
        placement.resolve_placement(object(), datastore="ds1")


def test_datastore_errors_name_the_option(finders):
    with pytest.raises(ConfigurationError, match="No datastore for the restored VM: set datastore."):
        placement.resolve_placement(object())
    with pytest.raises(ConfigurationError, match="The original VM's datastore gone is not in datacenter DC0: set datastore."):
        placement.resolve_placement(object(), default_datastore="gone")
    with pytest.raises(ConfigurationError, match="No datastore named 'typo'"):
        placement.resolve_placement(object(), datastore="typo")


def test_find_vm_by_spec_maps_selectors(monkeypatch):
    seen = []
    monkeypatch.setattr(inventory, "find_vm", lambda session, within=None, **kw: seen.append((within, kw)) or "vm")
    monkeypatch.setattr(inventory, "find_datacenter", lambda session, name: "dc:" + name)
    inventory.find_vm_by_spec(object(), {"name": "web"})
    inventory.find_vm_by_spec(object(), {"uuid": "u1"})
    inventory.find_vm_by_spec(object(), {"uuid": "u2", "use_instance_uuid": True, "datacenter": "DC0"})
    inventory.find_vm_by_spec(object(), {"moid": "vm-7"})
    assert seen == [(None, {"name": "web"}), (None, {"bios_uuid": "u1"}), ("dc:DC0", {"instance_uuid": "u2"}), (None, {"moref": "vm-7"})]
    with pytest.raises(ConfigurationError, match="Unknown VM selector"):
        inventory.find_vm_by_spec(object(), {"hostname": "web"})


def test_session_keeps_every_field_of_its_settings():
    settings = SimpleNamespace(host="vc1", username="u", password="p", port=8443, validate_certs=False, ca_bundle="/ca.pem",
                               proxy_host="proxy1", proxy_port=3128)
    s = VSphereSession(settings, vddk_thumbprint="AA" * 20)
    assert (s.host, s.user, s.port, s.validate_certs, s.ca_bundle, s.expected_thumbprint, s.proxy_host, s.proxy_port) == (
        "vc1", "u", 8443, False, "/ca.pem", ":".join(["AA"] * 20), "proxy1", 3128)
