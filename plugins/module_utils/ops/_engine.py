# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every operation needs: open the repository, name a run, find the VM, report progress.

Kept in one place so that the operations (backup, restore, validate, prune, info) open
repositories, name runs and report progress the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import secrets
import threading

from ..errors import BlockvaultError, ConfigurationError, CorruptionError, MissingDependencyError
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


@dataclasses.dataclass(frozen=True)
class ManifestSelection:
    """Manifests (repo.model.Manifest, oldest first) of the restore points selected, and ``warnings``: one text per
    restore point passed over because its manifest is damaged (for the result, and logged). Immutable."""

    manifests: tuple
    warnings: tuple


def damaged_manifest_warning(rp_id, error, vm_name=None):
    """The warning of a restore point skipped because its manifest does not read (``error``, a BlockvaultError)."""
    what = "is damaged" if isinstance(error, CorruptionError) else "cannot be read"
    text = "restore point %s: its manifest %s (%s); skipped" % (rp_id, what, error.message)
    if vm_name:
        text += (" - its VM is unknown (a VM's name is stored inside its manifest), so it may be a restore point of "
                 "VM %s" % vm_name)
    return text


@dataclasses.dataclass(frozen=True)
class SummarySelection:
    """As ManifestSelection, with each restore point's repo.model.PointSummary (what listings show of it: the fields of
    its Manifest they read, under the same names) in ``summaries``. Immutable."""

    summaries: tuple
    warnings: tuple


def _skipped(read, vm_name, warnings):
    """True (after logging it and adding its warning) when ``read`` (a ManifestRead or SummaryRead) is of a damaged manifest."""
    if read.error is None:
        return False
    warning = damaged_manifest_warning(read.point.id, read.error, vm_name)
    log.warning("%s", warning)
    warnings.append(warning)
    return True


def select_summaries(repository, vm_name=None):
    """The SummarySelection of the repository's restore points: every one, or those of the VM named ``vm_name``.

    What select_manifests selects, damaged manifests and their warnings included, but from the repository's catalog
    (repo.catalog: one object per VM) where it matches the listed manifests, instead of a manifest per restore point:
    for the views that show restore points (info, report, what prune says); what acts on a restore point (restore,
    validate, copy) reads its manifest.
    """
    summaries, warnings = [], []
    for read in repository.read_summaries(vm_name=vm_name):
        if not _skipped(read, vm_name, warnings) and read.summary is not None:
            summaries.append(read.summary)
    return SummarySelection(tuple(summaries), tuple(warnings))


def select_manifests(repository, vm_name=None):
    """The ManifestSelection of the repository's restore points: every one, or those of the VM named ``vm_name``.

    Restore point names carry a VM tag, not the VM's name (which may change, and is encrypted in an encrypted
    repository), so selecting by name reads the manifests (cached by the repository: they are immutable). A
    damaged manifest never fails the selection: it is skipped and reported in ``warnings`` (an unrelated VM's
    damaged object must not hold a restore hostage); a restore point pruned meanwhile is simply left out.
    """
    manifests, warnings = [], []
    for read in repository.read_manifests():
        if not _skipped(read, vm_name, warnings) and read.manifest is not None and (vm_name is None or read.manifest.vm.name == vm_name):
            manifests.append(read.manifest)
    return ManifestSelection(tuple(manifests), tuple(warnings))


def manifests_of(repository, vm_name=None):
    """The manifests of select_manifests (a list, oldest first); damaged ones are skipped and logged."""
    return list(select_manifests(repository, vm_name).manifests)


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
