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
import threading
import time

from ..errors import NotFoundInBackendError
from .format import isotime

GC_PREFIX = "gc/"
CONDEMNED = GC_PREFIX + "condemned"
SWEEP_MARKER = GC_PREFIX + "sweep"
RESCUES_PREFIX = GC_PREFIX + "rescues/"
_MAGIC = b"blockvault-condemned 1\n"
_ID = 32


@dataclasses.dataclass(frozen=True)
class Generation:
    """Chunks condemned by one GC run (frozenset of 32-byte ids), when (``written``), and the ``sessions`` (shared lock
    ids) live once they were recorded: None when that GC did not get so far (the next run then waits for the sessions
    live in its own time, which include every older one still running)."""

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
        """Every condemned chunk id (what a session must not rely on)."""
        return frozenset().union(*(generation.chunks for generation in self.generations))


class UnreadableRecord(Exception):
    """``gc/condemned`` exists but cannot be read: a session then relies on everything it listed (a rescue with all)."""


def encode_condemnation(record):
    parts, described = [], []
    for generation in record.generations:
        ids = b"".join(sorted(generation.chunks))
        parts.append(ids)
        described.append({"written": generation.written, "count": len(generation.chunks),
                          "sessions": None if generation.sessions is None else sorted(generation.sessions)})
    ids = b"".join(parts)
    header = {"gc": record.gc, "generations": described, "sha256": hashlib.sha256(ids).hexdigest()}
    return _MAGIC + json.dumps(header, sort_keys=True).encode("utf-8") + b"\n" + ids


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
    blob = bytes(blob)
    if not blob.startswith(_MAGIC):
        raise UnreadableRecord("it does not begin with %r" % _MAGIC.decode())
    end = blob.find(b"\n", len(_MAGIC))
    try:
        header = json.loads(blob[len(_MAGIC):end].decode("utf-8")) if end > 0 else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if not isinstance(header, dict) or not isinstance(header.get("gc"), str) or not isinstance(header.get("generations"), list):
        raise UnreadableRecord("its header is not a JSON object with gc and generations")
    ids = blob[end + 1:]
    if len(ids) % _ID or header.get("sha256") != hashlib.sha256(ids).hexdigest():
        raise UnreadableRecord("its chunk list does not match its header's sha256")
    generations, offset = [], 0
    for described in header["generations"]:
        written, count, sessions = _generation_fields(described)
        chunk_ids = ids[offset:offset + count * _ID]
        if len(chunk_ids) != count * _ID:
            raise UnreadableRecord("its generations count more chunks than it holds")
        generations.append(Generation(frozenset(chunk_ids[i:i + _ID] for i in range(0, len(chunk_ids), _ID)), written, sessions))
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
    backend.put(CONDEMNED, encode_condemnation(record))


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


__all__ = ["CONDEMNED", "Condemnation", "Generation", "Rescuer", "Rescues", "SWEEP_MARKER", "UnreadableRecord",
           "begin_sweep", "decode_condemnation", "encode_condemnation", "end_sweep", "live_lock_ids", "read_condemnation",
           "read_rescues", "sweepable", "sweep_in_progress", "write_condemnation"]
