"""The vsphere layer against the lab's vCenter simulator (tests/lab): login and TLS, finders, disks,
snapshots and orphans, CBT with exact changed extents across pages, capture + CreateVM of a copy."""
import socket
import time
import uuid

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import (
    AuthenticationError, CertificateError, ChangeTrackingError, VMNotFoundError, VSphereError)
from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import cbt, config, disks, inventory, placement, snapshots
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import snapshot_lease
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.session import VSphereSession
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.settings import VSphereSettings

from labkit.httpproxy import HttpProxy

pytestmark = pytest.mark.lab
MIB = 1 << 20


def lab_session(lab, password=None, **overrides):
    """A VSphereSession to the lab (CA bundle and expected thumbprint from the lab), with overrides."""
    info = lab.info
    kwargs = dict(port=int(info["port"]), ca_bundle=info["ca_bundle"])
    kwargs.update(overrides)
    vddk_thumbprint = kwargs.pop("vddk_thumbprint", info["thumbprint"])
    settings = VSphereSettings(info["host"], info["user"], password or info["password"], **kwargs)
    return VSphereSession(settings, vddk_thumbprint=vddk_thumbprint)


@pytest.fixture(scope="module")
def vs(lab):
    with lab_session(lab) as session:
        yield session


@pytest.fixture(scope="module")
def vm1(vs):
    return inventory.find_vm(vs, name="lab-vm1")


@pytest.fixture
def no_leftover_snapshots(vm1):
    yield
    leftovers = [e.name for e in snapshots.list_snapshots(vm1) if snapshots.is_blockvault_snapshot(e.name)]
    for entry in snapshots.list_snapshots(vm1):
        if snapshots.is_blockvault_snapshot(entry.name):
            snapshots.remove_snapshot(entry.snapshot)
    assert leftovers == []


# -- session -----------------------------------------------------------------------------------

def test_login_gives_cookie_and_the_labs_thumbprint(lab, vs):
    assert vs.thumbprint == lab.info["thumbprint"]
    assert vs.thumbprint_verified is True
    assert vs.session_cookie and vs.session_cookie not in repr(vs)
    assert vs.content.about.apiType == "VirtualCenter"


def test_wrong_password_is_an_authentication_error(lab):
    with pytest.raises(AuthenticationError) as caught:
        lab_session(lab, password="not-the-password").connect()
    assert str(caught.value) == ("vCenter %s rejected the user name or password for %s: check username/password."
                                 % (lab.info["host"], lab.info["user"]))
    assert "not-the-password" not in str(caught.value.to_dict())


def test_certificate_needs_the_lab_ca(lab):
    with pytest.raises(CertificateError) as caught:
        lab_session(lab, ca_bundle=None).connect()
    assert "could not be verified" in str(caught.value) and "ca_bundle" in str(caught.value)
    with lab_session(lab, ca_bundle=None, validate_certs=False, vddk_thumbprint=None) as unverified:
        assert unverified.thumbprint == lab.info["thumbprint"]
        assert unverified.thumbprint_verified is False


def test_wrong_vddk_thumbprint_is_refused(lab):
    with pytest.raises(CertificateError, match="but vddk_thumbprint is 00:00"):
        lab_session(lab, vddk_thumbprint="00" * 20).connect()


def test_login_through_an_http_proxy_verifies_vcenters_certificate_end_to_end(lab):
    # tinyproxy, a proxy nobody here wrote, as a site's outbound proxy: the API calls go through its CONNECT tunnel,
    # TLS is still verified against the lab's CA and the thumbprint is vCenter's own
    with HttpProxy(connect_ports=[int(lab.info["port"])]) as proxy:
        with lab_session(lab, proxy_host="127.0.0.1", proxy_port=proxy.port) as session:
            assert session.thumbprint == lab.info["thumbprint"] and session.thumbprint_verified is True
            assert inventory.find_vm(session, name="lab-vm1").name == "lab-vm1"
        assert "%s:%s" % (lab.info["host"], lab.info["port"]) in proxy.connects()
        # and without proxy_host nothing goes through it
        before = len(proxy.connects())
        with lab_session(lab):
            pass
        assert len(proxy.connects()) == before


