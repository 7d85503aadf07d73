# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Knowing which chunks are stored without listing them all: the presence filter ``gc/present`` (format section 9.1,
"The presence filter") and a session's view of the stored chunks (ChunkPresence).

GC writes ``gc/present`` at the end of every run: a Bloom filter of the chunk storage ids its listing found, minus
those it deleted. A session reads it (one GET) instead of listing ``chunks/`` (one LIST per 1000 chunks). The filter
says "absent" (certain for the ids it was built from: a Bloom filter has no false negatives) or "maybe" (about 1% of
absent ids are false positives). It is stale for additions (a chunk stored after GC listed says "absent": at worst it
is uploaded again), and its "maybe" is never trusted alone: a HEAD request confirms it, except for the chunks of a
committed restore point the session builds on (``ChunkPresence.trust``), which GC never deletes (the filter's "maybe"
then only says they were not already missing when GC listed).

Object: ``blockvault-present 1\\n``, a JSON header line, ``\\n``, the bit array (m/8 bytes). Header: ``{"gc": GC lock
id, "listed": time GC began listing the chunks, "written": time, "count": ids, "m": bits, "k": positions per id,
"sha256": of the bit array}``. Position i (0 <= i < k <= 8) of a storage id is its bytes 4i..4i+3 as a little-endian
unsigned 32-bit integer modulo m (storage ids are uniformly random: SHA-256 or HMAC-SHA256, so no hashing is needed);
bit p is bit ``p % 8`` (least significant first) of byte ``p // 8``.

Thread-safety: PresenceFilter is immutable; ChunkPresence may be used from many threads (a lock guards its counters
and the switch to a listing; the id sets are updated with single set operations).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import islice, repeat
from operator import mod

from ..errors import NotFoundInBackendError
from .format import chunk_name, isotime, utcnow

PRESENT = "gc/present"
_MAGIC = b"blockvault-present 1\n"
_ID = 32
BITS_PER_ID = 10        # about 0.8% false positives with k = 7
POSITIONS = 7
MAX_BITS = 1 << 32      # a position is a 32-bit slice of the id, modulo m
_BATCH = 32768          # ids unpacked per struct call while building
PAGE = 1000             # names per listing request on S3

log = logging.getLogger("blockvault.repository")


@dataclasses.dataclass
class PresenceSettings:
    """How sessions use ``gc/present`` (mutable per Repository; tests change them).

    ``use_filter``: False makes every session list ``chunks/`` as before the filter existed. ``max_age``: seconds
    after GC began its listing beyond which the filter is not used (the session lists): a repository whose GC has not
    run for that long has many chunks the filter says are absent. ``min_requests`` and ``requests_per_page``: a session
    makes at most ``max(min_requests, requests_per_page * listing pages)`` HEAD requests (a listing page holds 1000
    names; the filter's count says how many pages a listing takes), then lists ``chunks/`` instead: it never costs
    much more than the listing it replaces.
    """

    use_filter: bool = True
    max_age: float = 7 * 86400.0
    min_requests: int = 100
    requests_per_page: int = 10


class UnreadableFilter(Exception):
    """``gc/present`` exists but cannot be used (damaged, truncated, another version, inconsistent)."""


