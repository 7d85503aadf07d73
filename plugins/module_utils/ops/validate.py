# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate restore points: quick (structure, every chunk present), full (every chunk read and verified), or
restore (full, plus a test restore of each disk to a scratch file whose blocksum must equal the recorded one)."""

from __future__ import annotations

import contextlib
import os
import tempfile

from ..errors import BlockvaultError, ConfigurationError
from ._engine import MIB, manifests_of, open_repository
from .restore import select_restore_point, _restore_file

__all__ = ["validate", "LEVELS"]

LEVELS = ("quick", "full", "restore")


def _selected_points(repository, restore_point, vm):
    if restore_point and restore_point != "latest":
        return [repository.load_manifest(restore_point)]
    if restore_point == "latest" or vm:
        if vm and restore_point == "latest":
            return [select_restore_point(repository, "latest", vm)]
        chosen = manifests_of(repository, vm or None)
        if vm and not chosen:
            raise ConfigurationError("No restore point of VM %s in the repository." % vm)
        return chosen
    return None


def _test_restores(repository, manifests, scratch_dir, workers, memory_budget):
    results, damaged = [], []
    with tempfile.TemporaryDirectory(prefix="blockvault-validate-", dir=scratch_dir) as scratch:
        for manifest in manifests:
            for entry in manifest["disks"]:
                path = os.path.join(scratch, "%s-%s.raw" % (manifest["id"], entry["key"]))
                try:
                    done = _restore_file(repository, manifest, entry["key"], path, False, workers, memory_budget, None, None, False)
                    results.append({"restore_point": manifest["id"], "disk": entry["key"], "sha256": done["disks"][0]["sha256"],
                                    "ok": True})
                except BlockvaultError as exc:
                    results.append({"restore_point": manifest["id"], "disk": entry["key"], "ok": False, "error": str(exc)})
                    damaged.append({"restore_point": manifest["id"], "vm": manifest["vm"]["name"], "disk": entry["key"],
                                    "error_class": exc.error_class, "error": str(exc)})
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
    return results, damaged


def validate(repo, level="quick", restore_point=None, vm=None, scratch_path=None, check=False, workers=2,
             memory_budget=256 * MIB):
    """Validate; never changes anything. Returns {changed: False, ok, level, checked, damaged}.

    ``damaged`` lists every damaged chunk with the restore points, VMs, disks and byte ranges it affects (and,
    at level restore, every disk whose test restore failed).
    """
    if level not in LEVELS:
        raise ConfigurationError("level %r: use one of %s." % (level, ", ".join(LEVELS)))
    with contextlib.closing(open_repository(repo)) as repository:
        manifests = _selected_points(repository, restore_point, vm)
        ids = [m["id"] for m in manifests] if manifests is not None else [None]
        reports = [repository.validate(level="quick" if level == "quick" else "full", restore_point=rp_id, workers=workers)
                   for rp_id in ids]
        damaged = [dict(chunk) for report in reports for chunk in report["damaged_chunks"]]
        errors = [error for report in reports for error in report["errors"]]
        checked = {"restore_points": sum(r["restore_points"] for r in reports),
                   "chunks_referenced": sum(r["chunks_referenced"] for r in reports),
                   "chunks_read": sum(r["chunks_read"] for r in reports)}
        if level == "restore":
            if manifests is None:
                manifests = manifests_of(repository)
            restores, failed = _test_restores(repository, manifests, scratch_path, workers, memory_budget)
            checked["test_restores"] = restores
            errors.extend(failed)
    return {"changed": False, "ok": not damaged and not errors, "level": level, "checked": checked,
            "damaged": damaged, "errors": errors}
