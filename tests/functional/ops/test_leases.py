"""Snapshot leases and lock fencing against the lab (issue 11 defect 1, issue 19's leases).

Two backups of one VM into two repositories at once both succeed, each restore point byte-exact to its own
snapshot; a killed run of another host has its snapshot removed once its lease expired; a backup stopped
(SIGSTOP) past its lease while another run takes over never commits when it is continued.
"""
import os
import re
import signal
import threading
import time
import uuid

import pytest

from labkit.s3servers import PLAIN_BUCKET, moto_server  # noqa: F401  pylint: disable=unused-import

from ansible_collections.blockvault.vsphere.plugins.module_utils import lease
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import backup as ops_backup
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import BackupRequest, Endpoints, RunSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory, snapshots

from opslab import CHUNK, PASSPHRASE, sha256_file  # pylint: disable=import-error
from test_kill import chunk_objects, start_child, wait_for  # pylint: disable=import-error

pytestmark = pytest.mark.lab

ERRORS = "ansible_collections.blockvault.vsphere.plugins.module_utils.errors."
# the ways a frozen owner notices its lapsed lease when it runs again: no renewal began in time, one in flight when it
# froze finished late (plugins/module_utils/lease.py), or that renewal found its object removed by the run that took over
LAPSE_REASONS = ("(not renewed for |a renewal completed |the snapshot was removed \\(|its lock object was removed by "
                 "another host as stale)")

#: the leases of these tests: renewed every second, dead after 20 s, the owner stops writing 14 s after a renewal (a
#: loaded machine may delay one renewal by seconds: the owner must not lose its lease before the test stops it)
SHORT = lease.LeaseTimings(refresh_interval=1.0, stale_after=20.0, skew_margin=6.0)


@pytest.fixture
def short_leases():
    previous = lease.set_default_timings(SHORT)
    yield SHORT
    lease.set_default_timings(previous)


def s3_repository(server):
    settings = RepositorySettings(location="s3://%s/leases-%s" % (PLAIN_BUCKET, uuid.uuid4().hex), passphrase=PASSPHRASE,
                                  s3_endpoint_url=server.endpoint, region=server.region, access_key=server.access_key,
                                  secret_key=server.secret_key)
    Repository.create(open_backend(settings), chunk_size=CHUNK, passphrase=PASSPHRASE).close()
    return settings


