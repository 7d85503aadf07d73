"""Against the lab: a restore by name goes on past another VM's damaged manifest, saying so; a backup whose idempotency
check races a prune still succeeds and builds on what is left; a deleted manifest is reported by validation."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import CorruptionError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import File
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.repository import Repository

from opslab import sha256_file  # pylint: disable=import-error

pytestmark = pytest.mark.lab


def test_latest_of_a_vm_restores_past_another_vms_damaged_manifest_with_a_warning(env):
    other = env.backup("lab-vm2")["restore_point"]["id"]
    mine = env.backup("lab-vm1")["restore_point"]["id"]
    live = env.checksums("lab-vm1")
    repository = env.repository()
    try:
        name = "manifests/" + other
        sealed = bytearray(repository.backend.get(name))
        sealed[-1] ^= 0x01      # one flipped bit in the GCM tag of the other VM's sealed manifest
        repository.backend.put(name, bytes(sealed))
    finally:
        repository.close()
    path = env.tmp_path / "restored.raw"
    result = env.restore("latest", File(path=str(path), disk="2000"), vm_name="lab-vm1")
    assert result["restore_point"]["id"] == mine and sha256_file(path) == live[0]
    assert result["warnings"] == [
        "restore point %s: its manifest is damaged (Object %s fails authentication: it is damaged or was tampered with.); "
        "skipped - its VM is unknown (a VM's name is stored inside its manifest), so it may be a restore point of VM "
        "lab-vm1" % (other, name)]
    with pytest.raises(CorruptionError, match="Object %s fails authentication" % name):
        env.restore(other, File(path=str(env.tmp_path / "other.raw"), disk="2000"))


def test_a_backup_racing_a_prune_succeeds_and_builds_on_the_restore_point_left(env, monkeypatch):
    older = env.backup("lab-vm1")["restore_point"]["id"]
    newer = env.backup("lab-vm1")["restore_point"]["id"]
    listed = Repository.list_restore_points

    def list_then_prune(repository, vm=None):
        points = listed(repository, vm)
        if newer in [point.id for point in points]:
            repository._delete_restore_point_locked(newer)  # pylint: disable=protected-access
        return points        # another process's prune removed the newest between this listing and the reads

    monkeypatch.setattr(Repository, "list_restore_points", list_then_prune)
    result = env.backup("lab-vm1")
    monkeypatch.undo()
    assert [(d["key"], d["mode"], d["reason"]) for d in result["disks"]] == [
        ("2000", "incremental", "changed areas since restore point %s" % older),
        ("2016", "incremental", "changed areas since restore point %s" % older)]
    assert env.restore_points() == [older, result["restore_point"]["id"]]
    live = env.checksums("lab-vm1")
    assert sha256_file(env.restore_file(result["restore_point"]["id"], "2000")) == live[0]
    quick, full = env.validate()
    assert quick["ok"] and full["ok"]


def test_a_deleted_manifest_fails_validation_naming_the_restore_point(env):
    kept = env.backup("lab-vm2")["restore_point"]["id"]
    lost = env.backup("lab-vm2")["restore_point"]["id"]
    repository = env.repository()
    try:
        repository.backend.delete("manifests/" + lost)
    finally:
        repository.close()
    quick, full = env.validate()
    for report in (quick, full):
        assert not report["ok"] and report["restore_points"] == 1
        assert [(e["restore_point"], e["objects"]) for e in report["errors"]] == [(lost, ["indexes/%s/2000" % lost])]
    assert env.restore_points() == [kept]
