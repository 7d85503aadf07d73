# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Instant access: a restore point's disks served read-only (or through a copy-on-write overlay) over NBD.

- ``start_export(ExportRequest, endpoints, settings)``: select the restore point (an id, or a VM's latest / latest
  before a time), start one nbdkit per disk (export.server) and record the export's state file; present when it
  already runs with the same settings is ``changed: false``, with other settings a ConfigurationError.
- ``stop_exports(ExportSelector, check)``: stop the exports it selects (by name, restore point or VM) and remove
  their scratch files.
- ``list_exports()``: the running exports (backup_info shows them).
- ``cleanup_dead()``: every call above first stops and removes what is left of exports whose nbdkit or owner died.
- ``exported(query, endpoints, settings, disks, writable)``: a context manager for code that reads a restore point
  through NBD (file-level restore): yields an ``Exported`` with ``uris`` and stops everything on exit. Its nbdkit
  processes end with the thread that entered it (nbdkit --exit-with-parent), so they never outlive their owner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

from ..errors import BlockvaultError, ConfigurationError
from ..export.listen import Listen
from ..export.state import check_name, read_states
from ._engine import new_run_id, open_repository
from ._exports import Serving, cleanup_dead, launch, teardown
from .requests import RestorePointQuery, RunSettings
from .restore import select_restore_point

__all__ = ["ExportRequest", "ExportSelector", "Exported", "Listen", "start_export", "stop_exports", "list_exports",
           "cleanup_dead", "exported"]


@dataclasses.dataclass(frozen=True)
class ExportRequest:
    """Export the restore point ``source`` selects: ``disks`` (keys or labels; None: every disk), ``writable``
    (nbdkit's cow filter in front: writes go to a scratch file, never to the repository), ``listen`` (a Listen),
    ``name`` (default: the restore point's id). Immutable (thread-safe); checked when built."""

    source: RestorePointQuery
    disks: tuple = None
    writable: bool = False
    listen: Listen = Listen()
    name: str = None

    def __post_init__(self):
        if self.name is not None:
            check_name(self.name)
        if self.disks is not None:
            object.__setattr__(self, "disks", tuple(str(disk) for disk in self.disks))
            if not self.disks:
                raise ConfigurationError("disks is empty: name the disks to export (keys or labels) or leave it unset for all.")
        if not isinstance(self.listen, Listen):
            raise ConfigurationError("listen must be a Listen, not %r." % (self.listen,))


@dataclasses.dataclass(frozen=True)
class ExportSelector:
    """Which exports ``stop_exports`` stops: by export ``name``, else every export of ``restore_point`` (an id),
    else every export of the VM named ``vm_name``. Immutable (thread-safe); checked when built."""

    name: str = None
    restore_point: str = None
    vm_name: str = None

    def __post_init__(self):
        if not (self.name or (self.restore_point and self.restore_point != "latest") or self.vm_name):
            raise ConfigurationError("Which export to stop? Give export_name, a restore point id, or the VM's name.")

    def matches(self, state):
        if self.name:
            return state.name == self.name
        if self.restore_point and self.restore_point != "latest":
            return state.restore_point == self.restore_point
        return state.vm == self.vm_name


def list_exports():
    """{changed: False, exports: [view], cleaned: [names of dead exports removed], warnings}."""
    cleaned = cleanup_dead()
    states, unreadable = read_states()
    return {"changed": False, "exports": [state.view() for state in states], "cleaned": cleaned,
            "warnings": ["export state file %s cannot be read: remove it once its nbdkit is stopped" % path
                         for path in unreadable]}


def _disks_of(manifest, references):
    if references is None:
        return list(manifest.disks)
    chosen = []
    for reference in references:
        entry = manifest.disk(reference)
        if entry not in chosen:
            chosen.append(entry)
    return chosen


