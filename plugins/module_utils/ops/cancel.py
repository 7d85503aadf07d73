# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cancellation of a run: whether and why it must stop, and the watches that notice that its job is gone.

A run stops as a cancel for one of three reasons, each named in ``cancelled_by``:

- a signal (``SIGTERM``, ``SIGINT``, ``SIGHUP``): ``Cancellation.install_signal_handlers`` (the module adapter
  calls it) turns each into ``request``;
- ``controller gone``: the module runs directly (no ``async``) and the ansible processes that started it ended.
  ansible-core's worker runs in a session of its own, so killing ansible-playbook's process group (what
  ansible-runner, and so AWX, does on cancel and on timeouts) leaves the worker and the module running:
  ``ControllerWatch`` records the module's ancestors up to the topmost ansible process (pid and start time, from
  /proc) and reports when one of them has ended;
- ``lease expired``: under ``async`` the module is detached from ansible on purpose, so the polling side renews a
  lease file next to the status file (``<status file>.lease``, written by ``renew_lease``, which
  ``backup_info``'s ``renew_leases`` calls on every poll). ``LeaseWatch`` arms once it sees a lease of this run
  renewed after the run started; the run stops when the lease has not been renewed for its ``valid_seconds``, or
  at once when the ansible process the lease names (same machine) has ended.

Lease document (JSON, rewritten atomically; its mtime is the renewal time)::

    {"format": "blockvault-lease", "version": 1, "run_id", "valid_seconds", "renewed" (UTC ISO-8601),
     "controller": null | {"machine", "pid", "start_time", "orphaned" (only when true)}}

``controller`` is the topmost ansible process of the poller (ansible-playbook); ``orphaned`` says that ansible-playbook
had already ended when the poller renewed (what is left is ansible's worker, whose parent is now init).

How an operation stops: code between phases calls ``check()`` (RunContext.set_phase does), the transfers get
``event`` as their ``TransferOptions.cancel``; inside ``cooperative()`` that is all a cancel does. Outside it
(``interruptible``, the default: prune, garbage collection, validation reads) a request raises the cancel at
once in the main thread (as ``Interrupted``, which no ``except Exception`` of a library can swallow), which unwinds
through the ``with`` blocks like any error: locks released, nothing half-written made visible.

Why signals are taken by a thread of their own: the kernel hands a signal sent to the process to any thread that
does not block it, and Python runs its handler only when the main thread next runs Python code - late when the main
thread waits on a lock while a transfer thread (or VDDK's) took the signal. So ``install_signal_handlers`` blocks
the three signals in the main thread before the run starts its threads (they inherit the mask) and a
``bv-signals`` thread takes them with ``sigtimedwait``; to raise in the main thread, ``request`` sends it SIGUSR1 with
``pthread_kill``, which interrupts whatever system call it waits in.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import signal
import tempfile
import threading
import time

from ..errors import CancelledError

__all__ = ["Cancellation", "Interrupted", "ControllerWatch", "LeaseWatch", "renew_lease", "remove_lease", "lease_path", "SIGNALS",
           "CONTROLLER_GONE", "LEASE_EXPIRED"]

log = logging.getLogger("blockvault.cancel")

#: the signals that cancel a run gracefully
SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")
# sent to the main thread to make it raise the cancel where it is (interruptible sections)
_INTERRUPT = signal.SIGUSR1
CONTROLLER_GONE = "controller gone"
LEASE_EXPIRED = "lease expired"

LEASE_FORMAT = "blockvault-lease"
# command names of the ansible processes that run plays and start modules
_ANSIBLE_COMMANDS = frozenset(("ansible-playbook", "ansible", "ansible-console", "ansible-pull"))
_MAX_ANCESTORS = 8


def lease_path(status_file):
    return os.fspath(status_file) + ".lease"


class Interrupted(BaseException):
    """Raised where the main thread runs when a cancel interrupts an interruptible section; ``interruptible`` turns it
    into the CancelledError as it leaves the section.

    A BaseException, like KeyboardInterrupt, for the same reason: libraries catch ``Exception`` around the calls they
    make, and botocore, for one, takes any exception of an S3 request for a connection error and retries the request,
    so a cancel raised as an Exception inside such a call would be swallowed and the run would go on. ``finally``
    blocks and ``with`` exits still run on the way out.
    """


class Cancellation:
    """Whether a run must stop, and why: the first ``request`` wins; ``event`` is set from then on.

    Thread-safety: ``request``, ``check``, ``requested`` and ``event`` from any thread; ``cooperative``,
    ``interruptible`` and ``install_signal_handlers`` from the main thread. ``close()`` stops the watch thread.
    """

    def __init__(self, interval=1.0):
        self.event = threading.Event()
        self.cancelled_by = None
        self.detail = None
        self.interval = interval
        self._lock = threading.Lock()
        self._modes = []                    # stack of True (cooperative) / False (interruptible)
        self._raised = False
        self._interrupt_pending = False     # a cancel came outside a cooperative section and has not raised yet
        self._installed = None              # (previous signal mask, previous SIGUSR1 handler) while installed
        self._main_ident = threading.main_thread().ident
        self._watches = []
        self._watch_thread = None
        self._closed = threading.Event()

    # -- state --------------------------------------------------------------------------------------------

    @property
    def requested(self):
        return self.event.is_set()

    def request(self, cancelled_by, detail=None):
        """Ask the run to stop (``cancelled_by``: a signal name, CONTROLLER_GONE or LEASE_EXPIRED). True when first."""
        with self._lock:
            if self.event.is_set():
                return False
            self.cancelled_by, self.detail = cancelled_by, detail
            self.event.set()
        log.warning("Cancel requested: %s%s", cancelled_by, " (%s)" % detail if detail else "")
        if self._installed is not None and not self._cooperative():
            # the main thread is in code that does not check: make it raise where it is
            self._interrupt_pending = True
            signal.pthread_kill(self._main_ident, _INTERRUPT)
        return True

    def describe(self):
        """``cancelled by SIGINT`` / ``cancelled because ...``: why, for messages (None before a request)."""
        if not self.requested:
            return None
        if self.cancelled_by == CONTROLLER_GONE:
            text = "cancelled because the job that started it is gone"
        elif self.cancelled_by == LEASE_EXPIRED:
            text = "cancelled because its lease expired (the job that started it stopped polling it)"
        else:
            text = "cancelled by %s" % self.cancelled_by
        return "%s (%s)" % (text, self.detail) if self.detail else text

    def error(self, what="The run", outcome=None):
        """The CancelledError of this cancel: ``<what> was <describe()>. <outcome>``."""
        message = "%s was %s." % (what, self.describe() or "cancelled")
        if outcome:
            message = "%s %s" % (message, outcome)
        return CancelledError(message, cancelled_by=self.cancelled_by)

    def check(self, what="The run"):
        """Raise the CancelledError when a cancel was requested."""
        if self.event.is_set():
            raise self.error(what)

    # -- where a cancel raises at once, and where code checks ---------------------------------------------

    def _cooperative(self):
        return bool(self._modes) and self._modes[-1]

    @contextlib.contextmanager
    def cooperative(self):
        """Within: a cancel only sets ``event``; the code checks it (phases, transfers) and stops cleanly."""
        self._modes.append(True)
        try:
            yield self
        finally:
            self._modes.pop()

    @contextlib.contextmanager
    def interruptible(self, what="The run"):
        """Within: a cancel raises at once in the main thread (code safe to stop anywhere, e.g. reads), as the
        CancelledError once it leaves the section."""
        self._modes.append(False)
        try:
            self.check(what)
            yield self
        except Interrupted:
            raise self.error(what, "It stopped where it was and released what it held on the way out.") from None
        finally:
            self._modes.pop()

    def _on_interrupt(self, signum, frame):
        # SIGUSR1 handler, in the main thread: raise the cancel here unless the code checks for it itself. It takes
        # no lock: the main thread may have been interrupted holding one (and everything it reads is the main thread's)
        raise_now = self.event.is_set() and not self._cooperative() and not self._raised
        if raise_now:
            self._raised = True
            raise Interrupted()

    def _take_signals(self, numbers, stop):
        while not stop.is_set():
            # a timeout, to end with restore_signal_handlers (a signal left pending then reaches the old handlers)
            info = signal.sigtimedwait(numbers, 0.2)
            if info is not None:
                self.request(signal.Signals(info.si_signo).name)
            elif self._interrupt_pending and not self._raised and not self._cooperative():
                # an interrupt that came just before the main thread started waiting wakes nothing: send it again
                signal.pthread_kill(self._main_ident, _INTERRUPT)

    def install_signal_handlers(self):
        """From now on SIGTERM, SIGINT and SIGHUP request this cancel (call in the main thread, before the run starts
        threads); ``restore_signal_handlers`` undoes it."""
        numbers = set(getattr(signal, name) for name in SIGNALS)
        signal.signal(_INTERRUPT, self._on_interrupt)
        if not hasattr(signal, "sigtimedwait"):
            # macOS: plain handlers, which run when the main thread next runs Python code
            previous = dict((number, signal.signal(number, self._on_signal)) for number in numbers)
            self._installed = (None, previous, None)
            return
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, numbers)
        stop = threading.Event()
        thread = threading.Thread(target=self._take_signals, args=(numbers, stop), name="bv-signals", daemon=True)
        self._installed = (previous_mask, stop, thread)
        thread.start()

    def _on_signal(self, signum, frame):
        self.request(signal.Signals(signum).name)

    def restore_signal_handlers(self):
        """Unblock the signals again. SIGUSR1 is left ignored, not restored: an interrupt a thread sent just before
        must not end the process."""
        if self._installed is not None:
            previous_mask, stop, thread = self._installed
            self._installed = None
            signal.signal(_INTERRUPT, signal.SIG_IGN)
            if previous_mask is None:
                for number, handler in stop.items():
                    signal.signal(number, handler)
                return
            stop.set()
            thread.join()
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)

    # -- watches ------------------------------------------------------------------------------------------

    def watch(self, check):
        """Call ``check()`` every ``interval`` seconds on a watch thread; a ``(cancelled_by, detail)`` it returns
        requests the cancel. Returns a callable that removes the watch."""
        with self._lock:
            self._watches.append(check)
            if self._watch_thread is None:
                self._watch_thread = threading.Thread(target=self._watch_loop, name="bv-cancel-watch", daemon=True)
                self._watch_thread.start()
        return lambda: self._unwatch(check)

    def _unwatch(self, check):
        with self._lock:
            if check in self._watches:
                self._watches.remove(check)

    def _watch_loop(self):
        while not self._closed.wait(self.interval) and not self.event.is_set():
            with self._lock:
                watches = list(self._watches)
            for check in watches:
                try:
                    found = check()
                except Exception as exc:  # pylint: disable=broad-except
                    log.debug("A cancel watch failed: %r", exc)       # a watch that cannot tell cancels nothing
                    continue
                if found:
                    # a signal sent with the same blow (ansible's worker passes Ctrl-C on, then exits) names the cause
                    # better than the exit: let the signal thread take it first
                    self._closed.wait(0.2)
                    self.request(*found)
                    return

    def close(self):
        self._closed.set()
        if self._watch_thread is not None and self._watch_thread is not threading.current_thread():
            self._watch_thread.join()


# -- processes ------------------------------------------------------------------------------------------------

def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def process_stat(pid, read=_read):
    """(state, ppid, start_time) of process ``pid`` from /proc, or None when it does not exist."""
    try:
        data = read("/proc/%d/stat" % pid).decode("ascii", "replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def _is_ansible(pid, read=_read):
    try:
        argv = read("/proc/%d/cmdline" % pid).split(b"\0")
    except OSError:
        return False
    return any(os.path.basename(arg.decode("utf-8", "replace")) in _ANSIBLE_COMMANDS for arg in argv[:2])


def machine_id(read=_read):
    """This machine and PID namespace (a pid means the same process only where this is equal), or None."""
    try:
        boot = read("/proc/sys/kernel/random/boot_id").decode("ascii").strip()
        return "%s/%d" % (boot, os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return None


def ansible_ancestors(pid, read=_read):
    """[(pid, start_time)] of ``pid`` and its ancestors up to the topmost ansible process of the chain, or [] when
    none of the first ancestors is an ansible process (under ``async``: the module's parents are ansible's
    detached async wrapper)."""
    chain, seen_ansible = [], False
    for _level in range(_MAX_ANCESTORS):
        if pid <= 1:
            break
        stat = process_stat(pid, read)
        if stat is None:
            break
        ansible = _is_ansible(pid, read)
        if seen_ansible and not ansible:
            return chain
        seen_ansible = seen_ansible or ansible
        chain.append((pid, stat[2]))
        pid = stat[1]
    return chain if seen_ansible else []


def process_ended(entry, read=_read):
    """Whether the process ``entry`` ((pid, start_time)) has ended: gone, a zombie, or its pid now another process's."""
    pid, start = entry
    stat = process_stat(pid, read)
    return stat is None or stat[0] in ("Z", "X") or stat[2] != start


def _gone(entries, read=_read):
    """The pid of the first (pid, start_time) of ``entries`` that has ended (process_ended), or None."""
    for entry in entries:
        if process_ended(entry, read):
            return entry[0]
    return None


class ControllerWatch:
    """A cancel watch (``Cancellation.watch``): the module's ansible ancestors, recorded once, must all live.

    Immutable after construction; call it from the watch thread. ``ControllerWatch.of_this_process()`` is None when
    the module has no ansible ancestor (run under ``async``, or not by ansible at all).
    """

    def __init__(self, entries, read=_read):
        self.entries = list(entries)
        self._read = read

    @classmethod
    def of_this_process(cls, read=_read):
        entries = ansible_ancestors(os.getppid(), read)
        return cls(entries, read) if entries else None

    def __call__(self):
        pid = _gone(self.entries, self._read)
        if pid is None:
            return None
        return CONTROLLER_GONE, "process %d of the ansible run that started this module has ended" % pid


# -- leases ---------------------------------------------------------------------------------------------------

def _utc_iso(moment):
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _controller_of_this_process(read=_read):
    chain = ansible_ancestors(os.getpid(), read)
    machine = machine_id(read)
    if not chain or machine is None:
        return None
    pid, start = chain[-1]
    controller = {"machine": machine, "pid": pid, "start_time": start}
    stat = process_stat(pid, read)
    if stat is None or stat[1] == 1:
        # the topmost ansible process left is an orphaned worker: ansible-playbook itself has already ended
        controller["orphaned"] = True
    return controller


def renew_lease(status_file, valid_seconds, clock=time.time, read=_read):
    """Renew the lease of the run whose status file is ``status_file``, when that run is running: rewrite
    ``<status_file>.lease`` (module docstring) naming its run id, ``valid_seconds`` and the topmost ansible process
    of this process (the controller). Returns the lease document, or None when there is no running run to renew
    (no status file yet, or it ended). Called by the polling side (``backup_info``'s ``renew_leases``)."""
    try:
        status = json.loads(read(os.fspath(status_file)).decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict) or status.get("state") != "running" or not status.get("run_id"):
        return None
    document = {"format": LEASE_FORMAT, "version": 1, "run_id": status["run_id"], "valid_seconds": int(valid_seconds),
                "renewed": _utc_iso(clock()), "controller": _controller_of_this_process(read)}
    path = lease_path(status_file)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return document


def remove_lease(status_file, run_id, read=_read):
    """Remove ``<status_file>.lease`` when it is the lease of run ``run_id`` (the run has ended)."""
    path = lease_path(status_file)
    try:
        lease = json.loads(read(path).decode("utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(lease, dict) or lease.get("run_id") != run_id:
        return False
    with contextlib.suppress(OSError):
        os.unlink(path)
        return True
    return False


class LeaseWatch:
    """A cancel watch on ``<status file>.lease`` for the run ``run_id`` that started at ``started`` (wall clock).

    Not armed until a lease of this run renewed after its start is seen (a run nobody polls is never cancelled;
    a lease left by an earlier run of the same status file or run id is not this run's). Armed, it reports
    LEASE_EXPIRED when the lease is older than its ``valid_seconds`` or has gone, and CONTROLLER_GONE when the
    controller it names, on this machine, has ended. Used by one watch thread; ``clock`` and ``read`` are for tests.
    """

    def __init__(self, status_file, run_id, started, clock=time.time, read=_read):
        self.path = lease_path(status_file)
        self.run_id = run_id
        self.started = started
        self.armed = False
        self._clock = clock
        self._read = read
        self._valid = None

    def _load(self):
        try:
            mtime = os.stat(self.path).st_mtime
            document = json.loads(self._read(self.path).decode("utf-8"))
        except (OSError, ValueError):
            return None, None
        if not isinstance(document, dict) or document.get("format") != LEASE_FORMAT:
            return None, None
        return mtime, document

    def __call__(self):
        mtime, lease = self._load()
        now = self._clock()
        if lease is None or lease.get("run_id") != self.run_id:
            if self.armed and now - self._last > self._valid:
                return LEASE_EXPIRED, "the lease %s is gone and was last renewed %d s ago" % (self.path, now - self._last)
            return None
        if not self.armed:
            # one second of slack: file system times may be coarser than the clock
            if mtime < self.started - 1:
                return None
            self.armed = True
        self._last, self._valid = mtime, max(1, int(lease.get("valid_seconds") or 1))
        if now - mtime > self._valid:
            return LEASE_EXPIRED, "the lease %s was last renewed %d s ago; it is valid for %d s" % (
                self.path, now - mtime, self._valid)
        controller = lease.get("controller")
        if isinstance(controller, dict) and controller.get("machine") == machine_id(self._read):
            if controller.get("orphaned"):
                return CONTROLLER_GONE, "the ansible-playbook process that polls this run has ended"
            pid = _gone([(int(controller["pid"]), int(controller["start_time"]))], self._read)
            if pid is not None:
                return CONTROLLER_GONE, "the ansible process %d that polls this run has ended" % pid
        return None
