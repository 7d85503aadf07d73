"""ops.repository: idempotent creation, settings fixed at creation, key slots added once."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import errors
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import repository as ops_repository
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings

MIB = 1024 * 1024


@pytest.fixture
def location(tmp_path):
    return str(tmp_path / "repo")


def test_check_mode_creates_nothing(location):
    result = ops_repository.ensure_repository(RepositorySettings(location=location, passphrase="pass-one"), check=True)
    assert result["changed"] is True and result["created"] is True
    assert result["repository"]["chunk_size"] == 4 * MIB and result["repository"]["compression_level"] == 1
    with pytest.raises(errors.RepositoryNotFoundError):
        ops_repository.show_repository(RepositorySettings(location=location, passphrase="pass-one"))


def test_create_then_idempotent_with_the_settings_not_asked_for(location):
    repo = RepositorySettings(location=location, passphrase="pass-one")
    created = ops_repository.ensure_repository(repo, chunk_size=MIB, compression_level=7)
    assert (created["changed"], created["created"]) == (True, True)
    assert (created["repository"]["chunk_size"], created["repository"]["compression_level"]) == (MIB, 7)
    again = ops_repository.ensure_repository(repo)     # None: whatever the repository has
    assert (again["changed"], again["created"], again["keys_added"]) == (False, False, [])
    assert again["repository"]["id"] == created["repository"]["id"]


def test_differing_fixed_settings_are_refused_naming_them(location):
    repo = RepositorySettings(location=location, passphrase="pass-one")
    ops_repository.ensure_repository(repo, chunk_size=MIB)
    with pytest.raises(errors.ConfigurationError) as caught:
        ops_repository.ensure_repository(repo, chunk_size=2 * MIB)
    assert str(caught.value) == ("The repository at %s exists with other settings: chunk_size is 1048576 (asked: 2097152). "
                                 "These are fixed at creation: change the task to match, or use another location." % location)


def test_a_passphrase_is_added_once_and_then_opens_the_repository(location):
    repo = RepositorySettings(location=location, passphrase="pass-one")
    ops_repository.ensure_repository(repo, chunk_size=MIB)
    added = ops_repository.ensure_repository(repo, new_passphrase="pass-two")
    assert (added["changed"], added["keys_added"], len(added["repository"]["key_slots"])) == (True, ["passphrase"], 2)
    again = ops_repository.ensure_repository(repo, new_passphrase="pass-two")
    assert (again["changed"], again["keys_added"]) == (False, [])
    shown = ops_repository.show_repository(RepositorySettings(location=location, passphrase="pass-two"))
    assert shown["repository"]["id"] == added["repository"]["id"]
    assert "pass-two" not in repr(added) and "pass-one" not in repr(shown)


def test_wrong_passphrase_is_a_wrong_key_error(location):
    ops_repository.ensure_repository(RepositorySettings(location=location, passphrase="pass-one"), chunk_size=MIB)
    with pytest.raises(errors.WrongKeyError):
        ops_repository.show_repository(RepositorySettings(location=location, passphrase="not-it"))


def test_compression_level_zero_is_refused_not_turned_into_the_default(location):
    repo = RepositorySettings(location=location, passphrase="pass-one")
    with pytest.raises(errors.ConfigurationError, match=r"compression_level must be an integer from 1 to 22 \(zstd levels: 1 is the fastest\), got 0."):
        ops_repository.ensure_repository(repo, compression_level=0)
