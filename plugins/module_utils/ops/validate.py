# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate restore points: quick (structure, every chunk present), full (every chunk read and verified), or
restore (full, plus a test restore of each disk to a scratch file whose blocksum must equal the recorded one)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile

from ..errors import BlockvaultError, ConfigurationError
from ._engine import new_run_id, select_manifests
from .context import open_run
from .requests import Endpoints, RestorePointQuery, RunSettings
from .restore import select_restore_point
from .targets import File

__all__ = ["validate", "ValidateRequest", "LEVELS"]

LEVELS = ("quick", "full", "restore")
# the levels that read every chunk: a restore point they pass is recorded as validated
RECORDED_LEVELS = ("full", "restore")


@dataclasses.dataclass(frozen=True)
class ValidateRequest:
    """What to validate: ``level`` quick | full | restore; one restore point (an id, or ``latest`` of ``vm``), every
    restore point of the VM named ``vm``, or (neither) the whole repository. Test restores go under ``scratch_path``."""

    level: str = "quick"
    restore_point: str = None
    vm: str = None
    scratch_path: str = None

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ConfigurationError("level %r: use one of %s." % (self.level, ", ".join(LEVELS)))


def _selected_points(repository, request, warnings):
    """The manifests ``request`` selects, or None for the whole repository; damaged manifests skipped while
    selecting by VM name add to ``warnings`` (the whole repository's validation reports them as errors)."""
    if request.restore_point and request.restore_point != "latest":
        return [repository.load_manifest(request.restore_point)]
    if request.restore_point == "latest" or request.vm:
        if request.vm and request.restore_point == "latest":
            return [select_restore_point(repository, RestorePointQuery("latest", request.vm), warnings)]
        selection = select_manifests(repository, request.vm or None)
        warnings.extend(selection.warnings)
        if request.vm and not selection.manifests:
            raise ConfigurationError("No restore point of VM %s in the repository%s." % (
                request.vm, " (%d with a damaged manifest skipped)" % len(selection.warnings) if selection.warnings else ""))
        return list(selection.manifests)
    return None


def _test_restores(context, manifests, scratch_dir):
    results, damaged = [], []
    with tempfile.TemporaryDirectory(prefix="blockvault-validate-", dir=scratch_dir) as scratch:
        for manifest in manifests:
            for entry in manifest.disks:
                path = os.path.join(scratch, "%s-%s.raw" % (manifest.id, entry.key))
                try:
                    done = File(path=path, disk=entry.key.value).run(context, manifest)
                    results.append({"restore_point": manifest.id, "disk": entry.key.value, "sha256": done["disks"][0]["sha256"],
                                    "ok": True})
                except BlockvaultError as exc:
                    results.append({"restore_point": manifest.id, "disk": entry.key.value, "ok": False, "error": str(exc)})
                    damaged.append({"restore_point": manifest.id, "vm": manifest.vm.name, "disk": entry.key.value,
                                    "error_class": exc.error_class, "error": str(exc)})
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
    return results, damaged


def _record_passed(repository, listed, level, problems, warnings):
    """Record every restore point of ``listed`` that no entry of ``problems`` (damaged chunks, errors) names as
    validated (format section 7.2); their ids. A repository that cannot be written (read-only credentials) gets a
    warning, not a failure: the validation itself passed."""
    failed = {problem.get("restore_point") for problem in problems}
    failed.update(affected["restore_point"] for problem in problems for affected in problem.get("affects", ()))
    still_there = {point.id for point in repository.list_restore_points()}     # one listing: a prune may have run
    passed = [rp_id for rp_id in listed if rp_id not in failed and rp_id in still_there]
    try:
        for rp_id in passed:
            repository.record_validated(rp_id, level)
    except BlockvaultError as exc:
        warnings.append("The restore points that passed could not be recorded as validated (%s): backup_copy with "
                        "validated_only will not copy them until a validation can record them." % exc.message)
        return []
    return passed


def validate(request, repo, settings=RunSettings(workers=2)):
    """Validate ``request`` (a ValidateRequest) in the repository of RepositorySettings ``repo``. It changes nothing
    but, at levels full and restore, the record of which restore points passed (``validated/``, which backup_copy's
    validated_only reads; not in check mode). Returns {changed: False, ok, level, checked, damaged, errors, warnings}.

    ``damaged`` lists every damaged chunk with the restore points, VMs, disks and byte ranges it affects (and,
    at level restore, every disk whose test restore failed).
    """
    # a validation writes nothing but its scratch files: it runs with no status file, whatever check mode says
    quiet = dataclasses.replace(settings, check=False)
    with open_run(Endpoints(repo=repo), quiet, new_run_id(), request.vm, vsphere=False, report=False) as context:
        repository = context.repository
        warnings = []
        manifests = _selected_points(repository, request, warnings)
        ids = [m.id for m in manifests] if manifests is not None else [None]
        # what this validation checks: listed before it starts (a restore point committed meanwhile is not checked)
        listed = [m.id for m in manifests] if manifests is not None else [p.id for p in repository.list_restore_points()]
        level = request.level
        # reads only: a cancel may stop them anywhere
        with context.interruptible():
            reports = [repository.validate(level="quick" if level == "quick" else "full", restore_point=rp_id,
                                           workers=settings.workers) for rp_id in ids]
        damaged = [dict(chunk) for report in reports for chunk in report["damaged_chunks"]]
        errors = [error for report in reports for error in report["errors"]]
        checked = {"restore_points": sum(r["restore_points"] for r in reports),
                   "chunks_referenced": sum(r["chunks_referenced"] for r in reports),
                   "chunks_read": sum(r["chunks_read"] for r in reports)}
        if manifests is None:   # the whole repository: restore points without manifest that are not damage
            checked["backups_in_progress"] = reports[0]["backups_in_progress"]
            checked["interrupted_backups"] = reports[0]["interrupted_backups"]
            checked["unfinished_removals"] = reports[0]["unfinished_removals"]
        if level == "restore":
            if manifests is None:
                manifests = select_manifests(repository).manifests  # damaged ones are in errors already
            restores, failed = _test_restores(context, manifests, request.scratch_path)
            checked["test_restores"] = restores
            errors.extend(failed)
        if level in RECORDED_LEVELS and not settings.check:
            checked["recorded_as_validated"] = _record_passed(repository, listed, level, damaged + errors, warnings)
    return {"changed": False, "ok": not damaged and not errors, "level": level, "checked": checked,
            "damaged": damaged, "errors": errors, "warnings": warnings}
