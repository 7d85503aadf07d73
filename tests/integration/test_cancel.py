"""Cancel means cancel (issue 19): a run of the collection's playbooks that its job stops - cancelled or timed out
through ansible-runner (the library AWX runs every job with: it SIGKILLs ansible-playbook's process group), or
interrupted with Ctrl-C - stops as a cancel: within 10 s no module process of the job is left, no restore point
appears afterwards, no blockvault snapshot stays on the VM, the repository holds no lock, the status file says
``cancelled`` and why; an immediate rerun succeeds.

The subset in `make test` (about 2 minutes), one test per way the module learns its job is gone:
- playbooks/backup.yml (the role: module under ``async``), job cancelled at a random moment of the transfer: the
  lease the role's polling renews names ansible-playbook, whose end the module notices (controller gone);
- playbooks/backup.yml with ansible-runner's ``job_timeout``: the same path;
- a restore to a new VM run directly (no ``async``), cancelled while it writes the disks: the module notices that
  the ansible processes that started it ended (controller gone), and the half-restored VM is destroyed;
- an in-place restore run directly, cancelled while it rolls the disks back: the rerun rolls them back whole;
- Ctrl-C (SIGINT to ansible-playbook's process group) on a backup run directly: cancelled by SIGINT.
The lease's own expiry, the status document and the cancel messages are unit-tested
(tests/unit/plugins/module_utils/ops/test_cancel.py).

Run: .venv/bin/python -m pytest -q tests/integration/test_cancel.py
"""
import glob
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import ansible_runner
import pytest

from labkit import REPO_ROOT

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import VMNotFoundError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.repository import RepositoryRequest, ensure_repository
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings, VSphereSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory, snapshots
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.session import VSphereSession

pytestmark = pytest.mark.lab

ANSIBLE_PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"
COLLECTIONS = REPO_ROOT / "build" / "collections"
HELPERS = pathlib.Path(__file__).resolve().parent / "playbooks"
PASSPHRASE = "cancel test passphrase"
# the VDDK stand-in's links capped at 2 MiB/s (tests/lab/PROTOCOL.md 5.2): the transfer of lab-vm1 lasts about half a
# minute, so a cancel lands in it; the steps before it keep their speed
SLOW = {"LABVDDK_NBD_CONN_MIBPS": "2", "LABVDDK_NBDSSL_CONN_MIBPS": "2"}
GONE_WITHIN = 10.0
# The lab's datacenter has a host and a cluster: place restores explicitly
LAB_TARGET = {"cluster": "DC0_C0", "resource_pool": "DC0_C0", "folder": "DC0/vm", "datastore": "LocalDS_0"}


