"""The executor both pipelines run on: per-worker handlers, the first error, close, cancel, the caller's error."""
import threading

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import CancelledError
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.executor import Closed, Executor, WorkQueue


def wait_until(predicate, what):
    """Wait for a state another thread reaches (not a timing assertion: the deadline only stops a hung test)."""
    done = threading.Event()
    for attempt in range(3000):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("never happened: %s" % what)


def waiters(condition):
    return len(condition._waiters)      # CPython's Condition keeps one lock per waiting thread here


class Handler:
    """Records what it handled and in which thread it was built, used and closed; ``on`` maps items to actions."""

    def __init__(self, log, on=None):
        self.log = log
        self.on = on or {}
        self.built_in = threading.current_thread().name
        self.used_in = set()
        self.closed_in = []
        self.handled = []
        with log["lock"]:
            log["handlers"].append(self)

    def handle(self, item):
        self.used_in.add(threading.current_thread().name)
        self.handled.append(item)
        action = self.on.get(item)
        if action is not None:
            action()

    def close(self):
        self.closed_in.append(threading.current_thread().name)


def new_log():
    return {"lock": threading.Lock(), "handlers": []}


def handled(log):
    return sorted(item for handler in log["handlers"] for item in handler.handled)


def test_each_worker_builds_uses_and_closes_its_own_handler_in_its_thread():
    log = new_log()
    with Executor(name="bv-test") as executor:
        for number in range(3):
            executor.add_worker(lambda: Handler(log))
        for item in range(50):
            executor.submit(item)
    assert handled(log) == list(range(50))
    assert sorted(h.built_in for h in log["handlers"]) == ["bv-test-0", "bv-test-1", "bv-test-2"]
    for handler in log["handlers"]:
        assert handler.used_in <= {handler.built_in}
        assert handler.closed_in == [handler.built_in]
    assert [t.name for t in threading.enumerate() if t.name.startswith("bv-test")] == []


def test_the_first_error_stops_every_thread_and_is_raised_and_unhandled_items_are_discarded():
    log = new_log()
    closed = threading.Event()
    discarded = []

    def wait_for_the_stop_then_fail():
        assert closed.wait(30)
        raise ValueError("second")

    def fail():
        wait_until(lambda: len(executor._queue) >= 10, "the ten other items queued")
        raise ValueError("first")

    on = {"wait": wait_for_the_stop_then_fail, "fail": fail}
    executor = Executor(queue_size=100, on_close=closed.set, discard=discarded.append)
    with pytest.raises(ValueError, match="^first$"):
        with executor:
            executor.add_worker(lambda: Handler(log, on))
            executor.add_worker(lambda: Handler(log, on))
            executor.submit("wait")               # one worker blocks on it, so the other one takes "fail"
            executor.submit("fail")
            for number in range(10):
                executor.submit("x")
    assert handled(log) == ["fail", "wait"]
    assert discarded == ["x"] * 10                 # queued but never handled: handed back
    assert all(len(h.closed_in) == 1 for h in log["handlers"])
    assert executor.failed and executor.cancelled()
    with pytest.raises(Closed):
        executor.submit("late")


def test_a_worker_closes_its_handler_after_an_error_and_a_close_error_does_not_replace_the_first():
    log = new_log()

    class FailingClose(Handler):
        def close(self):
            super().close()
            raise OSError(5, "close failed")

    def fail():
        raise ValueError("handle failed")

    with pytest.raises(ValueError, match="^handle failed$"):
        with Executor() as executor:
            executor.add_worker(lambda: FailingClose(log, {"boom": fail}))
            executor.submit("boom")
    assert log["handlers"][0].closed_in == [log["handlers"][0].built_in]


def test_a_close_error_alone_is_raised():
    class FailingClose(Handler):
        def close(self):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        with Executor() as executor:
            executor.add_worker(lambda: FailingClose(new_log()))
            executor.submit(1)


def test_a_failing_factory_stops_the_run_and_the_others_close_their_handlers():
    log = new_log()
    calls = []

    def factory():
        with log["lock"]:
            calls.append(1)
            first = len(calls) == 1
        if first:
            raise RuntimeError("cannot open a handle")
        return Handler(log)

    with pytest.raises(RuntimeError, match="cannot open a handle"):
        with Executor() as executor:
            executor.add_worker(factory)
            executor.add_worker(factory)
            try:
                for item in range(1000):
                    executor.submit(item)
            except Closed:
                pass
    assert len(calls) == 2
    assert all(h.closed_in == [h.built_in] for h in log["handlers"])


