"""Repository locks as leases: stale after stale_after whatever the host, and fencing of every index and the
manifest (injected clocks: a test moves the owner's monotonic clock as a SIGSTOP would)."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import lease
from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, LeaseLostError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import BackendWrapper
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.locks import LockSettings, _refreshed_epoch

from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import MIB, make_repo, manifest_for, reopen


@pytest.fixture
def backend(tmp_path):
    """Local only: the lease rules do not depend on the backend (the conformance tests run locks on S3 too)."""
    return open_backend(str(tmp_path / "repo"))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def repo_with_clock(backend):
    repo = make_repo(backend)
    settings = repo.lock_settings
    settings.refresh_interval, settings.stale_after, settings.skew_margin = 3600, 120, 40  # heartbeat: by hand only
    clock = Clock()
    repo.locks.clock = clock
    return repo, clock


def test_lock_settings_follow_the_default_lease_timings():
    assert (LockSettings().refresh_interval, LockSettings().stale_after, LockSettings().skew_margin) == (20.0, 120.0, 40.0)
    previous = lease.set_default_timings(lease.LeaseTimings(0.5, 6, 2))
    try:
        assert (LockSettings().refresh_interval, LockSettings().stale_after, LockSettings().skew_margin) == (0.5, 6, 2)
    finally:
        lease.set_default_timings(previous)


def test_timings_that_cannot_work_are_a_configuration_error(backend):
    repo = make_repo(backend)
    repo.lock_settings.skew_margin = repo.lock_settings.stale_after
    with pytest.raises(ConfigurationError) as refused:
        repo.begin_backup("vm-a", "r")
    assert str(refused.value) == "The lock timings do not work: skew_margin (60.0 s) must be shorter than stale_after (60.0 s)."


def test_another_host_takes_a_lock_for_stale_after_stale_after_seconds(backend):
    repo = repo_with_clock(backend)[0]
    with repo.begin_backup("vm-a", "r"):
        lock = dict(repo.locks.list_locks()[0], host="another-host", machine="another-machine")
        written = _refreshed_epoch(lock)
        assert repo.locks.is_stale(lock, now=written + 120) is False
        assert repo.locks.is_stale(lock, now=written + 120.5) is True


def test_a_string_refreshed_epoch_is_read_from_refreshed(backend):
    repo = repo_with_clock(backend)[0]
    lock = {"refreshed": "2026-12-04T10:00:00.000000Z", "refreshed_epoch": "not a number", "host": "h"}
    assert repo.locks.is_stale(lock, now=1796378400.0 + 119) is False  # 2026-12-04T10:00:00Z
    assert repo.locks.is_stale(lock, now=1796378400.0 + 121) is True


def test_no_index_is_written_after_the_deadline(backend):
    repo, clock = repo_with_clock(backend)
    with pytest.raises(LeaseLostError) as lost:
        with repo.begin_backup("vm-a", "r") as session:
            clock.now += 80.5  # stopped longer than stale_after - skew_margin
            session.add_disk_index("2000", DiskIndex(MIB, MIB))
    assert str(lost.value).startswith(
        "The shared lock for backup of %s on %s was lost (not renewed for 80s, longer than the 80s its owner may write "
        "after a renewal); stopping before writing anything that depends on it." % (repo.vm_tag("vm-a"), backend.location))
    assert backend.list("indexes/") == [] and backend.list("locks/") == []


def test_the_heartbeat_keeps_a_long_backup_valid(backend):
    repo, clock = repo_with_clock(backend)
    with repo.begin_backup("vm-a", "r") as session:
        held = session._lock
        for _round in range(5):
            clock.now += 70
            assert held.refresh() is True
        session.add_disk_index("2000", DiskIndex(MIB, MIB))
        rp = session.commit(manifest_for("vm-a", {"2000": MIB}))
    assert [point.id for point in repo.list_restore_points()] == [rp.id]


class StallingBackend(BackendWrapper):
    """Moves the owner's clock while a manifest is written: the process stalled between its check and its write."""

    def __init__(self, inner, clock, stall):
        super().__init__(inner)
        self.clock, self.stall = clock, stall

    def put(self, name, data, exclusive=False):
        result = super().put(name, data, exclusive=exclusive)
        if name.startswith("manifests/"):
            self.clock.now += self.stall
        return result


