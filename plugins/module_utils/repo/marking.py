# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GC's mark: the set of chunk storage ids that restore points reference (format section 9.1).

``ReferencedChunks`` is what GC asks of the mark: membership of a storage id, a count, and additions (checkpoints,
orphan indexes kept). ``mark_restore_points`` reads each restore point's manifest and verified disk indexes into it.

Built for 10 million unique chunks and several hundred million index entries (bench/scale/):

* **Compact membership.** ``ReferencedChunks`` keeps the first 64 bits of each storage id, as integers in 65,536
  sorted ``array('Q')`` buckets (by the top 16 bits): 8 bytes per referenced chunk plus about 80 bytes per bucket
  (8.4 bytes per chunk, 104 MB, at 12.4 M chunks, where a set of 32-byte ids takes 1.3 GiB). A lookup is a
  bisection in a bucket of about 190 values (0.6 to 0.9 us). A prefix can only err one way: every referenced chunk's own prefix is in the set, so a referenced
  chunk is never reported unreferenced; a garbage chunk whose prefix equals a referenced one's is kept (until the
  referencing chunk goes too). Storage ids are HMAC-SHA-256 values (SHA-256 digests when unencrypted), uniform in
  their first 64 bits, so the chance that a given garbage chunk is kept is n / 2**64: 5.4e-13 at n = 10 M
  referenced chunks, 5e-6 expected garbage chunks kept per GC that deletes 10 M. (In an unencrypted repository a
  writer of crafted disk content could make such a pair on purpose: it gains a garbage chunk kept, nothing more.)
