"""What results say against the lab: the VDDK transport each disk really used (result, manifest, listing) and the
warning when a faster mode asked for fell back; bytes before and after compression; the backup's and the restore
targets' diffs; a network_mapping naming a network the VM never had."""
import dataclasses
import uuid

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import InPlace, NewVm
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.vm import find_vm_or_none

# ops.info comes through opslab: imported at conftest time, as every engine module the tests use
from opslab import CHUNK, MIB, ops_info  # pylint: disable=import-error

pytestmark = pytest.mark.lab

LAB_DISKS = [("2000", 64 * MIB), ("2016", 16 * MIB)]


def asking_for(env, transports):
    env.vddk = dataclasses.replace(env.vddk, transports=transports)


def fallback_warning(label, key, asked, used, transports):
    return ("Disk %s (key %s) was read with transport %s although %s was asked for first (transports %s): VDDK could "
            "not use %s for it, so this backup ran slower than planned. hotadd needs the proxy to be a VM that can reach "
            "the disk's datastore; san needs the datastore's LUNs visible to the proxy." % (label, key, used, asked, transports, asked))


def manifest_of(env, rp_id):
    repository = env.repository()
    try:
        return repository.load_manifest(rp_id), repository.stats()
    finally:
        repository.close()


def test_the_transport_really_used_is_reported_in_result_manifest_and_listing(env):
    env.knobs(hotadd_proxy=1)                   # the stand-in runs "in a proxy VM": hotadd is usable
    asking_for(env, "hotadd:nbd")
    result = env.backup("lab-vm1")
    assert [(d["key"], d["transport"]) for d in result["disks"]] == [("2000", "hotadd"), ("2016", "hotadd")]
    assert (result["transports_requested"], result["warnings"]) == ("hotadd:nbd", [])
    manifest, _stats = manifest_of(env, result["restore_point"]["id"])
    assert [(d.key.value, d.transport) for d in manifest.disks] == [("2000", "hotadd"), ("2016", "hotadd")]
    assert manifest.stats["transports_requested"] == "hotadd:nbd"
    listed = ops_info.list_restore_points(env.repo, "lab-vm1")["vms"]["lab-vm1"]
    assert [(d["key"], d["transport"]) for d in listed[0]["disks"]] == [("2000", "hotadd"), ("2016", "hotadd")]
    assert listed[0]["transports_requested"] == "hotadd:nbd"


def test_a_hotadd_that_fell_back_to_nbd_is_reported_and_warned_per_disk(env):
    asking_for(env, "hotadd:nbd")               # no proxy VM: VDDK skips hotadd and reads over nbd
    result = env.backup("lab-vm1")
    assert [(d["key"], d["transport"]) for d in result["disks"]] == [("2000", "nbd"), ("2016", "nbd")]
    assert result["warnings"] == [fallback_warning(d["label"], d["key"], "hotadd", "nbd", "hotadd:nbd") for d in result["disks"]]
    assert [d["label"] for d in result["disks"]] == ["disk-1000-0", "disk-1001-0"]
    # a rerun of the run id answers from the restore point: the same transports and warnings
    again = env.backup("lab-vm1", run_id=result["run_id"])
    assert (again["changed"], again["disks"], again["warnings"]) == (False, result["disks"], result["warnings"])


def test_the_default_transports_use_nbdssl_without_a_warning(env):
    result = env.backup("lab-vm1")
    assert [d["transport"] for d in result["disks"]] == ["nbdssl", "nbdssl"]
    assert (result["transports_requested"], result["warnings"]) == ("nbdssl:nbd", [])


def test_bytes_new_is_before_compression_and_bytes_stored_what_the_repository_holds(env):
    result = env.backup("lab-vm1")
    manifest, stats = manifest_of(env, result["restore_point"]["id"])
    # a fresh repository: every chunk object is this backup's
    assert result["bytes_written"] == sum(d["bytes_stored"] for d in result["disks"]) == stats["stored_bytes"]
    # the lab disks' sizes are whole chunks, so the new chunks' size before compression is their count times the chunk
    assert sum(d["bytes_new"] for d in result["disks"]) == manifest.stats["chunks"]["chunks_new"] * CHUNK
    assert [(d.bytes_new, d.bytes_stored) for d in manifest.disks] == [(d["bytes_new"], d["bytes_stored"]) for d in result["disks"]]
    # the stand-in's disks hold compressible patterns: what is stored is smaller than what was new
    assert all(0 < d["bytes_stored"] < d["bytes_new"] for d in result["disks"])


