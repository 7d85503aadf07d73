# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Garbage collection beside running sessions (format section 9.1, "GC beside writers", and 9.2 to 9.4).

One GC at a time (a ``gc`` lock); backups, copies, prunes, validations and exports go on meanwhile. A run marks what
the restore points reference, *condemns* the rest (generations.py), and deletes the condemned chunks nobody can rely
on any more: those of the previous condemnation whose sessions have all ended, or all of its own when no session was
live once its record was written. Memory: the mark (marking.ReferencedChunks, 8 bytes per referenced chunk) and the
unreferenced chunks (generations.ChunkIds: 48 bytes each with their sizes, 40 in each set derived from them); the
listing is held one ``chunks/xx/`` prefix at a time.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

from ..errors import BackendError, ConfigurationError, RepositoryError
from .checkpoint import gc_checkpoints
from .format import CHUNKS_PREFIX, INDEXES_PREFIX, MANIFESTS_PREFIX, chunk_id_from_name, chunk_name, isotime, manifest_name
from .generations import (ChunkIds, ChunkIdsBuilder, Condemnation, Generation, UnreadableRecord, begin_sweep, end_sweep,
                          live_lock_ids, read_condemnation, read_rescues, sweepable, write_condemnation)
from .locks import GC, SHARED
from .marking import mark_restore_points
from .orphans import find_orphans, list_indexes, referenced_by_orphans
from . import presence
from .removals import finish_removal, unfinished_removals

# names per lock refresh at least (a refresh is a PUT of the lock: a few hundred deletes between two is plenty)
_DELETE_BATCH = 256

log = logging.getLogger("blockvault.repository")


def _gc_refuse(failures):
    rp_id, disk, exc = failures[0]
    return RepositoryError("GC stopped without deleting anything: restore point %s%s cannot be read (%s); %d problem(s) in all." % (
        rp_id, " disk %s" % disk if disk else "", exc.message, len(failures)),
        hint="Run validate, and delete or repair the damaged restore points before GC.")


def _sessions(locks):
    """Ids of the live shared locks (the sessions a condemnation waits for) among LockManager.list_locks entries."""
    return live_lock_ids([lock for lock in locks if lock.get("kind") == SHARED or lock.get("damaged")])


class _Run:
    """One GC run (see gc); used once, from one thread."""

    def __init__(self, repository, dry_run, forget_orphans, gone):
        self.repository = repository
        self.backend = repository.backend
        self.dry_run = dry_run
        self.forget_orphans = forget_orphans
        self.gone = gone
        self.failures = []
        self.marked = []

    def on_error(self, rp_id, disk, exc):
        if not self.backend.exists(manifest_name(rp_id)):
            return  # pruned meanwhile: its references no longer matter
        self.failures.append((rp_id, disk, exc))

    def mark(self, referenced=None):
        """Mark the restore points listed now and not marked yet; refuse on any that cannot be read."""
        done = self.gone.union(self.marked)
        new = [p.id for p in self.repository.list_restore_points() if p.id not in done]
        referenced = mark_restore_points(self.repository, new, self.on_error, into=referenced)
        if self.failures:
            raise _gc_refuse(self.failures)
        self.marked.extend(new)
        return referenced

    def write_record(self, lock, waiting, newest):
        """Write the condemnation record: the generations still ``waiting`` and this run's (``newest``); empty ones
        are left out. Fenced like a manifest: it must land while this GC's lock is valid."""
        if self.dry_run:
            return
        generations = tuple(g for g in list(waiting) + [newest] if g.chunks)
        lock.ensure_valid()
        write_condemnation(self.backend, Condemnation(generations, lock.lock_id))
        lock.check_valid()     # it landed before anyone could take this GC for dead (as a backup's manifest)


