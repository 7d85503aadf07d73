"""ops.restore_points and the repository's pins and notes: pin, annotate, delete one restore point; prune keeps pins."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import errors
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import info as ops_info
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import prune as ops_prune
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore_points import (
    RestorePointChange, manage_restore_point)
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import crypto
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    MIB, PASSPHRASE, backup, make_repo, random_disk)


@pytest.fixture
def points(tmp_path, monkeypatch):
    """A repository with three restore points of one VM: (RepositorySettings, [ids oldest first], backend)."""
    monkeypatch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
    from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import open_backend  # pylint: disable=import-outside-toplevel
    backend = open_backend(str(tmp_path / "repo"))
    repo = make_repo(backend)
    ids = [backup(repo, "vm-a", {"2000": random_disk(2 * MIB, seed)})[0] for seed in (1, 2, 3)]
    repo.close()
    return RepositorySettings(location=str(tmp_path / "repo"), passphrase=PASSPHRASE), ids, backend


def test_pin_and_note_are_idempotent_and_listed(points):
    settings, ids, _backend = points
    change = RestorePointChange(ids[0], pinned=True, note="before the 2026-12 upgrade")
    planned = manage_restore_point(change, settings, check=True)
    assert planned["changed"] is True and planned["diff"]["before"]["pinned"] is False
    assert planned["diff"]["after"] == dict(planned["diff"]["before"], pinned=True, note="before the 2026-12 upgrade")
    assert manage_restore_point(change, settings)["changed"] is True
    assert manage_restore_point(change, settings)["changed"] is False
    listed = ops_info.list_restore_points(settings)["vms"]["vm vm-a"]
    assert [(p["id"], p["pinned"], p["note"]) for p in listed] == [
        (ids[0], True, "before the 2026-12 upgrade"), (ids[1], False, ""), (ids[2], False, "")]
    removed_note = manage_restore_point(RestorePointChange(ids[0], note=""), settings)
    assert removed_note["changed"] is True and removed_note["restore_point"]["note"] == ""


def test_prune_keeps_a_pinned_point_outside_its_policy(points):
    settings, ids, _backend = points
    manage_restore_point(RestorePointChange(ids[0], pinned=True), settings)
    result = ops_prune.prune(settings, {"keep_last": 1}, gc=False)
    assert [r["id"] for r in result["removed"]] == [ids[1]]
    assert sorted((k["id"], tuple(k["reasons"])) for k in result["kept"]) == sorted([(ids[0], ("pinned",)), (ids[2], ("last",))])


def test_delete_is_refused_while_pinned_then_removes_everything_of_the_point(points):
    settings, ids, backend = points
    manage_restore_point(RestorePointChange(ids[1], pinned=True, note="keep"), settings)
    with pytest.raises(errors.ConfigurationError, match="Restore point %s is pinned: unpin it" % ids[1]):
        manage_restore_point(RestorePointChange(ids[1], state="absent"), settings)
    manage_restore_point(RestorePointChange(ids[1], pinned=False), settings)
    deleted = manage_restore_point(RestorePointChange(ids[1], state="absent"), settings)
    assert deleted["changed"] is True and deleted["restore_point"] is None
    left = [info.name for prefix in ("manifests/", "indexes/", "pins/", "notes/", "removals/") for info in backend.list(prefix)]
    assert not [name for name in left if ids[1] in name]
    again = manage_restore_point(RestorePointChange(ids[1], state="absent"), settings)
    assert again["changed"] is False


def test_notes_are_sealed_in_an_encrypted_repository(points):
    settings, ids, backend = points
    manage_restore_point(RestorePointChange(ids[2], note="payroll db, before the upgrade"), settings)
    stored = backend.get("notes/" + ids[2])
    assert b"payroll" not in stored


def test_change_requests_are_checked():
    with pytest.raises(errors.ConfigurationError, match="state absent deletes restore point r: pinned and note do not apply."):
        RestorePointChange("r", state="absent", pinned=True)
    with pytest.raises(errors.ConfigurationError, match="note has 1001 characters: keep it to 1000."):
        RestorePointChange("r", note="x" * 1001)
    with pytest.raises(errors.ConfigurationError, match="restore_point is empty"):
        RestorePointChange("")
