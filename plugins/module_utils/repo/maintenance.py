# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prune and validation (format sections 10, 11); garbage collection is garbage.gc (re-exported here).

Memory: validation holds sets of chunk ids (not whole indexes): each index is loaded, reduced to the ids it
references and dropped; it reloads indexes a second time only when it must locate damage.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..errors import BlockvaultError, ConfigurationError, NotFoundInBackendError
from .format import INDEXES_PREFIX, ZERO_SENTINEL, chunk_name, isotime, manifest_name
# gc is re-exported: repository.gc and the tests call maintenance.gc
from .garbage import gc, stream_chunk_ids  # noqa: F401  pylint: disable=unused-import
from .locks import SHARED
from .marking import mark_restore_points
from .orphans import find_orphans, list_indexes, orphan_error
from .removals import locked_until, unfinished_removals
from .retention import apply_policy, check_policy


def prune(repository, policy, vm=None, dry_run=True, lock_wait=None):
    """Apply a retention policy per VM (``vm``: one VM key, or every VM). Removes manifests+indexes, not chunks.
    A restore point the policy would remove but an S3 Object Lock retention still protects is kept, with the reason
    ``object lock until <time>``.

    Returns {"dry_run", "keep": [{"id", "vm_tag", "created", "reasons"}], "remove": [ids]}; run gc afterwards
    to free space. Takes a shared lock (compatible with backups; see the spec) unless ``dry_run``.
    """
    check_policy(policy)
    pinned = repository.pinned_ids()
    groups = {}
    keep, remove = [], []
    for point in repository.list_restore_points(vm):
        if point.id in pinned:      # kept whatever the policy, and not counted by its rules
            keep.append({"id": point.id, "vm_tag": point.vm_tag, "created": isotime(point.created), "reasons": ["pinned"]})
        else:
            groups.setdefault(point.vm_tag, []).append(point)
    for points in groups.values():
        kept, removed = apply_policy(points, policy)
        keep.extend({"id": p.id, "vm_tag": p.vm_tag, "created": isotime(p.created), "reasons": reasons} for p, reasons in kept)
        for point in removed:
            until = locked_until(repository.backend, point.id)
            if until:       # immutable until then: kept, and said so (spec section 10)
                keep.append({"id": point.id, "vm_tag": point.vm_tag, "created": isotime(point.created),
                             "reasons": ["object lock until %s" % until]})
            else:
                remove.append(point.id)
    result = {"dry_run": dry_run, "keep": sorted(keep, key=lambda k: k["id"]), "remove": sorted(remove)}
    if not dry_run and remove:
        with repository.locks.acquire(SHARED, "prune", wait=lock_wait):
            for rp_id in result["remove"]:
                repository._delete_restore_point_locked(rp_id)
    return result


def _referenced_chunks(repository, rp_ids, on_error):
    """Set of storage ids referenced by the restore points ``rp_ids`` (full ids: validation reports each missing one);
    ``on_error(rp_id, disk, exc)`` for failures."""
    referenced = set()
    mark_restore_points(repository, rp_ids, on_error, into=_IdSet(referenced))
    return referenced


class _IdSet:
    """mark_restore_points into a plain set (validation needs the ids themselves, not only membership)."""

    def __init__(self, ids):
        self._ids = ids

    def update(self, storage_ids):
        self._ids.update(storage_ids)


def _ranges(positions, index):
    """Merge chunk positions into [start, end) byte ranges."""
    ranges = []
    for position in sorted(positions):
        start = position * index.chunk_size
        end = start + index.chunk_length(position)
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = end
        else:
            ranges.append([start, end])
    return ranges


def _check_chunk(repository, storage_id):
    """None when the chunk reads, authenticates and hashes to its id; else the problem text."""
    try:
        plain = repository.read_chunk(storage_id)
    except NotFoundInBackendError:
        return "missing"
    except BlockvaultError as exc:
        return exc.message
    if repository.encrypted and not repository.codec.verify_digest(storage_id, plain):
        return "its content does not hash to its id"
    return None


def validate(repository, level="quick", restore_point=None, workers=2):
    """Check restore points (all, or ``restore_point``); returns a report dict, ``ok`` False when anything is damaged.

    quick: manifests, schema, indexes, checksums from indexes, every referenced chunk exists.
    full: also every referenced chunk read, authenticated, decompressed and hashed.
    Each damaged chunk is reported with every restore point, disk and byte range it affects.
    """
    if level not in ("quick", "full"):
        raise ConfigurationError("validate level must be 'quick' or 'full', got %r." % (level,))
    # a shared lock: GC cannot remove chunks while they are being checked (prune may still remove restore points)
    with repository.locks.acquire(SHARED, "validate"):
        return _validate_locked(repository, level, restore_point, workers)


