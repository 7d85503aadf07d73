"""Backup snapshots: naming, quiesce fallback, the context manager's error handling, orphans judged by their lease,
the lease's renewal and fencing (injected clocks)."""
import contextlib
import datetime
import logging
import os
import socket
from types import SimpleNamespace

import pytest
from pyVmomi import vim, vmodl

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import SnapshotError, SnapshotLeaseLostError, VddkNotFoundError
from ansible_collections.blockvault.vsphere.plugins.module_utils.lease import LeaseTimings, machine_identity
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import snapshot_lease
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import snapshots as snaps


class FakeClock:
    """vCenter's clock (``wall``) and this process's monotonic clock, moved by the tests only."""

    def __init__(self):
        self.now = 1_800_000_000.0
        self.mono = 500.0

    def wall(self):
        return self.now

    def monotonic(self):
        return self.mono

    def advance(self, seconds):
        self.now += seconds
        self.mono += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """Every snapshot lease of these tests reads FakeClock (no vCenter)."""
    fake = FakeClock()
    monkeypatch.setattr(snaps, "ServerClock", lambda vm: fake)
    return fake


def ok(result=None):
    return SimpleNamespace(info=SimpleNamespace(state="success", result=result, error=None, progress=None, cancelable=False))


def failed(fault):
    return SimpleNamespace(info=SimpleNamespace(state="error", result=None, error=fault, progress=None, cancelable=False))


class FakeSnapshot:
    def __init__(self, vm, moref, remove_fault=None):
        self.vm, self._moId, self.remove_fault = vm, moref, remove_fault
        self.call_faults = []          # raised by the call itself, as a SOAP fault is

    def RemoveSnapshot_Task(self, removeChildren, consolidate):
        self.vm.log.append(("remove", self._moId, removeChildren, consolidate))
        for fault in self.call_faults:
            raise fault
        if self.remove_fault:
            return failed(self.remove_fault)
        self.vm.tree = [t for t in self.vm.tree if t.snapshot is not self]
        return ok()

    def RenameSnapshot(self, name=None, description=None):
        self.vm.log.append(("rename", self._moId))
        self.vm.on_rename()
        for tree in self.vm.tree:
            if tree.snapshot is self:
                tree.description = description if description else tree.description
                return
        raise vmodl.fault.ManagedObjectNotFound(msg="The object has already been deleted or has not been completely created")


class FakeVM:
    def __init__(self, names=(), quiesce_fault=None, create_fault=None, remove_fault=None):
        self.name = "web01"
        self.log = []
        self.counter = 100
        self.quiesce_fault, self.create_fault, self.remove_fault = quiesce_fault, create_fault, remove_fault
        self.tree = []
        self.on_rename = lambda: None
        for name in names:
            self._add(name)

    def _add(self, name, description=""):
        self.counter += 1
        snap = FakeSnapshot(self, "snapshot-%d" % self.counter, self.remove_fault)
        self.tree.append(SimpleNamespace(name=name, snapshot=snap, description=description, createTime=None, quiesced=False,
                                         childSnapshotList=[]))
        return snap

    @property
    def snapshot(self):
        # nest the second snapshot under the first, like a real chain
        if not self.tree:
            return None
        roots = [SimpleNamespace(**vars(self.tree[0]))]
        roots[0].childSnapshotList = self.tree[1:]
        return SimpleNamespace(rootSnapshotList=roots)

    def CreateSnapshot_Task(self, name, description, memory, quiesce):
        self.log.append(("create", name, memory, quiesce, description))
        if quiesce and self.quiesce_fault:
            return failed(self.quiesce_fault)
        if self.create_fault:
            return failed(self.create_fault)
        return ok(self._add(name, description))


def test_create_names_describes_and_excludes_memory():
    vm = FakeVM()
    taken = snaps.create_backup_snapshot(vm, "20260101T000000-ab12", quiesce=True)
    assert (taken.name, taken.moref, taken.quiesced, taken.quiesce_error) == ("blockvault-20260101T000000-ab12", "snapshot-101", True, None)
    kind, name, memory, quiesce, description = vm.log[0]
    assert (kind, name, memory, quiesce) == ("create", "blockvault-20260101T000000-ab12", False, True)
    assert "blockvault" in description and "20260101T000000-ab12" in description


