"""ops.repository: idempotent creation, settings fixed at creation, key slots added once."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import errors
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import repository as ops_repository
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.repository import RepositoryRequest
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings

MIB = 1024 * 1024


@pytest.fixture
def location(tmp_path):
    return str(tmp_path / "repo")


def test_check_mode_creates_nothing(location):
    result = ops_repository.ensure_repository(RepositoryRequest(), RepositorySettings(location=location, passphrase="pass-one"), check=True)
    assert result["changed"] is True and result["created"] is True
    assert result["repository"]["chunk_size"] == 4 * MIB and result["repository"]["compression_level"] == 1
    with pytest.raises(errors.RepositoryNotFoundError):
        ops_repository.show_repository(RepositorySettings(location=location, passphrase="pass-one"))


def test_create_then_idempotent_with_the_settings_not_asked_for(location):
    repo = RepositorySettings(location=location, passphrase="pass-one")
    created = ops_repository.ensure_repository(RepositoryRequest(chunk_size=MIB, compression_level=7), repo)
    assert (created["changed"], created["created"]) == (True, True)
    assert (created["repository"]["chunk_size"], created["repository"]["compression_level"]) == (MIB, 7)
    again = ops_repository.ensure_repository(RepositoryRequest(), repo)     # None: whatever the repository has
    assert (again["changed"], again["created"], again["keys_added"]) == (False, False, [])
    assert again["repository"]["id"] == created["repository"]["id"]


def test_differing_fixed_settings_are_refused_naming_them(location):
    repo = RepositorySettings(location=location, passphrase="pass-one")
    ops_repository.ensure_repository(RepositoryRequest(chunk_size=MIB), repo)
    with pytest.raises(errors.ConfigurationError) as caught:
        ops_repository.ensure_repository(RepositoryRequest(chunk_size=2 * MIB), repo)
    assert str(caught.value) == ("The repository at %s exists with other settings: chunk_size is 1048576 (asked: 2097152). "
                                 "These are fixed at creation: change the task to match, or use another location." % location)


def test_a_passphrase_is_added_once_and_then_opens_the_repository(location):
    repo = RepositorySettings(location=location, passphrase="pass-one")
    ops_repository.ensure_repository(RepositoryRequest(chunk_size=MIB), repo)
    added = ops_repository.ensure_repository(RepositoryRequest(new_passphrase="pass-two"), repo)
    assert (added["changed"], added["keys_added"], len(added["repository"]["key_slots"])) == (True, ["passphrase"], 2)
    again = ops_repository.ensure_repository(RepositoryRequest(new_passphrase="pass-two"), repo)
    assert (again["changed"], again["keys_added"]) == (False, [])
    shown = ops_repository.show_repository(RepositorySettings(location=location, passphrase="pass-two"))
    assert shown["repository"]["id"] == added["repository"]["id"]
    assert "pass-two" not in repr(added) and "pass-one" not in repr(shown)


def test_wrong_passphrase_is_a_wrong_key_error(location):
    ops_repository.ensure_repository(RepositoryRequest(chunk_size=MIB), RepositorySettings(location=location, passphrase="pass-one"))
    with pytest.raises(errors.WrongKeyError):
        ops_repository.show_repository(RepositorySettings(location=location, passphrase="not-it"))


def test_compression_level_zero_is_refused_not_turned_into_the_default(location):
    repo = RepositorySettings(location=location, passphrase="pass-one")
    with pytest.raises(errors.ConfigurationError, match=r"compression_level must be an integer from 1 to 22 \(zstd levels: 1 is the fastest\), got 0."):
        ops_repository.ensure_repository(RepositoryRequest(compression_level=0), repo)


def slots(result):
    return sorted((slot["type"], slot["label"]) for slot in result["repository"]["key_slots"])


def test_keys_are_labelled_removed_by_label_and_never_the_last(location):
    repo = RepositorySettings(location=location, passphrase="pass-one")
    ops_repository.ensure_repository(RepositoryRequest(chunk_size=MIB), repo)
    added = ops_repository.ensure_repository(RepositoryRequest(new_passphrase="pass-two", key_label="dr-site"), repo)
    assert slots(added) == [("passphrase", ""), ("passphrase", "dr-site")]
    removed = ops_repository.ensure_repository(RepositoryRequest(remove_keys=["dr-site"]), repo)
    assert removed["changed"] is True and [slot["label"] for slot in removed["keys_removed"]] == ["dr-site"]
    with pytest.raises(errors.WrongKeyError):         # a removed passphrase no longer opens the repository
        ops_repository.show_repository(RepositorySettings(location=location, passphrase="pass-two"))
    again = ops_repository.ensure_repository(RepositoryRequest(remove_keys=["dr-site"]), repo)
    assert (again["changed"], again["keys_removed"]) == (False, [])
    only = removed["repository"]["key_slots"][0]["id"]
    with pytest.raises(errors.ConfigurationError, match="remove_keys would remove every key of the repository"):
        ops_repository.ensure_repository(RepositoryRequest(remove_keys=[only]), repo)
    assert slots(ops_repository.show_repository(repo)) == [("passphrase", "")]


def test_a_rotation_revokes_the_old_passphrases_and_a_rerun_changes_nothing(location):
    old = RepositorySettings(location=location, passphrase="leaked")
    created = ops_repository.ensure_repository(RepositoryRequest(chunk_size=MIB), old)
    first = created["repository"]["key_slots"][0]["id"]
    ops_repository.ensure_repository(RepositoryRequest(new_passphrase="leaked-too", key_label="ops-2"), old)
    rotation = RepositoryRequest(new_passphrase="fresh", key_label="ops", remove_keys=[first, "ops-2"])
    planned = ops_repository.ensure_repository(rotation, old, check=True)
    assert (planned["changed"], planned["keys_added"], len(planned["keys_removed"])) == (True, ["passphrase"], 2)
    rotated = ops_repository.ensure_repository(rotation, old)
    assert rotated["keys_added"] == ["passphrase"]
    assert sorted(slot["id"] for slot in rotated["keys_removed"]) == sorted(slot["id"] for slot in planned["keys_removed"])
    for revoked in ("leaked", "leaked-too"):
        with pytest.raises(errors.WrongKeyError):
            ops_repository.show_repository(RepositorySettings(location=location, passphrase=revoked))
    rerun = ops_repository.ensure_repository(rotation, old)       # the task as written: the old passphrase is gone
    assert (rerun["changed"], rerun["keys_added"], rerun["keys_removed"]) == (False, [], [])
    assert slots(rerun) == [("passphrase", "ops")]