def _validate_locked(repository, level, restore_point, workers):
    # indexes before manifests and locks (spec 9.2): a backup whose indexes are listed has its lock or its manifest seen
    index_listing = None if restore_point else list_indexes(repository.backend)
    rp_ids = [restore_point] if restore_point else [p.id for p in repository.list_restore_points()]
    errors = []

    def on_error(rp_id, disk, exc):
        if rp_id != restore_point and not repository.backend.exists(manifest_name(rp_id)):
            return  # pruned while we were checking: not damage
        errors.append({"restore_point": rp_id, "disk": disk, "object": getattr(exc, "object_name", None),
                       "error_class": type(exc).__name__, "error": exc.message})

    referenced = _referenced_chunks(repository, rp_ids, on_error)
    # the listing streamed prefix by prefix: only the referenced chunks found are held (12 M listed ids took 4 GiB)
    found, unreferenced = set(), 0
    for chunk_id, _size in stream_chunk_ids(repository.backend):
        if chunk_id in referenced:
            found.add(chunk_id)
        else:
            unreferenced += 1
    problems = {chunk_id: "missing" for chunk_id in referenced if chunk_id not in found}
    checked = 0
    if level == "full":
        candidates = [chunk_id for chunk_id in referenced if chunk_id not in problems]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for chunk_id, problem in zip(candidates, pool.map(lambda c: _check_chunk(repository, c), candidates)):
                checked += 1
                if problem:
                    problems[chunk_id] = problem
    damaged = []
    if problems:
        affects = {chunk_id: [] for chunk_id in problems}
        codec = repository.codec
        for rp_id in rp_ids:
            try:
                manifest = repository.load_manifest(rp_id)
            except BlockvaultError:
                continue
            for disk in manifest.disks:
                try:
                    index = repository.load_disk_index(rp_id, disk.key)
                except BlockvaultError:
                    continue
                positions = {}
                for position, digest in enumerate(index):
                    if digest != ZERO_SENTINEL:
                        storage_id = codec.storage_id(digest)
                        if storage_id in problems:
                            positions.setdefault(storage_id, []).append(position)
                for storage_id, found in positions.items():
                    affects[storage_id].append({"restore_point": rp_id, "vm": manifest.vm.key, "vm_name": manifest.vm.name,
                                                "disk": disk.key.value, "ranges": _ranges(found, index)})
        damaged = [{"chunk": chunk_id.hex(), "object": chunk_name(chunk_id), "problem": problem, "affects": affects[chunk_id]}
                   for chunk_id, problem in sorted(problems.items())]
    orphans = _orphans_to_report(repository, index_listing, rp_ids) if index_listing is not None else {}
    errors.extend(orphan_error(orphan, repository.maintenance_settings.orphan_index_grace) for orphan in orphans.get("damage", ()))
    return {"level": level, "ok": not errors and not damaged, "restore_points": len(rp_ids), "chunks_referenced": len(referenced),
            "chunks_read": checked, "chunks_unreferenced": unreferenced if not restore_point else None,
            "errors": errors, "damaged_chunks": damaged,
            "backups_in_progress": [o.id for o in orphans.get("in_progress", ())],
            "interrupted_backups": [o.id for o in orphans.get("interrupted", ())],
            "unfinished_removals": orphans.get("unfinished_removals", [])}


def _orphans_to_report(repository, index_listing, rp_ids):
    """Restore points with indexes but no manifest, by kind: ``damage``, ``in_progress``, ``interrupted``,
    ``removing`` (spec 9.2, 9.4), and under ``unfinished_removals`` the ids of every removal marker without manifest.

    ``index_listing`` was made at the start of the validation, and the locks and removal markers are listed now, at
    its end. So a candidate is damage only if, checked again now, it still has no manifest (else a backup committed it
    meanwhile) and still has indexes (else a removal that ended meanwhile removed them, marker included).
    """
    locks = repository.locks.list_locks()
    removal_ids = unfinished_removals(repository.backend)
    orphans = find_orphans(index_listing, set(rp_ids), locks, repository.lock_settings, removal_ids)
    by_kind = {"unfinished_removals": sorted(rp for rp in removal_ids if not repository.restore_point_exists(rp))}
    for orphan in orphans:
        if orphan.damage and (repository.restore_point_exists(orphan.id)
                              or not repository.backend.list("%s%s/" % (INDEXES_PREFIX, orphan.id))):
            continue
        by_kind.setdefault(orphan.kind, []).append(orphan)
    return by_kind