def test_a_proxy_that_refuses_the_tunnel_or_is_not_there_is_named(lab):
    with HttpProxy(connect_ports=[1]) as proxy:
        with pytest.raises(VSphereError) as caught:
            lab_session(lab, proxy_host="127.0.0.1", proxy_port=proxy.port).connect()
        assert str(caught.value).startswith("The HTTP proxy 127.0.0.1:%d refused to connect to vCenter %s:%s (Tunnel "
                                            "connection failed: 403" % (proxy.port, lab.info["host"], lab.info["port"]))
        assert "check that the proxy allows CONNECT to that host and port" in str(caught.value)
        port = proxy.port
    with pytest.raises(VSphereError, match="Cannot reach the HTTP proxy 127.0.0.1:%d: connection refused. Check "
                                           "proxy_host and proxy_port." % port):
        lab_session(lab, proxy_host="127.0.0.1", proxy_port=port).connect()
    with pytest.raises(ConfigurationError, match="proxy_port None is not a TCP port"):
        lab_session(lab, proxy_host="127.0.0.1")


def test_closed_port_names_host_and_port(lab):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(VSphereError, match="Cannot connect to vCenter 127.0.0.1:%d: connection refused" % port):
        lab_session(lab, port=port).connect()


# -- inventory ---------------------------------------------------------------------------------

def test_find_lab_vm1_every_way(vs, vm1):
    moref = vm1._moId
    assert inventory.inventory_path(vm1) == "DC0/vm/lab-vm1"
    assert inventory.find_vm(vs, path="DC0/vm/lab-vm1")._moId == moref
    assert inventory.find_vm(vs, bios_uuid=vm1.config.uuid)._moId == moref
    assert inventory.find_vm(vs, instance_uuid=vm1.config.instanceUuid)._moId == moref
    assert inventory.find_vm(vs, moref=moref)._moId == moref
    datacenter = inventory.find_datacenter(vs, "DC0")
    assert inventory.find_vm(vs, name="lab-vm1", within=datacenter)._moId == moref


@pytest.mark.parametrize("selector, text", [
    ({"name": "no-such-vm"}, "No VM named 'no-such-vm' in vCenter"),
    ({"path": "DC0/vm/no-such-vm"}, "No VM at inventory path 'DC0/vm/no-such-vm'"),
    ({"bios_uuid": "00000000-0000-0000-0000-000000000000"}, "No VM with BIOS UUID"),
    ({"instance_uuid": "00000000-0000-0000-0000-000000000000"}, "No VM with instance UUID"),
    ({"moref": "vm-999999"}, "No VM with moref 'vm-999999'"),
])
def test_unknown_vm_is_vm_not_found(vs, selector, text):
    with pytest.raises(VMNotFoundError, match=text):
        inventory.find_vm(vs, **selector)


def test_list_vms(vs, vm1):
    listed = {vm["name"]: vm for vm in inventory.list_vms(vs)}
    assert listed["lab-vm1"]["moref"] == vm1._moId and listed["lab-vm1"]["bios_uuid"] == vm1.config.uuid
    assert "lab-vm2" in listed


def test_find_vm_by_spec(vs, vm1):
    assert inventory.find_vm_by_spec(vs, {"uuid": vm1.config.uuid})._moId == vm1._moId
    assert inventory.find_vm_by_spec(vs, {"moid": vm1._moId, "datacenter": "DC0"})._moId == vm1._moId


def test_find_vm_by_name_in_a_folder_as_community_vmware_names_it(vs, vm1):
    # datacenter + folder + name, the way community.vmware's modules find a VM; the folder narrows the search
    for folder in ("DC0/vm", "/DC0/vm"):
        assert inventory.find_vm_by_spec(vs, {"name": "lab-vm1", "folder": folder})._moId == vm1._moId
    empty = vs.content.searchIndex.FindByInventoryPath(inventoryPath="DC0/vm").CreateFolder("bv-empty-%s" % uuid.uuid4().hex[:6])
    try:
        with pytest.raises(VMNotFoundError, match="No VM named 'lab-vm1' in vCenter .* in folder %s" % empty.name):
            inventory.find_vm_by_spec(vs, {"name": "lab-vm1", "datacenter": "DC0", "folder": empty.name})
    finally:
        empty.Destroy_Task()
    with pytest.raises(inventory.ObjectNotFoundError, match="No folder at 'DC0/vm/nope'"):
        inventory.find_vm_by_spec(vs, {"name": "lab-vm1", "folder": "DC0/vm/nope"})
    with pytest.raises(ConfigurationError, match="folder narrows a search by name"):
        inventory.find_vm_by_spec(vs, {"moid": vm1._moId, "folder": "DC0/vm"})


def test_placement(vs):
    where = placement.resolve_placement(vs, resource_pool="DC0_C0", default_datastore="LocalDS_0")
    assert (where.datacenter.name, where.folder.name, where.datastore.name, where.host) == ("DC0", "vm", "LocalDS_0", None)
    assert where.resource_pool._moId == inventory.find_resource_pool(vs, "DC0_C0")._moId
    with pytest.raises(ConfigurationError, match="clusters/hosts: say where the VM runs"):
        placement.resolve_placement(vs, datastore="LocalDS_0")


