"""ops.cancel: the Cancellation (first reason wins, messages, cooperative and interruptible sections, signals), the
controller watch over a fake /proc, the lease (renewal, arming, expiry, an orphaned poller) and the status file of a
cancelled run. The runs cancelled end to end through ansible-runner are tests/integration/test_cancel.py."""
import json
import os
import signal
import threading

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import CancelledError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import cancel
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.cancel import (
    CONTROLLER_GONE, LEASE_EXPIRED, Cancellation, ControllerWatch, LeaseWatch, ansible_ancestors, remove_lease,
    renew_lease)
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.status_view import status_view
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.progress import RunProgress, StatusFile, read_status


# -- the Cancellation -----------------------------------------------------------------------------------------

def test_the_first_reason_wins_and_names_the_error():
    cancellation = Cancellation()
    assert not cancellation.requested and cancellation.describe() is None
    cancellation.check()                                    # nothing requested: no error
    assert cancellation.request("SIGTERM") is True
    assert cancellation.request(CONTROLLER_GONE, "process 12 ended") is False
    assert cancellation.event.is_set()
    with pytest.raises(CancelledError) as caught:
        cancellation.check("Run r1")
    assert str(caught.value) == "Run r1 was cancelled by SIGTERM."
    assert caught.value.cancelled_by == "SIGTERM"
    assert caught.value.to_dict()["cancelled_by"] == "SIGTERM"


@pytest.mark.parametrize("reason, detail, text", [
    (CONTROLLER_GONE, "process 12 of the ansible run that started this module has ended",
     "The run was cancelled because the job that started it is gone (process 12 of the ansible run that started "
     "this module has ended). Nothing was committed."),
    (LEASE_EXPIRED, "the lease s.json.lease was last renewed 40 s ago; it is valid for 18 s",
     "The run was cancelled because its lease expired (the job that started it stopped polling it) (the lease "
     "s.json.lease was last renewed 40 s ago; it is valid for 18 s). Nothing was committed."),
    ("SIGHUP", None, "The run was cancelled by SIGHUP. Nothing was committed."),
])
def test_each_reason_has_its_message(reason, detail, text):
    cancellation = Cancellation()
    cancellation.request(reason, detail)
    error = cancellation.error(outcome="Nothing was committed.")
    assert (str(error), error.cancelled_by) == (text, reason)


def test_a_cancelled_error_of_a_failing_run_has_no_cancelled_by():
    error = CancelledError("The transfer was cancelled because disk 2000 failed first.")
    assert error.cancelled_by is None and "cancelled_by" not in error.to_dict()


def send(number):
    """A signal to the process, as the kernel hands it to the one thread that takes it (the run blocks it in the
    others; pytest-xdist's threads, started before, do not, so the test cannot kill the whole process)."""
    (taker,) = [thread for thread in threading.enumerate() if thread.name == "bv-signals"]
    signal.pthread_kill(taker.ident, number)


def test_a_signal_in_an_interruptible_section_raises_where_the_main_thread_waits():
    cancellation = Cancellation()
    cancellation.install_signal_handlers()
    never = threading.Event()
    try:
        with pytest.raises(CancelledError) as caught:
            with cancellation.interruptible():
                send(signal.SIGTERM)
                never.wait(60)          # interrupted by the cancel long before
    finally:
        cancellation.restore_signal_handlers()
    assert str(caught.value) == ("The run was cancelled by SIGTERM. It stopped where it was and released what it held "
                                 "on the way out.")


def test_a_signal_in_a_cooperative_section_only_sets_the_event():
    cancellation = Cancellation()
    cancellation.install_signal_handlers()
    try:
        with cancellation.cooperative():
            send(signal.SIGINT)
            assert cancellation.event.wait(60)
            with pytest.raises(CancelledError, match="^The run was cancelled by SIGINT.$"):
                cancellation.check()
    finally:
        cancellation.restore_signal_handlers()
    assert cancellation.cancelled_by == "SIGINT"


def test_an_interruptible_section_entered_after_a_cancel_raises_at_once():
    cancellation = Cancellation()
    cancellation.request(LEASE_EXPIRED)
    with pytest.raises(CancelledError):
        with cancellation.interruptible("The prune"):
            pytest.fail("entered a section after the cancel")


def test_a_watch_that_finds_its_job_gone_requests_the_cancel():
    cancellation = Cancellation(interval=0.01)
    answers = iter([None, None, (CONTROLLER_GONE, "process 7 has ended")])
    unwatch = cancellation.watch(lambda: next(answers))
    try:
        assert cancellation.event.wait(60)
    finally:
        unwatch()
        cancellation.close()
    assert (cancellation.cancelled_by, cancellation.detail) == (CONTROLLER_GONE, "process 7 has ended")


