# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every operation needs: open the repository, name a run, find the VM, report progress.

Kept in one place so that the operations (backup, restore, validate, prune, info) open
repositories, name runs and report progress the same way.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import secrets
import threading

from ..errors import BlockvaultError, ConfigurationError, MissingDependencyError
from ..repo import Repository, open_backend
from ..repo.keyagent import KeyAgentClient
from ..repo.manifest import prepare_validation
from ..transfer.progress import RunLogHandler, RunProgress, StatusFile

log = logging.getLogger("blockvault")


def new_run_id():
    """A run id that sorts by time and is unique without coordination."""
    return "%s-%s" % (datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ"), secrets.token_hex(4))


def open_repository(settings):
    """Open the repository of RepositorySettings ``settings`` (RepositoryNotFoundError, WrongKeyError, ...)."""
    agent = KeyAgentClient(settings.key_agent) if settings.key_agent else None
    return Repository.open(open_backend(settings), passphrase=settings.passphrase, key_file=settings.key_file, agent=agent)


class RepositoryOpener:
    """Opens a repository on a helper thread while the caller does its own set-up (vCenter login, finding the VM).

    Why: opening derives the key from the passphrase (scrypt: 0.25 to 0.4 s of CPU, run outside the GIL),
    and a vCenter login and lookup are round trips spent waiting; in sequence they are the largest fixed cost
    of a small incremental. Use as a context manager: ``result()`` waits for the repository and returns it, or
    raises what opening raised; leaving the context waits for the helper and closes the repository it opened
    (an open that fails after the caller already failed is only logged: the caller's error is the one to see).
    Thread-safety: one caller thread; the helper thread touches only this object's result fields.
    """

    def __init__(self, settings):
        self._settings = settings
        self._repository = None
        self._error = None
        self._thread = threading.Thread(target=self._open, name="bv-repository-open", daemon=True)

    def _open(self):
        try:
            self._repository = open_repository(self._settings)
        except BaseException as exc:    # handed to the caller's thread by result()
            self._error = exc

    def __enter__(self):
        self._thread.start()
        return self

    def result(self):
        if self._thread.is_alive():
            # the caller would only wait here while the key derivation runs outside the GIL: compile the
            # manifest schema meanwhile, which every operation needs next
            try:
                prepare_validation()
            except MissingDependencyError:
                pass            # reported, with its hint, by the first manifest the operation reads
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._repository

    def __exit__(self, *exc_info):
        self._thread.join()
        if self._error is not None:
            log.debug("opening the repository failed too: %s", self._error)
        if self._repository is not None:
            self._repository.close()
        return False


def manifests_of(repository, vm_name=None):
    """Manifests (repo.model.Manifest) of the repository's restore points, oldest first; only those of the VM named ``vm_name`` if given.

    Restore point names carry a VM tag, not the VM's name (which may change, and is encrypted in an encrypted
    repository), so selecting by name reads the manifests (cached by the repository: they are immutable).
    """
    manifests = (repository.load_manifest(point.id) for point in repository.list_restore_points())
    return [manifest for manifest in manifests if vm_name is None or manifest.vm.name == vm_name]


def default_status_path(run_id):
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "blockvault", "runs", "%s.status.json" % run_id)


@contextlib.contextmanager
def run_reporting(run_id, vm_name, status_file=None, heartbeat=True):
    """Progress counters, the status file and the run log of one run, as a context manager yielding RunProgress.

    The status file is rewritten atomically while the run goes on and ends as succeeded or failed with the
    error; the run log (``<status file>.log``) gets every engine log record of the run, secrets redacted.
    """
    path = status_file or default_status_path(run_id)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError("status_file %s: cannot create its directory (%s)." % (path, exc.strerror)) from exc
    progress = RunProgress(run_id=run_id, vm=vm_name)
    handler = RunLogHandler(path + ".log")
    engine_log = logging.getLogger("blockvault")
    package_log = logging.getLogger(__name__.rsplit(".ops.", 1)[0])
    for logger in (engine_log, package_log):
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    status = StatusFile(path, progress, heartbeat=heartbeat)
    try:
        with status:
            yield progress
    except BlockvaultError as exc:
        log.error("run %s failed: %s (%s)", run_id, exc, exc.error_class)
        raise
    except Exception as exc:
        log.error("run %s failed: %s", run_id, type(exc).__name__)
        raise
    finally:
        for logger in (engine_log, package_log):
            logger.removeHandler(handler)
        handler.close()