def test_the_backup_diff_shows_the_previous_and_the_planned_restore_point(env):
    planned_first = env.backup("lab-vm1", check=True)
    assert planned_first["diff"]["before"] == {}
    first = env.backup("lab-vm1")
    assert first["diff"]["before"] == {}
    first_side = {"restore_point": first["restore_point"]["id"], "vm": "lab-vm1", "created": first["restore_point"]["created"],
                  "transports_requested": "nbdssl:nbd",
                  "disks": [{"key": key, "label": d["label"], "capacity": capacity, "mode": "full",
                             "reason": "this is the VM's first restore point", "transport": "nbdssl"}
                            for (key, capacity), d in zip(LAB_DISKS, first["disks"])]}
    assert first["diff"]["after"] == first_side
    planned = env.backup("lab-vm1", check=True)
    assert planned["diff"] == {"before": first_side, "after": {
        "restore_point": "(new, of this run)", "vm": "lab-vm1", "transports_requested": "nbdssl:nbd",
        "disks": [{"key": key, "label": d["label"], "capacity": capacity, "mode": "incremental",
                   "reason": "changed areas since restore point %s" % first["restore_point"]["id"]}
                  for (key, capacity), d in zip(LAB_DISKS, first["disks"])]}}


def test_a_network_mapping_for_a_network_the_vm_never_had_is_refused(env):
    rp_id = env.backup("lab-vm1")["restore_point"]["id"]
    name = "typo-%s" % uuid.uuid4().hex[:8]
    for check in (True, False):
        with pytest.raises(ConfigurationError) as refused:
            env.restore(rp_id, NewVm(name, network_mapping={"VM Netwrok": "DC0_DVPG0"}), check=check)
        assert refused.value.message == ("network_mapping names network(s) 'VM Netwrok' that the backed-up VM had no "
                                         "network adapter on; it had no network adapter.")
    with env.session() as session:
        assert find_vm_or_none(session, name) is None
    # one site's mapping shared by several VMs (the DR runbook): what this VM never had is ignored, not refused
    planned = env.restore(rp_id, NewVm(name, network_mapping={"VM Netwrok": "DC0_DVPG0"}, shared_network_mapping=True),
                          check=True)
    assert planned["changed"] is True


def test_the_new_vm_diff_shows_placement_and_networks(env):
    rp_id = env.backup("lab-vm1")["restore_point"]["id"]
    planned = env.restore(rp_id, NewVm("placed-%s" % uuid.uuid4().hex[:8]), check=True)
    assert planned["diff"]["after"]["placement"] == {"datacenter": "DC0", "folder": "vm", "compute": "DC0_C0",
                                                     "resource_pool": "Resources", "host": None, "datastore": "LocalDS_0"}
    assert planned["diff"]["after"]["networks"] == []        # the lab VMs have no network adapter


def test_the_in_place_diff_says_it_powers_off_and_how_many_chunks_it_writes(env, scratch_vm):
    backup = env.backup(scratch_vm)
    rp_id = backup["restore_point"]["id"]
    env.write(scratch_vm, 0, 4096, 4096, seed=51)
    env.power(scratch_vm, True)
    planned = env.restore(rp_id, InPlace(force=True), check=True)
    after = planned["diff"]["after"]
    assert (planned["diff"]["before"]["power_state"], after["power_state"], after["powered_off_by_restore"]) == (
        "poweredOn", "poweredOff", True)
    keys = [d["key"] for d in backup["disks"]]
    assert [(d["key"], d["chunks_to_write"]) for d in after["disks"]] == [
        (key, "up to %d (of %d; only those that differ from the restore point are written)" % (size // CHUNK, size // CHUNK))
        for key, (_lab_key, size) in zip(keys, LAB_DISKS)]
    assert env.power_state(scratch_vm) == "poweredOn"        # check mode changed nothing
    done = env.restore(rp_id, InPlace(force=True))
    assert done["diff"]["after"]["powered_off_by_restore"] is True
    assert [(d["key"], d["chunks_to_write"]) for d in done["diff"]["after"]["disks"]] == [(keys[0], 1), (keys[1], 0)]
    assert env.power_state(scratch_vm) == "poweredOff"


def test_the_result_says_how_the_backup_learnt_which_chunks_were_stored(env):
    first = env.backup("lab-vm1")
    # a new repository has no presence filter yet: the session listed chunks/, and says why
    assert first["chunk_presence"] == {"method": "listing (no gc/present: no GC has written one yet)", "requests": 0}
    repository = env.repository()
    try:
        repository.gc(lock_wait=0)            # GC writes the filter of the chunks it saw stored
    finally:
        repository.close()
    env.write("lab-vm1", 0, 3 * CHUNK, CHUNK, seed=7)
    second = env.backup("lab-vm1")
    assert second["chunk_presence"]["method"] == "filter"
    # one request per new chunk the filter could not rule out: at most the chunks this incremental read
    assert 0 <= second["chunk_presence"]["requests"] <= sum(d["bytes_read"] for d in second["disks"]) // CHUNK
    manifest, _stats = manifest_of(env, second["restore_point"]["id"])
    assert manifest.stats["chunk_presence"] == second["chunk_presence"]
    # a rerun of the run id answers from the restore point: the same account
    assert env.backup("lab-vm1", run_id=second["run_id"])["chunk_presence"] == second["chunk_presence"]
