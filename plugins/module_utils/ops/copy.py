# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy restore points from one repository to another (an offsite copy: the 3-2-1 rule), without reading a VM.

Only the chunks the destination lacks travel, whatever the two repositories' keys: a disk index holds the plain
SHA-256 of each chunk, the destination names a chunk ``destination.codec.storage_id(digest)``, so a chunk already
there (another VM's, an earlier copy's) is skipped without reading the source. A missing one is read from the
source, checked against its digest and stored through a destination BackupSession, sealed with the destination's
keys. As for a backup, the manifest is written last: a copy that dies leaves chunks (reused by the next run) and no
visible restore point.

A copied restore point keeps the source's creation time, run id and random suffix; its id carries the destination's
VM tag (``destination_id``), so the next copy recognises it by a listing alone. Its manifest records
``stats.copied_from: {repository, restore_point}`` and the same block-based disk checksums as the source's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import re
import time

from ..errors import BackendError, ConfigurationError, CorruptionError
from ..repo.format import ZERO_SENTINEL
from ..repo.locks import SHARED
from ..repo.model import ManifestDraft
from ..repo.session import list_chunk_ids
from ..repo.settings import RepositorySettings
from ._copy_io import CopyCounters, CopyJob, RateLimiter, copy_chunks
from ._engine import RepositoryOpener, manifests_of, new_run_id
from .context import open_run
from .requests import Endpoints, RunSettings

__all__ = ["CopyRequest", "copy", "destination_id", "parse_newer_than"]

MB = 1000 * 1000
_RELATIVE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_newer_than(value, now=None):
    """The UTC datetime ``value`` names: an ISO-8601 time (a date alone is its midnight UTC; no zone means UTC),
    or an age from ``now`` such as ``36h``, ``7d``, ``2w``. ConfigurationError naming the value otherwise."""
    if value is None:
        return None
    match = _RELATIVE.match(str(value))
    if match:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return now - datetime.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigurationError("newer_than %r is neither an ISO-8601 time (2026-11-01T08:00:00Z) nor an age "
                                 "(36h, 7d, 2w)." % (value,)) from None
    return moment.replace(tzinfo=datetime.timezone.utc) if moment.tzinfo is None else moment


@dataclasses.dataclass(frozen=True)
class CopyRequest:
    """Copy to ``destination`` (RepositorySettings) the source's restore points selected by: ``vm`` (a VM name),
    ``restore_points`` (ids), ``newer_than`` (parse_newer_than), then ``last`` (the newest N per VM of those).
    No filter selects every restore point. ``validated_only`` keeps, of those, only the ones a full validation or a
    test restore of the source found intact. ``rate_limit_mbps`` caps the bytes written to the destination (MB/s)."""

    destination: RepositorySettings
    vm: str = None
    restore_points: tuple = ()
    last: int = None
    newer_than: str = None
    rate_limit_mbps: float = None
    run_id: str = None
    validated_only: bool = False

    def __post_init__(self):
        if not isinstance(self.destination, RepositorySettings):
            raise ConfigurationError("The copy needs a destination repository (its location and key).")
        object.__setattr__(self, "restore_points", tuple(str(rp) for rp in self.restore_points or ()))
        if self.last is not None and int(self.last) < 1:
            raise ConfigurationError("last is %s: give 1 or more (the newest N restore points of each VM)." % self.last)
        parse_newer_than(self.newer_than)
        RateLimiter(self.rate_limit_mbps)


def destination_id(manifest, destination):
    """The id the copy of source restore point ``manifest`` has in Repository ``destination``: the same time and
    random suffix, the destination's tag of the VM (tags differ between repositories with different keys)."""
    moment, _tag, suffix = manifest.id.split("-")
    return "%s-%s-%s" % (moment, destination.vm_tag(manifest.vm.key), suffix)


def _created(manifest):
    return datetime.datetime.fromisoformat(manifest.created)


