# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prune, garbage collection and validation (format sections 9.1, 10, 11).

Memory: GC and validation hold sets of chunk ids (not whole indexes): each index is loaded, reduced to the ids
it references and dropped; validation reloads indexes a second time only when it must locate damage.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from ..errors import BlockvaultError, ConfigurationError, CorruptionError, NotFoundInBackendError, RepositoryError
from .format import INDEXES_PREFIX, MANIFESTS_PREFIX, ZERO_SENTINEL, chunk_id_from_name, chunk_name, isotime, manifest_name
from .checkpoint import gc_checkpoints
from .locks import EXCLUSIVE, SHARED
from .orphans import find_orphans, list_indexes, orphan_error, referenced_by_orphans
from .removals import finish_removal, locked_until, unfinished_removals
from .retention import apply_policy, check_policy
from .session import list_chunk_ids, list_chunk_infos

_DELETE_BATCH = 256

log = logging.getLogger("blockvault.repository")


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
    """Set of storage ids referenced by the restore points ``rp_ids``; ``on_error(rp_id, disk, exc)`` for failures."""
    codec = repository.codec
    referenced = set()
    for rp_id in rp_ids:
        try:
            manifest = repository.load_manifest(rp_id)
        except BlockvaultError as exc:
            on_error(rp_id, None, exc)
            continue
        for disk in manifest.disks:
            try:
                index = repository.load_disk_index(rp_id, disk.key)
                if index.blocksum() != disk.sha256:
                    raise CorruptionError("The checksum of disk %s of %s computed from its index differs from the manifest's." % (
                        disk.key, rp_id), object_name=disk.index)
            except BlockvaultError as exc:
                on_error(rp_id, disk.key.value, exc)
                continue
            referenced.update(codec.storage_id(digest) for digest in index.referenced())
    return referenced


def _gc_refuse(failures):
    rp_id, disk, exc = failures[0]
    return RepositoryError("GC stopped without deleting anything: restore point %s%s cannot be read (%s); %d problem(s) in all." % (
        rp_id, " disk %s" % disk if disk else "", exc.message, len(failures)),
        hint="Run validate, and delete or repair the damaged restore points before GC.")


