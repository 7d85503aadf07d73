# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only views: restore points per VM, and the status of a running or finished run."""

from __future__ import annotations

import contextlib
import os

from ..errors import BlockvaultError, ConfigurationError
from ..repo.catalog import cycle_collection_paused
from ..transfer.progress import read_status
from ._engine import open_repository, select_summaries

__all__ = ["list_restore_points", "run_status", "run_statuses", "summarize"]


def summarize(manifest, pinned=False, note=""):
    """One restore point (a repo.model Manifest or PointSummary) as the modules return it: no chunk lists, integers for
    bytes, UTC ISO-8601 times."""
    return {"id": manifest.id, "vm": manifest.vm.name, "vm_key": manifest.vm.key, "run_id": manifest.run_id,
            "created": manifest.created, "backup_mode": manifest.backup_mode, "pinned": pinned, "note": note,
            "bytes_read": manifest.stat("bytes_read"), "bytes_written": manifest.stat("bytes_written"),
            "transports_requested": manifest.stats.get("transports_requested", manifest.stats.get("transport")),
            "disks": [{"key": d.key.value, "label": d.label, "capacity": d.capacity, "mode": d.mode,
                       "reason": d.reason, "transport": d.transport, "bytes_new": d.bytes_new,
                       "bytes_stored": d.bytes_stored, "sha256": d.sha256}
                      for d in manifest.disks]}


def list_restore_points(repo, vm=None):
    """{vms: {name: [restore point summaries, oldest first]}, count, warnings}; ``vm`` filters on the VM's name.

    ``warnings`` names each restore point left out because its manifest is damaged (the listing goes on). The
    summaries come from the repository's catalog (one object per VM), not from a manifest per restore point.
    """
    with contextlib.closing(open_repository(repo)) as repository, cycle_collection_paused():
        selection = select_summaries(repository, vm or None)
        vms = {}
        pinned, noted = repository.pinned_ids(), repository.noted_ids()     # two listings, not a read per point
        for summary in selection.summaries:
            note = repository.note(summary.id) if summary.id in noted else ""
            vms.setdefault(summary.vm.name, []).append(summarize(summary, summary.id in pinned, note))
    return {"changed": False, "vms": vms, "count": sum(len(points) for points in vms.values()),
            "warnings": list(selection.warnings)}


def run_status(status_file):
    """The status document of a run (state running|succeeded|failed, phase, bytes, MB/s, ETA, last error)."""
    if not status_file:
        raise ConfigurationError("status_file is empty: give the status file the backup or restore run writes.")
    if not os.path.exists(status_file):
        raise ConfigurationError("status_file %s does not exist (yet): the run writes it when it starts." % status_file)
    return {"changed": False, "status": read_status(status_file)}


def run_statuses(status_files):
    """The status documents of several runs, one read per file in order, each {status_file, status, error}.

    A file that does not exist (yet) has ``status`` and ``error`` None: its run has not written it. A file that
    cannot be read or is not a status document has ``status`` None and ``error`` saying why. Never raises for one
    file, so that a poller sees the other runs.
    """
    reads = []
    for path in status_files:
        status = error = None
        if path and os.path.exists(path):
            try:
                status = read_status(path)
            except BlockvaultError as exc:
                error = str(exc)
        reads.append({"status_file": path, "status": status, "error": error})
    return reads
