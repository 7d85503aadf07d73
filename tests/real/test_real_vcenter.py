"""The engine against a real vCenter and VDDK: runs only when the BLOCKVAULT_REAL_* variables are set.

BLOCKVAULT_REAL_VCENTER (host), BLOCKVAULT_REAL_USER, BLOCKVAULT_REAL_PASSWORD, BLOCKVAULT_REAL_CA_BUNDLE (optional),
BLOCKVAULT_REAL_VM (a VM the test may snapshot and back up; its disks are never written), BLOCKVAULT_REAL_VDDK (the
VDDK directory), BLOCKVAULT_REAL_TRANSPORTS (optional, default nbdssl:nbd). The test backs the VM up twice (full,
then incremental) into a temporary repository, restores each disk of the second restore point to a raw file and checks
that the file's blocksum equals the recorded one.
"""
import os

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import backup, repository, requests, restore, settings
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.file_extents import file_blocksum

REQUIRED = ("BLOCKVAULT_REAL_VCENTER", "BLOCKVAULT_REAL_USER", "BLOCKVAULT_REAL_PASSWORD", "BLOCKVAULT_REAL_VM",
            "BLOCKVAULT_REAL_VDDK")
MISSING = [name for name in REQUIRED if not os.environ.get(name)]
pytestmark = [pytest.mark.real, pytest.mark.skipif(bool(MISSING), reason="set %s to run against a real vCenter" % ", ".join(MISSING))]


def test_backup_incremental_and_file_restore_round_trip(tmp_path):
    env = os.environ
    vsphere = settings.VSphereSettings(host=env["BLOCKVAULT_REAL_VCENTER"], username=env["BLOCKVAULT_REAL_USER"],
                                       password=env["BLOCKVAULT_REAL_PASSWORD"], ca_bundle=env.get("BLOCKVAULT_REAL_CA_BUNDLE"))
    vddk = settings.VddkSettings(libdir=env["BLOCKVAULT_REAL_VDDK"], transports=env.get("BLOCKVAULT_REAL_TRANSPORTS", "nbdssl:nbd"))
    repo = settings.RepositorySettings(location=str(tmp_path / "repo"), passphrase="real-vcenter-test")
    repository.ensure_repository(repository.RepositoryRequest(), repo)
    endpoints = requests.Endpoints(repo=repo, vsphere=vsphere, vddk=vddk)
    request = backup.BackupRequest(vm={"name": env["BLOCKVAULT_REAL_VM"]})
    first = backup.backup_vm(request, endpoints, requests.RunSettings(status_file=str(tmp_path / "first.json")))
    second = backup.backup_vm(request, endpoints, requests.RunSettings(status_file=str(tmp_path / "second.json")))
    assert first["changed"] and second["changed"]
    assert all(disk["mode"] in ("full", "incremental") for disk in second["disks"])
    for disk in second["disks"]:
        path = tmp_path / ("disk-%s.raw" % disk["key"])
        result = restore.restore(restore.RestoreRequest(restore.RestorePointQuery(second["restore_point"]["id"]),
                                                        restore.File(path=str(path), disk=disk["key"])),
                                 requests.Endpoints(repo=repo))
        assert result["disks"][0]["sha256"] == disk["sha256"]
        chunk_size = repository.show_repository(repo)["repository"]["chunk_size"]
        assert file_blocksum(str(path), chunk_size) == disk["sha256"]
