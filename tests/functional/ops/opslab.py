"""Helpers of the ops functional tests: settings for the lab, a fresh repository per test, exact answers.

Every test is independent of the others and of their order: each has its own repository (tmp_path) and its
own VDDK stats file; tests that change a VM's disks (add, grow, reset CBT, roll back) work on a scratch VM made
by restoring lab-vm1 into a new VM (``scratch_vm``), destroyed at the end.
"""
import dataclasses
import os
import subprocess
import sys
import uuid

from labkit import LABCTL
from labkit.testing import sha256_file  # noqa: F401  pylint: disable=unused-import  # re-exported to the tests

from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.file_extents import file_blocksum
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import backup as ops_backup
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import info as ops_info  # noqa: F401  pylint: disable=unused-import
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import export as ops_export  # noqa: F401  pylint: disable=unused-import
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import restore as ops_restore
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import BackupRequest, Endpoints, RunSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import (
    RepositorySettings, VddkSettings, VSphereSettings)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, crypto, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import config as vm_config
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory, snapshots
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.session import VSphereSession

MIB = 1 << 20
CHUNK = 1 * MIB
PASSPHRASE = "correct horse battery staple"
PLACEMENT = ops_restore.Placement(resource_pool="DC0_C0")   # the lab datacenter has 2 compute resources: give one
RUN_SETTINGS = ("workers", "memory_budget", "status_file", "check")
LABVDDK_VARS = ("LABVDDK_STATS", "LABVDDK_FAIL_READ_NTH", "LABVDDK_FAIL_READ_TIMES", "LABVDDK_FAIL_READ_RATE",
                "LABVDDK_FAIL_WRITE_NTH", "LABVDDK_FAIL_WRITE_TIMES", "LABVDDK_FAIL_WRITE_RATE", "LABVDDK_FAIL_CODE",
                "LABVDDK_FAIL_SEED", "LABVDDK_LATENCY_US", "LABVDDK_GATE")


class Env:
    """What a test needs to call ops against the lab: settings, the lab, and helpers with exact answers."""

    def __init__(self, lab, tmp_path, monkeypatch):
        self.lab = lab
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        info = lab.info
        self.vsphere = VSphereSettings(host=info["host"], username=info["user"], password=info["password"],
                                       port=int(info["port"]), ca_bundle=info["ca_bundle"])
        self.vddk = VddkSettings(libdir=lab.env()["VDDK_LIBDIR"], thumbprint=info["thumbprint"])
        self.repo = RepositorySettings(location=str(tmp_path / "repo"), passphrase=PASSPHRASE)
        # a cheap scrypt cost for the key (stored in the key object, so every open of this repository is cheap too)
        monkeypatch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
        Repository.create(open_backend(self.repo.location), chunk_size=CHUNK, passphrase=PASSPHRASE).close()
        self.stats_path = tmp_path / "vddk-stats"
        self._stats_runs = 0

    # -- knobs of the VDDK stand-in (read again at every ConnectEx) ----------------------------------------
    def knobs(self, **values):
        """Set LABVDDK_* variables for the next runs (others cleared)."""
        for name in LABVDDK_VARS:
            self.monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            self.monkeypatch.setenv("LABVDDK_" + name.upper(), str(value))

    def new_stats(self):
        """A fresh stats file for the next run (counters restart from zero when the path changes)."""
        self._stats_runs += 1
        path = self.tmp_path / ("vddk-stats-%d" % self._stats_runs)
        self.monkeypatch.setenv("LABVDDK_STATS", str(path))
        return path

    @staticmethod
    def read_stats(path):
        return {key: int(value) for key, value in (line.split() for line in path.read_text().splitlines())}

    # -- operations -------------------------------------------------------------------------------------
    @property
    def endpoints(self):
        return Endpoints(repo=self.repo, vsphere=self.vsphere, vddk=self.vddk)

    def run_settings(self, options):
        """RunSettings from the run options among ``options`` (removed from it), with a fresh status file."""
        settings = {name: options.pop(name) for name in RUN_SETTINGS if name in options}
        settings.setdefault("status_file", str(self.tmp_path / "status" / ("%s.json" % uuid.uuid4().hex[:8])))
        return RunSettings(**settings)

    def backup(self, vm="lab-vm1", **options):
        settings = self.run_settings(options)
        options.setdefault("quiesce", False)
        return ops_backup.backup_vm(BackupRequest(vm={"name": vm}, **options), self.endpoints, settings)

    def restore(self, restore_point, target, vm_name=None, **options):
        """Restore to ``target`` (a target object of ops.restore); a NewVm gets the lab's placement unless it has one."""
        settings = self.run_settings(options)
        if isinstance(target, ops_restore.NewVm) and target.placement == ops_restore.Placement():
            target = dataclasses.replace(target, placement=PLACEMENT)
        request = ops_restore.RestoreRequest(ops_restore.RestorePointQuery(restore_point, vm_name, options.pop("before", None)),
                                             target)
        return ops_restore.restore(request, self.endpoints, settings)

    def restore_file(self, restore_point, disk_key):
        path = self.tmp_path / ("restored-%s-%s.raw" % (restore_point, disk_key))
        self.restore(restore_point, ops_restore.File(path=str(path), disk=disk_key))
        return path

    def repository(self):
        return Repository.open(open_backend(self.repo.location), passphrase=PASSPHRASE)

    def validate(self):
        repository = self.repository()
        try:
            return repository.validate("quick"), repository.validate("full")
        finally:
            repository.close()

    def restore_points(self):
        repository = self.repository()
        try:
            return [point.id for point in repository.list_restore_points()]
        finally:
            repository.close()

    # -- the lab ------------------------------------------------------------------------------------------
    def labctl(self, *args):
        """Run the lab's labctl tool (its Python entry point, with this interpreter); returns stdout."""
        script = LABCTL
        environ = dict(os.environ, **self.lab.env())
        done = subprocess.run([sys.executable, str(script), *map(str, args)], env=environ, capture_output=True, text=True,
                              timeout=300, check=False)
        if done.returncode != 0:
            command = " ".join(map(str, args))
            raise AssertionError("labctl %s failed (%d): %s%s" % (command, done.returncode, done.stdout, done.stderr))
        return done.stdout

    def write(self, vm, disk, offset, length, seed=1):
        """A guest write: the lab's /lab/write endpoint, which ``labctl write`` calls (in-process: no subprocess)."""
        self.lab.write(vm, disk, offset, length, seed=seed)

    def checksums(self, vm, snapshot=None):
        return [self.lab.checksum(vm, n, snapshot=snapshot) for n in range(len(self.lab.disks(vm)))]

    def session(self):
        return VSphereSession(self.vsphere, vddk_thumbprint=self.vddk.thumbprint)

    def blockvault_snapshots(self, vm_name):
        with self.session() as session:
            vm = inventory.find_vm(session, name=vm_name)
            return [entry.name for entry in snapshots.list_snapshots(vm) if snapshots.is_blockvault_snapshot(entry.name)]

    def power(self, vm_name, on):
        with self.session() as session:
            vm = inventory.find_vm(session, name=vm_name)
            (vm_config.power_on if on else vm_config.power_off)(vm)

    def power_state(self, vm_name):
        with self.session() as session:
            return str(inventory.find_vm(session, name=vm_name).runtime.powerState)

    def destroy(self, vm_name):
        with self.session() as session:
            try:
                vm = inventory.find_vm(session, name=vm_name)
            except Exception:  # pylint: disable=broad-except
                return
            vm_config.destroy_vm(vm)


def blocksum_file(path):
    return file_blocksum(str(path), CHUNK)