def test_quiesce_failure_without_permission_to_fall_back_raises():
    vm = FakeVM(quiesce_fault=vim.fault.ApplicationQuiesceFault(msg="An error occurred while quiescing the virtual machine."))
    with pytest.raises(SnapshotError) as caught:
        snaps.create_backup_snapshot(vm, "r1", quiesce=True)
    assert str(caught.value).startswith("Could not take a quiesced snapshot of VM web01: Create quiesced snapshot blockvault-r1 of "
                                        "VM web01 failed: An error occurred while quiescing the virtual machine (ApplicationQuiesceFault).")
    assert "crash-consistent" in str(caught.value)
    assert [entry[0] for entry in vm.log] == ["create"]


def test_quiesce_failure_falls_back_to_crash_consistent_when_allowed(caplog):
    vm = FakeVM(quiesce_fault=vim.fault.ToolsUnavailable(msg="VMware Tools is not running"))
    with caplog.at_level(logging.WARNING):
        taken = snaps.create_backup_snapshot(vm, "r1", quiesce=True, allow_crash_consistent=True)
    assert taken.quiesced is False
    assert "VMware Tools is not running (ToolsUnavailable)" in taken.quiesce_error
    assert [(e[0], e[3]) for e in vm.log] == [("create", True), ("create", False)]
    assert "taking a crash-consistent snapshot instead" in caplog.text


def test_crash_consistent_failure_is_a_snapshot_error():
    vm = FakeVM(create_fault=vim.fault.InsufficientDisks(msg="no space"))
    with pytest.raises(SnapshotError, match=r"Create crash-consistent snapshot blockvault-r1 of VM web01 failed: no space"):
        snaps.create_backup_snapshot(vm, "r1")


def test_context_manager_removes_with_consolidation():
    vm = FakeVM()
    with snaps.backup_snapshot(vm, "r1") as taken:
        assert [e.name for e in snaps.list_snapshots(vm)] == ["blockvault-r1"]
    assert vm.log[-1] == ("remove", taken.moref, False, True)
    assert snaps.list_snapshots(vm) == []


def test_body_error_is_preserved_when_removal_also_fails(caplog):
    vm = FakeVM(remove_fault=vim.fault.TaskInProgress(msg="busy"))
    with caplog.at_level(logging.ERROR), pytest.raises(KeyError, match="body failed"):
        with contextlib.ExitStack() as stack:
            stack.enter_context(snaps.backup_snapshot(vm, "r1"))
            raise KeyError("body failed")
    assert "remove backup snapshot blockvault-r1 of VM web01 failed after an earlier error" in caplog.text
    assert "busy (TaskInProgress)" in caplog.text


def test_removal_failure_after_a_good_body_raises():
    vm = FakeVM(remove_fault=vim.fault.TaskInProgress(msg="busy"))
    with pytest.raises(SnapshotError) as caught:
        with snaps.backup_snapshot(vm, "r1"):
            pass
    assert str(caught.value).startswith("Remove backup snapshot blockvault-r1 of VM web01 failed: busy (TaskInProgress).")
    assert (caught.value.vm, caught.value.run_id, caught.value.phase) == ("web01", "r1", "snapshot")


def test_orphans_are_blockvault_snapshots_of_other_runs():
    vm = FakeVM(names=["before upgrade", "blockvault-old1", "blockvault-cur", "blockvault-old2", "blockvault"])
    assert [e.name for e in snaps.user_snapshots(vm)] == ["before upgrade", "blockvault"]
    assert [e.name for e in snaps.find_orphan_snapshots(vm, ["cur"])] == ["blockvault-old1", "blockvault-old2"]
    assert [e.path for e in snaps.list_snapshots(vm)][:2] == ["before upgrade", "before upgrade/blockvault-old1"]
    assert snaps.remove_orphan_snapshots(vm, ["cur"]) == ["blockvault-old1", "blockvault-old2"]
    assert [e.name for e in snaps.list_snapshots(vm)] == ["before upgrade", "blockvault-cur", "blockvault"]


def test_orphan_removal_tries_all_then_reports_failures():
    vm = FakeVM(names=["blockvault-a", "blockvault-b"], remove_fault=vim.fault.InvalidState(msg="locked"))
    with pytest.raises(SnapshotError) as caught:
        snaps.remove_orphan_snapshots(vm)
    assert [e[1] for e in vm.log if e[0] == "remove"] == ["snapshot-101", "snapshot-102"]
    assert str(caught.value).startswith("Could not remove 2 snapshot(s) left by earlier blockvault runs on VM web01: blockvault-a (")


def gone(moref):
    """The fault vCenter answers a call on a snapshot removed from outside with."""
    return vmodl.fault.ManagedObjectNotFound(msg="The object 'vim.vm.Snapshot:%s' has already been deleted or has not been "
                                                 "completely created" % moref)