def test_close_wakes_every_blocked_put_and_get_which_raise_closed():
    full, empty = WorkQueue(1), WorkQueue(1)
    full.put("a")
    outcomes = []

    def call(fn, *args):
        try:
            fn(*args)
            outcomes.append("returned")
        except Closed:
            outcomes.append("closed")

    threads = [threading.Thread(target=call, args=(full.put, "b")), threading.Thread(target=call, args=(full.put, "c")),
               threading.Thread(target=call, args=(empty.get,)), threading.Thread(target=call, args=(empty.get,))]
    for thread in threads:
        thread.start()
    wait_until(lambda: waiters(full._not_full) == 2 and waiters(empty._not_empty) == 2, "four blocked calls")
    full.close()
    empty.close()
    for thread in threads:
        thread.join(30)
    assert outcomes == ["closed"] * 4
    with pytest.raises(Closed):
        full.get()                                # closed: even a queued item is not handed out
    with pytest.raises(Closed):
        empty.put("d")
    assert full.drain() == ["a"] and full.drain() == []


def test_a_worker_failure_wakes_a_producer_blocked_on_the_full_queue():
    release = threading.Event()
    produced = []

    def produce():
        for item in range(100):
            executor.submit(item)                 # blocks: queue of 2, the only worker is stuck on item 0
            produced.append(item)

    def fail():
        wait_until(lambda: len(executor._queue) == 2 and waiters(executor._queue._not_full) == 1,
                   "the producer blocked on the full queue")
        raise ValueError("worker failed")

    executor = Executor(queue_size=2, on_close=release.set)
    with pytest.raises(ValueError, match="worker failed"):
        with executor:
            executor.add_worker(lambda: Handler(new_log(), {0: fail}))
            executor.add_producer(produce, name="bv-test-producer")
    assert produced == [0, 1, 2]                  # one taken by the worker, two queued, the fourth never went in
    assert release.is_set()


def test_a_producer_error_is_raised_and_stops_the_workers():
    log = new_log()

    def produce():
        executor.submit(1)
        raise KeyError("producer failed")

    executor = Executor()
    with pytest.raises(KeyError, match="producer failed"):
        with executor:
            executor.add_worker(lambda: Handler(log))
            executor.add_producer(produce)
    assert all(h.closed_in == [h.built_in] for h in log["handlers"])


def test_the_cancel_event_is_checked_between_items_and_raises_the_cancelled_error():
    cancel = threading.Event()
    log = new_log()
    discarded = []
    executor = Executor(cancel=cancel, queue_size=10, discard=discarded.append,
                        cancelled_error=lambda: CancelledError("stopped at %d items" % len(handled(log))))
    with pytest.raises(CancelledError, match="^stopped at 2 items$"):
        with executor:
            executor.add_worker(lambda: Handler(log, {1: cancel.set}))      # the user cancels during item 1
            for item in range(5):
                executor.submit(item)
    assert handled(log) == [0, 1]                 # the item in hand is finished, nothing more
    assert sorted(discarded) == [2, 3, 4]
    assert not executor.failed
    with pytest.raises(Closed):
        executor.check()


def test_a_cancel_after_the_last_item_raises_nothing():
    cancel = threading.Event()
    log = new_log()
    with Executor(cancel=cancel) as executor:
        executor.add_worker(lambda: Handler(log, {2: cancel.set}))
        for item in range(3):
            executor.submit(item)
    assert handled(log) == [0, 1, 2]


def test_check_raises_closed_once_cancelled_and_records_the_cancel():
    cancel = threading.Event()
    executor = Executor(cancel=cancel)
    executor.check()
    cancel.set()
    with pytest.raises(Closed):
        executor.check()
    with pytest.raises(CancelledError, match="cancelled on request"):
        executor.stop()


def test_the_callers_error_wins_on_exit_and_every_thread_is_joined():
    log = new_log()
    closed = threading.Event()

    def fail():
        raise ValueError("worker error")

    executor = Executor(on_close=closed.set, name="bv-caller-test")
    with pytest.raises(RuntimeError, match="^caller error$"):
        with executor:
            executor.add_worker(lambda: Handler(log, {"boom": fail}))
            executor.add_worker(lambda: Handler(log))
            executor.submit("boom")
            assert closed.wait(30)
            raise RuntimeError("caller error")
    assert [t.name for t in threading.enumerate() if t.name.startswith("bv-caller-test")] == []
    assert all(h.closed_in == [h.built_in] for h in log["handlers"])


def test_a_caller_error_without_any_thread_error_aborts_the_workers():
    log = new_log()
    executor = Executor(queue_size=100, name="bv-abort-test")
    with pytest.raises(KeyboardInterrupt):
        with executor:
            executor.add_worker(lambda: Handler(log))
            raise KeyboardInterrupt()
    assert executor.failed                         # the workers' handlers see a failed run (no flush)
    assert [t.name for t in threading.enumerate() if t.name.startswith("bv-abort-test")] == []
    assert log["handlers"][0].closed_in == ["bv-abort-test-0"]