def select(source, request):
    """The source's Manifests the request selects, oldest first (validated_only is applied by the caller)."""
    chosen = manifests_of(source, request.vm)
    if request.vm and not chosen:
        raise ConfigurationError("No restore point of a VM named %s in the source repository %s." % (request.vm, source.location))
    if request.restore_points:
        known = {manifest.id: manifest for manifest in chosen}
        missing = [rp_id for rp_id in request.restore_points if rp_id not in known]
        if missing:
            raise ConfigurationError("Restore point(s) %s are not in the source repository %s%s." % (
                ", ".join(missing), source.location, " for VM %s" % request.vm if request.vm else ""),
                hint="backup_info lists the restore points.")
        chosen = [manifest for manifest in chosen if manifest.id in set(request.restore_points)]
    if request.newer_than is not None:
        since = parse_newer_than(request.newer_than)
        chosen = [manifest for manifest in chosen if _created(manifest) > since]
    if request.last:
        per_vm = {}
        for manifest in chosen:
            per_vm.setdefault(manifest.vm.key, []).append(manifest)
        kept = {manifest.id for manifests in per_vm.values() for manifest in manifests[-int(request.last):]}
        chosen = [manifest for manifest in chosen if manifest.id in kept]
    return chosen


class _Copy:
    """One copy run: plan (what the destination lacks), then each restore point in its own destination session.
    Owned by the run's thread; the chunk workers see only a CopyJob."""

    def __init__(self, context, destination, request):
        self.context = context
        self.source = context.repository
        self.destination = destination
        self.request = request
        self.counters = CopyCounters()
        self.limiter = RateLimiter(request.rate_limit_mbps)

    def run(self):
        source, destination = self.source, self.destination
        self._check_compatible()
        self.context.set_phase("plan")
        present_ids = {point.id for point in destination.list_restore_points()}
        pending, present, unvalidated = [], [], []
        validated = source.validated_ids() if self.request.validated_only else None
        for manifest in select(source, self.request):
            target = destination_id(manifest, destination)
            if target in present_ids:
                present.append((manifest, target))
            elif validated is not None and manifest.id not in validated:
                unvalidated.append(manifest.id)
            else:
                pending.append((manifest, target))
        started = time.monotonic()
        if self.context.check:
            copied = self._plan(pending)
        else:
            if pending:
                self._lock_source()
            copied = [self._copy_one(manifest, target) for manifest, target in pending]
        duration = time.monotonic() - started
        before = sorted(target for _manifest, target in present)
        moved = sum(entry["bytes"] for entry in copied)
        return {"changed": bool(pending), "run_id": self.context.run_id, "destination": destination.location,
                "msg": self._summary(copied, present, moved, unvalidated),
                "skipped_unvalidated": unvalidated,
                "copied": copied, "present": [self._reference(manifest, target) for manifest, target in present],
                "chunks_copied": sum(entry["chunks"] for entry in copied), "bytes_copied": moved,
                "bytes_sent": None if self.context.check else self.counters.bytes_sent,
                "duration": round(duration, 3),
                "throughput_mbps": round(moved / MB / duration, 1) if duration > 0 and not self.context.check else None,
                "diff": {"before": {"restore_points": before},
                         "after": {"restore_points": sorted(before + [target for _manifest, target in pending])}}}

    def _summary(self, copied, present, moved, unvalidated):
        """One line: which restore points were (would be) copied where, what travelled, what was there already."""
        verb = "would copy" if self.context.check else "copied"
        text = "%s %d restore point(s) to %s" % (verb, len(copied), self.destination.location)
        if copied:
            text += " (%s): %d chunk(s), %d bytes read" % (", ".join(entry["id"] for entry in copied),
                                                           sum(entry["chunks"] for entry in copied), moved)
            if not self.context.check:
                text += ", %d bytes sent" % self.counters.bytes_sent
        if present:
            text += "; %d already there" % len(present)
        if unvalidated:
            text += "; %d not copied because no full validation passed them yet (%s)" % (len(unvalidated),
                                                                                         ", ".join(unvalidated))
        return text

    def _check_compatible(self):
        source, destination = self.source, self.destination
        if source.id == destination.id:
            raise ConfigurationError("The source and the destination are the same repository (%s, id %s): give another "
                                     "destination." % (destination.location, destination.id))
        if source.chunk_size != destination.chunk_size:
            raise ConfigurationError(
                "The source repository %s has %d-byte chunks and the destination %s has %d-byte chunks: a copy moves "
                "chunks as they are, so both need the same chunk size. Nothing was copied." % (
                    source.location, source.chunk_size, destination.location, destination.chunk_size),
                hint="Create the destination with chunk_size=%d (backup_repository)." % source.chunk_size)

    def _lock_source(self):
        """A shared lock on the source for the run: a GC there must not delete chunks while they are read."""
        lock = self.source.locks.acquire(SHARED, "copy to %s" % self.destination.location)

        def release():
            with contextlib.suppress(BackendError):
                lock.release()      # else the lock goes stale and is ignored
        self.context.stack.callback(release)

    @staticmethod
    def _reference(manifest, target):
        return dict(manifest.reference(), destination_id=target)

    def _wanted(self, manifest, indexes, has_chunk, seen):
        """[(digest, where)] of the chunks of ``manifest`` the destination lacks (each once), and their bytes."""
        items, total = [], 0
        for entry, index in indexes:
            where = "restore point %s disk %s" % (manifest.id, entry.name)
            for position, digest in enumerate(index):
                if digest == ZERO_SENTINEL or digest in seen or has_chunk(digest):
                    continue
                seen.add(digest)
                items.append((digest, where))
                total += index.chunk_length(position)
        return items, total

    def _indexes(self, manifest):
        return [(entry, self.source.load_disk_index(manifest.id, entry.key.value)) for entry in manifest.disks]

    def _plan(self, pending):
        """Check mode: what each pending restore point would send (chunks counted once over the whole run)."""
        known = list_chunk_ids(self.destination.backend)
        storage_id = self.destination.codec.storage_id
        seen = set()
        planned = []
        for manifest, target in pending:
            items, total = self._wanted(manifest, self._indexes(manifest), lambda digest: storage_id(digest) in known, seen)
            planned.append(dict(self._reference(manifest, target), chunks=len(items), bytes=total))
        return planned

    def _copy_one(self, manifest, target):
        """Copy one restore point: chunks, then indexes, then the manifest (the destination session's order)."""
        self.context.set_phase("copy")
        copied_before = self.counters.chunks_copied
        with self.destination.begin_copy(manifest.vm.key, manifest.run_id, target, manifest.created) as session:
            indexes = self._indexes(manifest)
            # asked in bulk (HEADs in parallel, or one listing): the session's filter does not know recent chunks
            stored = session.stored_chunks(digest for _entry, index in indexes for digest in index.referenced())
            items, total = self._wanted(manifest, indexes, stored.__contains__, set())
            progress = self.context.progress
            progress.add_disk(manifest.id, total)
            job = CopyJob(self.source, session, self.limiter, self.counters, progress, manifest.id)
            copy_chunks(job, items, int(self.context.settings.workers))
            progress.set_disk_phase(manifest.id, "commit")
            for entry, index in indexes:
                session.add_disk_index(entry.key.value, index)
            stats = dict(manifest.stats, copied_from={"repository": self.source.id, "restore_point": manifest.id})
            draft = ManifestDraft(run_id=manifest.run_id, vm=manifest.vm, disks=tuple(entry.record for entry in manifest.disks),
                                  backup_mode=manifest.backup_mode, started=manifest.started, stats=stats)
            committed = session.commit(draft)
        for original, copy_entry in zip(manifest.disks, committed.disks):
            if (original.key, original.sha256) != (copy_entry.key, copy_entry.sha256):
                raise CorruptionError("The copy %s of restore point %s has checksum %s for disk %s, the source %s." % (
                    target, manifest.id, copy_entry.sha256, original.name, original.sha256), object_name="manifests/" + target)
        progress.set_disk_phase(manifest.id, "done")
        return dict(self._reference(manifest, target), chunks=self.counters.chunks_copied - copied_before, bytes=total)


def copy(request, repo, settings=RunSettings()):
    """Copy the restore points ``request`` (a CopyRequest) selects from the repository of RepositorySettings ``repo``
    to ``request.destination`` (an existing repository: backup_repository creates one). Returns {changed, run_id,
    destination, msg (one line saying what was copied), copied: [{id, vm, created, destination_id, chunks, bytes}], present: [...], chunks_copied,
    bytes_copied (plain bytes read and sent), bytes_sent (stored bytes written; None in check mode), duration,
    throughput_mbps, diff}; in check mode ``copied`` lists what would be copied and the same figures."""
    run_id = request.run_id or new_run_id()
    with open_run(Endpoints(repo=repo), settings, run_id, request.vm, vsphere=False) as context:
        destination = context.stack.enter_context(RepositoryOpener(request.destination)).result()
        return _Copy(context, destination, request).run()