def test_a_snapshot_removed_from_outside_is_already_gone_not_a_failure():
    vm = FakeVM()
    removals = []
    with contextlib.ExitStack() as stack:      # the caller's stack: a raw fault leaving it gave AttributeError __context__
        taken = stack.enter_context(snaps.backup_snapshot(vm, "r1", on_removed=removals.append))
        taken.snapshot.call_faults.append(gone(taken.moref))
    assert removals == [snaps.SnapshotRemoval("blockvault-r1", "web01", "already_gone")]
    assert removals[0].describe() == "already_gone"
    assert removals[0].warning() == "the backup snapshot blockvault-r1 of VM web01 was already removed from outside"
    assert vm.log[-1] == ("remove", taken.moref, False, True)


def test_a_vanished_snapshot_without_a_listener_is_not_an_error_either():
    vm = FakeVM()
    with snaps.backup_snapshot(vm, "r1") as taken:
        taken.snapshot.call_faults.append(gone(taken.moref))
    assert vm.log[-1] == ("remove", taken.moref, False, True)


def test_a_task_that_finds_the_snapshot_gone_is_already_gone():
    vm = FakeVM(remove_fault=gone("snapshot-101"))
    assert snaps.remove_snapshot(vm._add("blockvault-x")) == "already_gone"
    assert snaps.remove_snapshot(FakeVM()._add("blockvault-y")) == "removed"


def test_another_removal_failure_after_the_commit_is_reported_left_with_its_reason():
    vm = FakeVM(remove_fault=vim.fault.TaskInProgress(msg="busy"))
    removals = []
    with snaps.backup_snapshot(vm, "r1", on_removed=removals.append):
        pass
    [removal] = removals
    assert removal.state == "left"
    assert removal.describe() == "left (Remove backup snapshot blockvault-r1 of VM web01 failed: busy (TaskInProgress).)"
    assert removal.warning() == (
        "the backup snapshot blockvault-r1 of VM web01 could not be removed (Remove backup snapshot blockvault-r1 of VM web01 "
        "failed: busy (TaskInProgress).); the restore point is committed, and the next backup of the VM removes the "
        "snapshot, or remove it in the vSphere client")


def test_a_fault_raised_by_the_call_becomes_a_snapshot_error_never_a_raw_fault():
    vm = FakeVM()
    with pytest.raises(SnapshotError) as caught:
        with contextlib.ExitStack() as stack:
            taken = stack.enter_context(snaps.backup_snapshot(vm, "r1"))
            taken.snapshot.call_faults.append(vim.fault.InvalidState(msg="the VM is being migrated"))
    assert str(caught.value).startswith("Remove backup snapshot blockvault-r1 of VM web01 failed: the VM is being migrated "
                                        "(InvalidState).")
    assert (caught.value.vm, caught.value.run_id) == ("web01", "r1")


# -- leases -----------------------------------------------------------------------------------------------------


TIMINGS = LeaseTimings(refresh_interval=20, stale_after=120, skew_margin=40)


def lease_of(vm, name):
    return snapshot_lease.LeaseInfo.parse(next(e for e in snaps.list_snapshots(vm) if e.name == name).description)


def leased_vm(clock, entries):
    """A VM with blockvault snapshots whose leases are (run, host, machine, pid, expires in s) tuples."""
    vm = FakeVM()
    for run, host, machine, pid, expires_in in entries:
        info = snapshot_lease.LeaseInfo(run_id=run, host=host, machine=machine, pid=pid, renewed=clock.now - 10,
                                        expires=clock.now + expires_in)
        vm._add("blockvault-" + run, snapshot_lease.with_lease("Made by blockvault for backup run %s." % run, info))
    return vm


def test_the_snapshot_is_created_with_a_lease_covering_its_creation(clock):
    vm = FakeVM()
    taken = snaps.create_backup_snapshot(vm, "r1")
    description = vm.log[0][4]
    assert description.splitlines()[0].startswith("Made by blockvault for backup run r1 (crash-consistent).")
    info = lease_of(vm, "blockvault-r1")
    assert (info.run_id, info.renewed, info.expires, info.machine) == ("r1", clock.now, clock.now + 120 + 600, machine_identity())
    assert taken.lease.check_valid() is None