class Job:
    """The lab, one repository and status directory of this test, and ways to run the collection's playbooks."""

    def __init__(self, lab, tmp_path):
        self.lab = lab
        self.tmp_path = tmp_path
        self.repository = tmp_path / "repository"
        self.status_dir = tmp_path / "status"
        self.status_dir.mkdir()
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("LABVDDK_")}
        self.env.update(lab.env())
        self.env.update({
            "PATH": "%s:%s" % (ANSIBLE_PLAYBOOK.parent, os.environ.get("PATH", "/usr/bin:/bin")),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0", "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
            "ANSIBLE_ASYNC_DIR": str(tmp_path / "async"),
            # the modules' files live here: every process of this test's jobs names this test's directory
            "ANSIBLE_REMOTE_TMP": str(tmp_path / "remote-tmp"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local-tmp"),
        })
        self.vars = {
            "blockvault_repository": {"repository": str(self.repository), "passphrase": PASSPHRASE},
            "blockvault_vsphere": {"ca_bundle": lab.env()["VMWARE_CA_BUNDLE"]},
            "blockvault_vddk": {"vddk_libdir": lab.env()["VDDK_LIBDIR"]},
            "vm_backup_quiesce": False, "vm_backup_poll_interval": 1, "vm_backup_status_dir": str(self.status_dir),
            # few chunks in flight: VDDK cannot abort its requests in flight, so a stopping run waits for them (at the
            # lab's throttled speed, 32 requests of 1 MiB would take 16 s)
            "vm_backup_memory_budget_mb": 8,
        }
        self.runs = 0

    def playbook(self, name, extra=None, env=None, cancel_when=None, job_timeout=None):
        """Run ``name`` (a file of playbooks/ or of the test helpers) with ansible-runner; the Runner."""
        self.runs += 1
        path = HELPERS / name if (HELPERS / name).exists() else REPO_ROOT / "playbooks" / name
        # ansible-runner asks cancel_callback (and checks job_timeout) each time it waits for output: often
        settings = {"suppress_ansible_output": True, "pexpect_timeout": 0.2}
        if job_timeout:
            settings["job_timeout"] = job_timeout
        private = self.tmp_path / ("runner-%d" % self.runs)
        private.mkdir()
        runner = ansible_runner.run(
            private_data_dir=str(private), playbook=str(path),
            extravars=dict(self.vars, **(extra or {})), envvars=dict(self.env, **(env or {})), settings=settings,
            cancel_callback=cancel_when, quiet=True)
        return runner

    def create_repository(self):
        # in-process, to keep the tests short: what is tested are the runs that follow
        ensure_repository(RepositoryRequest(chunk_size=1 << 20),
                          RepositorySettings(location=str(self.repository), passphrase=PASSPHRASE))

    # -- what is left -------------------------------------------------------------------------------------
    def processes(self):
        """{pid: command line} of the processes of this test's jobs (they all name its directory)."""
        found = {}
        for entry in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                with open(entry, "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            line = " ".join(arg.decode("utf-8", "replace") for arg in argv if arg)
            if str(self.tmp_path) in line and int(entry.split("/")[2]) != os.getpid():
                found[int(entry.split("/")[2])] = line
        return found

    def module_processes(self):
        return {pid: line for pid, line in self.processes().items() if "AnsiballZ_" in line or "async_wrapper" in line}

    def wait_until_no_module_process(self, since):
        while self.module_processes():
            assert time.monotonic() - since < GONE_WITHIN, "module processes left %.0f s after the cancel: %s" % (
                GONE_WITHIN, self.module_processes())
            time.sleep(0.2)

    def open_repository(self):
        return Repository.open(open_backend(str(self.repository)), passphrase=PASSPHRASE)

    def restore_points(self):
        repository = self.open_repository()
        try:
            return [point.id for point in repository.list_restore_points()]
        finally:
            repository.close()

    def locks(self):
        repository = self.open_repository()
        try:
            return repository.list_locks()
        finally:
            repository.close()

    def session(self):
        env = self.lab.env()
        return VSphereSession(VSphereSettings(host=env["VMWARE_HOST"], username=env["VMWARE_USER"],
                                              password=env["VMWARE_PASSWORD"], port=int(env["VMWARE_PORT"]),
                                              ca_bundle=env["VMWARE_CA_BUNDLE"]))

    def blockvault_snapshots(self, vm_name="lab-vm1"):
        with self.session() as session:
            vm = inventory.find_vm(session, name=vm_name)
            return [entry.name for entry in snapshots.list_snapshots(vm) if snapshots.is_blockvault_snapshot(entry.name)]

    def vm_exists(self, vm_name):
        with self.session() as session:
            try:
                inventory.find_vm(session, name=vm_name)
            except VMNotFoundError:
                return False
            return True

    def status_files(self):
        return sorted(glob.glob(str(self.status_dir / "*.json")))


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


class CancelAfter:
    """ansible-runner's cancel_callback: True (cancel) at a random moment, up to ``spread`` s, after ``ready()`` first
    holds. Records when it said so (``cancelled_at``)."""

    def __init__(self, ready, seed=None, spread=2.0):
        self.ready = ready
        self.random = random.Random(seed)
        self.spread = spread
        self.due = None
        self.cancelled_at = None

    def __call__(self):
        if self.cancelled_at is not None:
            return True
        if self.due is None:
            if self.ready():
                self.due = time.monotonic() + self.random.uniform(0.0, self.spread)
            return False
        if time.monotonic() >= self.due:
            self.cancelled_at = time.monotonic()
            return True
        return False


def cancel_in_transfer(job, lease=True, seed=None):
    """A CancelAfter that gets ready once the run's transfer has moved bytes (and, under async, once the role has
    renewed the run's lease)."""

    def transfer_started():
        for path in job.status_files():
            status = read_json(path)
            if (status and status.get("phase") == "transfer" and status.get("bytes_done", 0) > 0
                    and (not lease or os.path.exists(path + ".lease"))):
                return True
        return False
    return CancelAfter(transfer_started, seed)


def assert_stopped_as_cancel(job, since, points_before, cancelled_by):
    """The checks of every cancel: processes, restore points, snapshots, locks, status file."""
    job.wait_until_no_module_process(since)
    assert job.restore_points() == points_before
    assert job.blockvault_snapshots() == []
    assert job.locks() == []
    (status_path,) = job.status_files()
    status = read_json(status_path)
    assert (status["state"], status.get("cancelled_by")) == ("cancelled", cancelled_by), status
    assert status["last_error"]["class"] == "CancelledError"
    return status


def cancel_direct_restore(job, options, points_before, env=None):
    """Run vm_restore with ``options`` directly (run_directly.yml) and cancel it at a random moment of its transfer;
    check what every cancel must leave (assert_stopped_as_cancel). Returns (the playbook's variables, for the rerun;
    the status file's last document)."""
    for path in job.status_files():
        os.unlink(path)
    restore = {"blockvault_restore": options, "blockvault_status_file": str(job.status_dir / "restore.json")}
    runner = job.playbook("run_directly.yml", restore, env=env, cancel_when=cancel_in_transfer(job, lease=False))
    since = time.monotonic()
    assert runner.status == "canceled"
    return restore, assert_stopped_as_cancel(job, since, points_before, "controller gone")


@pytest.fixture
def job(lab, tmp_path):
    return Job(lab, tmp_path)


def _backup_cancelled(job, job_timeout=None):
    job.create_repository()
    cancel = cancel_in_transfer(job)
    runner = job.playbook("backup.yml", {"blockvault_vms": ["lab-vm1"]}, env=SLOW,
                          cancel_when=None if job_timeout else cancel, job_timeout=job_timeout)
    since = time.monotonic()
    assert runner.status == ("timeout" if job_timeout else "canceled")
    status = assert_stopped_as_cancel(job, since, [], "controller gone")
    message = status["last_error"]["message"]
    # the ansible process the lease names has ended (or had, when the last poll renewed it: an orphaned poller)
    assert message.startswith("Run %s of VM lab-vm1, in phase %s, was cancelled because the job that started it is "
                              "gone (the ansible" % (status["run_id"], status["phase"])), message
    assert message.endswith("Nothing was committed. Removed or released by its cleanup: the run's repository lock; "
                            "the backup snapshot of VM lab-vm1."), message
    if not job_timeout:     # cancelled at a moment of the transfer (the timeout may come in the planning before it)
        assert status["phase"] == "transfer" and 0 < status["bytes_done"] < status["bytes_total"]
    # an immediate rerun (at full speed) backs up
    for path in job.status_files():
        os.unlink(path)
    rerun = job.playbook("backup.yml", {"blockvault_vms": ["lab-vm1"]})
    assert rerun.status == "successful", rerun.stdout.read()
    assert len(job.restore_points()) == 1 and job.locks() == [] and job.blockvault_snapshots() == []


def test_cancelled_backup_job_stops_as_a_cancel(job):
    _backup_cancelled(job)


def test_timed_out_backup_job_stops_as_a_cancel(job):
    # the transfer starts after about 5 to 15 s (the role starts its key agent first; more on a loaded machine) and
    # lasts about 30 s at this speed
    _backup_cancelled(job, job_timeout=25)


def test_cancelled_direct_restore_to_a_new_vm_stops_as_a_cancel(job):
    job.create_repository()
    assert job.playbook("backup.yml", {"blockvault_vms": ["lab-vm2"]}).status == "successful"
    points = job.restore_points()
    new_name = "cancel-%s" % job.tmp_path.name[-12:]
    restore, status = cancel_direct_restore(job, {"name": "lab-vm2", "target": "new_vm", "new_name": new_name,
                                                  "overrides": LAB_TARGET, "memory_budget_mb": 8}, points, env=SLOW)
    assert " was cancelled because the job that started it is gone (process " in status["last_error"]["message"]
    assert not job.vm_exists(new_name)      # the half-restored VM was destroyed on the way out

    rerun = job.playbook("run_directly.yml", restore)
    assert rerun.status == "successful", rerun.stdout.read()
    assert job.vm_exists(new_name)


def test_cancelled_in_place_restore_stops_and_its_rerun_rolls_back(job):
    job.create_repository()
    assert job.playbook("backup.yml", {"blockvault_vms": ["lab-vm1"]}).status == "successful"
    points = job.restore_points()
    backed_up = [job.lab.checksum("lab-vm1", disk) for disk in (0, 1)]
    # the guest overwrites 24 MiB after the backup: what the rollback has to write back (12 s at the throttled speed)
    job.lab.write("lab-vm1", 0, 8 << 20, 24 << 20, seed=93)
    assert job.lab.checksum("lab-vm1", 0) != backed_up[0]
    restore, status = cancel_direct_restore(job, {"name": "lab-vm1", "target": "in_place", "force": True,
                                                  "memory_budget_mb": 8, "overrides": {"power_on": True}}, points, env=SLOW)
    assert status["phase"] == "transfer" and 0 < status["bytes_done"] < status["bytes_total"], status
    # the rerun (at full speed) rolls the disks back to the restore point: the lab reads them, not the product
    rerun = job.playbook("run_directly.yml", restore)
    assert rerun.status == "successful", rerun.stdout.read()
    assert [job.lab.checksum("lab-vm1", disk) for disk in (0, 1)] == backed_up
    assert job.locks() == [] and job.blockvault_snapshots() == []


def test_ctrl_c_on_ansible_playbook_cancels_by_sigint(job):
    job.create_repository()
    status_file = job.status_dir / "backup.json"
    extra = dict(job.vars, blockvault_backup_vm="lab-vm1", blockvault_status_file=str(status_file))
    vars_file = job.tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra))
    # a terminal's foreground process group: ansible-playbook leads its own
    process = subprocess.Popen([str(ANSIBLE_PLAYBOOK), str(HELPERS / "run_directly.yml"), "-e", "@%s" % vars_file],
                               env=dict(job.env, **SLOW), cwd=job.tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    cancel = cancel_in_transfer(job, lease=False)
    deadline = time.monotonic() + 120
    while not cancel():
        assert process.poll() is None and time.monotonic() < deadline, "the backup never reached its transfer"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    since = time.monotonic()
    output = process.communicate(timeout=60)[0]
    # ansible-playbook ends at once ("User interrupted execution"), without the module's result: the status file and
    # the run log tell how the run ended
    assert "User interrupted execution" in output, output
    status = assert_stopped_as_cancel(job, since, [], "SIGINT")
    message = status["last_error"]["message"]
    assert "of VM lab-vm1, in phase transfer, was cancelled by SIGINT. The backup was stopped before disk" in message
    run_log = (status_file.parent / (status_file.name + ".log")).read_text()
    assert message in run_log and "KeyboardInterrupt" not in run_log
