# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one worker pool of the transfer layer: a bounded, closable work queue, workers, producers, the first error.

After ovirt-imageio's client executor. The backup (a reader thread per disk feeding chunk tasks to hashing and
storing workers) and the restore (the calling thread feeding chunk and zero items to writing workers) both run
on an Executor; neither carries a thread life cycle of its own.

Shape::

    with Executor(cancel=event, name="bv-restore") as executor:
        for number in range(workers):
            executor.add_worker(open_handler)      # open_handler() runs in the worker's thread
        executor.add_producer(read_disk, state)    # optional: producer threads that submit()
        for item in items:
            executor.submit(item)                  # waits while the queue is full; Closed once stopping
    # leaving the block: stop() (wait for the producers, let the workers finish the queue, join, re-raise)

Contract:

- ``add_worker(factory)`` starts a worker thread. The thread calls ``factory()`` to build its handler (so a
  handle opened there belongs to that thread, VDDK's rule), calls ``handler.handle(item)`` for every item it
  takes from the queue, and always calls ``handler.close()`` itself at the end, after an error too (ExitStack).
  The worker checks the ``cancel`` Event between items: after taking an item, before handling it.
- ``add_producer(produce, *args)`` starts a thread running ``produce(*args)``, which feeds the queue with
  ``submit``; long producers call ``check()`` between their steps.
- The first exception raised in a worker (factory, ``handle``, ``close``) or in a producer is recorded
  (``fail``) and closes the queue: every thread blocked in ``submit``/``get`` wakes up with Closed, every worker
  stops after its current item, ``on_close()`` runs once (e.g. waking threads that wait on something else).
  Later errors are logged at debug level only. Closed itself is never an error: a thread that gets it unwinds.
- A set ``cancel`` Event stops the run the same way; ``stop()`` then raises ``cancelled_error()`` (called at
  that moment, so the message can say what was left undone). A cancel set after the last item was taken raises
  nothing: all the work was done.
- Items that no worker handled (left in the queue, or taken after the cancel) are passed to ``discard(item)``
  once every thread has ended, so their resources (pool buffers) are given back.
- ``stop()`` waits for the producers, then queues one stop marker per worker behind the remaining items, joins
  the workers and raises the first error. ``abort(exc)`` records ``exc`` (when it is the first error), closes the
  queue and joins everything. ``__exit__`` calls ``stop()``, or ``abort()`` when the with-block raised: the
  caller's exception wins over any error of the threads.

Thread-safety: ``submit``, ``check``, ``cancelled``, ``fail``, ``failed`` may be called from any thread;
``add_worker``, ``add_producer``, ``stop`` and ``abort`` only from the thread that owns the executor. An
Executor is used once. Per item the cost is one queue put and one get (a lock each) and one Event check.
``recorder`` (a transfer.trace recorder, the no-op one by default): with tracing on, every wait of a worker for an
item (``queue-get``) and of a submitter for room (``queue-put``) is a span of the thread's timeline.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading

from ..errors import CancelledError
from .trace import NULL_RECORDER

__all__ = ["Closed", "Executor", "WorkQueue"]

log = logging.getLogger(__name__)

_STOP = object()


class Closed(Exception):
    """The work queue is closed: the run is stopping (an error somewhere, or a cancel). Not an error itself."""


class WorkQueue:
    """A FIFO of at most ``maxsize`` items: ``put`` waits while it is full, ``get`` while it is empty.

    ``close()`` wakes every waiter at once; from then on ``put`` and ``get`` raise Closed (items still queued
    stay until ``drain()``). Thread-safe: one lock, two conditions (not full, not empty) so a put never wakes
    another put.
    """

    def __init__(self, maxsize):
        if maxsize < 1:
            raise ValueError("a work queue holds at least one item")
        self.maxsize = maxsize
        self.closed = False
        self._items = collections.deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._not_empty = threading.Condition(self._lock)

    def put(self, item):
        with self._lock:
            while not self.closed and len(self._items) >= self.maxsize:
                self._not_full.wait()
            if self.closed:
                raise Closed()
            self._items.append(item)
            self._not_empty.notify()

    def get(self):
        with self._lock:
            while not self.closed and not self._items:
                self._not_empty.wait()
            if self.closed:
                raise Closed()
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def close(self):
        with self._lock:
            self.closed = True
            self._not_full.notify_all()
            self._not_empty.notify_all()

    def drain(self):
        """Remove and return the queued items (after ``close``: what no one will take)."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items

    def __len__(self):
        with self._lock:
            return len(self._items)


def _cancelled_on_request():
    return CancelledError("The transfer was cancelled on request before it was complete.")


def _ignore(item):
    return None


class Executor:
    """Worker and producer threads around one WorkQueue; see the module docstring for the contract."""

    def __init__(self, cancel=None, queue_size=32, cancelled_error=_cancelled_on_request, discard=_ignore,
                 on_close=None, name="bv-worker", recorder=NULL_RECORDER):
        self._queue = WorkQueue(queue_size)
        self._recorder = recorder
        self._cancel = cancel if cancel is not None else threading.Event()
        self._cancelled_error = cancelled_error
        self._discard = discard
        self._on_close = on_close
        self._name = name
        self._workers = []
        self._producers = []
        self._lock = threading.Lock()
        self._error = None
        self._cancelled = False
        self._close_done = False
        self._dropped = []

    # -- state, from any thread ------------------------------------------------------------------------

    @property
    def failed(self):
        """True once an error was recorded (a cancel on request is not a failure)."""
        return self._error is not None

    def cancelled(self):
        """True when the run is stopping: the queue was closed (error, cancel) or the cancel Event is set."""
        return self._queue.closed or self._cancel.is_set()

    def check(self):
        """Raise Closed when the run is stopping (recording a cancel on request first)."""
        if self._cancel.is_set():
            self._stop_on_cancel()
        if self._queue.closed:
            raise Closed()

    def submit(self, item):
        """Queue ``item`` for a worker, waiting while the queue is full; Closed once the run is stopping."""
        if self._recorder.enabled:
            with self._recorder.span("queue-put"):
                self._queue.put(item)
            return
        self._queue.put(item)

    def fail(self, exc):
        """Record ``exc`` when it is the first error and stop the run; True when it was the first."""
        with self._lock:
            first = self._error is None and not self._cancelled
            if first:
                self._error = exc
        if first:
            log.debug("Stopping the transfer threads after: %r", exc)
            self._close()
        else:
            log.debug("Further error after the first one: %r", exc)
        return first

    def _stop_on_cancel(self):
        with self._lock:
            first = self._error is None and not self._cancelled
            if first:
                self._cancelled = True
        if first:
            log.info("The transfer was cancelled on request.")
            self._close()

    def _close(self):
        self._queue.close()
        with self._lock:
            if self._close_done:
                return
            self._close_done = True
        if self._on_close is not None:
            self._on_close()

    # -- threads ---------------------------------------------------------------------------------------

    def add_worker(self, factory):
        """Start a worker thread whose handler is ``factory()``, built in that thread."""
        thread = threading.Thread(target=self._work, args=(factory,), name="%s-%d" % (self._name, len(self._workers)),
                                  daemon=True)
        thread.start()
        self._workers.append(thread)

    def add_producer(self, produce, *args, name=None):
        """Start a thread running ``produce(*args)``, which feeds the queue with ``submit``."""
        thread = threading.Thread(target=self._produce, args=(produce, args), daemon=True,
                                  name=name or "%s-producer-%d" % (self._name, len(self._producers)))
        thread.start()
        self._producers.append(thread)

    def _work(self, factory):
        with contextlib.ExitStack() as stack:
            # the error is recorded inside the stack, so a failing close() cannot take the place of the first error
            try:
                handler = factory()
                stack.callback(self._close_handler, handler)
                self._serve(handler)
            except Closed:
                pass
            except BaseException as exc:
                self.fail(exc)

    def _serve(self, handler):
        get, handle, cancel = self._queue.get, handler.handle, self._cancel
        if self._recorder.enabled:          # a timeline shows the waits for work too; off, the loop stays bare
            get = self._traced_get
        while True:
            item = get()
            if item is _STOP:
                return
            if cancel.is_set():
                with self._lock:
                    self._dropped.append(item)
                self._stop_on_cancel()
                return
            handle(item)

    def _traced_get(self):
        with self._recorder.span("queue-get"):
            return self._queue.get()

    def _close_handler(self, handler):
        try:
            handler.close()
        except BaseException as exc:
            self.fail(exc)

    def _produce(self, produce, args):
        try:
            produce(*args)
        except Closed:
            pass
        except BaseException as exc:
            self.fail(exc)

    # -- the end, from the owning thread ---------------------------------------------------------------

    def stop(self):
        """Let the workers finish the queued items, join every thread, raise the first error (or the cancel)."""
        try:
            for thread in self._producers:
                thread.join()
            for worker in self._workers:
                try:
                    self._queue.put(_STOP)
                except Closed:
                    break
            for thread in self._workers:
                thread.join()
        except BaseException as exc:     # KeyboardInterrupt while waiting: stop everything, then re-raise
            self.abort(exc)
            raise
        self._discard_left_over()
        if self._error is not None:
            raise self._error
        if self._cancelled:
            raise self._cancelled_error()

    def abort(self, exc=None):
        """Stop now: record ``exc`` (if first), close the queue, join every thread, discard what is left."""
        if exc is not None:
            self.fail(exc)
        else:
            self._close()
        for thread in self._producers + self._workers:
            thread.join()
        self._discard_left_over()

    def _discard_left_over(self):
        with self._lock:
            items, self._dropped = self._dropped, []
        for item in items + self._queue.drain():
            if item is not _STOP:
                self._discard(item)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            self.abort(exc)
        return False