def test_a_live_lease_of_another_run_is_left_alone_and_an_expired_one_removed(clock, caplog):
    vm = leased_vm(clock, [("other-repo", "proxy2", "m2", 4242, 30), ("killed", "proxy3", "m3", 4343, -1)])
    with caplog.at_level(logging.INFO):
        assert snaps.remove_orphan_snapshots(vm, ["cur"]) == ["blockvault-killed"]
    assert [e.name for e in snaps.list_snapshots(vm)] == ["blockvault-other-repo"]
    assert "leaving snapshot blockvault-other-repo of VM web01 alone: run other-repo on proxy2 (pid 4242) renews its " \
           "lease, valid 30 s more" in caplog.text
    assert "removing snapshot blockvault-killed of VM web01 left behind by an earlier blockvault run (its lease by run " \
           "killed on proxy3 expired 1 s ago)" in caplog.text


def test_a_lease_of_a_dead_process_of_this_machine_is_expired_at_once(clock):
    dead_pid = 2 ** 22 + 17  # above pid_max: no such process
    vm = leased_vm(clock, [("dead", socket.gethostname(), machine_identity(), dead_pid, 100),
                           ("alive", socket.gethostname(), machine_identity(), os.getpid(), 100)])
    judged = {leased.entry.name: (leased.expired, leased.why) for leased in snaps.leased_snapshots(vm)}
    assert judged["blockvault-dead"] == (True, "its run dead was process %d of this machine, which no longer exists" % dead_pid)
    assert judged["blockvault-alive"][0] is False


def test_an_unleased_snapshot_counts_as_dead_after_two_hours(clock):
    vm = FakeVM(names=["blockvault-young", "blockvault-old"])
    vm.tree[0].createTime = datetime.datetime.fromtimestamp(clock.now - 3600, tz=datetime.timezone.utc)
    vm.tree[1].createTime = datetime.datetime.fromtimestamp(clock.now - 7201, tz=datetime.timezone.utc)
    judged = [(leased.entry.name, leased.expired, leased.why) for leased in snaps.leased_snapshots(vm)]
    assert judged == [("blockvault-young", False, "it has no lease and was made 3600 s ago (taken for dead after 7200 s)"),
                      ("blockvault-old", True, "it has no lease and was made 7201 s ago")]


def test_renewal_moves_the_expiry_and_keeps_the_human_text(clock):
    vm = FakeVM()
    taken = snaps.create_backup_snapshot(vm, "r1", lease=snapshot_lease.SnapshotLease(clock, "r1", TIMINGS, "web01"))
    clock.advance(20)
    assert taken.lease.renew() is True
    info = lease_of(vm, "blockvault-r1")
    assert (info.renewed, info.expires) == (clock.now, clock.now + 120)
    assert vm.tree[0].description.splitlines()[0].startswith("Made by blockvault for backup run r1")
    assert len(vm.tree[0].description.splitlines()) == 2


def test_a_stalled_owner_never_renews_and_is_fenced(clock):
    vm = FakeVM()
    taken = snaps.create_backup_snapshot(vm, "r1", lease=snapshot_lease.SnapshotLease(clock, "r1", TIMINGS, "web01"))
    assert taken.lease.renew() is True
    before = vm.tree[0].description
    clock.advance(81)  # SIGSTOP longer than stale_after - skew_margin
    assert taken.lease.renew() is False and vm.tree[0].description == before
    with pytest.raises(SnapshotLeaseLostError) as lost:
        taken.lease.ensure_valid()
    assert str(lost.value) == (
        "The lease of backup snapshot blockvault-r1 of VM web01 was lost (not renewed for 81s, longer than the 80s its "
        "owner may write after a renewal): another run may have removed the snapshot, so nothing read from it is "
        "committed. Check the load of this host and its connection to vCenter, then run the backup again.")
    clock.advance(-81)  # even a clock that goes back cannot revive it
    assert taken.lease.renew() is False


def test_a_renewal_that_lands_after_the_deadline_loses_the_lease(clock):
    vm = FakeVM()
    taken = snaps.create_backup_snapshot(vm, "r1", lease=snapshot_lease.SnapshotLease(clock, "r1", TIMINGS, "web01"))
    assert taken.lease.renew() is True
    clock.advance(70)
    vm.on_rename = lambda: clock.advance(11)  # the process stalls inside RenameSnapshot
    assert taken.lease.renew() is False
    assert taken.lease.owner.lost_reason == ("a renewal completed 81s after the previous one, longer than the 80s its owner "
                                             "may write after a renewal")


def test_a_removed_snapshot_loses_the_lease_and_calls_back(clock):
    vm = FakeVM()
    taken = snaps.create_backup_snapshot(vm, "r1", lease=snapshot_lease.SnapshotLease(clock, "r1", TIMINGS, "web01"))
    reasons = []
    taken.lease.on_lost(reasons.append)
    snaps.remove_snapshot(taken.snapshot)
    assert taken.lease.renew() is False
    assert reasons == ["the snapshot was removed (The object has already been deleted or has not been completely created)"]


