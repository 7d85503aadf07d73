# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GC beside running sessions: condemned chunks, the sessions a condemnation waits for, rescues and the sweep marker
(format section 9.1, "GC beside writers").

GC never deletes a chunk the run that found it unreferenced could not prove nobody relies on. It *condemns* the
unreferenced chunks first, in the record ``gc/condemned``, together with the sessions (shared locks) live once the
record was written. A later GC deletes a condemned chunk that is still unreferenced once every one of those sessions
has ended; a GC that finds no session live deletes at once. A session that starts after a record was written reads it
and never relies on a condemned chunk it did not store again itself; storing one again is a *rescue*, announced in
``gc/rescues/<lock id>`` before the upload, and a sweep in progress (``gc/sweep``) is waited for first.

Objects (every one forgeable without harm: a forged record, note or marker can only make GC keep more or a writer
store a chunk again; what GC deletes is also unreferenced by its own mark):

* ``gc/condemned``: ``blockvault-condemned 1\\n`` + a JSON header line + the 32-byte chunk ids of each generation,
  sorted, generation after generation. Header: ``{"gc": lock id, "sha256": of the ids, "generations": [{"written":
  time, "count": chunks, "sessions": [lock ids] or null while being written}]}``.
* ``gc/rescues/<lock id>``: JSON ``{"lock": id, "all": bool, "chunks": [hex ids]}``; ``all`` when the session could
  not read the record (it then relies on anything it listed: no sweep while it lives).
* ``gc/sweep``: JSON ``{"gc": lock id, "started": time}``, from the start of a sweep's deletions to their end.

Thread-safety: the functions are stateless; ``Rescuer`` (one per session) serialises its rescues with a lock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import threading
import time
from array import array
from bisect import bisect_left

from ..errors import NotFoundInBackendError
from .format import isotime

GC_PREFIX = "gc/"
CONDEMNED = GC_PREFIX + "condemned"
SWEEP_MARKER = GC_PREFIX + "sweep"
RESCUES_PREFIX = GC_PREFIX + "rescues/"
_MAGIC = b"blockvault-condemned 1\n"
_ID = 32
_SPLIT = re.compile(b".{32}", re.S)
_SHARDS = 256


