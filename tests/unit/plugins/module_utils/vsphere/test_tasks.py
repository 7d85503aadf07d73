"""wait_for_task: results, progress, faults, timeout and backoff (with a fake clock, no real sleeping)."""
from types import SimpleNamespace

import pytest
from pyVmomi import vim

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import TaskError, TaskTimeoutError, VSphereError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.tasks import DEFAULT_TASK_TIMEOUT, WaitPolicy, wait_for_task


def info(state, result=None, error=None, progress=None, cancelable=False):
    return SimpleNamespace(state=state, result=result, error=error, progress=progress, cancelable=cancelable)


class FakeTask:
    """Each read of ``info`` returns the next state (the last one repeats)."""

    def __init__(self, *infos):
        self._infos = list(infos)
        self.reads = 0
        self.cancelled = False
        self._moId = "task-7"

    @property
    def info(self):
        self.reads += 1
        item = self._infos.pop(0) if len(self._infos) > 1 else self._infos[0]
        if isinstance(item, Exception):
            raise item
        return item

    def CancelTask(self):
        self.cancelled = True


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def run(task, clock, what="vSphere task", timeout=DEFAULT_TASK_TIMEOUT, progress=None, **policy):
    return wait_for_task(task, what=what, timeout=timeout, progress=progress,
                         policy=WaitPolicy(sleep=clock.sleep, clock=clock.clock, **policy))


def test_returns_result_after_running_states_and_reports_progress():
    clock = FakeClock()
    task = FakeTask(info("queued"), info("running", progress=10), info("running", progress=10), info("running", progress=55),
                    info("success", result="snapshot-9"))
    seen = []
    assert run(task, clock, what="create snapshot", progress=seen.append, rng=lambda: 0.0) == "snapshot-9"
    assert seen == [10, 55, 100]
    assert task.reads == 5
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8]


def test_backoff_doubles_to_the_cap_and_jitter_only_shortens():
    clock = FakeClock()
    task = FakeTask(*([info("running")] * 9 + [info("success", result=1)]))
    run(task, clock, rng=lambda: 0.0)
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0, 2.0]
    clock = FakeClock()
    task = FakeTask(*([info("running")] * 3 + [info("success", result=1)]))
    run(task, clock, rng=lambda: 1.0, jitter=0.5)
    assert clock.sleeps == [0.05, 0.1, 0.2]


def test_error_state_raises_task_error_with_fault_name_and_localized_message():
    fault = vim.fault.FileNotFound(msg="File [LocalDS_0] vm1/vm1.vmx was not found", file="[LocalDS_0] vm1/vm1.vmx")
    task = FakeTask(info("running"), info("error", error=fault))
    with pytest.raises(TaskError) as caught:
        run(task, FakeClock(), what="power on VM web01")
    assert caught.value.fault == "FileNotFound"
    assert str(caught.value) == "Power on VM web01 failed: File [LocalDS_0] vm1/vm1.vmx was not found (FileNotFound)."
    assert not isinstance(caught.value, TaskTimeoutError)


def test_error_message_is_redacted():
    fault = vim.fault.InvalidState(msg="bad state, cookie=abc123def")
    with pytest.raises(TaskError) as caught:
        run(FakeTask(info("error", error=fault)), FakeClock(), what="x")
    assert "abc123def" not in str(caught.value)


def test_timeout_raises_and_cancels_cancelable_task():
    clock = FakeClock()
    task = FakeTask(info("running", cancelable=True))
    with pytest.raises(TaskTimeoutError) as caught:
        run(task, clock, timeout=5, what="remove snapshot blockvault-r1", rng=lambda: 0.0)
    assert task.cancelled
    assert caught.value.fault == "Timeout"
    assert str(caught.value).startswith("Remove snapshot blockvault-r1 did not finish within 5 seconds (task task-7, last state running).")
    assert sum(clock.sleeps) == pytest.approx(5.0)
    assert max(clock.sleeps) <= 2.0


def test_timeout_does_not_cancel_when_not_cancelable():
    task = FakeTask(info("running", cancelable=False))
    with pytest.raises(TaskTimeoutError):
        run(task, FakeClock(), timeout=1)
    assert not task.cancelled


def test_already_finished_task_needs_no_sleep():
    clock = FakeClock()
    assert run(FakeTask(info("success", result=None)), clock) is None
    assert clock.sleeps == []


def test_a_few_dropped_connections_while_polling_are_retried():
    task = FakeTask(info("running"), ConnectionResetError(104, "reset"), ConnectionResetError(104, "reset"), info("success", result=5))
    assert run(task, FakeClock(), rng=lambda: 0.0) == 5


def test_too_many_dropped_connections_raise_a_vsphere_error():
    task = FakeTask(ConnectionResetError(104, "Connection reset by peer"))
    clock = FakeClock()
    with pytest.raises(VSphereError) as caught:
        run(task, clock, what="remove snapshot blockvault-r1", max_poll_errors=2, rng=lambda: 0.0)
    assert str(caught.value).startswith("Lost contact with vCenter while waiting for remove snapshot blockvault-r1 (task task-7)")
    assert task.reads == 3


def test_vsphere_faults_while_polling_propagate():
    task = FakeTask(vim.fault.NotAuthenticated(msg="session gone"))
    with pytest.raises(vim.fault.NotAuthenticated):
        run(task, FakeClock())
