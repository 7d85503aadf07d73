# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage backends: one small interface, a local-filesystem implementation and two wrappers.

A backend stores named immutable objects (byte strings). Names are relative, ``/``-separated, made of
``[A-Za-z0-9_.-]`` components that do not start with ``.`` (those are reserved for temporary files).
Every ``put`` is atomic: a reader sees either the old object (or none) or the whole new one.
"""

from __future__ import annotations

import errno
import os
import random
import re
import threading
import time
from collections import namedtuple

from ..errors import BackendError, NotFoundInBackendError
from ..fileio import fsync_directory

ObjectInfo = namedtuple("ObjectInfo", "name size mtime version", defaults=(None,))
ObjectInfo.__doc__ = ("A listed object: name relative to the repository root, size in bytes, modification time (epoch s), "
                      "and ``version``: an opaque text that changes when the object is written again, where the store "
                      "has one (S3: the ETag; local: the inode number, new at every atomic put), else None.")

_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$")


def check_name(name):
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise BackendError("Invalid object name %r (internal error: names are [A-Za-z0-9_.-] components)." % (name,))
    return name


def _parts(data):
    """Normalise put()'s data (one bytes-like or a list/tuple of them) to a list of memoryviews."""
    if isinstance(data, (list, tuple)):
        return [memoryview(part).cast("B") for part in data]
    return [memoryview(data).cast("B")]


class Backend:
    """The backend interface. Implementations are thread-safe: any method may be called from any thread.

    * ``put(name, data, exclusive=False)``: store atomically; ``data`` is bytes-like or a list of bytes-like
      parts (concatenated; lets callers avoid a copy). ``exclusive``: fail with BackendError if it exists.
    * ``get(name) -> bytes``: NotFoundInBackendError if absent.
    * ``exists(name) -> bool``; ``delete(name)`` (absent is not an error);
    * ``delete_many(names)``: delete every name of the iterable (absent is not an error); returns None once every one
      is gone, else raises BackendError naming the objects that could not be deleted (``transient`` when all of
      those failures were), and those may or may not have been deleted. ``max_delete_batch`` is how many names the
      store deletes in one request (S3's DeleteObjects: 1,000); where it is 1 (a local directory: one unlink each)
      ``delete_many`` is ``delete`` name by name, and callers that check a deadline before every request (GC's
      fencing) pass one name at a time.
    * ``list(prefix, limit=None) -> list of ObjectInfo`` for names starting with ``prefix`` (``prefix`` ends
      with ``/`` or is empty), at most ``limit`` of them (in name order on S3); temporary objects are not listed.
    * ``list_names(prefix) -> list of str``: the names ``list(prefix)`` gives, without their sizes and times (a local
      directory need not stat every file: a tenth of the cost; a store whose listing carries them lists as ``list``).
      ``names_cheaper_than_listing`` says which: True where ``list_names`` saves work, False where it saves nothing.
    * ``stat(name) -> ObjectInfo``: the object as a listing shows it (NotFoundInBackendError if absent).
    * ``list_temporary(prefix)`` and ``delete_temporary(name)``: leftovers of interrupted writes (local only).
    * ``retained_until(name) -> float or None``: the epoch time until which an S3 Object Lock retention protects the
      object's current version (None: no retention, or a store without Object Lock; NotFoundInBackendError if
      absent).
    * ``location``: a human-readable place for messages (no secrets); ``parallel_listing``: list prefixes in
      parallel (remote stores); ``close()``.
    """

    location = "?"
    parallel_listing = False
    names_cheaper_than_listing = False
    max_delete_batch = 1

    def put(self, name, data, exclusive=False):
        raise NotImplementedError

    def get(self, name):
        raise NotImplementedError

    def exists(self, name):
        raise NotImplementedError

    def delete(self, name):
        raise NotImplementedError

    def delete_many(self, names):
        # a store without a batch delete: one delete per name (each its own request), in order
        for name in names:
            self.delete(name)

    def list(self, prefix="", limit=None):
        raise NotImplementedError

    def list_names(self, prefix=""):
        return [info.name for info in self.list(prefix)]

    def stat(self, name):
        # any backend that lists can say it: the listing of the object's "directory" (backends override this)
        directory = name.rpartition("/")[0]
        for info in self.list(directory + "/" if directory else ""):
            if info.name == name:
                return info
        raise NotFoundInBackendError("Object %s does not exist in %s." % (name, self.location))

    def list_temporary(self, prefix=""):
        return []

    def delete_temporary(self, name):
        return None

    def retained_until(self, name):
        return None

    def close(self):
        return None

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.location)