def _keys_of(packed):
    """The first 8 bytes of every id of ``packed`` (concatenated ids) as big-endian integers: an array('Q') to bisect
    at C speed (sorted ids give sorted keys)."""
    words = array("Q")
    words.frombytes(packed)
    keys = words[::_ID // 8]
    if sys.byteorder == "little":
        keys.byteswap()
    return keys


class ChunkIds:
    """An immutable set of 32-byte chunk storage ids, compact enough for millions of them (GC's unreferenced chunks,
    the condemned record): per first byte of the id, the ids sorted and concatenated in one ``bytes`` plus an
    ``array('Q')`` of their first 8 bytes for bisection; 40 bytes per id, 48 with a size per id (``sizes``). A
    frozenset of the same ids takes about 150 bytes per id.

    ``in`` (bisect, then one compare), ``len``, iteration (in id order), ``==`` (also with a set of bytes), and the set
    operations ``&``, ``-``, ``|`` with another ChunkIds or any collection of ids; ``set & ChunkIds`` gives a set.
    The operations work shard by shard, so the only Python objects they make at once are one shard's ids.
    Build one with ``ChunkIds.of(ids)`` or a ChunkIdsBuilder. Thread-safe (immutable).
    """

    __slots__ = ("_ids", "_keys", "_sizes", "_count")

    def __init__(self, shards=None, keys=None):
        """``shards``: internal; 256 (sorted unique packed ids, their sizes array or None) pairs; ``keys``: their
        key arrays where known (None: computed), so that a shard a set operation leaves whole is shared, not copied."""
        shards = shards or [(b"", None)] * _SHARDS
        self._ids = tuple(ids for ids, _sizes in shards)
        self._keys = tuple(_keys_of(ids) if known is None else known for ids, known in zip(self._ids, keys or [None] * _SHARDS))
        self._sizes = tuple(sizes for _ids, sizes in shards)
        self._count = sum(len(ids) for ids in self._ids) // _ID

    @classmethod
    def of(cls, storage_ids):
        """The ChunkIds of ``storage_ids`` (any iterable of 32-byte ids; a ChunkIds is returned as it is)."""
        if isinstance(storage_ids, ChunkIds):
            return storage_ids
        builder = ChunkIdsBuilder()
        builder.update(storage_ids)
        return builder.build()

    @classmethod
    def union_of(cls, sets):
        """The union of an iterable of ChunkIds (or collections of ids)."""
        sets = [cls.of(ids) for ids in sets]
        if len(sets) == 1:
            return sets[0]
        return cls([(b"".join(sorted(set().union(*(ids._split(shard) for ids in sets)))), None) for shard in range(_SHARDS)])

    def _split(self, shard):
        return _SPLIT.findall(self._ids[shard])

    def _find(self, storage_id):
        """(shard, position) of ``storage_id``, or None."""
        storage_id = bytes(storage_id)
        if len(storage_id) != _ID:
            return None
        shard = storage_id[0]
        keys, ids = self._keys[shard], self._ids[shard]
        key = int.from_bytes(storage_id[:8], "big")
        position = bisect_left(keys, key)
        while position < len(keys) and keys[position] == key:
            if ids[position * _ID:(position + 1) * _ID] == storage_id:
                return shard, position
            position += 1
        return None

    def __contains__(self, storage_id):
        return self._find(storage_id) is not None

    def __len__(self):
        return self._count

    def __bool__(self):
        return self._count > 0

    def __iter__(self):
        for ids in self._ids:
            for start in range(0, len(ids), _ID):
                yield ids[start:start + _ID]

    def packed(self):
        """The ids sorted and concatenated, as a list of bytes parts (one per non-empty shard)."""
        return [ids for ids in self._ids if ids]

    def size_of(self, storage_ids):
        """The sum of the sizes recorded for the members that are in ``storage_ids`` (a ChunkIds or ids; 0 for a
        set without sizes)."""
        other, total = ChunkIds.of(storage_ids), 0
        for shard in range(_SHARDS):
            sizes = self._sizes[shard]
            if sizes is not None and other._ids[shard]:
                theirs = set(other._split(shard))
                total += sum(size for storage_id, size in zip(self._split(shard), sizes) if storage_id in theirs)
        return total

    def _derived(self, kept_of):
        """The set of the members ``kept_of(shard, members)`` keeps, shard by shard: ``self`` itself when it keeps
        every member (GC's sets are mostly the same set: one copy, not one per step), else a new ChunkIds sharing the
        shards kept whole (sizes are kept only in ``self``)."""
        shards, keys, changed = [], [], False
        for shard in range(_SHARDS):
            members = self._split(shard) if self._ids[shard] else []
            kept = kept_of(shard, members) if members else members
            if len(kept) == len(members):
                shards.append((self._ids[shard], None))
                keys.append(self._keys[shard])
            else:
                changed = True
                shards.append((b"".join(kept), None))
                keys.append(None)
        return ChunkIds(shards, keys) if changed else self

    def without(self, container):
        """The members not in ``container`` (anything with ``in``; a ReferencedChunks is asked shard by shard through
        its ``unreferenced``, without a method call per id); ``self`` when none is in it."""
        if isinstance(container, ChunkIds):
            if not container:
                return self

            def kept(shard, members):
                if not container._ids[shard]:
                    return members
                theirs = set(container._split(shard))
                return [storage_id for storage_id in members if storage_id not in theirs]
            return self._derived(kept)
        unreferenced = getattr(container, "unreferenced", None)
        if unreferenced is not None:
            return self._derived(lambda shard, members: unreferenced(members))
        return self._derived(lambda shard, members: [storage_id for storage_id in members if storage_id not in container])

    def __sub__(self, other):
        return self.without(ChunkIds.of(other))

    def __and__(self, other):
        other = ChunkIds.of(other)
        if other is self:
            return self

        def kept(shard, members):
            theirs = set(other._split(shard))
            return [storage_id for storage_id in members if storage_id in theirs]
        return self._derived(kept)

    def __rand__(self, other):
        return {storage_id for storage_id in other if storage_id in self}

    def __or__(self, other):
        return ChunkIds.union_of((self, other))

    def __eq__(self, other):
        if isinstance(other, ChunkIds):
            return self._ids == other._ids
        if isinstance(other, (set, frozenset)):
            return len(other) == self._count and all(storage_id in self for storage_id in other)
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return "<ChunkIds of %d ids>" % self._count


class ChunkIdsBuilder:
    """Collects chunk ids (with their sizes when ``sizes``) in any order, duplicates allowed, 32 (40) bytes each;
    ``build()`` sorts them shard by shard into a ChunkIds (a duplicate id keeps its smallest size). Not thread-safe."""

    def __init__(self, sizes=False):
        self._ids = [bytearray() for _shard in range(_SHARDS)]
        self._sizes = [array("Q") for _shard in range(_SHARDS)] if sizes else None

    def add(self, storage_id, size=0):
        self._ids[storage_id[0]] += storage_id
        if self._sizes is not None:
            self._sizes[storage_id[0]].append(size)

    def update(self, storage_ids):
        for storage_id in storage_ids:
            self._ids[storage_id[0]] += storage_id

    def build(self):
        """The ChunkIds; the builder is empty afterwards (its memory is handed over shard by shard)."""
        shards = []
        for shard in range(_SHARDS):
            ids = _SPLIT.findall(self._ids[shard])
            self._ids[shard] = bytearray()
            if self._sizes is None:
                shards.append((b"".join(sorted(set(ids))), None))
                continue
            pairs = sorted(zip(ids, self._sizes[shard]), reverse=True)
            self._sizes[shard] = array("Q")
            unique = dict(pairs)        # ids in descending order, each with the last (smallest) of its sizes
            shards.append((b"".join(reversed(unique)), array("Q", reversed(unique.values()))))
        return ChunkIds(shards)


@dataclasses.dataclass(frozen=True)
class Generation:
    """Chunks condemned by one GC run (a ChunkIds, or any collection of 32-byte ids), when (``written``), and the
    ``sessions`` (shared lock ids) live once they were recorded: None when that GC did not get so far (the next run
    then waits for the sessions live in its own time, which include every older one still running)."""

    chunks: frozenset
    written: str
    sessions: tuple | None


@dataclasses.dataclass(frozen=True)
class Condemnation:
    """A ``gc/condemned`` record: the generations still waiting, oldest first, and the GC lock id that wrote it. A
    generation is kept from run to run until its own sessions have ended: a GC looping beside sessions that always
    overlap still deletes, generation by generation."""

    generations: tuple
    gc: str

    @property
    def chunks(self):
        """Every condemned chunk id (what a session must not rely on), a ChunkIds."""
        return ChunkIds.union_of(generation.chunks for generation in self.generations) if self.generations else ChunkIds()


class UnreadableRecord(Exception):
    """``gc/condemned`` exists but cannot be read: a session then relies on everything it listed (a rescue with all)."""


def encode_condemnation_parts(record):
    """The record as a list of bytes parts (its ids are not copied into one more buffer: at millions of condemned
    chunks the record is hundreds of MB, which a backend's put takes as parts)."""
    parts, described, digest = [], [], hashlib.sha256()
    for generation in record.generations:
        chunks = ChunkIds.of(generation.chunks)
        for part in chunks.packed():
            digest.update(part)
            parts.append(part)
        described.append({"written": generation.written, "count": len(chunks),
                          "sessions": None if generation.sessions is None else sorted(generation.sessions)})
    header = {"gc": record.gc, "generations": described, "sha256": digest.hexdigest()}
    return [_MAGIC + json.dumps(header, sort_keys=True).encode("utf-8") + b"\n"] + parts


def encode_condemnation(record):
    return b"".join(encode_condemnation_parts(record))


def _generation_fields(described):
    sessions = described.get("sessions") if isinstance(described, dict) else None
    if (not isinstance(described, dict) or not isinstance(described.get("written"), str)
            or not isinstance(described.get("count"), int) or isinstance(described.get("count"), bool)
            or described["count"] < 0
            or not (sessions is None or isinstance(sessions, list) and all(isinstance(s, str) for s in sessions))):
        raise UnreadableRecord("a generation lacks written, count or sessions")
    return described["written"], described["count"], None if sessions is None else tuple(sessions)


def decode_condemnation(blob):
    """The Condemnation in ``blob``; UnreadableRecord when it is not one (damaged, truncated, another version)."""
    blob = blob if isinstance(blob, bytes) else bytes(blob)
    if not blob.startswith(_MAGIC):
        raise UnreadableRecord("it does not begin with %r" % _MAGIC.decode())
    end = blob.find(b"\n", len(_MAGIC))
    try:
        header = json.loads(blob[len(_MAGIC):end].decode("utf-8")) if end > 0 else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if not isinstance(header, dict) or not isinstance(header.get("gc"), str) or not isinstance(header.get("generations"), list):
        raise UnreadableRecord("its header is not a JSON object with gc and generations")
    ids = memoryview(blob)[end + 1:]      # not copied: the ids of millions of chunks are hundreds of MB
    if len(ids) % _ID or header.get("sha256") != hashlib.sha256(ids).hexdigest():
        raise UnreadableRecord("its chunk list does not match its header's sha256")
    generations, offset = [], 0
    for described in header["generations"]:
        written, count, sessions = _generation_fields(described)
        chunk_ids = ids[offset:offset + count * _ID]
        if len(chunk_ids) != count * _ID:
            raise UnreadableRecord("its generations count more chunks than it holds")
        builder = ChunkIdsBuilder()     # sorted again: a forged record's order must not make ``in`` miss an id
        builder.update(bytes(chunk_ids[i:i + _ID]) for i in range(0, len(chunk_ids), _ID))
        generations.append(Generation(builder.build(), written, sessions))
        offset += count * _ID
    if offset != len(ids):
        raise UnreadableRecord("it holds more chunks than its generations count")
    return Condemnation(tuple(generations), header["gc"])


def read_condemnation(backend):
    """The current Condemnation, or None when there is none; UnreadableRecord when it is damaged."""
    try:
        return decode_condemnation(backend.get(CONDEMNED))
    except NotFoundInBackendError:
        return None


def write_condemnation(backend, record):
    backend.put(CONDEMNED, encode_condemnation_parts(record))


def live_lock_ids(locks):
    """The ids of the locks (LockManager.list_locks entries) that are not stale."""
    return {lock["id"] for lock in locks if not lock["stale"]}


def sweepable(generation, live_ids):
    """True when every session the generation waits for has ended (none of them is among ``live_ids``)."""
    return generation.sessions is not None and not live_ids.intersection(generation.sessions)


@dataclasses.dataclass(frozen=True)
class Rescues:
    """What live sessions announced: the chunk ids they store again, and whether one of them relies on everything."""

    chunks: frozenset
    everything: bool


def read_rescues(backend, locks):
    """The Rescues of the live sessions (``locks``: the LockManager); the notes of ended sessions are deleted. A note
    that cannot be read is taken as relying on everything (keeping is never wrong).

    The notes are listed before the locks: a session writes its lock before its note, so a note whose lock is not live
    in the later listing belongs to a session that has ended (listing the locks first could miss a session that began
    in between, and delete the note that protects its rescue)."""
    notes = backend.list(RESCUES_PREFIX)
    live_ids = live_lock_ids(locks.list_locks())
    chunks, everything = set(), False
    for info in notes:
        lock_id = info.name[len(RESCUES_PREFIX):]
        if lock_id not in live_ids:
            backend.delete(info.name)
            continue
        try:
            note = json.loads(backend.get(info.name).decode("utf-8"))
            everything = everything or note["all"] is True
            chunks.update(bytes.fromhex(text) for text in note["chunks"])
        except NotFoundInBackendError:
            continue        # its session ended meanwhile
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError, AttributeError):
            everything = True
    return Rescues(frozenset(chunks), everything)