def gc(repository, dry_run=False, lock_wait=None, forget_orphans=False, assume_removed=()):
    """Remove unreferenced chunks nobody can rely on, the indexes interrupted backups left, and old temporary files;
    finish the removals of restore points that were cut short (spec 9.4). Runs beside backups and other sessions.

    ``assume_removed`` (dry run only): restore point ids to treat as gone, so that a prune's check mode reports
    what the GC after the real prune would free (its mark and sweep skips them; their indexes, which prune itself
    deletes, are no orphans).

    Unreferenced chunks are condemned first; they are deleted by this run when no session was live once the
    condemnation was recorded, else by a later run once those sessions have ended (``chunks_condemned`` says how
    many wait, ``sessions_waited_for`` for how many sessions).

    Indexes without a manifest (spec 9.2) go when an interrupted backup (its stale lock) explains them; otherwise
    they are the evidence of a deleted manifest and stay, with the chunks they name, until they are older than
    ``repository.maintenance_settings.orphan_index_grace`` or ``forget_orphans`` is set.
    """
    if assume_removed and not dry_run:
        raise ConfigurationError("gc assume_removed is for a dry run only: prune the restore points, then run gc.")
    run = _Run(repository, dry_run, forget_orphans, set(assume_removed))
    backend = repository.backend
    settings = repository.lock_settings
    with repository.locks.acquire(GC, "gc", wait=lock_wait) as lock:
        # indexes, then locks, then manifests (spec 9.2): listed indexes are explained by a lock or a manifest
        index_listing = list_indexes(backend)
        locks_before = repository.locks.list_locks()
        stale_locks = [] if dry_run else repository.locks.remove_stale()
        referenced = run.mark()
        # chunks of a killed run's checkpoint stay while the next backup may still resume it (format section 9.3)
        checkpointed, expired_checkpoints = gc_checkpoints(repository)
        referenced.update(checkpointed)
        # one pass over the listing, prefix by prefix: only the unreferenced chunks (and their sizes) are kept, packed
        stored, builder = 0, ChunkIdsBuilder(sizes=True)
        for batch in stream_chunk_batches(backend):
            stored += len(batch)
            sizes = dict(batch)
            for chunk_id in referenced.unreferenced(sizes):
                builder.add(chunk_id, sizes[chunk_id])
        unreferenced = builder.build()
        referenced_stored = stored - len(unreferenced)
        removal_ids = unfinished_removals(backend)
        orphans = find_orphans(index_listing, set(run.marked) | run.gone, locks_before, settings, removal_ids)
        now = time.time()
        grace = repository.maintenance_settings.orphan_index_grace
        # a running backup's indexes are its own (its chunks are safe as long as it runs: it is a live session)
        settled = [o for o in orphans if not o.in_progress]
        forgotten = [o for o in settled if forget_orphans or o.interrupted or o.removing or now - o.newest_mtime > grace]
        kept = [o for o in settled if o not in forgotten]
        referenced.update(referenced_by_orphans(repository, kept, lambda name, exc: log.warning(
            "orphan index %s does not read (%s): the chunks it names cannot be kept for it", name, exc.message)))
        try:
            previous = read_condemnation(backend)
        except UnreadableRecord as exc:
            log.warning("the previous GC's condemnation record does not read (%s): this run starts a new one", exc)
            previous = None
        waiting = [g for g in previous.generations if g.sessions is not None] if previous is not None else []
        candidates = unreferenced.without(referenced)
        # a generation whose GC died before it listed the sessions joins this run's: it then waits for the sessions
        # live now, among which every older session still running
        fresh = candidates - ChunkIds.union_of(g.chunks for g in waiting) if waiting else candidates
        # the record first, then the sessions live once it is written: a session not among them started after the
        # record was written, so it read it and relies on none of its chunks without storing them again
        run.write_record(lock, waiting, Generation(fresh, isotime(), None))
        sessions_listed = repository.locks.list_locks()
        live = _sessions(sessions_listed)
        # a prune or delete running may be between its marker and its manifest's delete: its removals are its own
        removers = [lk for lk in sessions_listed if not lk["stale"] and str(lk.get("purpose")).startswith(("prune", "delete "))]
        if removers:
            removal_ids = [rp for rp in removal_ids if rp not in run.marked]    # only those whose manifest is gone
        newest = Generation(fresh, isotime(), tuple(sorted(live)))
        run.write_record(lock, waiting, newest)
        # restore points committed since the mark began: every session that had not ended before the sessions were
        # listed is among them, so what the others committed is in this listing
        run.mark(referenced)
        candidates = candidates.without(referenced)
        due = [generation.chunks for generation in waiting + [newest] if sweepable(generation, live)]
        deletable = ChunkIds.union_of(chunks & candidates for chunks in due) if due else ChunkIds()
        report = {"dry_run": dry_run, "restore_points": len(run.marked), "chunks_stored": stored,
                  "chunks_referenced": len(referenced), "chunks_missing": max(0, len(referenced) - referenced_stored),
                  "orphans_removed": [o.id for o in forgotten], "orphans_kept": [o.id for o in kept],
                  "stale_locks_removed": stale_locks, "checkpoints_removed": len(expired_checkpoints),
                  "sessions_waited_for": len(live), "presence_filter": None,
                  "removals_finished": sorted(rp for rp in removal_ids if rp not in run.marked),
                  "removals_not_begun": sorted(rp for rp in removal_ids if rp in run.marked)}
        for orphan in kept:
            log.warning("GC keeps the %d index object(s) of restore point %s, which has no manifest (deleted or lost?), "
                        "and the chunks they name: validate reports it; backup_prune forget_orphans=true removes them",
                        len(orphan.objects), orphan.id)
        orphan_indexes = [name for orphan in forgotten for name in orphan.objects]
        temporaries = [info.name for prefix in ("chunks/", INDEXES_PREFIX, MANIFESTS_PREFIX)
                       for info in backend.list_temporary(prefix) if now - info.mtime > settings.stale_after]
        if dry_run:
            return _finish_report(report, deletable, candidates, unreferenced, orphan_indexes, temporaries)
        deleted = _sweep(repository, lock, deletable, orphan_indexes + expired_checkpoints, lambda: run.mark(referenced))
        left = candidates - deleted     # chunks referenced again, or deleted, leave their generation
        run.write_record(lock, [dataclasses.replace(g, chunks=g.chunks & left) for g in waiting],
                         dataclasses.replace(newest, chunks=newest.chunks & left))
        report["presence_filter"] = _write_presence(backend, lock, stored - len(deleted))
        for rp_id in sorted(removal_ids):    # after the indexes: the marker goes last (spec 9.4)
            lock.ensure_valid()
            finish_removal(backend, rp_id)
        for name in temporaries:
            backend.delete_temporary(name)
        return _finish_report(report, deleted, candidates, unreferenced, orphan_indexes, temporaries)


