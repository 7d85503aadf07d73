"""ops.requests, ops.targets, ops.restore: requests checked when built, the target a restore runs, restore point selection."""
import types

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, RestoreRefusedError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import (
    BackupRequest, Endpoints, RestorePointQuery, RunSettings)
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import (
    DiskToVm, File, InPlace, NewVm, Placement, RestoreRequest, select_restore_point)
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.repository import ManifestRead
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.vm import VmSelector


def test_backup_request_normalises_and_checks():
    request = BackupRequest(vm={"name": "web01", "uuid": None}, include_disks=[2000, "Hard disk 2"])
    assert request.vm == VmSelector(name="web01") and request.include_disks == ("2000", "Hard disk 2")
    with pytest.raises(ConfigurationError, match="mode 'differential': use one of auto, full, incremental."):
        BackupRequest(vm={"name": "web01"}, mode="differential")
    with pytest.raises(ConfigurationError, match="Which VM"):
        BackupRequest(vm=None)


@pytest.mark.parametrize("values, message", [
    ({"workers": 0}, "workers is 0: give 1 or more."),
    ({"memory_budget": 0}, "memory_budget is 0 bytes: give 1 or more."),
])
def test_run_settings_refuse_nonsense(values, message):
    with pytest.raises(ConfigurationError, match=message):
        RunSettings(**values)


def test_vm_operations_need_vsphere_settings():
    with pytest.raises(ConfigurationError, match="A backup needs vCenter and VDDK settings"):
        Endpoints(repo=RepositorySettings(location="/srv/repo")).require_vsphere("A backup")


def test_targets_check_their_options_and_say_whether_they_need_vsphere():
    assert File(path="/tmp/x.raw").needs_vsphere is False
    assert NewVm("copy").needs_vsphere and InPlace().needs_vsphere and DiskToVm(vm={"moid": "vm-1"}).needs_vsphere
    with pytest.raises(ConfigurationError, match="target file needs path"):
        File(path="")
    with pytest.raises(ConfigurationError, match="target new_vm needs new_name"):
        NewVm("")
    with pytest.raises(ConfigurationError, match="disk_format 'sparse' is not one of same, thin, thick, eagerzeroedthick."):
        NewVm("copy", disk_format="sparse")
    with pytest.raises(ConfigurationError, match="target disk needs the VM that receives the disk"):
        DiskToVm(vm=None)
    with pytest.raises(ConfigurationError, match="The restore target must be NewVm, InPlace, DiskToVm or File"):
        RestoreRequest(RestorePointQuery(), "new_vm")
    assert InPlace(vm={"moid": "vm-9"}).vm == VmSelector(moid="vm-9")


def test_before_applies_to_latest_only():
    with pytest.raises(ConfigurationError, match="before applies to restore_point=latest only, not to restore point r42."):
        RestorePointQuery(restore_point="r42", before="2026-11-26T00:00:00Z")


def point(rp_id, name, created):
    return types.SimpleNamespace(id=rp_id, vm=types.SimpleNamespace(name=name), created=created)


class FakeRepository:
    def __init__(self, points):
        self.points = points

    def read_manifests(self):
        return [ManifestRead(types.SimpleNamespace(id=p.id), manifest=p) for p in self.points]

    def load_manifest(self, rp_id):
        return next(p for p in self.points if p.id == rp_id)


def test_select_restore_point_latest_before_and_by_id():
    repository = FakeRepository([point("a", "web01", "2026-11-24T03:00:00Z"), point("b", "db01", "2026-11-25T03:00:00Z"),
                                 point("c", "web01", "2026-11-26T03:00:00Z")])
    assert select_restore_point(repository, RestorePointQuery("latest", "web01")).id == "c"
    assert select_restore_point(repository, RestorePointQuery("latest", "web01", "2026-11-26T00:00:00Z")).id == "a"
    assert select_restore_point(repository, RestorePointQuery("b")).id == "b"
    with pytest.raises(ConfigurationError, match="No restore point of VM web01 before 2026-11-01T00:00:00Z in the repository"):
        select_restore_point(repository, RestorePointQuery("latest", "web01", "2026-11-01T00:00:00Z"))
    with pytest.raises(ConfigurationError, match="before 'yesterday' is not a time"):
        select_restore_point(repository, RestorePointQuery("latest", "web01", "yesterday"))
    with pytest.raises(ConfigurationError, match="give the name of the backed-up VM too"):
        select_restore_point(repository, RestorePointQuery("latest"))


def test_placement_defaults_to_where_the_vm_lived(monkeypatch):
    calls = []

    def resolve(session, default_datastore=None, **names):
        calls.append(dict(names, default_datastore=default_datastore))
        if names.get("folder") == "gone":
            raise ConfigurationError("no folder gone")
        return "placement"

    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import targets  # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(targets, "resolve_placement", resolve)
    source = {"datacenter": "DC0", "compute": "C0", "folder": "DC0/vm"}
    assert Placement(datastore="ds2").resolve("session", source, "ds1") == "placement"
    assert calls[-1] == {"datacenter": "DC0", "folder": "DC0/vm", "resource_pool": "C0", "datastore": "ds2",
                         "default_datastore": "ds1"}
    # the user's own names win; a recorded place that no longer exists falls back to them alone
    Placement(resource_pool="gold").resolve("session", dict(source, folder="gone"), "ds1")
    assert calls[-2:] == [{"datacenter": "DC0", "folder": "gone", "resource_pool": "gold", "default_datastore": "ds1"},
                          {"resource_pool": "gold", "default_datastore": "ds1"}]


class FakeVm:
    def __init__(self, incomplete=""):
        self.incomplete = incomplete

    def extra_config_value(self, key):
        return self.incomplete


def test_an_existing_vm_is_replaced_only_with_force_and_a_half_restored_one_is_named():
    with pytest.raises(RestoreRefusedError, match="A VM named copy exists already: choose another new_name, or set force"):
        NewVm("copy")._check_replace(FakeVm())      # pylint: disable=protected-access
    with pytest.raises(RestoreRefusedError, match="left by a restore that did not complete"):
        NewVm("copy")._check_replace(FakeVm("restore run r1 ..."))      # pylint: disable=protected-access
    NewVm("copy", force=True)._check_replace(FakeVm())      # pylint: disable=protected-access