def filter_bits(count, bits_per_id=BITS_PER_ID):
    """The size m (bits, a multiple of 64, at least 64, at most 2^32) of a filter of ``count`` ids."""
    return min(MAX_BITS, max(64, -(-count * bits_per_id // 64) * 64))


def build_bits(ids, m, k=POSITIONS):
    """The bit array (bytes, m/8 of them) of the storage ids ``ids`` (an iterable of 32-byte values). Pure Python: the
    ids are unpacked in batches by one struct call each, the positions reduced by a C-level map; the per-position
    work left is one ``|=`` on a bytearray (1.4 s of CPU per million ids at 1 M, 2.1 s at 10 M: bench/presence_bench.py)."""
    if m % 8 or not 8 <= m <= MAX_BITS or not 1 <= k <= 8:
        raise ValueError("a filter has m (a multiple of 8, at most 2^32) bits and 1 to 8 positions per id")
    bits = bytearray(m // 8)
    layout = "%dI%dx" % (k, _ID - 4 * k)
    full = struct.Struct("<" + layout * _BATCH)
    source = iter(ids)
    while True:
        batch = list(islice(source, _BATCH))
        if not batch:
            break
        joined = b"".join(batch)
        if len(joined) != _ID * len(batch):
            raise ValueError("storage ids are 32 bytes each")
        unpacker = full if len(batch) == _BATCH else struct.Struct("<" + layout * len(batch))
        for position in map(mod, unpacker.unpack(joined), repeat(m)):
            bits[position >> 3] |= 1 << (position & 7)
    return bytes(bits)


class PresenceFilter:
    """A decoded ``gc/present``: ``storage_id in filter`` is False (absent when GC listed) or True (maybe present)."""

    def __init__(self, bits, m, k, count, gc, listed, written):
        self.bits = bits
        self.m = m
        self.k = k
        self.count = count
        self.gc = gc
        self.listed = listed
        self.written = written
        self._unpack = struct.Struct("<%dI" % k).unpack_from

    @classmethod
    def build(cls, ids, count, gc, listed, bits_per_id=BITS_PER_ID, k=POSITIONS):
        """The filter of ``count`` storage ids ``ids`` (an iterable), written by GC lock ``gc`` whose listing began at
        ``listed`` (an ISO time)."""
        m = filter_bits(count, bits_per_id)
        return cls(build_bits(ids, m, k), m, k, count, gc, listed, isotime())

    def __contains__(self, storage_id):
        bits, m = self.bits, self.m
        for word in self._unpack(storage_id):
            position = word % m
            if not bits[position >> 3] >> (position & 7) & 1:
                return False
        return True

    def age(self, now=None):
        """Seconds since GC began the listing this filter was built from (by this host's clock)."""
        return ((now or utcnow()) - _parse_time(self.listed)).total_seconds()

    def encode(self):
        header = {"gc": self.gc, "listed": self.listed, "written": self.written, "count": self.count, "m": self.m,
                  "k": self.k, "sha256": hashlib.sha256(self.bits).hexdigest()}
        return _MAGIC + json.dumps(header, sort_keys=True).encode("utf-8") + b"\n" + self.bits


def _parse_time(text):
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a time without its zone")
    return moment


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def decode_filter(blob):
    """The PresenceFilter in ``blob``; UnreadableFilter when it is none this version can use."""
    blob = bytes(blob)
    if not blob.startswith(_MAGIC):
        raise UnreadableFilter("it does not begin with %r" % _MAGIC.decode())
    end = blob.find(b"\n", len(_MAGIC))
    try:
        header = json.loads(blob[len(_MAGIC):end].decode("utf-8")) if end > 0 else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise UnreadableFilter("its header is not a JSON object")
    m, k, count = header.get("m"), header.get("k"), header.get("count")
    if not (_is_int(m) and _is_int(k) and _is_int(count) and m % 8 == 0 and 64 <= m <= MAX_BITS and 1 <= k <= 8
            and count >= 0 and isinstance(header.get("gc"), str) and isinstance(header.get("sha256"), str)):
        raise UnreadableFilter("its header lacks gc, count, m (a multiple of 8 from 64 to 2^32), k (1 to 8) or sha256")
    try:
        _parse_time(header.get("listed"))
        _parse_time(header.get("written"))
    except (TypeError, ValueError):
        raise UnreadableFilter("its header's listed or written is not a time") from None
    bits = blob[end + 1:]
    if len(bits) != m // 8 or hashlib.sha256(bits).hexdigest() != header["sha256"]:
        raise UnreadableFilter("its bit array does not match its header's size and sha256")
    if int.from_bytes(bits, "little").bit_count() > k * count:
        raise UnreadableFilter("it has more bits set than %d ids can set" % count)
    return PresenceFilter(bits, m, k, count, header["gc"], header["listed"], header["written"])


def write_filter(backend, ids, count, gc_lock_id, listed):
    """Build and write ``gc/present`` of ``count`` storage ids ``ids``; returns the PresenceFilter written."""
    presence = PresenceFilter.build(ids, count, gc_lock_id, listed)
    backend.put(PRESENT, presence.encode())
    return presence


def read_filter(backend, settings):
    """(PresenceFilter, None) when ``gc/present`` can be used under ``settings`` (PresenceSettings), else (None, why)."""
    if not settings.use_filter:
        return None, "the presence filter is turned off"
    try:
        blob = backend.get(PRESENT)
    except NotFoundInBackendError:
        return None, "no %s: no GC has written one yet" % PRESENT
    try:
        presence = decode_filter(blob)
    except UnreadableFilter as exc:
        return None, "%s is damaged or of another version: %s" % (PRESENT, exc)
    age = presence.age()
    if age > settings.max_age:
        return None, "%s of %s is older than %s: does GC run?" % (PRESENT, presence.listed, _duration(settings.max_age))
    if -age > settings.max_age:
        return None, "%s claims a time in the future (%s)" % (PRESENT, presence.listed)
    return presence, None


def _duration(seconds):
    return "%g days" % (seconds / 86400.0) if seconds >= 86400 else "%g s" % seconds


class ChunkPresence:
    """What one session knows of the stored chunks, and how it learns more (format section 9.1, "The presence filter").

    ``known``: the storage ids the session saw stored (listed, confirmed by a HEAD, or uploaded by itself): the set
    the session shares. ``condemned``: the ids of the condemnation record it read, never relied on unless it stores
    them again. With a ``presence`` filter, ids outside ``known`` are asked: ``probe`` (deduplication: "absent" costs
    nothing, "maybe" one HEAD, answered once per session) and ``missing`` (a check before relying on chunks: every id
    not known and not trusted is confirmed, by HEADs in parallel, or by one listing when that is cheaper). Past its
    request budget, or when a bulk check would exceed it, the session lists ``chunks/`` once and answers from the
    listing from then on, as without a filter. Without a filter (``path`` says why) it answers from ``known`` alone.
    """

    def __init__(self, backend, known, condemned, presence=None, path="listing", settings=None):
        self.backend = backend
        self.known = known
        self.condemned = condemned
        self.filter = presence
        self.path = path
        settings = settings or PresenceSettings()
        pages = -(-presence.count // PAGE) if presence is not None else 0
        self.budget = max(settings.min_requests, settings.requests_per_page * pages)
        self.requests = 0
        self._absent = set()        # asked by HEAD and not stored (then)
        self._trusted = set()       # referenced by a committed restore point the session read
        self._mutex = threading.Lock()
        self._switch = threading.Lock()

    @property
    def listing(self):
        return self.filter is None

    def trust(self, storage_ids):
        """Chunks of a committed restore point: relied on without a request when the filter says "maybe" and they
        are not condemned (GC deletes no referenced chunk; see the format, section 9.1)."""
        if self.filter is not None:
            self._trusted.update(storage_ids)

    def probe(self, storage_id):
        """Deduplication: True when the chunk is stored as far as the session can tell cheaply (at most one request)."""
        if storage_id in self.known:
            return True
        presence = self.filter
        if presence is None or storage_id in self.condemned or storage_id in self._absent or storage_id not in presence:
            return False
        if not self._spend(1):
            self.list_all("%d HEAD requests (the budget) were made" % self.budget)
            return storage_id in self.known
        return self._head(storage_id)

    def missing(self, storage_ids):
        """The ids of ``storage_ids`` (an iterable) the session cannot rely on: not stored, or condemned and not stored
        again by itself. Every id not known and not trusted is confirmed with the backend."""
        unknown = {storage_id for storage_id in storage_ids if storage_id not in self.known}
        presence = self.filter
        if not unknown or presence is None:
            return unknown
        missing = {storage_id for storage_id in unknown if storage_id in self.condemned}
        ask = [storage_id for storage_id in unknown - missing
               if not (storage_id in self._trusted and storage_id in presence)]
        if not ask:
            return missing
        if not self._spend(len(ask)):
            self.list_all("a check of %d chunks would exceed the budget of %d HEAD requests" % (len(ask), self.budget))
            return {storage_id for storage_id in unknown if storage_id not in self.known}
        workers = 16 if self.backend.parallel_listing else 4
        with ThreadPoolExecutor(max_workers=min(workers, len(ask))) as pool:
            found = list(pool.map(self._head, ask))
        missing.update(storage_id for storage_id, stored in zip(ask, found) if not stored)
        return missing

    def _spend(self, number):
        with self._mutex:
            if self.requests + number > self.budget:
                return False
            self.requests += number
            return True

    def _head(self, storage_id):
        if self.backend.exists(chunk_name(storage_id)):
            self.known.add(storage_id)      # not condemned: kept for this session (section 9.1)
            return True
        self._absent.add(storage_id)
        return False

    def list_all(self, why):
        """List ``chunks/`` once and answer from the listing from now on (the filter is dropped)."""
        from .session import list_chunk_ids     # session.py imports nothing of this module: no cycle at import time

        with self._switch:
            if self.filter is None:
                return
            listed = list_chunk_ids(self.backend)
            listed.difference_update(self.condemned)
            self.known.update(listed)
            self.filter = None
            self.path = "filter, then listing (%s)" % why
            log.info("backup session: chunks/ listed after all: %s", why)


def open_presence(backend, condemned, settings):
    """A session's ChunkPresence, after its lock was written and the condemnation record read (``condemned``): from
    ``gc/present`` when it can be used, else from a listing of ``chunks/`` (logged, with the reason)."""
    from .session import list_chunk_ids

    presence, why = read_filter(backend, settings)
    if presence is not None:
        return ChunkPresence(backend, set(), condemned, presence, "filter", settings)
    (log.warning if "damaged" in why else log.info)("backup session: chunks/ is listed: %s", why)
    known = list_chunk_ids(backend)
    known.difference_update(condemned)
    return ChunkPresence(backend, known, condemned, None, "listing (%s)" % why, settings)


__all__ = ["PRESENT", "ChunkPresence", "PresenceFilter", "PresenceSettings", "UnreadableFilter", "build_bits",
           "decode_filter", "filter_bits", "open_presence", "read_filter", "write_filter"]