def stream_chunk_ids(backend):
    """(storage id, size) of every stored chunk, listed prefix by prefix (see stream_chunk_batches)."""
    for batch in stream_chunk_batches(backend):
        yield from batch


def stream_chunk_batches(backend):
    """Lists of (storage id, size) of the stored chunks, one per listing (``chunks/xx/``), so that no more than one
    prefix's listing is held at once (a repository of 12 M chunks held as one listing took 4 GiB). Remote backends
    list 16 prefixes at a time in parallel; a small remote repository is one request."""
    if backend.parallel_listing:
        first = backend.list(CHUNKS_PREFIX, limit=1000)
        if len(first) < 1000:
            batches = [first]
        else:
            batches = None
    else:
        batches = None
    if batches is None:
        prefixes = ["%s%02x/" % (CHUNKS_PREFIX, i) for i in range(256)]
        workers = 16 if backend.parallel_listing else 1
        batches = _listed_in_groups(backend, prefixes, workers)
    for listing in batches:
        yield _listed_ids(listing)


_HEX_AT = len(CHUNKS_PREFIX) + 3
# a chunk object's name (format.chunk_id_from_name's test: ``chunks/xx/`` then 64 hex digits beginning with ``xx``), for
# a whole listing at once: one regex pass in C instead of a Python test per name (run for every stored chunk, twice)
_CHUNK_NAMES = re.compile(r"^%s([0-9a-fA-F]{2})/\1[0-9a-fA-F]{62}$" % re.escape(CHUNKS_PREFIX), re.M)
_SPLIT_IDS = re.compile(b".{32}", re.S)


def _listed_ids(listing):
    """[(storage id, size)] of the chunk objects of ``listing`` (other names are left out)."""
    names = [info.name for info in listing]
    if len(_CHUNK_NAMES.findall("\n".join(names))) == len(names):
        try:        # a stray name with a newline in it fails here (not hex) or below (count), and takes the slow path
            ids = _SPLIT_IDS.findall(bytes.fromhex("".join([name[_HEX_AT:] for name in names])))
        except ValueError:
            ids = ()
        if len(ids) == len(names):
            return list(zip(ids, [info.size for info in listing]))
    pairs = [(chunk_id_from_name(info.name), info.size) for info in listing]
    return [pair for pair in pairs if pair[0] is not None and len(pair[0]) == 32]