def _drop_cached_pages(fd):
    """Hand a just-synced object's pages back to the kernel. A repository object is cold once written (read again
    at a restore or validation, usually much later), and a backup writes gigabytes of them: kept, they evict the
    host's useful cache; dropped, the next object reuses the same pages instead of new ones (on a VM that returns
    free memory to its hypervisor, a new page is a host fault: the backup's system time halves here)."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        try:
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:      # advice only: a file system without it loses nothing
            pass


class LocalBackend(Backend):
    """Objects as files under ``root`` (local disk or NFS). Atomic puts: temp file, fsync, rename, fsync dir; a
    synced object's pages are dropped from the page cache (``_drop_cached_pages``).

    Thread-safe (no shared mutable state besides the created-directory cache, guarded by a lock).
    ``fsync=False`` is for benchmarks of the CPU pipeline only.
    """

    names_cheaper_than_listing = True     # a listing stats every file; its names alone are a tenth of the cost

    def __init__(self, root, fsync=True):
        self.root = os.path.abspath(os.fspath(root))
        self.location = self.root
        self.fsync = fsync
        self._dirs = set()
        self._dirs_lock = threading.Lock()

    def _path(self, name):
        return os.path.join(self.root, *check_name(name).split("/"))

    def _error(self, action, name, exc):
        transient = exc.errno in (errno.EINTR, errno.EAGAIN, errno.ETIMEDOUT, errno.EIO, errno.ESTALE)
        return BackendError("Could not %s %s in %s: %s. Check the path, permissions and free space." % (
            action, name, self.root, exc.strerror or exc), transient=transient)

    def _ensure_dir(self, directory):
        if directory in self._dirs:
            return
        os.makedirs(directory, exist_ok=True)
        with self._dirs_lock:
            self._dirs.add(directory)

    def put(self, name, data, exclusive=False):
        path = self._path(name)
        directory, base = os.path.split(path)
        tmp = os.path.join(directory, ".%s.tmp-%016x" % (base, random.getrandbits(64)))
        try:
            self._ensure_dir(directory)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                for part in _parts(data):
                    while len(part):
                        written = os.write(fd, part)
                        part = part[written:]
                if self.fsync:
                    os.fsync(fd)
                    _drop_cached_pages(fd)
            finally:
                os.close(fd)
            if exclusive:
                try:
                    os.link(tmp, path)  # fails with EEXIST: an atomic create-if-absent, also on NFS v3+
                finally:
                    os.unlink(tmp)
            else:
                os.rename(tmp, path)
            if self.fsync:
                fsync_directory(directory)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if exc.errno == errno.EEXIST and exclusive:
                raise BackendError("Object %s already exists in %s." % (name, self.root)) from None
            raise self._error("write", name, exc) from None

    def get(self, name):
        path = self._path(name)
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise NotFoundInBackendError("Object %s does not exist in %s." % (name, self.root)) from None
        except OSError as exc:
            raise self._error("read", name, exc) from None

    def exists(self, name):
        return os.path.exists(self._path(name))

    def delete(self, name):
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error("delete", name, exc) from None

    def _walk(self, prefix, temporary, names_only=False):
        directory = os.path.join(self.root, *[p for p in prefix.split("/") if p])
        stack = [(directory, prefix)]
        while stack:
            path, rel = stack.pop()
            try:
                entries = list(os.scandir(path))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._error("list", rel or "/", exc) from None
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith("."):
                        stack.append((entry.path, rel + entry.name + "/"))
                    continue
                if entry.name.startswith(".") != temporary:
                    continue
                if names_only:
                    yield rel + entry.name
                    continue
                try:
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                yield ObjectInfo(rel + entry.name, stat.st_size, stat.st_mtime, str(stat.st_ino))

    def list(self, prefix="", limit=None):
        found = list(self._walk(prefix, temporary=False))
        return found if limit is None else sorted(found)[:limit]

    def list_names(self, prefix=""):
        return list(self._walk(prefix, temporary=False, names_only=True))

    def stat(self, name):
        try:
            stat = os.stat(self._path(name))
        except FileNotFoundError:
            raise NotFoundInBackendError("Object %s does not exist in %s." % (name, self.root)) from None
        except OSError as exc:
            raise self._error("stat", name, exc) from None
        return ObjectInfo(name, stat.st_size, stat.st_mtime, str(stat.st_ino))

    def list_temporary(self, prefix=""):
        return [info for info in self._walk(prefix, temporary=True) if ".tmp-" in info.name]

    def delete_temporary(self, name):
        directory, base = name.rpartition("/")[::2]
        try:
            os.unlink(os.path.join(self.root, *directory.split("/"), base) if directory else os.path.join(self.root, base))
        except FileNotFoundError:
            pass


class BackendWrapper(Backend):
    """Base of wrappers: forwards everything to ``inner``."""

    def __init__(self, inner):
        self.inner = inner
        self.location = inner.location
        self.parallel_listing = inner.parallel_listing
        self.names_cheaper_than_listing = getattr(inner, "names_cheaper_than_listing", False)
        self.max_delete_batch = getattr(inner, "max_delete_batch", 1)

    def _call(self, method, *args, **kwargs):
        return getattr(self.inner, method)(*args, **kwargs)

    def put(self, name, data, exclusive=False):
        return self._call("put", name, data, exclusive=exclusive)

    def get(self, name):
        return self._call("get", name)

    def exists(self, name):
        return self._call("exists", name)

    def delete(self, name):
        return self._call("delete", name)

    def delete_many(self, names):
        if type(self).delete is not BackendWrapper.delete and type(self).delete_many is BackendWrapper.delete_many:
            # a wrapper that changes what a delete does, and not delete_many: every name goes through its delete
            for name in names:
                self.delete(name)
            return None
        return self._call("delete_many", list(names))

    def list(self, prefix="", limit=None):
        return self._call("list", prefix, limit=limit)

    def list_names(self, prefix=""):
        return self._call("list_names", prefix)

    def stat(self, name):
        return self._call("stat", name)

    def list_temporary(self, prefix=""):
        return self._call("list_temporary", prefix)

    def delete_temporary(self, name):
        return self._call("delete_temporary", name)

    def retained_until(self, name):
        return self._call("retained_until", name)

    def close(self):
        return self.inner.close()


class RetryingBackend(BackendWrapper):
    """Retries calls that fail with a transient BackendError: exponential backoff with full jitter.

    Thread-safe. NotFoundInBackendError and non-transient errors pass through at once. A ``delete_many`` is retried
    whole (deleting an absent object is no error, so the names already deleted cost nothing but the request).
    """

    def __init__(self, inner, attempts=5, base_delay=0.5, max_delay=20.0, sleep=time.sleep):
        super().__init__(inner)
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep

    def _call(self, method, *args, **kwargs):
        for attempt in range(1, self.attempts + 1):
            try:
                return getattr(self.inner, method)(*args, **kwargs)
            except NotFoundInBackendError:
                raise
            except BackendError as exc:
                if not exc.transient or attempt == self.attempts:
                    raise
                self._sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1))))
        raise BackendError("unreachable")  # pragma: no cover


class ConcurrencyLimitedBackend(BackendWrapper):
    """Bounds the number of simultaneous backend calls with a semaphore (a ``delete_many`` is one call: one request
    on S3). Thread-safe."""

    def __init__(self, inner, max_concurrency=8):
        super().__init__(inner)
        self.max_concurrency = max(1, max_concurrency)
        self._semaphore = threading.BoundedSemaphore(self.max_concurrency)

    def _call(self, method, *args, **kwargs):
        with self._semaphore:
            return getattr(self.inner, method)(*args, **kwargs)