def _resolve(request, endpoints):
    """(manifest, disk entries, warnings) of ``request``: the repository is open only for the selection."""
    warnings = []
    with contextlib.closing(open_repository(endpoints.repo)) as repository:
        manifest = select_restore_point(repository, request.source, warnings)
    return manifest, _disks_of(manifest, request.disks), warnings


def start_export(request, endpoints, settings=RunSettings(), owner_pid=None):
    """Start (or find running) the export of ``request``; {changed, export: view, uris, pids, cleaned, diff, msg}."""
    cleaned = cleanup_dead()
    try:
        manifest, entries, warnings = _resolve(request, endpoints)
    except BlockvaultError as exc:
        raise exc.with_context(phase="export")
    name = request.name or manifest.id
    wanted = {"restore_point": manifest.id, "disks": sorted(entry.key.value for entry in entries),
              "writable": request.writable, "listen": request.listen.describe()}
    running = {state.name: state for state in read_states()[0]}.get(name)
    before = running.view() if running else {}
    if running is not None:
        if running.settings != wanted:
            raise ConfigurationError("Export %s runs already with other settings (%s): stop it first (state: absent) or "
                                     "give another export_name." % (name, running.settings), phase="export")
        return {"changed": False, "export": before, "uris": before["uris"], "pids": before["pids"], "cleaned": cleaned,
                "warnings": warnings, "diff": {"before": before, "after": before},
                "msg": "Export %s of restore point %s runs already." % (name, manifest.id)}
    if settings.check:
        after = dict(wanted, name=name)
        return {"changed": True, "export": after, "uris": {}, "pids": [], "cleaned": cleaned, "warnings": warnings,
                "diff": {"before": {}, "after": after}}
    state = launch(Serving(name=name, manifest=manifest, entries=tuple(entries), listen=request.listen,
                           writable=request.writable, owner_pid=owner_pid), endpoints.repo)
    view = state.view()
    return {"changed": True, "export": view, "uris": view["uris"], "pids": view["pids"], "cleaned": cleaned,
            "warnings": warnings, "diff": {"before": {}, "after": view},
            "msg": "Restore point %s of VM %s is served at %s; stop it with %s." % (
                manifest.id, manifest.vm.name, ", ".join(view["uris"].values()), view["stop"])}


def stop_exports(selector, check=False):
    """Stop the exports ``selector`` (an ExportSelector) selects; {changed, stopped: [names], cleaned, diff}."""
    cleaned = cleanup_dead()
    chosen = [state for state in read_states()[0] if selector.matches(state)]
    if not check:
        for state in chosen:
            teardown(state)
    return {"changed": bool(chosen), "stopped": [state.name for state in chosen], "cleaned": cleaned,
            "diff": {"before": {state.name: state.view() for state in chosen}, "after": {}}}


@dataclasses.dataclass(frozen=True)
class Exported:
    """A running export held by ``exported``: ``uris`` ({disk key: NBD URI}), ``name``, ``restore_point`` (the
    Manifest's reference {id, vm, created}). Immutable; valid until the ``with`` block ends."""

    name: str
    uris: dict
    restore_point: dict


@contextlib.contextmanager
def exported(query, endpoints, settings=RunSettings(), disks=None, writable=False):
    """Serve the restore point ``query`` (a RestorePointQuery) read-only (or with a cow overlay when ``writable``) on
    private Unix sockets for the ``with`` block; yields an Exported. Everything stops and is removed on exit, and the
    nbdkit processes end with the thread that entered (kill -9 of the owner included)."""
    request = ExportRequest(source=query, disks=disks, writable=writable, name="held-%s" % new_run_id())
    result = start_export(request, endpoints, dataclasses.replace(settings, check=False), owner_pid=os.getpid())
    state = result["export"]
    try:
        yield Exported(name=state["name"], uris=dict(state["uris"]), restore_point=state["restore_point"])
    finally:
        stop_exports(ExportSelector(name=state["name"]))
