"""ops._engine.RepositoryOpener: the repository opens on a helper thread, its errors reach the caller, it is closed."""
import threading

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import errors
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import _engine
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import repository as ops_repository
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings


@pytest.fixture
def settings(tmp_path):
    repo = RepositorySettings(location=str(tmp_path / "repo"), passphrase="pass-one")
    ops_repository.ensure_repository(ops_repository.RepositoryRequest(), repo)
    return repo


def test_the_repository_opens_while_the_caller_works_and_is_closed_at_exit(settings, monkeypatch):
    caller_working = threading.Event()
    opened_on = []
    closed = []
    real_open = _engine.open_repository

    def open_after_the_caller_started(repo_settings):
        # the open waits for the caller's own set-up: were it run in __enter__, this would time out
        assert caller_working.wait(10), "the repository was opened before the caller could work"
        opened_on.append(threading.current_thread().name)
        repository = real_open(repo_settings)
        monkeypatch.setattr(repository, "close", lambda: closed.append(True))
        return repository

    monkeypatch.setattr(_engine, "open_repository", open_after_the_caller_started)
    with _engine.RepositoryOpener(settings) as opening:
        caller_working.set()
        repository = opening.result()
        assert repository.chunk_size == 4 * 1024 * 1024
        assert closed == []
    assert opened_on == ["bv-repository-open"]
    assert closed == [True]


def test_an_open_error_is_raised_in_the_callers_thread(settings):
    wrong = RepositorySettings(location=settings.location, passphrase="not the passphrase")
    with _engine.RepositoryOpener(wrong) as opening:
        with pytest.raises(errors.WrongKeyError):
            opening.result()


def test_the_callers_own_error_is_not_replaced_by_a_failed_open(settings):
    wrong = RepositorySettings(location=settings.location, passphrase="not the passphrase")
    with pytest.raises(errors.ConfigurationError, match="the vCenter login failed first"):
        with _engine.RepositoryOpener(wrong):
            raise errors.ConfigurationError("the vCenter login failed first")


def test_the_caller_compiles_the_manifest_schema_while_the_key_is_derived(settings, monkeypatch):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import manifest
    monkeypatch.setattr(manifest, "_VALIDATOR", [])
    compiled_while_opening = []
    real_open = _engine.open_repository

    def slow_open(repo_settings):
        repository = real_open(repo_settings)
        # the open ends only once the caller has compiled the schema: a caller that just joined would hang here
        for _attempt in range(1000):
            if manifest._VALIDATOR:
                compiled_while_opening.append(True)
                break
            threading.Event().wait(0.01)
        return repository

    monkeypatch.setattr(_engine, "open_repository", slow_open)
    with _engine.RepositoryOpener(settings) as opening:
        opening.result()
    assert compiled_while_opening == [True]


def test_a_missing_jsonschema_does_not_hide_the_open(settings, monkeypatch):
    asked = threading.Event()
    real_open = _engine.open_repository

    def missing():
        asked.set()
        raise errors.MissingDependencyError("no jsonschema", library="jsonschema")

    def open_once_asked(repo_settings):
        assert asked.wait(10), "the caller did not try to compile the schema while the repository opened"
        return real_open(repo_settings)

    monkeypatch.setattr(_engine, "prepare_validation", missing)
    monkeypatch.setattr(_engine, "open_repository", open_once_asked)
    with _engine.RepositoryOpener(settings) as opening:
        assert opening.result().chunk_size == 4 * 1024 * 1024
