"""backup_repository: create idempotently, add keys, failures of differing settings."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import errors
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.repository import RepositoryRequest
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.modules import backup_repository

REPOSITORY = {"location": "/srv/repo", "id": "3b2f", "format_version": 1, "chunk_size": 4194304, "encryption": True,
              "compression_level": 3, "key_slots": 1}


@pytest.fixture
def ensure(ops_call):
    return ops_call(backup_repository.ops_repository, "ensure_repository",
                    result={"changed": True, "created": True, "keys_added": [], "repository": REPOSITORY})


def test_create_with_defaults(run_module, ensure):
    outcome, result = run_module(backup_repository, dict(repository="/srv/repo", passphrase="repo-pass-1"))
    assert outcome == "exit"
    # chunk_size and compression_level not asked for: None, which the operation reads as "the default when creating,
    # the repository's own when it exists" (tests/unit/plugins/module_utils/ops/test_repository_ops.py)
    assert ensure.kwargs == {
        "request": RepositoryRequest(chunk_size=None, encryption=True, compression_level=None, new_passphrase=None,
                                     new_key_file=None, key_label=None, remove_keys=()),
        "repo": RepositorySettings(location="/srv/repo", passphrase="repo-pass-1"),
        "check": False,
    }
    assert result == {"changed": True, "created": True, "keys_added": [], "repository": REPOSITORY}


def test_create_with_every_setting(run_module, ensure):
    run_module(backup_repository, dict(repository="/srv/repo", chunk_size=1048576, encryption=False, compression_level=9))
    request = ensure.kwargs["request"]
    assert (request.chunk_size, request.encryption, request.compression_level) == (1048576, False, 9)
    assert ensure.kwargs["repo"] == RepositorySettings(location="/srv/repo")


def test_only_the_settings_asked_for_are_passed(run_module, ensure):
    run_module(backup_repository, dict(repository="/srv/repo", compression_level=5))
    request = ensure.kwargs["request"]
    assert (request.chunk_size, request.compression_level) == (None, 5)


def test_add_keys(run_module, ensure, key_file, tmp_path):
    new_key = str(tmp_path / "recovery.key")
    args = dict(repository="/srv/repo", key_file=key_file, new_passphrase="second-pass-2", new_key_file=new_key)
    outcome, result = run_module(backup_repository, args)
    assert outcome == "exit"
    request = ensure.kwargs["request"]
    assert (request.new_passphrase, request.new_key_file) == ("second-pass-2", new_key)
    assert "second-pass-2" not in repr(result) and "second-pass-2" not in repr(request)


def test_rotation_options_reach_the_operation(run_module, ensure):
    run_module(backup_repository, dict(repository="/srv/repo", passphrase="old-pass-1", new_passphrase="new-pass-2",
                                       key_label="ops-2026-12", remove_keys=["ops-2026-06", "5c0e2a9b1d7f4e36"]))
    request = ensure.kwargs["request"]
    assert (request.key_label, request.remove_keys) == ("ops-2026-12", ("ops-2026-06", "5c0e2a9b1d7f4e36"))


def test_existing_repository_is_not_a_change(run_module, ops_call):
    ops_call(backup_repository.ops_repository, "ensure_repository", result={"changed": False, "repository": REPOSITORY})
    outcome, result = run_module(backup_repository, dict(repository="/srv/repo", passphrase="repo-pass-1"))
    assert outcome == "exit" and result["changed"] is False


def test_differing_settings_fail_clearly(run_module, ops_call):
    message = ("The repository at /srv/repo exists with other settings: chunk_size is 4194304 (asked: 1048576). These are fixed "
               "at creation: change the task to match, or use another location.")
    ops_call(backup_repository.ops_repository, "ensure_repository", error=errors.ConfigurationError(message))
    outcome, result = run_module(backup_repository, dict(repository="/srv/repo", chunk_size=1048576, compression_level=3))
    assert outcome == "fail"
    assert (result["msg"], result["error_class"], result["phase"]) == (message, "ConfigurationError", "configuration")


def test_wrong_key_fails_with_its_class(run_module, ops_call):
    ops_call(backup_repository.ops_repository, "ensure_repository", error=errors.WrongKeyError("The passphrase does not open /srv/repo."))
    outcome, result = run_module(backup_repository, dict(repository="/srv/repo", passphrase="wrong-pass-3"))
    assert outcome == "fail" and result["error_class"] == "WrongKeyError"
    assert "wrong-pass-3" not in repr(result)


def test_check_mode(run_module, ensure):
    run_module(backup_repository, dict(repository="/srv/repo"), check_mode=True)
    assert ensure.kwargs["check"] is True


def test_empty_new_passphrase_is_refused(run_module, ensure):
    outcome, result = run_module(backup_repository, dict(repository="/srv/repo", new_passphrase=""))
    assert outcome == "fail"
    assert result["msg"] == "new_passphrase is empty: give a passphrase to add, or leave the option out."
    assert ensure.calls == []


def test_state_has_no_info_choice(run_module, ensure):
    outcome, result = run_module(backup_repository, dict(repository="/srv/repo", state="info"))
    assert outcome == "fail"
    assert result["msg"] == "value of state must be one of: present, got: info"
