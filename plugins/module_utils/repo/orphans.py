# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Orphan indexes: index objects of a restore point that has no manifest (format section 9.2).

Four cases look alike in a listing. A removal marker (removals.py) tells the first; the backup locks tell the others
(a backup's lock is written before its indexes and its restore point id is made right after the lock, from the same
clock):

* a removal cut short (or running) between deleting the manifest and deleting the marker - not damage; GC finishes it;

* a backup in progress: a live lock ``backup of <vm tag>`` made when the restore point began - not damage;
* the leftovers of an interrupted backup (killed, or its host died): such a lock, now stale - not damage; GC removes
  them with the stale lock;
* anything else: a restore point whose manifest was deleted or lost - damage. Validation reports it; GC keeps its
  indexes (and so the chunks they name) until they are older than the grace period or the user forgets them.
"""

from __future__ import annotations

import dataclasses
import datetime

from ..errors import BlockvaultError
from .format import INDEXES_PREFIX, DiskIndex, is_restore_point_id, parse_restore_point_id

__all__ = ["COPY_LOCK_MARK", "ORPHAN_INDEX_GRACE", "MaintenanceSettings", "OrphanRestorePoint", "list_indexes", "find_orphans",
           "orphan_error", "referenced_by_orphans"]

#: in the purpose of a copy's lock (``backup of <vm tag>: copy of restore point <id>``): a copied restore point's id
#: carries the source's time, so only this names the lock its indexes are written under
COPY_LOCK_MARK = "copy of restore point "

# a week: long enough for someone to notice a validation error and recover a deleted manifest (an S3 object
# version, a copy of the repository) before GC frees the chunks it needs
ORPHAN_INDEX_GRACE = 7 * 24 * 3600.0


@dataclasses.dataclass
class MaintenanceSettings:
    """Settings of GC and validation (mutable per Repository; tests shorten them).

    ``orphan_index_grace``: seconds GC keeps the indexes of a restore point without manifest (by the newest index
    object's modification time) before removing them and the chunks only they name.
    """

    orphan_index_grace: float = ORPHAN_INDEX_GRACE


@dataclasses.dataclass(frozen=True)
class OrphanRestorePoint:
    """The index objects (names, sorted) of restore point ``id``, which has no manifest, with the newest object's
    mtime (epoch s), the backup lock they belong to (a lock dict with its ``stale`` flag), if any, and whether a
    removal marker names the restore point. Immutable.

    Exactly one of ``in_progress`` (a live backup or copy writes it), ``removing`` (a removal was begun),
    ``interrupted`` (a dead backup's leftovers) and ``damage`` holds.
    """

    id: str
    objects: tuple
    newest_mtime: float
    backup_lock: dict = None
    removal_marked: bool = False

    @property
    def in_progress(self):
        return self.backup_lock is not None and not self.backup_lock.get("stale")

    @property
    def removing(self):
        return self.removal_marked and not self.in_progress

    @property
    def interrupted(self):
        return self.backup_lock is not None and bool(self.backup_lock.get("stale")) and not self.removal_marked

    @property
    def damage(self):
        """True when nothing explains the missing manifest: it was deleted or lost."""
        return self.backup_lock is None and not self.removal_marked

    @property
    def kind(self):
        return ("in_progress" if self.in_progress else "removing" if self.removing else "interrupted" if self.interrupted
                else "damage")


def list_indexes(backend):
    """{restore point id: [ObjectInfo of its index objects]} from one listing of ``indexes/``."""
    found = {}
    for info in backend.list(INDEXES_PREFIX):
        parts = info.name.split("/")
        if len(parts) == 3 and is_restore_point_id(parts[1]):
            found.setdefault(parts[1], []).append(info)
    return found


def _epoch(text):
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def _backup_lock_of(rp_id, locks, window):
    """The backup lock restore point ``rp_id`` was begun under, or None.

    Its lock is a ``backup of <the id's vm tag>`` lock created before the id's time (the id is made right after the
    lock is written, from the same clock), and last refreshed no longer than ``window`` before it: the heartbeat
    rewrites a live lock every refresh interval, and a lock not refreshed for half the stale time is lost. A backup
    of the same VM begun after that lock went stale (its process dead, or silent for the stale time) mostly falls
    outside the window. A lock whose times do not parse explains nothing.
    """
    created, tag = parse_restore_point_id(rp_id)
    for lock in locks:
        if str(lock.get("purpose", "")).endswith(COPY_LOCK_MARK + rp_id):
            return lock         # a copy names the restore point it writes
    began = created.timestamp()
    purpose = "backup of %s" % tag
    for lock in locks:
        if not str(lock.get("purpose", "")).startswith(purpose):
            continue
        lock_created = _epoch(lock.get("created"))
        refreshed = lock.get("refreshed_epoch") or _epoch(lock.get("refreshed"))
        if lock_created is None or refreshed is None:
            continue
        if lock_created - 1.0 <= began <= max(lock_created, refreshed) + window:
            return lock
    return None


def find_orphans(index_listing, manifest_ids, locks, lock_settings, removal_ids=()):
    """OrphanRestorePoint of each restore point of ``index_listing`` (list_indexes) missing from ``manifest_ids``;
    ``locks`` as LockManager.list_locks gives them, judged with ``lock_settings`` (LockSettings); ``removal_ids`` the
    restore points with a removal marker (removals.unfinished_removals).

    List the indexes before the manifests, and the locks and removal markers after the indexes: a backup whose
    indexes were listed had written its lock before, so its lock is in ``locks`` unless the backup ended, in which case
    its manifest is listed; a removal deletes its marker only after the indexes, so a removal that left listed
    indexes shows its marker unless it ended, in which case re-listing the indexes shows them gone (see validation).
    """
    window = max(lock_settings.refresh_interval, lock_settings.stale_after / 2)
    orphans = []
    for rp_id, infos in sorted(index_listing.items()):
        if rp_id in manifest_ids:
            continue
        orphans.append(OrphanRestorePoint(id=rp_id, objects=tuple(sorted(info.name for info in infos)),
                                          newest_mtime=max(info.mtime for info in infos),
                                          backup_lock=_backup_lock_of(rp_id, locks, window),
                                          removal_marked=rp_id in removal_ids))
    return orphans


def orphan_error(orphan, grace):
    """The validation error entry of a damaged orphan (a restore point whose manifest was deleted or lost)."""
    message = ("Restore point %s has %d index object(s) (%s) but no manifest: its manifest was deleted or lost, so it "
               "cannot be restored. GC keeps these indexes and the chunks they name for %s after they were written; "
               "recover the manifest meanwhile (an S3 object version, a copy of the repository), or forget them with "
               "backup_prune forget_orphans=true." % (orphan.id, len(orphan.objects), ", ".join(orphan.objects),
                                                      _days(grace)))
    return {"restore_point": orphan.id, "disk": None, "object": "manifests/%s" % orphan.id, "objects": list(orphan.objects),
            "error_class": "CorruptionError", "error": message}


def _days(seconds):
    days = seconds / 86400.0
    return "%g day(s)" % round(days, 2) if days >= 1 else "%d second(s)" % int(seconds)


def referenced_by_orphans(repository, orphans, on_error):
    """Storage ids of the chunks the index objects of ``orphans`` name (each index read and checked by its own
    checksum or seal; no manifest vouches for it). ``on_error(name, exc)`` for an index that does not read."""
    codec = repository.codec
    referenced = set()
    for orphan in orphans:
        for name in orphan.objects:
            try:
                blob = repository.backend.get(name)
                index = DiskIndex.from_bytes(repository.keys.unseal(name, blob) if repository.keys is not None else blob, name)
            except BlockvaultError as exc:
                on_error(name, exc)
                continue
            referenced.update(codec.storage_id(digest) for digest in index.referenced())
    return referenced