# -- the controller watch over a fake /proc ------------------------------------------------------------------

class FakeProc:
    """/proc of a few processes: {pid: (state, ppid, start_time, argv)}; ``read`` serves stat and cmdline."""

    def __init__(self, processes):
        self.processes = dict(processes)

    def read(self, path):
        parts = path.split("/")
        if parts[2] not in ("self", "sys") and int(parts[2]) in self.processes:
            state, ppid, start, argv = self.processes[int(parts[2])]
            if parts[3] == "stat":
                fields = [state, str(ppid)] + ["0"] * 17 + [str(start)] + ["0"] * 5
                return ("%s (python) %s" % (parts[2], " ".join(fields))).encode()
            return b"\0".join(arg.encode() for arg in argv) + b"\0"
        raise FileNotFoundError(path)


PLAYBOOK = ["/usr/bin/python3", "/usr/bin/ansible-playbook", "site.yml"]
# the module (100) <- sh (90) <- sh (80) <- ansible's worker (70) <- ansible-playbook (60) <- a shell (50)
DIRECT = {90: ("S", 80, 900, ["/bin/sh", "-c", "python3 AnsiballZ_vm_backup.py"]),
          80: ("S", 70, 800, ["/bin/sh", "-c", "/bin/sh -c 'python3 AnsiballZ_vm_backup.py && sleep 0'"]),
          70: ("S", 60, 700, PLAYBOOK), 60: ("S", 50, 600, PLAYBOOK), 50: ("S", 1, 500, ["bash"])}


def test_the_ancestors_end_at_ansible_playbook():
    assert ansible_ancestors(90, FakeProc(DIRECT).read) == [(90, 900), (80, 800), (70, 700), (60, 600)]


def test_a_module_under_async_has_no_ansible_ancestor():
    detached = {90: ("S", 80, 900, ["python3", "AnsiballZ_async_wrapper.py", "j1", "86400"]),
                80: ("S", 1, 800, ["python3", "AnsiballZ_async_wrapper.py", "j1", "86400"])}
    assert ansible_ancestors(90, FakeProc(detached).read) == []


@pytest.mark.parametrize("change", [
    lambda procs: procs.pop(60),                                  # ansible-playbook killed and reaped
    lambda procs: procs.__setitem__(60, ("Z", 50, 600, [])),      # killed, not reaped yet
    lambda procs: procs.__setitem__(60, ("S", 50, 601, ["vim"])),  # its pid taken by another process
])
def test_the_end_of_ansible_playbook_is_the_controller_gone(change):
    proc = FakeProc(DIRECT)
    watch = ControllerWatch(ansible_ancestors(90, proc.read), proc.read)
    assert watch() is None
    change(proc.processes)
    assert watch() == (CONTROLLER_GONE, "process 60 of the ansible run that started this module has ended")


# -- leases ---------------------------------------------------------------------------------------------------

def write_status(path, run_id="r1", state="running"):
    path.write_text(json.dumps({"format": "blockvault-status", "version": 1, "run_id": run_id, "state": state}))


def test_a_lease_is_renewed_for_a_running_run_only(tmp_path):
    status = tmp_path / "s.json"
    assert renew_lease(status, 30) is None                  # no status file yet
    write_status(status, state="succeeded")
    assert renew_lease(status, 30) is None and not (tmp_path / "s.json.lease").exists()
    write_status(status)
    document = renew_lease(status, 30, clock=lambda: 1796400000.0)
    assert json.loads((tmp_path / "s.json.lease").read_text()) == document
    assert {key: document[key] for key in ("format", "version", "run_id", "valid_seconds", "renewed")} == {
        "format": "blockvault-lease", "version": 1, "run_id": "r1", "valid_seconds": 30,
        "renewed": "2026-12-04T16:00:00Z"}
    assert remove_lease(status, "another run") is False and remove_lease(status, "r1") is True
    assert not (tmp_path / "s.json.lease").exists()


def lease(tmp_path, run_id="r1", valid=18, mtime=1000.0, controller=None):
    path = tmp_path / "s.json.lease"
    path.write_text(json.dumps({"format": "blockvault-lease", "version": 1, "run_id": run_id, "valid_seconds": valid,
                                "renewed": "2026-12-04T12:00:00Z", "controller": controller}))
    os.utime(path, (mtime, mtime))


