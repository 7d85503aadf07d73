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
    ops_repository.ensure_repository(repo)
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
