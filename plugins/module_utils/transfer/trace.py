# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An opt-in timeline of every thread: spans written as Chrome trace-event JSON (chrome://tracing, Perfetto).

Why: a profile of the main thread does not say why a restore ends later than its I/O floor; a timeline of every
worker does (how many writes are in flight, who waits for what). Off by default and free then.

    BLOCKVAULT_TRACE=/tmp/restore.json ansible-playbook ...       # or trace.enable(path) from a driver
    rec = trace.current()                   # once per run, not per call: the no-op recorder when tracing is off
    with rec.span("fetch", chunk=12):       # a complete event ("X") with the thread's name and id
        ...
    rec.counter("in_flight", writes=3)      # a counter event ("C")

The file is written once, at interpreter exit (or ``write()``). Each span records the monotonic wall clock and the
thread's CPU clock at both ends: a span whose wall time is much larger than its CPU time waited (for the disk, a
lock, or a core: this machine has 2 for 4 workers); the CPU time goes into the event's ``args`` as ``cpu_us``.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time

__all__ = ["NULL_RECORDER", "TRACE_ENV", "NullRecorder", "TraceRecorder", "current", "enable", "disable"]

TRACE_ENV = "BLOCKVAULT_TRACE"

_perf_ns = time.perf_counter_ns
_cpu_ns = time.thread_time_ns


class _NullSpan:
    """The span of the no-op recorder: enters and exits doing nothing. Stateless, so one instance serves all."""

    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return False


_NULL_SPAN = _NullSpan()


class NullRecorder:
    """The recorder when tracing is off: every method does nothing, ``span`` returns a shared no-op context
    manager. ``enabled`` is False so a caller can skip building expensive arguments. Thread-safe (stateless)."""

    enabled = False
    path = None

    def span(self, name, **args):
        return _NULL_SPAN

    def counter(self, name, **values):
        return None

    def instant(self, name, **args):
        return None

    def events(self):
        return []

    def write(self, path=None):
        return None


NULL_RECORDER = NullRecorder()


class _Span:
    """One open span of a TraceRecorder; appends its complete event to the thread's list on exit."""

    __slots__ = ("_events", "_name", "_args", "_t0", "_c0")

    def __init__(self, events, name, args):
        self._events = events
        self._name = name
        self._args = args

    def __enter__(self):
        self._c0 = _cpu_ns()
        self._t0 = _perf_ns()
        return self

    def __exit__(self, exc_type, exc, tb):
        t1 = _perf_ns()
        args = self._args
        args["cpu_us"] = (_cpu_ns() - self._c0) / 1000.0
        if exc_type is not None:
            args["error"] = exc_type.__name__
        # "ts" and "dur" in microseconds, as the trace-event format wants; tid filled in at write time
        self._events.append((self._name, self._t0, t1, args))
        return False


class TraceRecorder:
    """Records spans, counters and instants of every thread, in memory, until ``write``.

    Contract: each thread appends to a list of its own (registered once under a lock, with the thread's name and
    id), so recording takes no lock; ``write`` may run while threads still record (it copies each list first).
    Spans nest (an inner span ends before its outer one, both are kept). Thread-safe.
    """

    enabled = True

    def __init__(self, path=None):
        self.path = path
        self._local = threading.local()
        self._threads = []              # (thread id, name, its event list)
        self._lock = threading.Lock()
        self._origin = _perf_ns()
        self._pid = os.getpid()
        self._process_age = _process_age()

    def _events_of_thread(self):
        events = getattr(self._local, "events", None)
        if events is None:
            events = self._local.events = []
            thread = threading.current_thread()
            with self._lock:
                self._threads.append((threading.get_ident(), thread.name, events))
        return events

    def span(self, name, **args):
        return _Span(self._events_of_thread(), name, args)

    def counter(self, name, **values):
        now = _perf_ns()
        self._events_of_thread().append((name, now, None, values))

    def instant(self, name, **args):
        now = _perf_ns()
        self._events_of_thread().append((name, now, now, dict(args, instant=True)))

    def events(self):
        """The trace events recorded so far (a list of dicts in the trace-event format), threads' names first."""
        with self._lock:
            threads = list(self._threads)
        origin, pid = self._origin, self._pid
        out = []
        for number, (ident, name, events) in enumerate(threads):
            tid = number + 1                       # small, stable ids read better than pthread ids
            out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name, "ident": ident}})
            for event_name, t0, t1, args in list(events):
                ts = (t0 - origin) / 1000.0
                if t1 is None:
                    out.append({"ph": "C", "name": event_name, "pid": pid, "tid": tid, "ts": ts, "args": args})
                elif args.get("instant"):
                    out.append({"ph": "i", "s": "t", "name": event_name, "pid": pid, "tid": tid, "ts": ts,
                                "args": {k: v for k, v in args.items() if k != "instant"}})
                else:
                    out.append({"ph": "X", "name": event_name, "pid": pid, "tid": tid, "ts": ts, "dur": (t1 - t0) / 1000.0,
                                "args": args})
        return out

    def write(self, path=None):
        """Write the trace-event JSON to ``path`` (default: the recorder's); returns the path, or None."""
        path = path or self.path
        if not path:
            return None
        document = {"traceEvents": self.events(), "displayTimeUnit": "ms",
                    "otherData": {"pid": self._pid, "clock": "perf_counter", "cpu_clock": "thread_time",
                                  "process_age_at_origin_s": self._process_age}}
        temporary = "%s.%d.tmp" % (path, self._pid)
        with open(temporary, "w") as handle:
            json.dump(document, handle)
        os.replace(temporary, path)
        return path


def _process_age():
    """Seconds since this process started (Linux), or None: what ran before the recorder (interpreter, imports)."""
    try:
        with open("/proc/self/stat") as handle:
            started_ticks = int(handle.read().rpartition(")")[2].split()[19])
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return round(uptime - started_ticks / os.sysconf("SC_CLK_TCK"), 3)
    except (OSError, ValueError, IndexError):
        return None


_current = NULL_RECORDER


def current():
    """The process's recorder: a TraceRecorder once tracing is enabled, else NULL_RECORDER. Read it once per run."""
    return _current


def enable(path=None):
    """Start recording (idempotent); the trace is written to ``path`` at interpreter exit. Returns the recorder."""
    global _current
    if not _current.enabled:
        recorder = TraceRecorder(path)
        if path:
            atexit.register(recorder.write)
        _current = recorder
    return _current


def disable():
    """Stop recording (later ``current()`` calls get NULL_RECORDER); returns the recorder that was active."""
    global _current
    previous, _current = _current, NULL_RECORDER
    return previous


# the environment is read once, when the engine is imported: no lookup per call
if os.environ.get(TRACE_ENV):
    enable(os.environ[TRACE_ENV])
