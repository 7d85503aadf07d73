# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RunContext: what every step of a run shares, in place of long parameter lists.

A run (a backup, a restore) opens the same things in the same order: its status file and run log, the repository
on a helper thread while it logs in to vCenter, then VDDK when it first moves data. ``open_run`` does that once for
every operation and yields the RunContext; every cleanup goes on the context's ExitStack.

Cancel (ops.cancel): the run's Cancellation is ``settings.cancellation`` (the module adapter's, which its signal
handlers and its controller watch request) or a new one. ``open_run`` watches the lease next to the status file,
runs the operation in the Cancellation's cooperative mode, and turns the CancelledError the stopped step raises
into one that says why (signal, controller gone, lease expired), in which phase, and what the cleanup undid
(``RunContext.releases``); the status file then ends ``cancelled``. Operations check between phases
(``set_phase``), their transfers through ``transfer_options().cancel``, and mark their commit with
``committing()``: a cancel that arrives once the commit has started lets it finish (the adapter says so).
"""

from __future__ import annotations

import contextlib
import time

from ..errors import BlockvaultError, CancelledError
from ..transfer import TransferOptions
from ..transfer.progress import NullProgress
from ..vddk import library as vddk_library
from ..vddk.retry import RetryingDisk, connection_factory
from ..vsphere.session import VSphereSession
from ._engine import RepositoryOpener, default_status_path, run_reporting
from .cancel import Cancellation, LeaseWatch, remove_lease
from ._vddk_io import SessionKeepalive, connect_params

__all__ = ["RunContext", "open_run"]


class RunContext:
    """One run: its id, settings, progress, ExitStack, repository (opened on a helper thread) and vCenter session.

    ``label`` is the VM the run is about (for messages, the status file and error context): set it once known.
    ``cancellation`` is the run's ops.cancel.Cancellation (module docstring: how a run checks for a cancel).
    Thread-safety: owned by the run's thread; the transfer's worker threads only see the TransferOptions it builds.
    """

    def __init__(self, run_id, endpoints, settings, progress, stack, opener, cancellation=None):
        self.run_id = run_id
        self.endpoints = endpoints
        self.settings = settings
        self.progress = progress
        self.stack = stack
        self.session = None
        self.cancellation = cancellation if cancellation is not None else Cancellation()
        self.phase = None
        self.commit_started = False
        self.released = []
        self._opener = opener
        self._label = None
        self.cleanup_outcomes = {}
        self.warnings = []

    @property
    def check(self):
        return self.settings.check

    @property
    def label(self):
        return self._label

    @label.setter
    def label(self, value):
        self._label = value
        self.progress.vm = value

    @property
    def repository(self):
        """The opened Repository (waits for the helper thread; raises what opening raised)."""
        return self._opener.result()

    def set_phase(self, phase):
        """Enter ``phase``; first raise the CancelledError when a cancel was requested (until the commit started)."""
        self.check_cancel()
        self.phase = phase
        self.progress.set_phase(phase)

    def check_cancel(self):
        """Raise the CancelledError when a cancel was requested and the run has not started committing."""
        if not self.commit_started:
            self.cancellation.check("Run %s%s" % (self.run_id, " of VM %s" % self._label if self._label else ""))

    @contextlib.contextmanager
    def committing(self):
        """Around the step that makes the run's result visible: checks for a cancel once more, then lets the
        commit finish whatever arrives meanwhile."""
        self.check_cancel()
        self.commit_started = True
        yield

    def interruptible(self):
        """A section a cancel may stop at once, anywhere (read-only work such as validation reads)."""
        return self.cancellation.interruptible("Run %s" % self.run_id)

    def releases(self, what):
        """Record ``what`` (e.g. "the backup snapshot blockvault-R of VM web01") as given back by the run's
        cleanup: a cancel message lists it."""
        self.released.append(what)

    def transfer_options(self):
        return TransferOptions(workers=int(self.settings.workers), memory_budget=int(self.settings.memory_budget),
                               progress=self.progress, cancel=self.cancellation.event, vm=self._label,
                               run_id=self.run_id)

    def vddk_library(self):
        vddk = self.endpoints.vddk
        return vddk_library.initialize(vddk.libdir, vddk.config_file)

    def connect_params(self, vm_moref, snapshot_moref=None):
        """The vddk ConnectParams of VM ``vm_moref`` (through the session's cookie, never the password)."""
        return connect_params(self.session, self.endpoints.vddk, vm_moref, snapshot_moref=snapshot_moref)

    def open_disk(self, vm_moref, disk, read_only, snapshot_moref=None):
        """A RetryingDisk on the disk file ``disk.file_name`` of VM ``vm_moref`` (each with its own VDDK connection:
        a transient failure reconnects and repeats the call)."""
        params = self.connect_params(vm_moref, snapshot_moref)
        return RetryingDisk(connection_factory(self.vddk_library(), disk.file_name, params, read_only=read_only),
                            describe="disk %s of VM %s" % (disk.label or disk.key, self._label or vm_moref))

    def keepalive(self):
        """Keep the vCenter session (whose cookie VDDK uses) alive until the run ends."""
        self.stack.enter_context(SessionKeepalive(self.session, describe=self._label or self.run_id))

    def record_snapshot_removal(self, removal):
        """Keep what became of the backup snapshot (a vsphere SnapshotRemoval) for the result: its ``snapshot``
        field, and a warning when it was not removed as planned."""
        self.cleanup_outcomes["snapshot"] = removal.describe()
        if removal.warning():
            self.warnings.append(removal.warning())

    def with_cleanup_outcomes(self, result):
        """``result`` with what the cleanup after it did (``snapshot``) and its ``warnings``; called once the run's
        ExitStack has unwound, so a cleanup failure is reported beside the real outcome instead of replacing it."""
        result = dict(result, **self.cleanup_outcomes)
        if self.warnings:
            result["warnings"] = list(result.get("warnings", ())) + self.warnings
        return result

    def error_context(self, exc, phase):
        """``exc`` (a BlockvaultError) with this run's id, VM and ``phase`` filled in where unset."""
        return exc.with_context(vm=self._label, run_id=self.run_id, phase=phase)


@contextlib.contextmanager
def open_run(endpoints, settings, run_id, label, vsphere=True, report=True):
    """The RunContext of a run: status file and run log (none in check mode or unless ``report``), the repository
    opening on a helper thread, and (``vsphere``) the vCenter session logged in meanwhile. Engine errors leave with
    the run's context."""
    cancellation = settings.cancellation if settings.cancellation is not None else Cancellation()
    status_path = None
    if settings.check or not report:
        reporting = contextlib.nullcontext(NullProgress())
    else:
        status_path = settings.status_file or default_status_path(run_id)
        reporting = run_reporting(run_id, label, status_path)
    context = None
    try:
        with reporting as progress:
            try:
                with cancellation.cooperative(), contextlib.ExitStack() as stack:
                    if status_path is not None:
                        stack.callback(cancellation.watch(LeaseWatch(status_path, run_id, time.time())))
                    opener = stack.enter_context(RepositoryOpener(endpoints.repo))
                    context = RunContext(run_id, endpoints, settings, progress, stack, opener, cancellation)
                    context.set_phase("connect")
                    if vsphere:
                        context.session = stack.enter_context(
                            VSphereSession(endpoints.vsphere, vddk_thumbprint=endpoints.vddk.thumbprint))
                    yield context
            except CancelledError as exc:
                if not cancellation.requested or context is None or context.commit_started:
                    raise
                # the cleanup has run: say why the run stopped, where, and what it gave back
                raise _cancelled(context, exc) from exc
    except BlockvaultError as exc:
        # a failed login or lookup is this run's error too: named with its run id (and the VM once known)
        raise exc.with_context(vm=context.label if context is not None else None, run_id=run_id)
    finally:
        if status_path is not None:
            # the run has ended (its status file says so, so no poller renews the lease any more): tidy up
            remove_lease(status_path, run_id)


def _cancelled(context, exc):
    """The CancelledError of a run stopped on request, after its cleanup: why, in which phase, what was undone."""
    what = "Run %s%s" % (context.run_id, " of VM %s" % context.label if context.label else "")
    if context.phase:
        what = "%s, in phase %s," % (what, context.phase)
    outcome = "Nothing was committed."
    step = exc.message if exc.cancelled_by is None else None
    if step and "cancelled on request" in step:
        outcome = "%s %s" % (step.replace("cancelled on request", "stopped"), outcome)
    if context.released:
        outcome += " Removed or released by its cleanup: %s." % "; ".join(context.released)
    error = context.cancellation.error(what, outcome)
    return error.with_context(phase=context.phase, vm=context.label, run_id=context.run_id, disk=exc.disk)