def test_a_manifest_whose_write_returned_after_the_deadline_is_withdrawn(backend):
    repo, clock = repo_with_clock(backend)
    stalled = reopen(repo, StallingBackend(backend, clock, stall=81))
    stalled.lock_settings.refresh_interval, stalled.lock_settings.stale_after, stalled.lock_settings.skew_margin = 3600, 120, 40
    stalled.locks.clock = clock
    with pytest.raises(LeaseLostError) as lost:
        with stalled.begin_backup("vm-a", "r") as session:
            session.add_disk_index("2000", DiskIndex(MIB, MIB))
            rp_id = session.restore_point_id
            session.commit(manifest_for("vm-a", {"2000": MIB}))
    assert str(lost.value).startswith(
        "The shared lock for backup of %s on %s was lost (not renewed for 81s, longer than the 80s its owner may write "
        "after a renewal); stopping before writing anything that depends on it. The manifest of restore point %s was "
        "written meanwhile and was deleted again." % (repo.vm_tag("vm-a"), backend.location, rp_id))
    assert repo.list_restore_points() == []


def test_a_manifest_written_within_the_deadline_stays(backend):
    repo, clock = repo_with_clock(backend)
    stalled = reopen(repo, StallingBackend(backend, clock, stall=79))
    stalled.lock_settings.refresh_interval, stalled.lock_settings.stale_after, stalled.lock_settings.skew_margin = 3600, 120, 40
    stalled.locks.clock = clock
    with stalled.begin_backup("vm-a", "r") as session:
        session.add_disk_index("2000", DiskIndex(MIB, MIB))
        rp = session.commit(manifest_for("vm-a", {"2000": MIB}))
    assert [point.id for point in repo.list_restore_points()] == [rp.id]


class Fence:
    """A fence as a snapshot lease is one: ensure_valid renews (counted), check_valid judges."""

    def __init__(self):
        self.valid, self.ensured, self.checked = True, 0, 0

    def ensure_valid(self):
        self.ensured += 1
        self.check_valid()

    def check_valid(self):
        self.checked += 1
        if not self.valid:
            raise LeaseLostError("The snapshot's lease was lost.")


def test_every_fence_guards_each_index_and_the_manifest(backend):
    repo = repo_with_clock(backend)[0]
    fence = Fence()
    with pytest.raises(LeaseLostError, match="The snapshot's lease was lost."):
        with repo.begin_backup("vm-a", "r") as session:
            session.add_fence(fence)
            session.add_disk_index("2000", DiskIndex(MIB, MIB))
            assert (fence.ensured, fence.checked) == (1, 1)
            fence.valid = False
            session.commit(manifest_for("vm-a", {"2000": MIB}))
    assert repo.list_restore_points() == [] and backend.list("indexes/") == []


class LosableFence(Fence):
    """A fence that tells when it is lost, as a snapshot lease does."""

    def __init__(self):
        super().__init__()
        self.callbacks = []

    def on_lost(self, callback):
        self.callbacks.append(callback)


def test_on_lost_calls_back_once_whichever_lease_is_lost_first(backend):
    repo, clock = repo_with_clock(backend)
    reasons = []
    fence = LosableFence()
    with repo.begin_backup("vm-a", "r") as session:
        session.add_fence(fence)
        session.on_lost(reasons.append)
        clock.now += 81
        assert session._lock.refresh() is False
        fence.callbacks[0]("the snapshot was removed")
    assert reasons == ["not renewed for 81s, longer than the 80s its owner may write after a renewal"]


def test_on_lost_is_silent_when_the_session_ends_normally(backend):
    repo = repo_with_clock(backend)[0]
    reasons = []
    with repo.begin_backup("vm-a", "r") as session:
        session.on_lost(reasons.append)
        session.add_disk_index("2000", DiskIndex(MIB, MIB))
        session.commit(manifest_for("vm-a", {"2000": MIB}))
    with repo.begin_backup("vm-a", "r2") as session:
        session.on_lost(reasons.append)
    assert reasons == []