* **Marking each disk chain by differences.** The restore points of a VM are read in time order, and each disk's
  index is compared with the previous index of the same disk (same VM tag and disk key) position by position: an
  entry equal to the previous index's entry at the same position was marked already, so only the entries that differ
  are new. Equal stretches are skipped at memcmp speed (``bytes.startswith`` against a zero-copy ``memoryview`` slice,
  galloping, then bisecting to the first differing entry), so Python runs per changed entry, not per entry; a densely
  changed index (over 1 entry in 10) switches to comparing its remaining entries in one C-level pass. Only the
  distinct new digests are turned into storage ids (HMAC, with the id key's pads precomputed) and added. The first
  index of a chain is marked whole (its distinct digests). Any previously marked index would be a sound base: the
  chain is only the base that makes the difference small.
* **Verification kept, at C speed.** Each index is still read with ``Repository.load_disk_index`` (its object
  SHA-256 against the manifest's ``index_sha256``, its seal or own checksum, capacity and chunk size) and its disk
  checksum is recomputed and compared with the manifest's ``sha256``, as before. ``index_blocksum`` computes exactly
  ``DiskIndex.blocksum`` but substitutes the zero-chunk digest for runs of zero sentinels by searching them with
  ``bytes.find``, where ``DiskIndex.blocksum`` loops in Python over every entry of an index holding any zero chunk.
  Indexes are read and verified on a small thread pool (hashlib and the AES-GCM unseal release the GIL; remote
  stores need requests in flight) while this thread compares, in chain order.

Measured (bench/scale, 1,000 VMs x 30 restore points, 514 M entries, 12.4 M chunks, 2 cores): 152 s of CPU, 300 MiB
peak, where the former mark (every index whole, an HMAC per distinct digest of every index) took about 5 times the
CPU and a set of full ids. Per entry: 163 ns reading and verifying (three SHA-256 passes, of which the disk checksum
37 ns, the AES-GCM unseal, the manifest), 60 ns comparing; per new digest about 2 us (HMAC and adding).
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from array import array
from bisect import bisect_left
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import compress
from operator import ne

from .. import blockhash
from ..errors import BlockvaultError, ConfigurationError, CorruptionError
from .format import DIGEST_SIZE, ZERO_SENTINEL, parse_restore_point_id

PREFIX_BITS = 64
_BUCKET_BITS = 16
_SLOTS = re.compile(b".{%d}" % DIGEST_SIZE, re.S)
# galloping starts by comparing this many entries; beyond one changed entry in _DENSE the rest is compared in one pass
_GALLOP_ENTRIES = 8
_DENSE = 10
_ZEROS = bytes(1 << 20)
# ReferencedChunks sorts and deduplicates once the values appended since it last did outnumber both the set and this
_COMPACT_MIN = 1 << 20
_ZEROS_VIEW = memoryview(_ZEROS)


class ReferencedChunks:
    """A set of chunk storage ids, kept as their first ``PREFIX_BITS`` bits: ``add``, ``update``, ``in``, ``len``
    (and ``|=``). See the module docstring for the layout and the false-positive rate: ``in`` is True for every id
    added, and for an id never added only when its prefix equals an added one's (keeping a garbage chunk; never
    losing a referenced one). ``len`` counts distinct prefixes.

    Memory: 8 bytes per distinct id plus ~80 bytes per used bucket (at most 65,536), and, between additions and the
    next lookup, 8 bytes per id added meanwhile (duplicates included; compacted when they outnumber the set).
    Not thread-safe: one thread adds; lookups follow (a lookup after additions sorts the buckets first).

    ``_prefix_bits`` (8..64) is a test hook: a short prefix forces collisions.
    """

    def __init__(self, _prefix_bits=PREFIX_BITS):
        if not 8 <= _prefix_bits <= PREFIX_BITS:
            raise ConfigurationError("ReferencedChunks prefix bits must be 8 to 64, got %r." % (_prefix_bits,))
        self._shift = PREFIX_BITS - _prefix_bits
        bucket_bits = min(_BUCKET_BITS, _prefix_bits)
        self._bucket_shift = _prefix_bits - bucket_bits
        self._buckets = [None] * (1 << bucket_bits)
        self._sorted_lengths = [0] * (1 << bucket_bits)
        self._count = 0          # distinct prefixes in the sorted parts
        self._unsorted = 0       # prefixes appended since the last compaction

    def _prefix(self, storage_id):
        return int.from_bytes(storage_id[:8], "big") >> self._shift

    def add(self, storage_id):
        self.update((storage_id,))

    def update(self, storage_ids):
        """Add every id of the iterable ``storage_ids`` (bytes-like, 32 bytes each)."""
        from_bytes, shift, bucket_shift, buckets = int.from_bytes, self._shift, self._bucket_shift, self._buckets
        added = 0
        for storage_id in storage_ids:
            prefix = from_bytes(storage_id[:8], "big") >> shift
            bucket = buckets[prefix >> bucket_shift]
            if bucket is None:
                bucket = buckets[prefix >> bucket_shift] = array("Q")
            bucket.append(prefix)
            added += 1
        self._unsorted += added
        if self._unsorted > max(self._count, _COMPACT_MIN):
            self._compact()   # duplicates (clones, chain starts) must not grow the memory without bound

    def __ior__(self, storage_ids):
        self.update(storage_ids)
        return self

    def _compact(self):
        """Sort and deduplicate the buckets that received values since the last compaction."""
        buckets, lengths = self._buckets, self._sorted_lengths
        count = self._count
        for number, bucket in enumerate(buckets):
            if bucket is not None and len(bucket) != lengths[number]:
                bucket = buckets[number] = array("Q", sorted(set(bucket)))
                count += len(bucket) - lengths[number]
                lengths[number] = len(bucket)
        self._count = count
        self._unsorted = 0

    def __contains__(self, storage_id):
        if self._unsorted:
            self._compact()
        prefix = int.from_bytes(storage_id[:8], "big") >> self._shift
        bucket = self._buckets[prefix >> self._bucket_shift]
        if bucket is None:
            return False
        position = bisect_left(bucket, prefix)
        return position < len(bucket) and bucket[position] == prefix

    def unreferenced(self, storage_ids):
        """The ids of the iterable ``storage_ids`` that are not in the set, as a list in their order: what GC's sweep
        asks of every listed chunk, without a method call per id."""
        if self._unsorted:
            self._compact()
        from_bytes, shift, bucket_shift, buckets = int.from_bytes, self._shift, self._bucket_shift, self._buckets
        found = []
        for storage_id in storage_ids:
            prefix = from_bytes(storage_id[:8], "big") >> shift
            bucket = buckets[prefix >> bucket_shift]
            if bucket is None:
                found.append(storage_id)
                continue
            position = bisect_left(bucket, prefix)
            if position == len(bucket) or bucket[position] != prefix:
                found.append(storage_id)
        return found

    def __len__(self):
        if self._unsorted:
            self._compact()
        return self._count

    def memory_bytes(self):
        """The bytes the buckets hold (their values and the array objects), for benchmarks."""
        return sum(bucket.buffer_info()[1] * bucket.itemsize + 64 for bucket in self._buckets if bucket is not None) + \
            16 * len(self._buckets)


# -- disk checksum at C speed ------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _repeated(digest, count=4096):
    return memoryview(digest * count)


def _update_repeated(combined, digest, count):
    block = _repeated(digest)
    per_block = len(block) // DIGEST_SIZE
    while count >= per_block:
        combined.update(block)
        count -= per_block
    if count:
        combined.update(block[:count * DIGEST_SIZE])


def _zero_run_end(data, start, total):
    """The end (a multiple of 32) of the run of all-zero entries that starts at ``start`` (itself all zero)."""
    low = start + DIGEST_SIZE          # all zero below ``low``
    step = DIGEST_SIZE
    while low < total:
        size = min(step, total - low, len(_ZEROS))
        if data.startswith(_ZEROS_VIEW[:size], low):
            low += size
            step <<= 1
            continue
        high = low + size                  # a non-zero byte lies in [low, high)
        while high - low > DIGEST_SIZE:
            middle = low + max(1, (high - low) // (2 * DIGEST_SIZE)) * DIGEST_SIZE
            if data.startswith(_ZEROS_VIEW[:middle - low], low):
                low = middle
            else:
                high = middle
        return low
    return total


def index_blocksum(index):
    """``index.blocksum()`` (a DiskIndex), computed at C speed: the same hex string.

    Runs of zero sentinels are found with ``find`` and hashed as repeated zero-chunk digests (the last chunk's by its
    own length), the entries between them straight from the index's buffer.
    """
    count = index.count
    if not count:
        return hashlib.sha256(b"").hexdigest()
    data = index.digests
    total = count * DIGEST_SIZE
    position = data.find(ZERO_SENTINEL)
    if position < 0:
        return hashlib.sha256(data).hexdigest()
    full = blockhash.zero_block_digest(index.chunk_size)
    last_length = index.chunk_length(count - 1)
    view = memoryview(data)
    combined = hashlib.sha256()
    done = 0
    while 0 <= position < total:
        if position % DIGEST_SIZE:
            # 32 zero bytes across two entries: no entry starting at or before it is all zero; look from the next one
            position = data.find(ZERO_SENTINEL, position - position % DIGEST_SIZE + DIGEST_SIZE)
            continue
        end = _zero_run_end(data, position, total)
        combined.update(view[done:position])
        run = (end - position) // DIGEST_SIZE
        if end == total and last_length != index.chunk_size:
            _update_repeated(combined, full, run - 1)
            combined.update(blockhash.zero_block_digest(last_length))
        else:
            _update_repeated(combined, full, run)
        done = end
        position = data.find(ZERO_SENTINEL, end)
    combined.update(view[done:total])
    return combined.hexdigest()


# -- storage ids -------------------------------------------------------------------------------

def storage_id_function(codec):
    """A function digest -> storage id equal to ``codec.storage_id``; None when the id is the digest (unencrypted).

    Encrypted: HMAC-SHA-256 with the id key's inner and outer pads hashed once and copied per digest (about twice
    as fast as ``hmac.new`` with OpenSSL 3, where setting up an HMAC costs more than hashing 32 bytes); checked
    against ``codec.storage_id`` on a probe, else ``codec.storage_id`` itself is used.
    """
    keys = codec.keys
    if keys is None:
        return None
    id_key = getattr(keys, "id_key", None)
    if isinstance(id_key, bytes) and len(id_key) <= 64:
        padded = id_key.ljust(64, b"\0")
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

        def fast(digest, inner_copy=inner.copy, outer_copy=outer.copy):
            hashed = inner_copy()
            hashed.update(digest)
            result = outer_copy()
            result.update(hashed.digest())
            return result.digest()
        probe = hashlib.sha256(b"blockvault/marking/probe").digest()
        if fast(probe) == codec.storage_id(probe):
            return fast
    return codec.storage_id


# -- the mark ----------------------------------------------------------------------------------

def _split(data):
    """The 32-byte entries of ``data`` (bytes) as a list of bytes, at C speed."""
    return _SLOTS.findall(data)


def changed_digests(previous, current):
    """The set of distinct digests at the positions where ``current`` differs from ``previous`` (both bytes of
    32-byte entries; entries beyond ``previous``'s length all count as changed). Zero sentinels included."""
    common = min(len(previous), len(current))
    changed = set(_split(current[common:])) if len(current) > common else set()
    view = memoryview(current)
    same = previous.startswith
    position, found = 0, 0
    while position < common:
        width = _GALLOP_ENTRIES * DIGEST_SIZE
        while True:                                   # gallop over equal stretches
            size = min(width, common - position)
            if not same(view[position:position + size], position):
                break
            position += size
            if position >= common:
                return changed
            width <<= 1
        high = position + size                        # the first difference lies in [position, high)
        while high - position > DIGEST_SIZE:
            middle = position + max(1, (high - position) // (2 * DIGEST_SIZE)) * DIGEST_SIZE
            if same(view[position:middle], position):
                position = middle
            else:
                high = middle
        changed.add(current[position:position + DIGEST_SIZE])
        position += DIGEST_SIZE
        found += 1
        if found >= 64 and found * _DENSE * DIGEST_SIZE > position:
            rest = _split(current[position:common])   # densely changed: the rest entry by entry, in C loops
            changed.update(compress(rest, map(ne, rest, _split(previous[position:common]))))
            return changed
    return changed


def _chain_order(rp_ids):
    """``rp_ids`` grouped by VM tag (groups in order of first appearance), each group in time order; an id that does
    not parse is a group of its own (loading it reports the error)."""
    groups = {}
    for rp_id in rp_ids:
        try:
            key = parse_restore_point_id(rp_id)[1]
        except ConfigurationError:
            key = (rp_id,)
        groups.setdefault(key, []).append(rp_id)
    return [(key, sorted(ids)) for key, ids in groups.items()]


def _load(repository, rp_id, timing):
    """(manifest or BlockvaultError, [(disk entry, digests bytes or BlockvaultError)]): the restore point verified.

    The repository's manifest cache is left as it was found: a manifest it did not hold before is forgotten again
    once its indexes are read (30,000 cached manifests are 200 MiB, and GC reads each once)."""
    started = time.thread_time()
    cache = getattr(repository, "_manifests", None)
    forget = getattr(repository, "_forget_cached_manifest", None) if cache is not None and rp_id not in cache else None
    try:
        return _load_verified(repository, rp_id, timing)
    finally:
        if forget is not None:
            forget(rp_id)
        with timing["lock"]:
            timing["load_seconds"] += time.thread_time() - started


def _load_verified(repository, rp_id, timing):
    try:
        manifest = repository.load_manifest(rp_id)
    except BlockvaultError as exc:
        return exc, ()
    disks = []
    for disk in manifest.disks:
        try:
            index = repository.load_disk_index(rp_id, disk.key)
            checked = time.thread_time()
            blocksum = index_blocksum(index)
            with timing["lock"]:
                timing["blocksum_seconds"] += time.thread_time() - checked
            if blocksum != disk.sha256:
                raise CorruptionError("The checksum of disk %s of %s computed from its index differs from the manifest's." % (
                    disk.key, rp_id), object_name=disk.index)
        except BlockvaultError as exc:
            disks.append((disk, exc))
            continue
        disks.append((disk, bytes(index.digests)))
    return manifest, disks


def _default_workers(repository):
    return 8 if getattr(repository.backend, "parallel_listing", False) else 2


def mark_restore_points(repository, rp_ids, on_error, into=None, workers=None, stats=None):
    """Add to ``into`` (a new ReferencedChunks when None) the storage id of every chunk the restore points ``rp_ids``
    reference, from their verified manifests and indexes; returns it. A restore point or disk that cannot be read is
    reported to ``on_error(rp_id, disk key or None, BlockvaultError)`` and skipped.

    ``into`` may be any object with ``update(iterable of storage ids)`` (a set of full ids, for validation): it gets
    the full ids of the new distinct digests of each index. Restore points are read VM by VM in time order (so
    ``on_error`` may be called in another order than ``rp_ids``) by ``workers`` threads (default 2, 8 on a remote
    store). ``stats``: a dict to receive counters, the wall seconds, and the CPU seconds of each stage (the
    readers' summed over their threads, blocksum included in load) for benchmarks.
    """
    referenced = ReferencedChunks() if into is None else into
    to_id = storage_id_function(repository.codec)
    workers = max(1, workers or _default_workers(repository))
    counters = {"restore_points": 0, "indexes": 0, "entries": 0, "changed_digests": 0,
                "load_seconds": 0.0, "blocksum_seconds": 0.0, "compare_seconds": 0.0, "id_seconds": 0.0, "lock": threading.Lock()}
    started, started_wall = time.thread_time(), time.perf_counter()
    ordered = [(key, rp_id) for key, ids in _chain_order(rp_ids) for rp_id in ids]
    load = functools.partial(_load, repository, timing=counters)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bv-mark") if workers > 1 and len(ordered) > 1 else None
    try:
        if pool is None:
            results = (load(rp_id) for _key, rp_id in ordered)
        else:
            results = _in_order(pool, load, [rp_id for _key, rp_id in ordered], lookahead=workers + 2)
        chains, current_key = {}, None
        for (key, rp_id), (manifest, disks) in zip(ordered, results):
            if key != current_key:
                chains, current_key = {}, key      # one VM's chains at a time: memory of one VM's indexes
            if isinstance(manifest, BlockvaultError):
                on_error(rp_id, None, manifest)
                continue
            counters["restore_points"] += 1
            for disk, digests in disks:
                if isinstance(digests, BlockvaultError):
                    on_error(rp_id, disk.key.value, digests)
                    continue
                compared = time.thread_time()
                previous = chains.get(disk.key.value)
                new = changed_digests(previous, digests) if previous is not None else set(_split(digests))
                new.discard(ZERO_SENTINEL)
                chains[disk.key.value] = digests
                hashed = time.thread_time()
                referenced.update(map(to_id, new) if to_id is not None else new)
                counters["compare_seconds"] += hashed - compared
                counters["id_seconds"] += time.thread_time() - hashed
                counters["indexes"] += 1
                counters["entries"] += len(digests) // DIGEST_SIZE
                counters["changed_digests"] += len(new)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if stats is not None:
        counters.pop("lock")
        counters["main_cpu_seconds"] = time.thread_time() - started
        counters["wall_seconds"] = time.perf_counter() - started_wall
        stats.update(counters)
    return referenced


def _in_order(pool, function, items, lookahead):
    """``function(item)`` for each item, computed by ``pool`` at most ``lookahead`` ahead, yielded in order."""
    pending = deque()
    items = iter(items)
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= lookahead:
            break
    while pending:
        result = pending.popleft().result()
        for item in items:
            pending.append(pool.submit(function, item))
            break
        yield result
