# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of a run: thread-safe counters, the JSON status file and the run log.

RunProgress counts bytes done/total per disk and the run's phase; the pipelines call ``add_disk`` and
``advance`` from their threads. StatusFile turns it into a JSON document rewritten atomically (temporary file
in the same directory, fsync, ``os.replace``): a reader (``info.run_status``, ``watch cat``) always sees a
complete, valid document, old or new, never a torn one. It is rewritten at most every ``interval`` seconds
when bytes move (the write is skipped, not waited for, when another thread is writing), at once on a phase
change, and at the end with the final state. Document::

    {"format": "blockvault-status", "version": 1, "run_id", "vm", "phase",
     "state": running|succeeded|failed|cancelled,
     "started", "updated" (UTC ISO-8601), "bytes_done", "bytes_total", "mb_per_s" (10^6 bytes/s since start),
     "eta_seconds" (null until known), "disks": [{"key", "phase", "bytes_done", "bytes_total"}],
     "last_error": null | {"message", "class"}}

``last_error.message`` is the redacted text of the error (``errors.redact``), never a traceback or a secret.
A run cancelled on request ends ``cancelled`` (not ``failed``), with ``"cancelled_by"`` added: the signal name,
``controller gone`` or ``lease expired`` (the CancelledError's ``cancelled_by``), and its message as last_error.

RunLogHandler is a logging.Handler that writes one line per record, ``<UTC time> <LEVEL> <logger>: <message>``,
every line (with any traceback) passed through ``errors.redact``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import tempfile
import threading
import time

from ..errors import ConfigurationError, CorruptionError, redact

__all__ = ["NULL_PROGRESS", "NullProgress", "RunProgress", "StatusFile", "RunLogHandler", "read_status", "utc_now_iso"]

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"


def utc_now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RunProgress:
    """Counters of one run. Thread-safe: every method takes the instance lock; listeners are called outside it.

    Listeners are callables ``listener(phase_changed)`` registered with ``subscribe``; they run in the thread
    that made the change and must be quick (StatusFile's is: it skips when busy).
    """

    def __init__(self, run_id=None, vm=None, phase="starting", monotonic=time.monotonic, now_iso=utc_now_iso):
        self.run_id = run_id
        self.vm = vm
        self._monotonic = monotonic
        self._now_iso = now_iso
        self._lock = threading.Lock()
        self._phase = phase
        self._disks = {}
        self._error = None
        self._listeners = []
        self.started = now_iso()
        self._started_mono = monotonic()

    def subscribe(self, listener):
        self._listeners.append(listener)

    def _notify(self, phase_changed):
        for listener in list(self._listeners):
            listener(phase_changed)

    @property
    def phase(self):
        with self._lock:
            return self._phase

    def set_phase(self, phase):
        with self._lock:
            changed = phase != self._phase
            self._phase = phase
        if changed:
            self._notify(True)

    def add_disk(self, key, total, phase="transfer"):
        """Declare a disk and its byte total (again: replaces the total, keeps bytes done)."""
        with self._lock:
            disk = self._disks.setdefault(key, {"key": key, "phase": phase, "bytes_done": 0, "bytes_total": 0})
            disk["bytes_total"] = int(total)
            disk["phase"] = phase
        self._notify(False)

    def set_disk_phase(self, key, phase):
        with self._lock:
            disk = self._disks.setdefault(key, {"key": key, "phase": phase, "bytes_done": 0, "bytes_total": 0})
            changed = disk["phase"] != phase
            disk["phase"] = phase
        if changed:
            self._notify(True)

    def advance(self, key, nbytes):
        with self._lock:
            disk = self._disks.setdefault(key, {"key": key, "phase": "transfer", "bytes_done": 0, "bytes_total": 0})
            disk["bytes_done"] += int(nbytes)
        self._notify(False)

    def set_error(self, exc):
        """Record the last error as {message (redacted), class}."""
        with self._lock:
            self._error = {"message": redact(str(exc)), "class": type(exc).__name__}

    def snapshot(self):
        """A consistent, JSON-able view of the counters (without the state, which StatusFile adds)."""
        with self._lock:
            disks = [dict(disk) for disk in self._disks.values()]
            phase = self._phase
            error = dict(self._error) if self._error else None
        elapsed = max(0.0, self._monotonic() - self._started_mono)
        done = sum(d["bytes_done"] for d in disks)
        total = sum(d["bytes_total"] for d in disks)
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = None
        if rate > 0 and total >= done:
            eta = int(round((total - done) / rate))
        return {
            "run_id": self.run_id,
            "vm": self.vm,
            "phase": phase,
            "started": self.started,
            "updated": self._now_iso(),
            "bytes_done": done,
            "bytes_total": total,
            "mb_per_s": round(rate / 1e6, 3),
            "eta_seconds": eta,
            "disks": disks,
            "last_error": error,
        }


class NullProgress:
    """A RunProgress that counts nothing: every method of RunProgress, each doing nothing.

    The pipelines take a progress object always (``NULL_PROGRESS`` by default) and never test for None.
    Stateless, so thread-safe; ``NULL_PROGRESS`` is the shared instance.
    """

    run_id = None
    vm = None
    phase = None

    def subscribe(self, listener):
        pass

    def set_phase(self, phase):
        pass

    def add_disk(self, key, total, phase="transfer"):
        pass

    def set_disk_phase(self, key, phase):
        pass

    def advance(self, key, nbytes):
        pass

    def set_error(self, exc):
        pass

    def snapshot(self):
        return {"run_id": None, "vm": None, "phase": None, "started": None, "updated": None, "bytes_done": 0,
                "bytes_total": 0, "mb_per_s": 0.0, "eta_seconds": None, "disks": [], "last_error": None}


NULL_PROGRESS = NullProgress()


class StatusFile:
    """Writes ``progress`` to ``path`` as JSON (module docstring), atomically, rate-limited to ``interval`` seconds.

    Use as a context manager: entering writes the first document (state running), leaving writes the final
    one (succeeded, or failed with the exception as last_error) and, with ``heartbeat=True``, a background
    thread rewrites it every ``interval`` seconds meanwhile so ``updated`` shows the run is alive during a long
    call. Thread-safe: writes are serialized; ``maybe_write`` from a busy thread never waits for another write.
    """

    def __init__(self, path, progress, interval=2.0, heartbeat=False, monotonic=time.monotonic):
        self.path = os.fspath(path)
        self.progress = progress
        self.interval = interval
        self.state = RUNNING
        self._monotonic = monotonic
        self._last_write = None
        self._write_lock = threading.Lock()
        self._heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread = None
        self.writes = 0
        self._warned = False
        self._cancelled_by = None
        progress.subscribe(self._on_change)

    def _on_change(self, phase_changed):
        # called from pipeline threads: a status file problem is logged, it never fails the transfer
        try:
            if phase_changed:
                self.write()
            else:
                self.maybe_write()
        except OSError as exc:
            if not self._warned:
                self._warned = True
                logging.getLogger(__name__).warning("Writing the status file %s failed: %s", self.path, exc)

    def maybe_write(self):
        """Write when ``interval`` seconds have passed since the last write; skip when another write runs."""
        if self._last_write is not None and self._monotonic() - self._last_write < self.interval:
            return False
        if not self._write_lock.acquire(blocking=False):
            return False
        try:
            if self._last_write is not None and self._monotonic() - self._last_write < self.interval:
                return False
            self._write_locked()
            return True
        finally:
            self._write_lock.release()

    def write(self, state=None):
        """Write now (waiting for a write in progress), optionally setting the state."""
        with self._write_lock:
            if state is not None:
                self.state = state
            self._write_locked()

    def _write_locked(self):
        document = {"format": "blockvault-status", "version": 1}
        document.update(self.progress.snapshot())
        document["state"] = self.state
        if self.state == CANCELLED:
            document["cancelled_by"] = self._cancelled_by
        data = json.dumps(document, indent=1, sort_keys=True).encode("utf-8") + b"\n"
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(self.path), suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._last_write = self._monotonic()
        self.writes += 1

    def finish(self, error=None):
        """The final document: cancelled (an error with a ``cancelled_by``) or failed with ``error`` recorded, else
        succeeded."""
        if error is None:
            self.write(SUCCEEDED)
            return
        self.progress.set_error(error)
        self._cancelled_by = getattr(error, "cancelled_by", None)
        self.write(CANCELLED if self._cancelled_by else FAILED)

    def _beat(self):
        while not self._stop.wait(self.interval):
            try:
                self.write()
            except OSError as exc:
                logging.getLogger(__name__).warning("Writing the status file %s failed: %s", self.path, exc)

    def __enter__(self):
        try:
            self.write(RUNNING)
        except OSError as exc:
            raise ConfigurationError("The status file %s cannot be written: %s. Check status_file and its directory."
                                     % (self.path, exc.strerror or exc)) from exc
        if self._heartbeat:
            self._thread = threading.Thread(target=self._beat, name="bv-status", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.finish(exc if exc_type is not None else None)
        except OSError as write_error:
            if exc_type is None:
                raise
            # never hide the run's own error behind a status file problem
            logging.getLogger(__name__).warning("Writing the final status file %s failed: %s", self.path, write_error)
        return False


def read_status(path):
    """The status document at ``path`` (a dict), as written by StatusFile, every field checked.

    ConfigurationError when the file cannot be read; CorruptionError naming the file when it is not a status document
    (not UTF-8 JSON, nested too deep, a field missing or of the wrong type): a reader polling it never gets an
    exception of another kind, nor a document whose counters are not numbers.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_STATUS_SIZE + 1)
    except OSError as exc:
        raise ConfigurationError("The status file %s cannot be read: %s." % (path, exc.strerror or exc)) from None
    try:
        if len(raw) > _MAX_STATUS_SIZE:
            raise ValueError("larger than %d bytes" % _MAX_STATUS_SIZE)
        try:
            document = json.loads(raw.decode("utf-8"))
        except RecursionError:
            raise ValueError("nested too deep") from None
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ValueError("not UTF-8 JSON") from None
        _check_status(document)
    except ValueError as exc:
        raise CorruptionError("The status file %s is damaged or not a blockvault status file: %s." % (path, exc), object_name=str(path),
                              hint="Give the status_file of a blockvault run; it is rewritten whole while the run goes on.") from None
    return document


# A status document lists a few disks: 1 MiB is far above any real one, and bounds what a reader loads.
_MAX_STATUS_SIZE = 1 << 20


def _is_int(value, nullable=False):
    return (value is None and nullable) or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def _check_status(document):
    """ValueError naming the first field of ``document`` that a StatusFile would not have written."""
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    checks = (
        ("format", lambda v: v == "blockvault-status"), ("version", lambda v: _is_int(v) and v == 1),
        ("state", lambda v: v in (RUNNING, SUCCEEDED, FAILED, CANCELLED)), ("phase", lambda v: isinstance(v, str)),
        ("run_id", lambda v: v is None or isinstance(v, str)), ("vm", lambda v: v is None or isinstance(v, str)),
        ("started", lambda v: isinstance(v, str)), ("updated", lambda v: isinstance(v, str)),
        ("bytes_done", _is_int), ("bytes_total", _is_int), ("eta_seconds", lambda v: _is_int(v, nullable=True)),
        ("mb_per_s", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0),
        ("disks", lambda v: isinstance(v, list) and all(_disk_ok(d) for d in v)),
        ("last_error", lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("message"), str)
                                               and isinstance(v.get("class"), str))),
    )
    for field, check in checks:
        if field not in document:
            raise ValueError("field %s is missing" % field)
        if not check(document[field]):
            raise ValueError("field %s is %.60r" % (field, document[field]))


def _disk_ok(disk):
    return (isinstance(disk, dict) and isinstance(disk.get("key"), (str, int)) and not isinstance(disk.get("key"), bool)
            and isinstance(disk.get("phase"), str) and _is_int(disk.get("bytes_done")) and _is_int(disk.get("bytes_total")))


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record, datefmt=None):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + ".%03dZ" % int(record.msecs)


class RunLogHandler(logging.FileHandler):
    """Appends ``<UTC ISO time> <LEVEL> <logger>: <message>`` lines to a run log file, each redacted.

    Thread-safe as every logging.Handler (emit runs under the handler's lock). The file is created with the
    process umask; it contains no secrets by construction and ``errors.redact`` masks what slips through.
    """

    def __init__(self, path, level=logging.INFO):
        super().__init__(os.fspath(path), mode="a", encoding="utf-8", delay=False)
        self.setLevel(level)
        self.setFormatter(_UtcFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def format(self, record):
        return redact(super().format(record))
