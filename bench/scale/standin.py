# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scale benchmark's backends: chunk objects as names only, and S3 request counting (see README.md).

* ``NameStore``: the storage ids of the chunk objects a stand-in repository holds, in 256 shard files
  ``<xx>.ids`` (the ids whose first byte is ``xx``, sorted, 32 bytes each: 320 MB at 10 M chunks, on disk, not in
  memory). Deletions go to tombstone files, additions wait in memory; ``flush`` folds both into the shards.
* ``StandInBackend``: a backend wrapper (repo/backend.py's interface) over a real LocalBackend. Chunk objects are
  names in the NameStore: ``put`` records the name (and writes the object through to the local directory only in
  ``real_chunks`` mode, for the chunks a full validation reads), ``list`` of ``chunks/`` or ``chunks/xx/`` lists the
  names in name order as S3 does (sizes from a fixed table by the id's second byte: 1 to 4 MiB), ``delete`` removes
  the name, ``exists`` looks it up, ``get`` reads a written-through object or fails. Everything else (config, keys,
  manifests, indexes, locks, pins, removal markers, checkpoints) goes to the LocalBackend unchanged.
* ``S3RequestCounter``: counts, for every call that reaches it, the S3 requests ``repo/s3.py`` would send for it
  (PUT, GET, HEAD for exists and retained_until, DELETE, one DeleteObjects per 1,000 names of a ``delete_many``, one
  LIST per 1,000 names listed, HeadBucket before the first write), and sets ``parallel_listing`` and
  ``max_delete_batch`` (1,000) so that the code takes its S3 paths (chunk listing by 256 prefixes, batch deletes by 8
  workers).
"""

from __future__ import annotations

import collections
import os
import re
import threading

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BackendError, NotFoundInBackendError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import BackendWrapper, ObjectInfo
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import CHUNKS_PREFIX, chunk_id_from_name, chunk_name

ID = 32
_SPLIT = re.compile(b".{32}", re.S)
# a stored chunk's size, by the second byte of its id: 1 to 4 MiB (4 MiB chunks compressed and encrypted)
SIZES = tuple((1 << 20) + (n * (3 << 20)) // 255 for n in range(256))


def split_ids(data):
    return _SPLIT.findall(data)


class NameStore:
    """Chunk storage ids in 256 sorted shard files under ``directory``. Thread-safe (one lock).

    Deletions are appended to per-shard tombstone files ``<xx>.del`` (through 64 KiB buffers), whatever their order
    (GC deletes in set order): a delete costs a few microseconds and no memory, and listings subtract the
    tombstones. ``flush`` (called by ``close``) folds tombstones and pending additions into the shard files.
    Additions (only the validation VM's chunks are ever put) wait in memory until ``flush``.
    """

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.RLock()
        self._added = {}
        self._tombstones = [bytearray() for _unused in range(256)]
        self._buffered = 0
        self.mtime = os.stat(directory).st_mtime

    def _path(self, shard, suffix="ids"):
        return os.path.join(self.directory, "%02x.%s" % (shard, suffix))

    def _read(self, shard, suffix="ids"):
        try:
            with open(self._path(shard, suffix), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return b""

    def _deleted(self, shard):
        return self._read(shard, "del") + bytes(self._tombstones[shard])

    def shard(self, shard):
        """The sorted ids of shard ``shard`` (an int 0..255), pending changes applied, as one bytes."""
        with self._lock:
            data = self._read(shard)
            added, deleted = self._added.get(shard), self._deleted(shard)
            if added or deleted:
                ids = set(split_ids(data))
                ids -= set(split_ids(deleted))
                ids |= added or set()
                data = b"".join(sorted(ids))
            return data

    def contains(self, storage_id):
        storage_id = bytes(storage_id)
        with self._lock:
            if storage_id in self._added.get(storage_id[0], ()):
                return True
            if storage_id in set(split_ids(self._deleted(storage_id[0]))):
                return False
            data = self._read(storage_id[0])
        low, high = 0, len(data) // ID
        while low < high:
            middle = (low + high) // 2
            if data[middle * ID:(middle + 1) * ID] < storage_id:
                low = middle + 1
            else:
                high = middle
        return data[low * ID:(low + 1) * ID] == storage_id

    def add(self, storage_id):
        storage_id = bytes(storage_id)
        with self._lock:
            self._added.setdefault(storage_id[0], set()).add(storage_id)

    def discard(self, storage_id):
        self.discard_many((storage_id,))

    def discard_many(self, storage_ids):
        """Remove every id of ``storage_ids`` (one lock acquisition: a batch delete costs no more than S3's)."""
        with self._lock:
            for storage_id in storage_ids:
                storage_id = bytes(storage_id)
                added = self._added.get(storage_id[0])
                if added:
                    added.discard(storage_id)
                buffer = self._tombstones[storage_id[0]]
                buffer += storage_id
                if len(buffer) >= 65536:
                    self._write_tombstones(storage_id[0])

    def _write_tombstones(self, shard):
        with open(self._path(shard, "del"), "ab") as handle:
            handle.write(self._tombstones[shard])
        self._tombstones[shard].clear()

    def flush(self):
        """Fold the tombstones and the pending additions into the shard files."""
        with self._lock:
            for shard in range(256):
                if self._added.get(shard) or self._tombstones[shard] or os.path.exists(self._path(shard, "del")):
                    self._write(shard, self.shard(shard))
                    self._tombstones[shard].clear()
                    try:
                        os.unlink(self._path(shard, "del"))
                    except FileNotFoundError:
                        pass
            self._added.clear()

    def _write(self, shard, data):
        path = self._path(shard)
        with open(path + ".tmp", "wb") as handle:
            handle.write(data)
        os.replace(path + ".tmp", path)

    def count(self):
        self.flush()
        return sum(os.path.getsize(self._path(shard)) // ID for shard in range(256) if os.path.exists(self._path(shard)))

    # -- bulk registration (the generator's workers) --------------------------------------------------

    def append_raw(self, shard, data, tag):
        """Append ids (concatenated, any order, duplicates allowed) to shard ``shard``'s part file of writer ``tag``."""
        with open(os.path.join(self.directory, "%02x.part-%s" % (shard, tag)), "ab") as handle:
            handle.write(data)

    def merge_parts(self):
        """Merge every part file into its shard (sorted, unique); returns the number of ids stored."""
        self.flush()
        parts = collections.defaultdict(list)
        for name in os.listdir(self.directory):
            if ".part-" in name:
                parts[int(name[:2], 16)].append(os.path.join(self.directory, name))
        for shard, paths in parts.items():
            ids = set(split_ids(self._read(shard)))
            for path in paths:
                with open(path, "rb") as handle:
                    ids.update(split_ids(handle.read()))
            self._write(shard, b"".join(sorted(ids)))
            for path in paths:
                os.unlink(path)
        return self.count()


class Registrar:
    """Buffers the ids a generator worker registers, per shard, and appends them to the store's part files."""

    def __init__(self, store, tag, limit=32 << 20):
        self.store, self.tag, self.limit = store, tag, limit
        self._buffers = [bytearray() for _unused in range(256)]
        self._size = 0

    def add(self, storage_id):
        self._buffers[storage_id[0]] += storage_id
        self._size += ID
        if self._size >= self.limit:
            self.flush()

    def flush(self):
        for shard, buffer in enumerate(self._buffers):
            if buffer:
                self.store.append_raw(shard, bytes(buffer), self.tag)
                buffer.clear()
        self._size = 0


def _chunk_infos(data, mtime):
    """ObjectInfo of every chunk id in ``data`` (sorted ids), in name order."""
    text = data.hex()
    sizes = SIZES
    return [ObjectInfo("chunks/%s/%s" % (text[at:at + 2], text[at:at + 64]), sizes[data[at // 2 + 1]], mtime)
            for at in range(0, len(text), 64)]


class StandInBackend(BackendWrapper):
    """Chunk objects as names in a NameStore, everything else in ``inner`` (a LocalBackend). See the module docstring.

    ``real_chunks``: chunk puts are also written to ``inner`` (the chunks a full validation reads); a chunk whose
    object was written reads back from ``inner``, any other chunk's ``get`` fails with a BackendError saying it is
    a name only. Thread-safe (the NameStore's lock; LocalBackend is thread-safe).
    """

    def __init__(self, inner, store, real_chunks=True):
        super().__init__(inner)
        self.store = store
        self.real_chunks = real_chunks
        self.location = "%s (chunks: names in %s)" % (inner.location, store.directory)
        self._written = None            # names of the chunk objects written through, listed at the first delete_many
        self._written_lock = threading.Lock()

    def put(self, name, data, exclusive=False):
        chunk_id = chunk_id_from_name(name) if name.startswith(CHUNKS_PREFIX) else None
        if chunk_id is None:
            return self.inner.put(name, data, exclusive=exclusive)
        if self.real_chunks:
            self.inner.put(name, data, exclusive=exclusive)
            with self._written_lock:
                if self._written is not None:
                    self._written.add(name)
        self.store.add(chunk_id)
        return None

    def get(self, name):
        chunk_id = chunk_id_from_name(name) if name.startswith(CHUNKS_PREFIX) else None
        if chunk_id is None:
            return self.inner.get(name)
        if not self.store.contains(chunk_id):
            raise NotFoundInBackendError("Object %s does not exist in %s." % (name, self.location))
        try:
            return self.inner.get(name)
        except NotFoundInBackendError:
            raise BackendError("Chunk %s is a name only in the scale benchmark's stand-in store: it has no content." % name) from None

    def exists(self, name):
        chunk_id = chunk_id_from_name(name) if name.startswith(CHUNKS_PREFIX) else None
        return self.inner.exists(name) if chunk_id is None else self.store.contains(chunk_id)

    def delete(self, name):
        chunk_id = chunk_id_from_name(name) if name.startswith(CHUNKS_PREFIX) else None
        if chunk_id is None:
            return self.inner.delete(name)
        self.store.discard(chunk_id)
        if self.real_chunks:
            self.inner.delete(name)
        return None

    def delete_many(self, names):
        """A set operation per chunk name (and an unlink for the few chunk objects written through): not an unlink
        attempt per name, which would add a local directory's cost to a model of S3's."""
        chunk_ids, others = [], []
        for name in names:
            chunk_id = chunk_id_from_name(name) if name.startswith(CHUNKS_PREFIX) else None
            (others if chunk_id is None else chunk_ids).append(name if chunk_id is None else chunk_id)
        self.store.discard_many(chunk_ids)
        if self.real_chunks and chunk_ids:
            with self._written_lock:
                if self._written is None:
                    self._written = {info.name for info in self.inner.list(CHUNKS_PREFIX)}
                written = [chunk_name(chunk_id) for chunk_id in chunk_ids if chunk_name(chunk_id) in self._written]
                self._written.difference_update(written)
            others.extend(written)
        for name in others:
            self.inner.delete(name)

    def list(self, prefix="", limit=None):
        if prefix.startswith(CHUNKS_PREFIX):
            rest = prefix[len(CHUNKS_PREFIX):]
            if rest == "":
                shards = range(256)
            elif len(rest) == 3 and rest.endswith("/") and re.match("^[0-9a-f]{2}$", rest[:2]):
                shards = (int(rest[:2], 16),)
            else:
                shards = ()
            found = []
            for shard in shards:
                found.extend(_chunk_infos(self.store.shard(shard), self.store.mtime))
                if limit is not None and len(found) >= limit:
                    return found[:limit]
            return found
        listed = self.inner.list(prefix, limit=None)
        if prefix == "":
            listed = [info for info in listed if not info.name.startswith(CHUNKS_PREFIX)] + self.list(CHUNKS_PREFIX)
        return listed if limit is None else sorted(listed)[:limit]

    def retained_until(self, name):
        return None if name.startswith(CHUNKS_PREFIX) else self.inner.retained_until(name)

    def close(self):
        self.store.flush()
        return self.inner.close()


class S3RequestCounter(BackendWrapper):
    """Counts the S3 requests repo/s3.py would send for the calls that reach it (see the module docstring).

    ``parallel_listing`` (True: S3's code paths) is what the repository code sees. ``requests`` is a Counter of
    request kinds; ``reset()`` returns it and starts again. Thread-safe.
    """

    def __init__(self, inner, parallel_listing=True):
        super().__init__(inner)
        self.parallel_listing = parallel_listing
        # S3's DeleteObjects takes 1,000 keys; a local directory deletes one name at a time
        self.max_delete_batch = 1000 if parallel_listing else 1
        self._mutex = threading.Lock()
        self.requests = collections.Counter()
        self._bucket_checked = False

    def _count(self, kind, number=1):
        with self._mutex:
            self.requests[kind] += number

    def reset(self):
        with self._mutex:
            requests, self.requests = self.requests, collections.Counter()
        return requests

    def put(self, name, data, exclusive=False):
        if not self._bucket_checked:
            self._bucket_checked = True
            self._count("HeadBucket")
        self._count("PUT")
        return self.inner.put(name, data, exclusive=exclusive)

    def get(self, name):
        self._count("GET")
        return self.inner.get(name)

    def exists(self, name):
        self._count("HEAD")
        return self.inner.exists(name)

    def retained_until(self, name):
        self._count("HEAD")
        return self.inner.retained_until(name)

    def delete(self, name):
        self._count("DELETE")
        return self.inner.delete(name)

    def delete_many(self, names):
        names = list(names)
        self._count("DeleteObjects", -(-len(names) // 1000))
        return self.inner.delete_many(names)

    def list(self, prefix="", limit=None):
        found = self.inner.list(prefix, limit=limit)
        self._count("LIST", max(1, -(-len(found) // 1000)))
        return found

    def list_temporary(self, prefix=""):
        return self.inner.list_temporary(prefix)        # S3 has none: no request

    def delete_temporary(self, name):
        return self.inner.delete_temporary(name)