def test_adopting_refuses_a_live_lease_and_takes_over_an_expired_one(clock):
    vm = leased_vm(clock, [("live", "proxy2", "m2", 1, 30), ("killed", "proxy3", "m3", 2, -5)])
    live, killed = snaps.leased_snapshots(vm)
    with pytest.raises(SnapshotError) as refused:
        with snaps.adopted_snapshot(vm, live, "resumer"):
            pass
    assert str(refused.value).startswith("Snapshot blockvault-live of VM web01 cannot be taken over: run live on proxy2 "
                                         "(pid 1) renews its lease, valid 30 s more.")
    with snaps.adopted_snapshot(vm, killed, "resumer",
                                lease=snapshot_lease.SnapshotLease(clock, "resumer", TIMINGS, "web01")) as taken:
        info = lease_of(vm, "blockvault-killed")
        assert (taken.name, taken.run_id, info.run_id, info.expires) == ("blockvault-killed", "resumer", "resumer", clock.now + 120)
        assert vm.tree[1].description.splitlines()[0] == "Made by blockvault for backup run killed."
    assert [e.name for e in snaps.list_snapshots(vm)] == ["blockvault-live"]


def test_a_body_error_after_the_lease_lapsed_is_reported_as_the_lost_lease(clock):
    vm = FakeVM()
    with pytest.raises(SnapshotLeaseLostError) as lost:
        with snaps.backup_snapshot(vm, "r1", lease=snapshot_lease.SnapshotLease(clock, "r1", TIMINGS, "web01")) as taken:
            taken.lease.stop()  # the keeper renewed once, at once; a stopped process renews nothing more
            clock.advance(81)  # past stale_after - skew_margin
            raise VddkNotFoundError("The disk file is gone.")
    assert str(lost.value) == (
        "The lease of backup snapshot blockvault-r1 of VM web01 was lost (not renewed for 81s, longer than the 80s its "
        "owner may write after a renewal), so another run may have removed it; the run failed meanwhile: The disk file "
        "is gone. Nothing was committed. Check the load of this host and its connection to vCenter, then run the backup "
        "again.")
    assert isinstance(lost.value.__cause__, VddkNotFoundError) and snaps.list_snapshots(vm) == []


def test_a_body_error_within_the_lease_stays_the_error(clock):
    vm = FakeVM()
    with pytest.raises(SnapshotError, match="^something else$"):
        with snaps.backup_snapshot(vm, "r1", lease=snapshot_lease.SnapshotLease(clock, "r1", TIMINGS, "web01")):
            clock.advance(60)
            raise SnapshotError("something else")


def test_a_kept_snapshot_is_handed_over_for_the_next_run_to_adopt(clock):
    vm = FakeVM()
    with pytest.raises(KeyError):
        with snaps.backup_snapshot(vm, "r1", lease=snapshot_lease.SnapshotLease(clock, "r1", TIMINGS, "web01")) as taken:
            taken.lease.keep()  # e.g. cancelled with a checkpoint to resume from
            raise KeyError("cancelled")
    assert [e.name for e in snaps.list_snapshots(vm)] == ["blockvault-r1"]
    assert lease_of(vm, "blockvault-r1").expires == clock.now
    clock.advance(0.001)
    (kept,) = snaps.leased_snapshots(vm)
    assert kept.expired is True and kept.why == "its lease by run r1 on %s expired 0 s ago" % socket.gethostname()
    with snaps.adopted_snapshot(vm, kept, "r2", lease=snapshot_lease.SnapshotLease(clock, "r2", TIMINGS, "web01")):
        assert lease_of(vm, "blockvault-r1").run_id == "r2"
    assert snaps.list_snapshots(vm) == []


def test_a_failed_hand_over_leaves_the_lease_to_expire_by_itself(clock, caplog):
    vm = FakeVM()
    with caplog.at_level(logging.INFO):
        with snaps.backup_snapshot(vm, "r1", lease=snapshot_lease.SnapshotLease(clock, "r1", TIMINGS, "web01")) as taken:
            taken.lease.keep()
            taken.lease.stop()

            def refuse():
                raise vim.fault.TaskInProgress(msg="busy")
            vm.on_rename = refuse
    assert [e.name for e in snaps.list_snapshots(vm)] == ["blockvault-r1"]
    assert "handing over the lease of snapshot blockvault-r1 failed: busy\n" in caplog.text
    assert "keeping snapshot blockvault-r1 of VM web01 for the next run (its lease expires by itself)" in caplog.text