def sweep_in_progress(backend, locks):
    """True while ``gc/sweep`` names a GC lock that is live (a GC that died mid-sweep is fenced: its lock went stale)."""
    try:
        marker = json.loads(backend.get(SWEEP_MARKER).decode("utf-8"))
        owner = marker["gc"]
    except NotFoundInBackendError:
        return False
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError):
        return False        # not a marker any GC wrote: nothing to wait for
    return any(lock["id"] == owner and not lock["stale"] for lock in locks.list_locks())


class Rescuer:
    """A session's side of the protocol: what it must not rely on (``condemned``), and storing such a chunk again.

    ``begin(backend, locks, lock_id)`` reads the record after the session's lock is written. ``before_store(id)``
    (call before uploading a condemned chunk) adds the id to the session's note, then waits while a sweep is in
    progress: by the write-then-check argument either the sweep saw the note, or this sees the sweep and waits for
    its end. ``end()`` deletes the note. Thread-safe (rescues are serialised: they are rare).
    """

    def __init__(self, backend, locks, lock_id, poll=1.0):
        self.backend = backend
        self.locks = locks
        self.name = RESCUES_PREFIX + lock_id
        self.lock_id = lock_id
        self.poll = poll
        self.condemned = frozenset()
        self._rescued = []
        self._written = False
        self._mutex = threading.Lock()

    def begin(self):
        """Read the record; returns the condemned ids. A damaged record: a note relying on everything is written."""
        try:
            record = read_condemnation(self.backend)
        except UnreadableRecord:
            self._write_note(everything=True)
            return self.condemned
        self.condemned = record.chunks if record is not None else frozenset()
        return self.condemned

    def _write_note(self, everything=False):
        note = {"lock": self.lock_id, "all": everything, "chunks": [chunk.hex() for chunk in self._rescued]}
        self.backend.put(self.name, json.dumps(note).encode("utf-8"))
        self._written = True

    def before_store(self, storage_id, deadline_check=None):
        """Announce the rescue of ``storage_id`` (a condemned chunk about to be stored again), then wait for a sweep in
        progress to end."""
        self.hold([storage_id], deadline_check)

    def hold(self, storage_ids, deadline_check=None):
        """Announce that this session relies on those of ``storage_ids`` that are condemned (a writer storing one
        again; a reader such as an export of a restore point that references one), then wait while a sweep is in
        progress; returns them. After the wait a condemned chunk a reader holds may have been deleted by that sweep
        (it listed the notes before this one was written): the reader checks that they exist."""
        needed = sorted(set(storage_ids) & self.condemned) if self.condemned else []
        if not needed:
            return needed
        with self._mutex:
            self._rescued.extend(needed)
            self._write_note()
            while sweep_in_progress(self.backend, self.locks):
                if deadline_check is not None:
                    deadline_check()
                time.sleep(self.poll)
        return needed

    def end(self):
        if self._written:
            self.backend.delete(self.name)


def begin_sweep(backend, gc_lock_id):
    backend.put(SWEEP_MARKER, json.dumps({"gc": gc_lock_id, "started": isotime()}).encode("utf-8"))


def end_sweep(backend):
    backend.delete(SWEEP_MARKER)


__all__ = ["CONDEMNED", "ChunkIds", "ChunkIdsBuilder", "Condemnation", "Generation", "Rescuer", "Rescues", "SWEEP_MARKER", "UnreadableRecord",
           "begin_sweep", "decode_condemnation", "encode_condemnation", "end_sweep", "live_lock_ids", "read_condemnation",
           "read_rescues", "sweepable", "sweep_in_progress", "write_condemnation"]
