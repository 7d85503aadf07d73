"""A backup (or a restore) in a child process, for the kill -9 tests: ``python backup_child.py SPEC.json``.

SPEC holds the lab settings, the repository (location, passphrase), the VM name, the run id and the status file.
The LABVDDK_* knobs come from the environment. Prints the result as JSON on success. With ``"pause_before_commit":
PATH`` the run writes PATH once every chunk and disk index is stored, then waits (to be killed) instead of writing
its manifest; with ``"resume_when": PATH`` too, it commits once PATH exists. ``"pause_after_create_vm": PATH``
writes PATH once a restore's new VM exists and waits there. With ``"restore": {restore_point, new_name, overrides}`` the child restores into a new VM instead.
``"backup_options"`` holds more BackupRequest fields (mode, resume_max_age, checkpoint_interval).
Lease tests: ``"lease_timings": [refresh_interval, stale_after, skew_margin]`` shortens every lease of the child,
``"host": NAME`` makes it another host in its locks and snapshot leases (so no dead-pid shortcut judges it), and
``"stop_before_commit": PATH`` writes PATH once every index is stored, then stops itself (SIGSTOP) and commits when
continued.
"""
import json
import os
import pathlib
import signal
import socket
import sys
import time

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.backup import BackupRequest, backup_vm
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import Endpoints, RunSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import (
    NewVm, Placement, RestorePointQuery, RestoreRequest, restore)
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import (
    RepositorySettings, VddkSettings, VSphereSettings)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.session import BackupSession
from ansible_collections.blockvault.vsphere.plugins.module_utils import lease
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import config as vm_config


def pause_before_commit(marker, resume_when=None):
    """Write ``marker`` before the commit, then wait to be killed, or (``resume_when``) until that file exists and
    commit."""
    original = BackupSession.commit

    def commit(self, manifest):
        pathlib.Path(marker).write_text(self.restore_point_id)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if resume_when and pathlib.Path(resume_when).exists():
                return original(self, manifest)
            time.sleep(0.02)
        raise RuntimeError("the test did not kill (or resume) this backup")
    BackupSession.commit = commit


def pause_after_create_vm(marker):
    """Write ``marker`` as soon as the restore's new VM exists (CreateVM_Task done), then wait to be killed."""
    original = vm_config.create_vm

    def create_vm(*args, **kwargs):
        created = original(*args, **kwargs)
        pathlib.Path(marker).write_text(created.name)
        time.sleep(600)
        raise RuntimeError("the test did not kill this restore")
    vm_config.create_vm = create_vm


def stop_before_commit(marker):
    original = BackupSession.commit

    def commit(self, manifest):
        pathlib.Path(marker).write_text(self.restore_point_id)
        os.kill(os.getpid(), signal.SIGSTOP)
        return original(self, manifest)
    BackupSession.commit = commit


def lease_options(spec):
    if spec.get("lease_timings"):
        lease.set_default_timings(lease.LeaseTimings(*spec["lease_timings"]))
    if spec.get("host"):
        socket.gethostname = lambda: spec["host"]
    if spec.get("stop_before_commit"):
        stop_before_commit(spec["stop_before_commit"])


def main(path):
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    if spec.get("pause_after_create_vm"):
        pause_after_create_vm(spec["pause_after_create_vm"])
    lease_options(spec)
    if spec.get("pause_before_commit"):
        pause_before_commit(spec["pause_before_commit"], spec.get("resume_when"))
    endpoints = Endpoints(vsphere=VSphereSettings(**spec["vsphere"]), vddk=VddkSettings(**spec["vddk"]),
                          repo=RepositorySettings(**spec["repo"]))
    settings = RunSettings(status_file=spec["status_file"])
    if spec.get("restore"):
        restoring = spec["restore"]
        target = NewVm(restoring["new_name"], placement=Placement(**restoring.get("placement", {})))
        result = restore(RestoreRequest(RestorePointQuery(restoring["restore_point"]), target), endpoints, settings)
    else:
        request = BackupRequest(vm={"name": spec["vm"]}, quiesce=False, run_id=spec["run_id"], **spec.get("backup_options", {}))
        result = backup_vm(request, endpoints, settings)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
