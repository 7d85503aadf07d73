# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Removing a restore point so that a removal cut short at any write can be told from damage (format section 9.4).

A restore point is several objects (manifest, indexes, pin, note) and no backend deletes several objects at once.
Deleting the manifest first makes the restore point disappear in one step, but the indexes left behind by a process
killed right after look exactly like the indexes of a manifest that was lost, which validation must report as
damage. So a removal first writes a marker, ``removals/<restore point id>``, deletes the objects, and deletes the
marker last: whatever it left, the marker says it was a removal. GC (under the exclusive lock, so no removal is
running) finishes removals that were cut short; validation reports them as unfinished, not as damage.

Thread-safety: stateless functions over the backend (atomic puts and idempotent deletes); the caller holds a
repository lock (shared to remove, exclusive to finish others' removals).
"""

from __future__ import annotations

import datetime
import json
import time

from ..errors import NotFoundInBackendError
from .format import INDEXES_PREFIX, is_restore_point_id, isotime, manifest_name
from . import pins

__all__ = ["REMOVALS_PREFIX", "remove_restore_point", "unfinished_removals", "finish_removal", "locked_until"]

REMOVALS_PREFIX = "removals/"


def remove_restore_point(backend, rp_id, on_manifest_deleted=None):
    """Remove restore point ``rp_id``: marker, manifest, indexes, pin, note and validation record, marker (in this order).

    ``on_manifest_deleted(rp_id)`` runs right after the manifest is deleted (the repository drops its cached copy).
    Rerunning it after an interruption finishes the removal.
    """
    marker = REMOVALS_PREFIX + rp_id
    backend.put(marker, json.dumps({"removing": isotime()}).encode("utf-8"))
    backend.delete(manifest_name(rp_id))
    if on_manifest_deleted is not None:
        on_manifest_deleted(rp_id)
    _delete_rest(backend, rp_id)


def _delete_rest(backend, rp_id):
    for info in backend.list("%s%s/" % (INDEXES_PREFIX, rp_id)):
        backend.delete(info.name)
    pins.forget(backend, rp_id)
    backend.delete(REMOVALS_PREFIX + rp_id)


def unfinished_removals(backend):
    """Ids of the restore points whose removal marker exists (one listing); markers of other names are ignored."""
    found = set()
    for info in backend.list(REMOVALS_PREFIX):
        rp_id = info.name[len(REMOVALS_PREFIX):]
        if is_restore_point_id(rp_id):
            found.add(rp_id)
    return found


def finish_removal(backend, rp_id):
    """Finish the removal of ``rp_id`` that a dead process began; the caller holds the exclusive lock.

    When the manifest is still there the removal was cut short before it deleted anything (the manifest goes first),
    or the restore point was written again since (a copy keeps its source's id): the restore point is whole and is
    kept; only the marker goes. Returns True when the restore point was removed, False when it was kept.
    """
    if backend.exists(manifest_name(rp_id)):
        backend.delete(REMOVALS_PREFIX + rp_id)
        return False
    _delete_rest(backend, rp_id)
    return True


def locked_until(backend, rp_id, now=None):
    """The UTC ISO time until which an S3 Object Lock retention still protects the manifest of ``rp_id``, or None.

    Such a restore point is immutable for that long: a delete would only hide it behind a delete marker while its data
    stays in the bucket, so prune keeps it and delete refuses it (format section 10), and both say until when.
    """
    try:
        until = backend.retained_until(manifest_name(rp_id))
    except NotFoundInBackendError:
        return None
    if until is None or until <= (time.time() if now is None else now):
        return None
    return isotime(datetime.datetime.fromtimestamp(until, datetime.timezone.utc))