def gc(repository, dry_run=False, lock_wait=None, forget_orphans=False, assume_removed=()):
    """Remove unreferenced chunks, the indexes interrupted backups left, and old temporary files; finish the
    removals of restore points that were cut short (spec 9.4).

    ``assume_removed`` (dry run only): restore point ids to treat as gone, so that a prune's check mode reports
    what the GC after the real prune would free (its mark and sweep skips them; their indexes, which prune itself
    deletes, are no orphans).

    Two phases keep the exclusive lock short (spec 9.1): first, without a lock, read every restore point's
    indexes into the referenced set (manifests are immutable, so what was read stays true); then, under the
    exclusive lock, read only the restore points committed meanwhile, list the chunks and delete. A restore
    point pruned between the phases keeps its chunks until the next GC.

    Indexes without a manifest (spec 9.2) go when an interrupted backup (its stale lock) explains them; otherwise
    they are the evidence of a deleted manifest and stay, with the chunks they name, until they are older than
    ``repository.maintenance_settings.orphan_index_grace`` or ``forget_orphans`` is set.
    """
    backend = repository.backend
    settings = repository.lock_settings
    failures = []
    if assume_removed and not dry_run:
        raise ConfigurationError("gc assume_removed is for a dry run only: prune the restore points, then run gc.")
    gone = set(assume_removed)

    def on_error(rp_id, disk, exc):
        if not backend.exists(manifest_name(rp_id)):
            return  # pruned meanwhile: its references no longer matter
        failures.append((rp_id, disk, exc))

    scanned = [p.id for p in repository.list_restore_points() if p.id not in gone]
    referenced = _referenced_chunks(repository, scanned, on_error)
    if failures:
        raise _gc_refuse(failures)
    with repository.locks.acquire(EXCLUSIVE, "gc", wait=lock_wait) as lock:
        # the locks as they were before the stale ones go: they tell an interrupted backup's indexes from damage
        locks_before = repository.locks.list_locks()
        stale_locks = [] if dry_run else repository.locks.remove_stale()
        rp_ids = [p.id for p in repository.list_restore_points() if p.id not in gone]
        already = set(scanned)
        referenced |= _referenced_chunks(repository, [rp for rp in rp_ids if rp not in already],
                                         lambda rp, disk, exc: failures.append((rp, disk, exc)))
        if failures:
            raise _gc_refuse(failures)
        # chunks of a killed run's checkpoint stay while the next backup may still resume it (format section 9.3)
        checkpointed, expired_checkpoints = gc_checkpoints(repository)
        referenced |= checkpointed
        stored = {}
        for info in list_chunk_infos(backend):
            chunk_id = chunk_id_from_name(info.name)
            if chunk_id is not None:
                stored[chunk_id] = info.size
        removal_ids = unfinished_removals(backend)
        orphans = find_orphans(list_indexes(backend), set(rp_ids) | gone, locks_before, settings, removal_ids)
        now = time.time()
        grace = repository.maintenance_settings.orphan_index_grace
        forgotten = [o for o in orphans if forget_orphans or o.interrupted or o.removing or now - o.newest_mtime > grace]
        kept = [o for o in orphans if o not in forgotten]
        referenced |= referenced_by_orphans(repository, kept, lambda name, exc: log.warning(
            "orphan index %s does not read (%s): the chunks it names cannot be kept for it", name, exc.message))
        garbage = [chunk_id for chunk_id in stored if chunk_id not in referenced]
        orphan_indexes = [name for orphan in forgotten for name in orphan.objects]
        temporaries = [info.name for prefix in ("chunks/", INDEXES_PREFIX, MANIFESTS_PREFIX)
                       for info in backend.list_temporary(prefix) if now - info.mtime > settings.stale_after]
        report = {"dry_run": dry_run, "restore_points": len(rp_ids), "chunks_stored": len(stored), "chunks_referenced": len(referenced),
                  "chunks_missing": len(referenced - set(stored)), "chunks_removed": len(garbage),
                  "bytes_removed": sum(stored[c] for c in garbage), "indexes_removed": len(orphan_indexes),
                  "orphans_removed": [o.id for o in forgotten], "orphans_kept": [o.id for o in kept],
                  "temporary_files_removed": len(temporaries), "stale_locks_removed": stale_locks,
                  "checkpoints_removed": len(expired_checkpoints),
                  "removals_finished": sorted(rp for rp in removal_ids if rp not in rp_ids),
                  "removals_not_begun": sorted(rp for rp in removal_ids if rp in rp_ids)}
        for orphan in kept:
            log.warning("GC keeps the %d index object(s) of restore point %s, which has no manifest (deleted or lost?), "
                        "and the chunks they name: validate reports it; backup_prune forget_orphans=true removes them",
                        len(orphan.objects), orphan.id)
        if dry_run:
            return report
        names = [chunk_name(c) for c in garbage] + orphan_indexes + expired_checkpoints

        def fenced_delete(name):
            lock.check_valid()  # not one delete once our lock could be judged stale (spec 9.1): a local clock check
            backend.delete(name)
        with ThreadPoolExecutor(max_workers=8 if backend.parallel_listing else 2) as pool:
            for start in range(0, len(names), _DELETE_BATCH):
                lock.ensure_valid()  # never delete after our lock could have been judged stale (spec 9.1)
                list(pool.map(fenced_delete, names[start:start + _DELETE_BATCH]))
        for rp_id in sorted(removal_ids):    # after the indexes: the marker goes last (spec 9.4)
            lock.ensure_valid()
            finish_removal(backend, rp_id)
        for name in temporaries:
            backend.delete_temporary(name)
        return report


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
    stored = list_chunk_ids(repository.backend)
    problems = {chunk_id: "missing" for chunk_id in referenced if chunk_id not in stored}
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
            "chunks_read": checked, "chunks_unreferenced": len(stored - referenced) if not restore_point else None,
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
