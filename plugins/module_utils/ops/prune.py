# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention: forget restore points by policy (per VM, as restic's forget), then collect garbage."""

from __future__ import annotations

import contextlib

from ..errors import ConfigurationError
from ..repo.format import isotime, parse_restore_point_id
from ._engine import damaged_manifest_warning, open_repository, select_summaries

__all__ = ["prune"]

# the reason repo.maintenance.prune gives for a restore point it keeps because Object Lock protects it
LOCKED_REASON = "object lock until "


def _vm_key_for_name(repository, name):
    keys = {summary.vm.key for summary in select_summaries(repository, name).summaries}
    if not keys:
        raise ConfigurationError("No restore point of a VM named %s in the repository (backup_info lists the VMs)." % name)
    if len(keys) > 1:
        raise ConfigurationError("Several VMs named %s have restore points; they are pruned together only per VM: "
                                 "prune without vm, or rename." % name)
    return keys.pop()


def _described(reads, rp_id, warnings):
    """{id, vm, created} of a restore point for the result, from ``reads`` ({id: catalog.SummaryRead} of one listing);
    a damaged or vanished manifest does not stop the prune (its restore point goes by the policy, which needs only its
    name): its VM is said to be unknown."""
    read = reads.get(rp_id)
    if read is not None and read.summary is not None:
        return read.summary.reference()
    if read is not None and read.error is not None:
        warnings.append(damaged_manifest_warning(rp_id, read.error))
    # else removed meanwhile by another prune or a delete
    return {"id": rp_id, "vm": None, "created": isotime(parse_restore_point_id(rp_id)[0])}


def prune(repo, policy, vm=None, gc=True, check=False, forget_orphans=False):
    """Apply ``policy`` (keep_last, keep_hourly, ... keep_yearly) per VM; then GC unless ``gc`` is false.

    ``forget_orphans`` lets the GC remove the indexes of restore points whose manifest is missing (which it keeps
    for a grace period as evidence, spec 9.2) and the chunks only they name; with an empty ``policy`` nothing else
    is removed. Check mode reports what would go and what GC would free (a dry-run mark and sweep without the
    restore points prune would remove: the real run's figures) without removing anything.
    Returns {changed, removed: [{id, vm, created}], kept: [{id, vm, created, reasons}], gc, diff, msg, warnings};
    ``msg`` says in one line which restore points were (would be) removed and kept.
    """
    if forget_orphans and not gc:
        raise ConfigurationError("forget_orphans removes what the garbage collection would keep: it needs gc=true.")
    warnings = []
    with contextlib.closing(open_repository(repo)) as repository:
        removed, kept, remove_ids = [], [], []
        if policy or not forget_orphans:
            vm_key = _vm_key_for_name(repository, vm) if vm else None
            report = repository.prune(policy, vm=vm_key, dry_run=True)
            remove_ids = report["remove"]
            # what the result says of each restore point: one listing of summaries, not a manifest read per point
            reads = {read.point.id: read for read in repository.read_summaries(vm_key)}
            removed = [_described(reads, rp_id, warnings) for rp_id in remove_ids]
            kept = [dict(_described(reads, entry["id"], warnings), reasons=entry["reasons"]) for entry in report["keep"]]
            locked = ["%s (until %s)" % (entry["id"], reason[len(LOCKED_REASON):]) for entry in report["keep"]
                      for reason in entry["reasons"] if reason.startswith(LOCKED_REASON)]
            if locked:
                warnings.append("Kept %d restore point(s) that the policy would remove, because S3 Object Lock still "
                                "protects them: %s. A prune after their retention has passed removes them."
                                % (len(locked), ", ".join(locked)))
            if not check and removed:
                repository.prune(policy, vm=vm_key, dry_run=False)
        gc_report = None
        if gc:
            # check mode: a dry-run mark and sweep that treats the restore points prune would remove as gone,
            # so its figures are those the real run's GC reports
            gc_report = repository.gc(dry_run=check, forget_orphans=forget_orphans,
                                      assume_removed=remove_ids if check else ())
        freed = bool(gc_report and not check and (gc_report.get("chunks_removed") or gc_report.get("indexes_removed")))
    diff = {"before": {"restore_points": sorted(r["id"] for r in removed + kept)},
            "after": {"restore_points": sorted(k["id"] for k in kept)}}
    return {"changed": bool(removed) or freed, "removed": removed, "kept": kept, "gc": gc_report, "diff": diff,
            "msg": _summary(removed, kept, gc_report, check), "warnings": warnings}


def _summary(removed, kept, gc_report, check):
    """One line saying which restore points went (or would go) and which stay, and what GC freed (would free)."""
    verb = ("would remove", "would keep", "would free") if check else ("removed", "kept", "freed")
    text = "%s %d restore point(s)%s; %s %d%s" % (
        verb[0], len(removed), " (%s)" % ", ".join(r["id"] for r in removed) if removed else "",
        verb[1], len(kept), " (%s)" % ", ".join(k["id"] for k in kept) if kept else "")
    if gc_report is not None:
        text += "; GC %s %d chunk(s), %d bytes" % (verb[2], gc_report["chunks_removed"], gc_report["bytes_removed"])
    return text