def _listed_in_groups(backend, prefixes, workers):
    if workers == 1:
        for prefix in prefixes:
            yield backend.list(prefix)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(prefixes), workers):
            yield from pool.map(backend.list, prefixes[start:start + workers])


def _write_presence(backend, lock, expected):
    """Write ``gc/present`` from a listing made now, after the sweep (format section 9.1, "The presence filter"),
    sized for about ``expected`` ids; returns how many ids it holds, or None when the write failed (logged: sessions
    then use the older filter, whose only harm is a HEAD request for a chunk deleted since, or list chunks/)."""
    listed = isotime()      # what the filter says of the chunks: stored at this time
    counted = [0]

    def ids():
        for chunk_id, _size in stream_chunk_ids(backend):
            counted[0] += 1
            yield chunk_id
    lock.ensure_valid()     # fenced like the record (the filter is never a reason to keep or delete anything)
    try:
        m = presence.filter_bits(max(1, expected))
        bits = presence.build_bits(ids(), m)
        written = presence.PresenceFilter(bits, m, presence.POSITIONS, counted[0], lock.lock_id, listed, isotime())
        backend.put(presence.PRESENT, written.encode())
    except BackendError as exc:
        log.warning("GC could not write %s (%s): sessions use the previous one or list chunks/", presence.PRESENT, exc)
        return None
    return counted[0]


def _finish_report(report, deleted, candidates, unreferenced, orphan_indexes, temporaries):
    report.update({"chunks_removed": len(deleted), "bytes_removed": unreferenced.size_of(deleted),
                   "chunks_condemned": len(candidates) - len(deleted), "indexes_removed": len(orphan_indexes),
                   "temporary_files_removed": len(temporaries)})
    return report


def _sweep(repository, lock, deletable, other_names, mark_again):
    """Delete the chunks ``deletable`` (a ChunkIds) except those a live session rescues or a restore point committed
    meanwhile references, and ``other_names``; returns the chunk ids deleted (a ChunkIds).

    The sweep marker is written first and the rescue notes read after it (generations.Rescuer). Then the restore points
    committed since are marked (``mark_again()`` returns the referenced set): a session deletes its note when it ends,
    so a rescue whose note was gone from the listing was either committed before this mark, or not relied on."""
    backend = repository.backend
    began = bool(deletable)
    if began:
        lock.ensure_valid()
        begin_sweep(backend, lock.lock_id)
    try:
        if deletable:
            rescues = read_rescues(backend, repository.locks)
            if rescues.everything:
                log.warning("GC deletes no chunk this time: a running session could not read the condemnation record")
                deletable = ChunkIds()
            referenced = mark_again()
            deletable = (deletable - rescues.chunks if rescues.chunks else deletable).without(referenced)
        # chunk names (made one request at a time, in id order), then the other objects
        _delete_fenced(backend, lock, itertools.chain(map(chunk_name, deletable), other_names))
    finally:
        if began:
            end_sweep(backend)
    return deletable


def _delete_fenced(backend, lock, names):
    """Delete ``names`` (an iterable) in requests of ``backend.max_delete_batch`` names (S3's DeleteObjects: 1,000; a
    local directory: one unlink each), several requests in parallel. Fencing (spec 9.1): the lock is refreshed before
    every round of requests, and its deadline checked (a local clock read) right before every request, so that not
    one request is sent once our lock could be judged stale."""
    per_request = max(1, backend.max_delete_batch)
    workers = 8 if backend.parallel_listing else 2
    per_round = max(workers, -(-_DELETE_BATCH // per_request))
    names = iter(names)
    requests = iter(lambda: list(itertools.islice(names, per_request)), [])

    def fenced(request):
        lock.check_valid()
        if len(request) == 1:
            backend.delete(request[0])
        else:
            backend.delete_many(request)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            batch = list(itertools.islice(requests, per_round))
            if not batch:
                break
            lock.ensure_valid()
            list(pool.map(fenced, batch))
