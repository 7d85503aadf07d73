# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Measurement hook of bench/fleet_bench.py: counts repository backend requests and times the phases of a run, in
every Python process started with this directory on PYTHONPATH and FLEET_COUNT_DIR set. Benchmark-only; the product
is not changed: the classes are wrapped in memory, right after their module is imported (also from an AnsiballZ zip).

Recorded per process, written at exit to FLEET_COUNT_DIR/<module>-<pid>.json (every Python process that exits
normally: ansible-playbook, each module, async_wrapper's forks; ansible's worker forks end with os._exit and write
nothing, their CPU is in ansible-playbook's children time):

* ``cpu_self`` and ``cpu_children`` (user + system seconds, os.times at exit), ``ppid``, ``forked`` (a fork of the
  process that imported this hook, e.g. async_wrapper's daemon), the process's wall-clock start (from /proc), the
  moment the first module of the collection was imported and its end;

* ``requests``: every call of the innermost backend (LocalBackend / S3Backend: what reaches the disk or the S3 server,
  retries included) by method and first name component (``put locks``, ``list chunks``, ``get manifests`` ...) with
  count, seconds, bytes and errors;
* ``timed``: calls and seconds of a few functions that make up a run's fixed cost (vCenter login, repository open,
  key derivation, lock acquisition and listing, the VM lookup, manifest reads, VDDK connection, snapshot, commit);
* ``phases``: the run's phases (RunContext.set_phase) with their wall-clock start, and the process's start (from
  /proc) and end;
* ``lock``: acquisitions, how many had to retry (a conflicting lock: a wait), and busy errors (LockError).

With FLEET_CPROFILE=DIR as well, a process running the vm_backup module also writes a cProfile of its main thread
to DIR/vm_backup-<pid>.prof.
"""

import atexit
import functools
import importlib.abc
import importlib.machinery
import json
import os
import sys
import threading
import time

_OUT = os.environ.get("FLEET_COUNT_DIR")
_PKG = "ansible_collections.blockvault.vsphere.plugins.module_utils."


def _process_start():
    """Wall-clock time this process was started (interpreter start-up included), from /proc."""
    try:
        with open("/proc/self/stat") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


def _module_name():
    base = os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "python")
    if base.startswith("AnsiballZ_"):
        base = base[len("AnsiballZ_"):]
    return base[:-3] if base.endswith(".py") else base


class _Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.started = _process_start()
        self.hooked = time.time()
        self.requests = {}
        self.timed = {}
        self.phases = []
        self.lock_stats = {"acquired": 0, "retried": 0, "retries": 0, "busy_errors": 0, "acquire_seconds": 0.0,
                           "max_acquire_seconds": 0.0}
        self.repositories = set()
        self.first_import = None
        self.pid = os.getpid()

    def request(self, method, prefix, seconds, size, error):
        key = "%s %s" % (method, prefix)
        with self.lock:
            entry = self.requests.setdefault(key, {"count": 0, "seconds": 0.0, "bytes": 0, "errors": 0})
            entry["count"] += 1
            entry["seconds"] += seconds
            entry["bytes"] += size
            entry["errors"] += 1 if error else 0

    def time(self, name, seconds, error):
        with self.lock:
            entry = self.timed.setdefault(name, {"count": 0, "seconds": 0.0, "errors": 0})
            entry["count"] += 1
            entry["seconds"] += seconds
            entry["errors"] += 1 if error else 0

    def dump(self):
        if not _OUT:
            return
        times = os.times()
        forked = os.getpid() != self.pid
        document = {"module": _module_name(), "pid": os.getpid(), "ppid": os.getppid(), "forked": forked,
                    "started": _process_start() if forked else self.started, "hooked": self.hooked,
                    "first_import": self.first_import, "ended": time.time(),
                    "cpu_self": times.user + times.system, "cpu_children": times.children_user + times.children_system,
                    "phases": self.phases, "requests": self.requests, "timed": self.timed,
                    "lock": self.lock_stats, "repositories": sorted(self.repositories)}
        try:
            os.makedirs(_OUT, exist_ok=True)
            path = os.path.join(_OUT, "%s-%d.json" % (document["module"], os.getpid()))
            with open(path + ".tmp", "w") as handle:
                json.dump(document, handle)
            os.replace(path + ".tmp", path)
        except OSError:
            pass


RECORDER = _Recorder()
atexit.register(RECORDER.dump)


def _prefix(name):
    name = str(name or "")
    return name.split("/", 1)[0] if "/" in name else (name or "/")


def _size(data):
    if data is None:
        return 0
    if isinstance(data, (list, tuple)):
        return sum(len(part) for part in data)
    try:
        return len(data)
    except TypeError:
        return 0


def _wrap_backend(cls):
    """Count the requests of a backend class (its own methods only: the wrappers above it call them)."""
    if getattr(cls, "_fleet_counted", False):
        return
    cls._fleet_counted = True

    def counted(method, function):
        @functools.wraps(function)
        def wrapper(self, *args, **kwargs):
            name = args[0] if args else kwargs.get("name", kwargs.get("prefix", ""))
            started = time.monotonic()
            error = False
            result = None
            try:
                result = function(self, *args, **kwargs)
                return result
            except BaseException:
                error = True
                raise
            finally:
                size = 0
                if method == "put":
                    size = _size(args[1] if len(args) > 1 else kwargs.get("data"))
                elif method == "get" and not error:
                    size = _size(result)
                RECORDER.request(method, _prefix(name), time.monotonic() - started, size, error)
                location = getattr(self, "location", None) or getattr(self, "root", None)
                if location:
                    RECORDER.repositories.add(str(location))
        return wrapper

    # every public method the class defines (put, get, exists, delete, list, stat, list_temporary, ...): each is one
    # request (one system call or one HTTP request; a listing of more than 1000 keys takes more on S3)
    for method, function in list(cls.__dict__.items()):
        if not method.startswith("_") and method != "close" and callable(function):
            setattr(cls, method, counted(method, function))


def _timed(name, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.monotonic()
        error = False
        try:
            return function(*args, **kwargs)
        except BaseException:
            error = True
            raise
        finally:
            RECORDER.time(name, time.monotonic() - started, error)
    return wrapper


def _patch_attr(owner, attr, label):
    """Time ``owner.attr`` (a function of a module, or a method / classmethod / staticmethod of a class)."""
    raw = owner.__dict__.get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
    if raw is None:
        return
    if isinstance(raw, classmethod):
        setattr(owner, attr, classmethod(_timed(label, raw.__func__)))
    elif isinstance(raw, staticmethod):
        setattr(owner, attr, staticmethod(_timed(label, raw.__func__)))
    elif callable(raw):
        setattr(owner, attr, _timed(label, raw))


# module (relative to the collection's module_utils) -> [(attribute path, label)]
TIMED = {
    "vsphere.session": [("VSphereSession.connect", "vcenter login"), ("VSphereSession.close", "vcenter logout")],
    "repo.kdf": [("scrypt", "key derivation (scrypt)")],
    "repo.repository": [("Repository.open", "repository open"), ("Repository._begin", "backup session begin (lock + chunk listing)"),
                        ("Repository.find_restore_point", "idempotency check (find_restore_point)"),
                        ("Repository.list_restore_points", "manifest listing"),
                        ("Repository._load_manifest", "manifest read")],
    "repo.locks": [("LockManager.list_locks", "lock listing (list + get each)"), ("HeldLock.release", "lock release"),
                   ("HeldLock.refresh", "lock refresh")],
    "repo.session": [("list_chunk_ids", "chunk listing (list_chunk_ids)"), ("BackupSession.commit", "commit (indexes + manifest)")],
    "ops.backup": [("_previous_manifest", "previous restore point (manifest reads)"),
                   ("_refuse_concurrent_backup", "concurrent-backup check (lock listing)")],
    "vsphere.vm": [("find_vm", "find the VM"), ("VmHandle.capture_config", "capture the VM configuration"),
                   ("VmHandle.ensure_cbt", "ensure CBT"), ("VmHandle.remove_orphan_snapshots", "orphan snapshot check")],
    "vsphere.snapshots": [("create_backup_snapshot", "snapshot create"), ("_end", "snapshot removal")],
    "vddk.connection": [("Connection.__init__", "VDDK connect"), ("Connection.close", "VDDK disconnect"),
                        ("Connection.prepare_for_access", "VDDK PrepareForAccess"), ("Connection.end_access", "VDDK EndAccess")],
    "ops._backup_plan": [("BackupPlanner.plan", "plan (allocation / CBT queries)")],
    "ops._resume": [("find_resumable", "resumable-run check")],
}


_TLS = threading.local()


def _patch_locks(module):
    manager = getattr(module, "LockManager", None)
    held = getattr(module, "HeldLock", None)
    if manager is None or "acquire" not in manager.__dict__ or held is None or "write" not in held.__dict__:
        return
    original_write = held.__dict__["write"]
    original = manager.__dict__["acquire"]

    @functools.wraps(original_write)
    def write(self, *args, **kwargs):
        _TLS.writes = getattr(_TLS, "writes", 0) + 1
        return original_write(self, *args, **kwargs)

    @functools.wraps(original)
    def acquire(self, *args, **kwargs):
        started = time.monotonic()
        _TLS.writes = 0         # each attempt writes the lock once: more than one write is a wait for a conflict
        try:
            lock = original(self, *args, **kwargs)
        except Exception as exc:
            if type(exc).__name__ == "LockError":
                with RECORDER.lock:
                    RECORDER.lock_stats["busy_errors"] += 1
            raise
        finally:
            seconds = time.monotonic() - started
            RECORDER.time("lock acquire", seconds, False)
        with RECORDER.lock:
            stats = RECORDER.lock_stats
            stats["acquired"] += 1
            stats["acquire_seconds"] += seconds
            stats["max_acquire_seconds"] = max(stats["max_acquire_seconds"], seconds)
            if _TLS.writes > 1:
                stats["retried"] += 1
                stats["retries"] += _TLS.writes - 1
        return lock
    held.write = write
    manager.acquire = acquire


def _patch_context(module):
    context = getattr(module, "RunContext", None)
    if context is None or "set_phase" not in context.__dict__:
        return
    original = context.__dict__["set_phase"]

    @functools.wraps(original)
    def set_phase(self, phase):
        with RECORDER.lock:
            RECORDER.phases.append([phase, time.time()])
        return original(self, phase)
    context.set_phase = set_phase


def _patch(name, module):
    relative = name[len(_PKG):]
    try:
        if relative == "repo.backend":
            _wrap_backend(module.LocalBackend)
        elif relative == "repo.s3":
            _wrap_backend(module.S3Backend)
        elif relative == "ops.context":
            _patch_context(module)
        if relative == "repo.locks":
            _patch_locks(module)
        for path, label in TIMED.get(relative, ()):
            owner = module
            parts = path.split(".")
            for part in parts[:-1]:
                owner = getattr(owner, part, None)
                if owner is None:
                    break
            if owner is not None:
                _patch_attr(owner, parts[-1], label)
    except Exception as exc:  # pylint: disable=broad-except  # a measurement must never break the run
        sys.stderr.write("fleet hook: could not patch %s: %s\n" % (name, exc))


class _Loader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        _patch(module.__name__, module)

    def __getattr__(self, name):        # get_data, get_resource_reader, is_package ... of the real loader
        return getattr(self.inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if RECORDER.first_import is None and fullname.startswith("ansible_collections.blockvault"):
            RECORDER.first_import = time.time()
        relative = fullname[len(_PKG):] if fullname.startswith(_PKG) else None
        if relative is None or (relative not in TIMED and relative not in ("repo.backend", "repo.s3", "ops.context")):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


if _OUT:
    sys.meta_path.insert(0, _Finder())
    if os.environ.get("FLEET_CPROFILE") and _module_name() == "vm_backup":
        import cProfile

        _PROFILE = cProfile.Profile()

        def _dump_profile():
            _PROFILE.disable()
            try:
                os.makedirs(os.environ["FLEET_CPROFILE"], exist_ok=True)
                _PROFILE.dump_stats(os.path.join(os.environ["FLEET_CPROFILE"], "vm_backup-%d.prof" % os.getpid()))
            except OSError:
                pass
        atexit.register(_dump_profile)
        _PROFILE.enable()