def test_a_lease_arms_the_watch_once_renewed_for_this_run_and_expires(tmp_path):
    now = [1000.0]
    watch = LeaseWatch(tmp_path / "s.json", "r1", started=1000.0, clock=lambda: now[0])
    assert watch() is None and not watch.armed               # no lease: nobody polls, nothing to watch
    lease(tmp_path, run_id="r0", mtime=1005.0)
    assert watch() is None and not watch.armed               # an earlier run's lease
    lease(tmp_path, mtime=990.0)
    assert watch() is None and not watch.armed               # renewed before this run started
    lease(tmp_path, mtime=1002.0)
    now[0] = 1010.0
    assert watch() is None and watch.armed
    now[0] = 1020.0
    assert watch() is None                                   # 18 s old: still valid
    now[0] = 1021.0
    assert watch() == (LEASE_EXPIRED, "the lease %s was last renewed 19 s ago; it is valid for 18 s" % watch.path)


def test_an_armed_lease_that_disappears_expires_too(tmp_path):
    now = [1003.0]
    watch = LeaseWatch(tmp_path / "s.json", "r1", started=1000.0, clock=lambda: now[0])
    lease(tmp_path, mtime=1002.0)
    assert watch() is None and watch.armed
    os.unlink(watch.path)
    assert watch() is None
    now[0] = 1030.0
    assert watch() == (LEASE_EXPIRED, "the lease %s is gone and was last renewed 28 s ago" % watch.path)


def test_a_lease_names_the_controller_whose_end_cancels_at_once(tmp_path):
    machine = cancel.machine_id()
    own = cancel.process_stat(os.getpid())
    watch = LeaseWatch(tmp_path / "s.json", "r1", started=1000.0, clock=lambda: 1003.0)
    lease(tmp_path, mtime=1002.0, controller={"machine": machine, "pid": os.getpid(), "start_time": own[2]})
    assert watch() is None                                   # the controller lives
    lease(tmp_path, mtime=1002.0, controller={"machine": machine, "pid": os.getpid(), "start_time": own[2] + 1})
    assert watch() == (CONTROLLER_GONE, "the ansible process %d that polls this run has ended" % os.getpid())
    lease(tmp_path, mtime=1002.0, controller={"machine": "another machine", "pid": 1, "start_time": 0, "orphaned": True})
    assert watch() is None                                   # another machine's pid says nothing here
    lease(tmp_path, mtime=1002.0, controller={"machine": machine, "pid": 70, "start_time": 0, "orphaned": True})
    assert watch() == (CONTROLLER_GONE, "the ansible-playbook process that polls this run has ended")


# -- the status file of a cancelled run ----------------------------------------------------------------------

def test_a_cancelled_run_ends_cancelled_with_why(tmp_path):
    path = tmp_path / "status.json"
    progress = RunProgress(run_id="r1", vm="web01")
    error = CancelledError("Run r1 of VM web01, in phase transfer, was cancelled by SIGTERM.", cancelled_by="SIGTERM")
    with pytest.raises(CancelledError):
        with StatusFile(path, progress):
            progress.set_phase("transfer")
            raise error
    status = read_status(path)
    assert (status["state"], status["cancelled_by"], status["phase"]) == ("cancelled", "SIGTERM", "transfer")
    assert status["last_error"] == {"message": str(error), "class": "CancelledError"}
    assert status_view(status)["progress_line"] == (
        "cancelled in transfer: nothing transferred; error: Run r1 of VM web01, in phase transfer, was cancelled by "
        "SIGTERM.")


def test_a_run_stopped_by_its_own_failure_ends_failed(tmp_path):
    path = tmp_path / "status.json"
    with pytest.raises(CancelledError):
        with StatusFile(path, RunProgress(run_id="r1")):
            raise CancelledError("The transfer stopped: disk 2000 failed first.")
    status = read_status(path)
    assert status["state"] == "failed" and "cancelled_by" not in status


def test_a_cancel_is_not_swallowed_by_a_library_that_retries_on_any_exception():
    # botocore takes any exception raised during an S3 request for a connection error and retries the request: a
    # cancel raised there as an Exception was retried away, and a prune or validation on S3 went on to its end
    cancellation = Cancellation()
    cancellation.install_signal_handlers()
    never = threading.Event()
    retried = []

    def request_with_retries():
        for attempt in range(3):
            try:
                if attempt == 0:
                    send(signal.SIGTERM)
                never.wait(60 if attempt == 0 else 0.01)
                return "the request's answer"
            except Exception as exc:  # pylint: disable=broad-except  # what the library does
                retried.append(exc)
        return None

    try:
        with pytest.raises(CancelledError, match="^The run was cancelled by SIGTERM. It stopped where it was"):
            with cancellation.interruptible():
                request_with_retries()
    finally:
        cancellation.restore_signal_handlers()
    assert retried == []