def test_other_finders(vs):
    assert inventory.find_datastore(vs, "LocalDS_0").name == "LocalDS_0"
    assert inventory.find_folder(vs, "DC0/vm").name == "vm"
    assert inventory.find_resource_pool(vs, "DC0_C0")._moId
    with pytest.raises(inventory.ObjectNotFoundError, match="No datastore named 'nope'"):
        inventory.find_datastore(vs, "nope")


# -- disks -------------------------------------------------------------------------------------

def test_disks_of_lab_vm1(lab, vm1):
    found = disks.list_disks(vm1)
    assert [(d.capacity, d.file_name, d.datastore) for d in found] == [
        (64 * MIB, "[LocalDS_0] lab-vm1/lab-vm1.vmdk", "LocalDS_0"), (16 * MIB, "[LocalDS_0] lab-vm1/lab-vm1_1.vmdk", "LocalDS_0")]
    assert found[0].controller.key != found[1].controller.key
    assert [(d.controller.type, d.controller.bus_number, d.unit_number) for d in found] == [("pvscsi", 0, 0), ("lsilogic", 1, 0)]
    assert [(d["key"], d["fileName"], d["capacity"]) for d in lab.disks("lab-vm1")] == [(d.key, d.file_name, d.capacity) for d in found]


# -- snapshots ---------------------------------------------------------------------------------

class LaterClock:
    """vCenter's clock ``seconds`` ahead: how a run judges leases that long from now."""

    def __init__(self, vm, seconds):
        self.server, self.seconds = snapshot_lease.ServerClock(vm), seconds

    def wall(self):
        return self.server.wall() + self.seconds

    @staticmethod
    def monotonic():
        return time.monotonic()


def test_backup_snapshot_and_orphan_cleanup(vm1, no_leftover_snapshots):
    orphan = snapshots.create_backup_snapshot(vm1, "old-run")  # its lease: stale_after + the creation allowance, never renewed
    with snapshots.backup_snapshot(vm1, "current-run") as current:
        assert current.quiesced is False and current.name == "blockvault-current-run"
        assert [d.capacity for d in disks.list_disks(current.snapshot)] == [64 * MIB, 16 * MIB]
        deadline = time.monotonic() + 30
        while lease_length(vm1, "blockvault-current-run") != 120 and time.monotonic() < deadline:
            time.sleep(0.05)  # the keeper's first renewal (RenameSnapshot) shortens the creation's lease
        assert lease_length(vm1, "blockvault-current-run") == 120
        assert snapshots.remove_orphan_snapshots(vm1, live_run_ids=["current-run"]) == []  # old-run's lease runs
        later = LaterClock(vm1, 120 + snapshot_lease.CREATION_ALLOWANCE + 1)
        assert snapshots.remove_orphan_snapshots(vm1, live_run_ids=["current-run"], clock=later) == ["blockvault-old-run"]
        assert [e.name for e in snapshots.list_snapshots(vm1) if snapshots.is_blockvault_snapshot(e.name)] == ["blockvault-current-run"]
    assert orphan.moref not in [e.moref for e in snapshots.list_snapshots(vm1)]
    assert not [e for e in snapshots.list_snapshots(vm1) if snapshots.is_blockvault_snapshot(e.name)]


def lease_length(vm, name):
    entry = next(e for e in snapshots.list_snapshots(vm) if e.name == name)
    info = snapshot_lease.LeaseInfo.parse(entry.description)
    return round(info.expires - info.renewed)


# -- CBT ---------------------------------------------------------------------------------------

WRITES_DISK0 = [(0, 4096), (MIB + 512, 1000), (3 * MIB, 65536), (3 * MIB + 65536, 10), (10 * MIB, 1), (20 * MIB, 2 * MIB),
                (63 * MIB, MIB)]
EXPECTED_DISK0 = [(0, 4096), (MIB + 512, 1000), (3 * MIB, 65546), (10 * MIB, 1), (20 * MIB, 2 * MIB), (63 * MIB, MIB)]