def wait_until(condition, what, timeout=60, running=None):
    """Poll ``condition`` until true; AssertionError after ``timeout`` s or when ``running`` (a Thread) ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if running is not None and not running.is_alive():
            raise AssertionError("the run ended before %s" % what)
        if time.monotonic() > deadline:
            raise AssertionError("no %s after %d s" % (what, timeout))
        time.sleep(0.05)


def leased(env, name):
    """The LeasedSnapshot of snapshot ``name`` of lab-vm1 as a run judges it now, or None."""
    with env.session() as session:
        vm = inventory.find_vm(session, name="lab-vm1")
        return next((item for item in snapshots.leased_snapshots(vm) if item.entry.name == name), None)


def renewed_once(item):
    """True when a snapshot's lease was renewed since its creation (its lease is stale_after long, not the creation's)."""
    return item is not None and item.lease is not None and item.lease.expires - item.lease.renewed == SHORT.stale_after


def locks(env):
    repository = env.repository()
    try:
        return repository.list_locks()
    finally:
        repository.close()


def test_two_repositories_back_up_one_vm_at_once(env, moto_server):  # noqa: F811
    # the stand-in holds every read after the local run's first one until the offsite run has taken its snapshot
    # (after its orphan check): the two runs overlap however slow the machine is
    gate = env.tmp_path / "gate"
    gate.touch()
    env.knobs(gate=gate)
    offsite = s3_repository(moto_server)
    results, errors = {}, {}

    def run(name, endpoints, run_id):
        try:
            results[name] = ops_backup.backup_vm(BackupRequest(vm={"name": "lab-vm1"}, quiesce=False, run_id=run_id),
                                                 endpoints, RunSettings(status_file=str(env.tmp_path / ("%s.json" % run_id))))
        except Exception as exc:  # pylint: disable=broad-except  # reported by the assertion below
            errors[name] = exc

    local_run, offsite_run = "local-%s" % uuid.uuid4().hex[:8], "offsite-%s" % uuid.uuid4().hex[:8]
    local = threading.Thread(target=run, args=("local", env.endpoints, local_run))
    local.start()
    try:
        wait_until(lambda: "blockvault-" + local_run in env.blockvault_snapshots("lab-vm1"), "the local run's snapshot",
                   running=local)
        local_sums = env.checksums("lab-vm1", snapshot="blockvault-" + local_run)
        env.write("lab-vm1", 0, 3 * CHUNK + 512, 5000, seed=int(time.time()))  # the guest writes between the snapshots
        offsite_endpoints = Endpoints(repo=offsite, vsphere=env.vsphere, vddk=env.vddk)
        offsite_thread = threading.Thread(target=run, args=("offsite", offsite_endpoints, offsite_run))
        offsite_thread.start()
        wait_until(lambda: "blockvault-" + offsite_run in env.blockvault_snapshots("lab-vm1"), "the offsite run's snapshot",
                   running=offsite_thread)
        offsite_sums = env.checksums("lab-vm1", snapshot="blockvault-" + offsite_run)
        gate.unlink()
        offsite_thread.join(timeout=300)
    finally:
        if gate.exists():
            gate.unlink()
        local.join(timeout=300)
    assert errors == {}
    assert local_sums[0] != offsite_sums[0] and local_sums[1] == offsite_sums[1]
    assert env.blockvault_snapshots("lab-vm1") == []
    offsite_log = (env.tmp_path / ("%s.json.log" % offsite_run)).read_text()
    assert "leaving snapshot blockvault-%s of VM lab-vm1 alone: run %s on " % (local_run, local_run) in offsite_log

    for position, disk in enumerate(results["local"]["disks"]):
        assert sha256_file(env.restore_file(results["local"]["restore_point"]["id"], disk["key"])) == local_sums[position]
    env.repo = offsite
    for position, disk in enumerate(results["offsite"]["disks"]):
        assert sha256_file(env.restore_file(results["offsite"]["restore_point"]["id"], disk["key"])) == offsite_sums[position]


def test_a_killed_run_of_another_host_loses_its_snapshot_once_its_lease_expired(env, short_leases):
    killed_run = "pod-gone-%s" % uuid.uuid4().hex[:8]
    timings = [SHORT.refresh_interval, SHORT.stale_after, SHORT.skew_margin]
    child = start_child(env, killed_run, extra={"lease_timings": timings, "host": "awx-job-pod-7"})
    try:
        wait_for(lambda: len(locks(env)) == 1 and renewed_once(leased(env, "blockvault-" + killed_run)), child,
                 "the snapshot's first renewal")
    finally:
        os.kill(child.pid, signal.SIGKILL)  # as the deletion of the job's pod
        child.wait()
    # while its lease runs, a run that cannot tell a dead owner from a slow one leaves the snapshot alone
    assert leased(env, "blockvault-" + killed_run).expired is False
    wait_until(lambda: leased(env, "blockvault-" + killed_run).expired and locks(env)[0]["stale"], "the lease's end",
               timeout=3 * SHORT.stale_after)
    live = env.checksums("lab-vm1")
    result = env.backup("lab-vm1", status_file=str(env.tmp_path / "next.json"))
    assert env.blockvault_snapshots("lab-vm1") == []
    run_log = (env.tmp_path / "next.json.log").read_text()
    assert ("removing snapshot blockvault-%s of VM lab-vm1 left behind by an earlier blockvault run (its lease by run %s on "
            "awx-job-pod-7 expired " % (killed_run, killed_run)) in run_log
    for position, disk in enumerate(result["disks"]):
        assert sha256_file(env.restore_file(result["restore_point"]["id"], disk["key"])) == live[position]


def test_a_stopped_backup_never_commits_over_the_run_that_took_over(env, short_leases):
    stalled_run = "stalled-%s" % uuid.uuid4().hex[:8]
    marker = env.tmp_path / "stopped-before-commit"
    child = start_child(env, stalled_run, latency_us=20000,
                        extra={"lease_timings": [SHORT.refresh_interval, SHORT.stale_after, SHORT.skew_margin],
                               "host": "proxy-b", "stop_before_commit": str(marker)})
    try:
        wait_for(marker.exists, child, "the stop before the commit")
        stalled_rp = marker.read_text()
        wait_until(lambda: leased(env, "blockvault-" + stalled_run).expired and locks(env)[0]["stale"],
                   "the stopped run's lease to expire", timeout=3 * SHORT.stale_after)
        live = env.checksums("lab-vm1")
        taker = env.backup("lab-vm1", status_file=str(env.tmp_path / "taker.json"))  # takes over: lock stale, snapshot removed
        assert env.blockvault_snapshots("lab-vm1") == []
        os.kill(child.pid, signal.SIGCONT)
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0 and out == b""
    error = err.decode()
    assert ERRORS + "LeaseLostError: The shared lock for backup of " in error
    assert "was lost (not renewed for " in error and "stopping before writing anything that depends on it." in error
    assert env.restore_points() == [taker["restore_point"]["id"]] and stalled_rp != taker["restore_point"]["id"]
    for position, disk in enumerate(taker["disks"]):
        assert sha256_file(env.restore_file(taker["restore_point"]["id"], disk["key"])) == live[position]
    quick, full = env.validate()
    assert quick["ok"] and full["ok"] and quick["restore_points"] == 1


def test_a_backup_stopped_mid_transfer_past_its_lease_fails_without_committing(env, short_leases):
    stalled_run = "frozen-%s" % uuid.uuid4().hex[:8]
    child = start_child(env, stalled_run, latency_us=100000,
                        extra={"lease_timings": [SHORT.refresh_interval, SHORT.stale_after, SHORT.skew_margin],
                               "host": "proxy-c"})
    try:
        wait_for(lambda: len(chunk_objects(env)) >= 4, child, "4 stored chunks")
        os.kill(child.pid, signal.SIGSTOP)  # the execution node freezes mid-transfer
        wait_until(lambda: leased(env, "blockvault-" + stalled_run).expired and locks(env)[0]["stale"],
                   "the frozen run's lease to expire", timeout=3 * SHORT.stale_after)
        live = env.checksums("lab-vm1")
        taker = env.backup("lab-vm1", status_file=str(env.tmp_path / "taker.json"))
        os.kill(child.pid, signal.SIGCONT)
        out, err = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0 and out == b"", err
    raised = [line for line in err.decode().splitlines() if line.startswith(ERRORS)]
    assert raised, err.decode()
    # the frozen run's next read fails (its snapshot is gone) or, had its reads all been done, its next index write
    # is fenced: either way the error names the lapsed lease and nothing is committed
    if raised[-1].startswith(ERRORS + "SnapshotLeaseLostError: "):
        # the lapse is seen either by the keeper's next renewal or by one that was in flight when the run froze
        assert re.match(re.escape(ERRORS + "SnapshotLeaseLostError: The lease of backup snapshot blockvault-%s of VM "
                                  "lab-vm1 was lost (" % stalled_run) + LAPSE_REASONS, raised[-1]), raised
        assert "so another run may have removed it; the run failed meanwhile: " in raised[-1]
        assert raised[-1].endswith("Nothing was committed. Check the load of this host and its connection to vCenter, "
                                   "then run the backup again.")
    else:
        assert raised[-1].startswith(ERRORS + "LeaseLostError: The shared lock for backup of "), raised
        assert re.search(r"was lost \(" + LAPSE_REASONS, raised[-1]), raised
    assert env.restore_points() == [taker["restore_point"]["id"]]
    for position, disk in enumerate(taker["disks"]):
        assert sha256_file(env.restore_file(taker["restore_point"]["id"], disk["key"])) == live[position]
