"""repo.model: the one conversion between manifests and their JSON, and the drafts a backup builds."""
import dataclasses
import json

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, CorruptionError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.manifest import validate_manifest
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import (
    DiskKey, DiskRecord, Manifest, ManifestDraft, VmConfig, VmRecord, manifest_from_document)

DOCUMENT = {
    "format_version": 1, "id": "20261201T010203.000004Z-0123456789abcdef-89abcdef", "run_id": "r1",
    "vm": {"key": "5012-ab", "name": "web01", "moref": "vm-42", "uuid": "4211", "instance_uuid": "5012-ab",
           "config": {"name": "web01", "guest_id": "otherGuest64", "firmware": "efi", "num_cpus": 2, "cores_per_socket": 1,
                      "memory_mb": 2048, "annotation": "", "hardware_version": "vmx-19", "template": False, "bios_uuid": "4211",
                      "instance_uuid": "5012-ab", "controllers": [{"key": 1000, "type": "pvscsi", "bus_number": 0}],
                      "disks": [{"key": 2000, "datastore": "ds1"}], "nics": [], "cdrom": False,
                      "placement": {"datacenter": "DC0", "compute": "C0", "folder": "DC0/vm"},
                      "format": 1, "a_field_of_a_newer_version": {"kept": True}}},
    "created": "2026-12-01T01:02:03Z", "started": "2026-12-01T01:02:03Z", "finished": "2026-12-01T01:04:00Z",
    "backup_mode": "incremental", "chunk_size": 4194304,
    "disks": [{"key": "2000", "label": "Hard disk 1", "controller": {"key": 1000, "type": "pvscsi", "bus_number": 0},
               "unit_number": 0, "capacity": 8388608, "file_name": "[ds1] web01/web01.vmdk", "uuid": "6000c29",
               "change_id": "52 aa/7", "mode": "incremental", "reason": "changed areas since restore point x",
               "bytes_read": 4096, "bytes_new": 100, "sha256": "ab" * 32, "sha256_block_size": 4194304,
               "index": "indexes/20261201T010203.000004Z-0123456789abcdef-89abcdef/2000", "index_sha256": "cd" * 32}],
    "stats": {"bytes_read": 4096, "skipped_disks": {}},
}


def test_a_manifest_round_trips_exactly_and_keeps_unknown_config_fields():
    manifest = Manifest.from_json(json.loads(json.dumps(DOCUMENT)))
    assert manifest.to_json() == DOCUMENT
    validate_manifest(manifest.to_json(), "the test manifest")
    assert manifest.vm.config.extra == {"format": 1, "a_field_of_a_newer_version": {"kept": True}}


def test_typed_access():
    manifest = Manifest.from_json(DOCUMENT)
    disk = manifest.disk("Hard disk 1")
    assert disk is manifest.disk("2000") is manifest.disk(2000) is manifest.disk()
    assert (disk.key, disk.capacity, disk.change_id, disk.mode) == (DiskKey("2000"), 8388608, "52 aa/7", "incremental")
    assert manifest.reference() == {"id": DOCUMENT["id"], "vm": "web01", "created": "2026-12-01T01:02:03Z"}
    assert manifest.vm.config.placement["compute"] == "C0"
    with pytest.raises(ConfigurationError, match=r"has no disk '2001'; its disks are Hard disk 1 \(key 2000\)"):
        manifest.disk("2001")


def test_disk_keys_are_checked_and_compare_by_value():
    assert DiskKey.of(2000) == DiskKey("2000") and str(DiskKey.of("2000")) == "2000"
    assert sorted([DiskKey("2001"), DiskKey("2000")]) == [DiskKey("2000"), DiskKey("2001")]
    for bad in ("", "..", "a/b", "x" * 65):
        with pytest.raises(ConfigurationError, match="A disk key must be 1-64 characters"):
            DiskKey(bad)


def test_the_draft_says_its_mode_from_its_disks():
    vm = VmRecord(key="k", name="vm", config=VmConfig("vm"))
    full = DiskRecord(key=2000, capacity=1, mode="full")
    incremental = DiskRecord(key=2001, capacity=1, mode="incremental")
    assert ManifestDraft.build("r", vm, [full]).backup_mode == "full"
    assert ManifestDraft.build("r", vm, [incremental]).backup_mode == "incremental"
    assert ManifestDraft.build("r", vm, [full, incremental]).backup_mode == "auto"
    assert full.key == DiskKey("2000")
    with pytest.raises(ConfigurationError, match="Disk 2000: mode 'differential' is neither full nor incremental."):
        dataclasses.replace(full, mode="differential")


def test_vm_config_keeps_only_the_disks_asked_for():
    config = VmConfig.from_json({"name": "vm", "disks": [{"key": 2000}, {"key": 2001}]})
    assert config.with_disks(["2001"]).disks == ({"key": 2001},)


@pytest.mark.parametrize("damage", [
    lambda doc: doc["vm"]["config"].update(disks="not a list"),
    lambda doc: doc["vm"]["config"].update(nics=[1, 2]),
    lambda doc: doc["disks"][0].update(key=".."),
])
def test_a_manifest_the_schema_lets_through_but_the_model_cannot_hold_is_damage(damage):
    document = json.loads(json.dumps(DOCUMENT))
    damage(document)
    with pytest.raises(CorruptionError, match=r"Manifest manifests/x does not describe a restore point \(.*\): it is damaged.") as caught:
        manifest_from_document("manifests/x", document)
    assert caught.value.object_name == "manifests/x"


def test_a_disk_with_the_transport_used_and_the_stored_bytes_round_trips_and_validates():
    document = json.loads(json.dumps(DOCUMENT))
    document["disks"][0].update(transport="hotadd", bytes_stored=60)
    manifest = Manifest.from_json(document)
    assert (manifest.disk().transport, manifest.disk().bytes_stored, manifest.disk().bytes_new) == ("hotadd", 60, 100)
    assert manifest.to_json() == document
    validate_manifest(manifest.to_json(), "the test manifest")


def test_an_older_manifest_without_transport_and_stored_bytes_stays_valid_and_unchanged():
    manifest = Manifest.from_json(json.loads(json.dumps(DOCUMENT)))
    assert (manifest.disk().transport, manifest.disk().bytes_stored) == (None, None)
    assert "transport" not in manifest.to_json()["disks"][0] and "bytes_stored" not in manifest.to_json()["disks"][0]


def test_the_schema_refuses_a_transport_that_is_no_mode_name():
    document = json.loads(json.dumps(DOCUMENT))
    document["disks"][0]["transport"] = "hotadd:nbd"
    with pytest.raises(CorruptionError, match=r"disks/0/transport: 'hotadd:nbd' does not match '\^\[a-z\]\{1,16\}\$'"):
        validate_manifest(document, "the test manifest")