def test_cbt_changed_areas_are_exactly_the_writes(vm1, labctl, no_leftover_snapshots):
    status = cbt.ensure_cbt(vm1)
    assert status.enabled and status.reason is None
    with snapshots.backup_snapshot(vm1, "cbt-base") as base:
        base_disks = disks.list_disks(base.snapshot)
        assert all(d.change_id for d in base_disks)
        for offset, length in WRITES_DISK0:
            labctl("write", "--vm", "lab-vm1", "--disk", 0, "--offset", offset, "--length", length, "--seed", 7)
        labctl("write", "--vm", "lab-vm1", "--disk", 1, "--offset", 16 * MIB - 4096, "--length", 4096, "--seed", 7)
        with snapshots.backup_snapshot(vm1, "cbt-next") as nxt:
            next_disks = disks.list_disks(nxt.snapshot)
            areas0 = cbt.changed_areas(vm1, nxt.snapshot, next_disks[0].key, next_disks[0].capacity, base_disks[0].change_id)
            areas1 = cbt.changed_areas(vm1, nxt.snapshot, next_disks[1].key, next_disks[1].capacity, base_disks[1].change_id)
            unchanged = cbt.changed_areas(vm1, nxt.snapshot, next_disks[1].key, next_disks[1].capacity, next_disks[1].change_id)
    assert [(a.start, a.length) for a in areas0] == EXPECTED_DISK0  # 6 areas: more than one page of 4
    assert [(a.start, a.length) for a in areas1] == [(16 * MIB - 4096, 4096)]
    assert unchanged == []


def test_cbt_reset_makes_old_change_ids_fail_with_a_reason(vm1, labctl, no_leftover_snapshots):
    assert cbt.ensure_cbt(vm1).enabled
    with snapshots.backup_snapshot(vm1, "cbt-before-reset") as before:
        old = disks.list_disks(before.snapshot)[0]
    labctl("reset-cbt", "--vm", "lab-vm1")
    with snapshots.backup_snapshot(vm1, "cbt-after-reset") as after:
        with pytest.raises(ChangeTrackingError) as caught:
            cbt.changed_areas(vm1, after.snapshot, old.key, old.capacity, old.change_id, disk_label=old.label)
    assert caught.value.reason and "read in full" in str(caught.value)


# -- capture and CreateVM ----------------------------------------------------------------------

def test_capture_and_create_a_copy(vs, vm1):
    captured = config.capture_config(vm1)
    assert [d["capacity"] for d in captured["disks"]] == [64 * MIB, 16 * MIB]
    # the lab VMs have no NIC: give the captured config one on a network the target lacks, mapped to the lab's port group
    captured["nics"] = [{"key": 4000, "type": "vmxnet3", "label": "Network adapter 1", "network": "Prod LAN", "network_type": "standard",
                         "mac_address_type": "assigned", "mac_address": "00:50:56:aa:bb:cc", "controller_key": 100, "unit_number": 7,
                         "start_connected": True}]
    name = "lab-vm1-copy-%s" % uuid.uuid4().hex[:6]
    where = placement.resolve_placement(vs, resource_pool="DC0_C0", default_datastore=captured["disks"][0]["datastore"])
    with pytest.raises(ConfigurationError, match="Network 'Prod LAN' .* network_mapping"):
        config.create_vm(vs, captured, {"name": name}, where)
    overrides = {"name": name, "disk_format": "thin", "network_map": {"Prod LAN": "DC0_DVPG0"}}
    created = config.create_vm(vs, captured, overrides, where)
    try:
        assert created.name == name and inventory.find_vm(vs, name=name)._moId == created.moref
        assert {key: (d.capacity, d.controller.type, d.controller.bus_number, d.unit_number, d.thin)
                for key, d in created.disks.items()} == {
            captured["disks"][0]["key"]: (64 * MIB, "pvscsi", 0, 0, True), captured["disks"][1]["key"]: (16 * MIB, "lsilogic", 1, 0, True)}
        assert all(d.file_name.startswith("[LocalDS_0] ") for d in created.disks.values())
        copy = config.capture_config(created.vm)
        assert {k: copy[k] for k in ("num_cpus", "memory_mb", "guest_id", "firmware")} == {
            k: captured[k] for k in ("num_cpus", "memory_mb", "guest_id", "firmware")}
        assert [(n["type"], n["network"], n["network_type"], n["mac_address_type"]) for n in copy["nics"]] == [
            ("vmxnet3", "DC0_DVPG0", "distributed", "generated")]
        assert copy["nics"][0]["mac_address"] != "00:50:56:aa:bb:cc"
        added = config.add_disk(created.vm, created.disks[captured["disks"][0]["key"]].controller.key, 1,
                                config.DiskSpec(8 * MIB, datastore_name="LocalDS_0"))
        assert (added.capacity, added.unit_number) == (8 * MIB, 1)
        config.power_on(created.vm)
        assert str(created.vm.runtime.powerState) == "poweredOn"
    finally:
        config.destroy_vm(created.vm)
    with pytest.raises(VMNotFoundError):
        inventory.find_vm(vs, name=name)
