# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a restore point: to a new VM, in place, one disk into an existing VM, or one disk to a raw file.

``restore(RestoreRequest(source, target), endpoints, settings)`` selects the restore point (``source``, a
RestorePointQuery) and hands it to the target, one of the classes of ops.targets (NewVm, InPlace, DiskToVm,
File), each with its own ``run``. Every target gets the restore point's bytes verified on the way (each chunk
against its digest) and the disk's blocksum recomputed from what was written, which must equal the one recorded
at backup time (ops._restore_io).
"""

from __future__ import annotations

import dataclasses
import datetime

from ..errors import BlockvaultError, ConfigurationError
from ..transfer import trace
from ._engine import new_run_id, select_manifests
from .context import open_run
from .requests import RestorePointQuery, RunSettings
from .targets import DiskToVm, File, ImageFormat, InPlace, NewVm, Placement, RestoreTarget

__all__ = ["restore", "RestoreRequest", "RestorePointQuery", "select_restore_point", "NewVm", "InPlace", "DiskToVm", "File", "ImageFormat",
           "Placement", "RestoreTarget"]


@dataclasses.dataclass(frozen=True)
class RestoreRequest:
    """Restore the restore point ``source`` selects to ``target`` (NewVm, InPlace, DiskToVm or File)."""

    source: RestorePointQuery
    target: RestoreTarget

    def __post_init__(self):
        if not isinstance(self.target, RestoreTarget):
            raise ConfigurationError("The restore target must be NewVm, InPlace, DiskToVm or File, not %r." % (self.target,))


def _parse_time(value):
    text = str(value).strip().replace("Z", "+00:00")
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError("before %r is not a time: give ISO-8601, e.g. 2026-11-26T03:00:00Z." % (value,)) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def select_restore_point(repository, query, warnings=None):
    """The Manifest of ``query`` (a RestorePointQuery): an id, or the latest (before ``before``) of a VM by name.

    By id, that restore point or a clear error (CorruptionError when its manifest is damaged). By name, restore
    points whose manifest is damaged are skipped (their VM is unknown, the name being inside the manifest): each
    adds a warning to the list ``warnings`` when given, and is logged; the choice goes on among the others.
    """
    if query.restore_point and query.restore_point != "latest":
        return repository.load_manifest(query.restore_point)
    if not query.vm_name:
        raise ConfigurationError("restore_point is 'latest': give the name of the backed-up VM too (name).")
    limit = _parse_time(query.before) if query.before else None
    selection = select_manifests(repository, query.vm_name)
    if warnings is not None:
        warnings.extend(selection.warnings)
    candidates = [manifest for manifest in selection.manifests if limit is None or _parse_time(manifest.created) < limit]
    if not candidates:
        raise ConfigurationError("No restore point of VM %s%s in the repository: check the name (backup_info lists them)%s."
                                 % (query.vm_name, " before %s" % query.before if query.before else "",
                                    "; %d restore point(s) with a damaged manifest were skipped (%s)" % (
                                        len(selection.warnings), "; ".join(selection.warnings)) if selection.warnings else ""))
    return candidates[-1]


def restore(request, endpoints, settings=RunSettings()):
    """Restore (see the module notes). Returns {changed, restore_point, vm or path, disks: [{key, sha256, ...}], diff}."""
    target = request.target
    if target.needs_vsphere:
        endpoints.require_vsphere("A restore to a VM")
    run_id = new_run_id()
    span = trace.current().span          # the no-op recorder unless BLOCKVAULT_TRACE is set
    # the status file exists from the first moment (a poller learns at once that opening or selecting failed)
    with span("restore-run"), open_run(endpoints, settings, run_id, request.source.describe(), vsphere=target.needs_vsphere) as context:
        try:
            warnings = []
            with span("open-repository"):
                repository = context.repository
            with span("select-restore-point"):
                manifest = select_restore_point(repository, request.source, warnings)
            context.label = manifest.vm.name
            with span("target-run"):
                result = target.run(context, manifest)
            result["restore_point"] = manifest.reference()
            result["warnings"] = warnings + list(result.get("warnings", ()))     # the selection's, then the target's
            return result
        except BlockvaultError as exc:
            raise context.error_context(exc, "restore")
