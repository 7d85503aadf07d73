"""Clear, typed errors for wrong settings (no password in them); idempotent runs by run id; check mode; one backup
of a VM at a time; the vCenter session kept alive during the transfer."""
import hashlib
import json
import ssl
import threading

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import (
    AuthenticationError, CertificateError, ConfigurationError, LockError, VMNotFoundError, VSphereError)
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import _restore_io, _vddk_io
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import backup as ops_backup
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import VddkSettings, VSphereSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory, snapshots
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.session import VSphereSession
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import NewVm
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import BackupRequest, Endpoints, RunSettings

pytestmark = pytest.mark.lab

WRONG_PASSWORD = "Not-The-Lab-Password-42"


def ca_thumbprint(path):
    """The SHA-1 thumbprint of the lab CA's own certificate: a real certificate, but not the server's."""
    with open(path, encoding="ascii") as handle:
        der = ssl.PEM_cert_to_DER_cert(handle.read())
    digest = hashlib.sha1(der).hexdigest().upper()  # nosec - a certificate fingerprint
    return ":".join(digest[i:i + 2] for i in range(0, 40, 2))


def test_wrong_password_is_an_authentication_error_without_the_password(env):
    settings = VSphereSettings(host=env.vsphere.host, username=env.vsphere.username, password=WRONG_PASSWORD,
                               port=env.vsphere.port, ca_bundle=env.vsphere.ca_bundle)
    with pytest.raises(AuthenticationError) as failed:
        ops_backup.backup_vm(BackupRequest(vm={"name": "lab-vm1"}, run_id="wrong-password"),
                             Endpoints(repo=env.repo, vsphere=settings, vddk=env.vddk))
    error = failed.value
    assert str(error) == ("vCenter %s rejected the user name or password for %s: check username/password."
                          % (env.vsphere.host, env.vsphere.username))
    assert (error.phase, error.vm, error.run_id) == ("connect", None, "wrong-password")
    assert WRONG_PASSWORD not in repr(error.to_dict()) and WRONG_PASSWORD not in repr(settings)
    assert env.restore_points() == []


def test_thumbprint_of_another_certificate_is_a_certificate_error(env):
    other = ca_thumbprint(env.vsphere.ca_bundle)
    assert other != env.vddk.thumbprint
    vddk = VddkSettings(libdir=env.vddk.libdir, thumbprint=other)
    with pytest.raises(CertificateError) as failed:
        ops_backup.backup_vm(BackupRequest(vm={"name": "lab-vm1"}, run_id="wrong-thumbprint"),
                             Endpoints(repo=env.repo, vsphere=env.vsphere, vddk=vddk))
    assert str(failed.value) == ("The certificate of vCenter %s:%d has SHA-1 thumbprint %s but vddk_thumbprint is %s. Check "
                                 "that you reach the right server, then fix or remove vddk_thumbprint."
                                 % (env.vsphere.host, env.vsphere.port, env.vddk.thumbprint, other))
    assert failed.value.run_id == "wrong-thumbprint"
    assert env.lab.info["password"] not in str(failed.value.to_dict())
    assert env.blockvault_snapshots("lab-vm1") == []


def test_unknown_vm_is_vm_not_found(env):
    status = env.tmp_path / "unknown-vm.status.json"
    with pytest.raises(VMNotFoundError) as failed:
        env.backup("no-such-vm", run_id="unknown-vm", status_file=str(status))
    assert str(failed.value).startswith("No VM named 'no-such-vm' in vCenter")
    assert (failed.value.phase, failed.value.run_id) == ("vsphere", "unknown-vm")
    assert env.restore_points() == []
    # a poller (the vm_backup role under async) sees the failure at once, not after a grace period
    document = json.loads(status.read_text())
    assert (document["state"], document["phase"], document["vm"], document["run_id"]) == ("failed", "connect", "no-such-vm", "unknown-vm")
    assert document["last_error"]["class"] == "VMNotFoundError"


def test_missing_vddk_directory_names_vddk_libdir(env):
    missing = str(env.tmp_path / "no-vddk-here")
    with pytest.raises(ConfigurationError) as failed:
        VddkSettings(libdir=missing, thumbprint=env.vddk.thumbprint)
    assert str(failed.value) == "vddk_libdir %s is not a directory: unpack VDDK there or fix the path." % missing
    assert failed.value.phase == "configuration"


def test_same_run_id_twice_is_unchanged(env):
    first = env.backup("lab-vm1", run_id="idempotent-run")
    second = env.backup("lab-vm1", run_id="idempotent-run")
    assert first["changed"] is True and second["changed"] is False
    assert second["restore_point"] == first["restore_point"]
    assert set(second) - {"msg"} == set(first)       # the same result shape, so callers need no special case
    assert (first["snapshot"], second["snapshot"]) == ("removed", "not_taken")
    assert {name: second[name] for name in ("bytes_read", "bytes_written", "quiesced", "skipped_disks", "run_id")} == {
        name: first[name] for name in ("bytes_read", "bytes_written", "quiesced", "skipped_disks", "run_id")}
    assert second["msg"] == "restore point %s of run idempotent-run already exists" % first["restore_point"]["id"]
    assert [(d["key"], d["sha256"]) for d in second["disks"]] == [(d["key"], d["sha256"]) for d in first["disks"]]
    assert second["diff"]["before"] == second["diff"]["after"] == first["diff"]["after"]
    assert env.restore_points() == [first["restore_point"]["id"]]


def test_check_mode_returns_the_plan_and_touches_nothing(env, monkeypatch):
    taken = []
    original = snapshots.backup_snapshot

    def spy(*args, **kwargs):
        taken.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(snapshots, "backup_snapshot", spy)
    planned = env.backup("lab-vm1", check=True, run_id="check-1")
    assert planned.pop("diff")["before"] == {}          # the VM's first backup (test_results.py checks the diff)
    assert planned == {"changed": True, "run_id": "check-1", "vm": "lab-vm1", "plan": {
        "disks": [{"key": "2000", "label": "disk-1000-0", "capacity": 64 << 20, "mode": "full",
                   "reason": "this is the VM's first restore point"},
                  {"key": "2016", "label": "disk-1001-0", "capacity": 16 << 20, "mode": "full",
                   "reason": "this is the VM's first restore point"}],
        "skipped": {}, "previous_restore_point": None}}
    assert taken == [] and env.restore_points() == []

    real = env.backup("lab-vm1")
    assert len(taken) == 1
    planned = env.backup("lab-vm1", check=True, run_id="check-2")
    rp_id = real["restore_point"]["id"]
    assert [(d["key"], d["mode"], d["reason"]) for d in planned["plan"]["disks"]] == [
        ("2000", "incremental", "changed areas since restore point %s" % rp_id),
        ("2016", "incremental", "changed areas since restore point %s" % rp_id)]
    assert planned["plan"]["previous_restore_point"] == rp_id
    assert len(taken) == 1 and env.restore_points() == [rp_id]
    assert env.blockvault_snapshots("lab-vm1") == []


def test_a_second_backup_of_the_same_vm_is_refused_and_leaves_the_first_ones_snapshot(env):
    with env.session() as session:
        vm = inventory.find_vm(session, name="lab-vm1")
        vm_key = vm.config.instanceUuid
        other = snapshots.create_backup_snapshot(vm, "other-run")        # what the running backup has taken
        repository = env.repository()
        running = repository.begin_backup(vm_key, "other-run")           # and its live repository lock
        try:
            with pytest.raises(LockError) as refused:
                env.backup("lab-vm1", run_id="second-run")
            message = str(refused.value)
            assert message.startswith("Another backup of VM lab-vm1 is running (2 live backup locks of this VM in the "
                                      "repository at %s; the oldest: shared lock for backup of " % env.repo.location)
            assert message.endswith("one backup of a VM writes to a repository at a time. Wait for it to "
                                    "finish: the lock of a process that is gone is ignored 120 s after its last refresh.")
            assert (refused.value.vm, refused.value.run_id) == ("lab-vm1", "second-run")
            assert env.blockvault_snapshots("lab-vm1") == ["blockvault-other-run"]
            assert [lock["purpose"] for lock in repository.list_locks()] == ["backup of %s" % repository.vm_tag(vm_key)]
            other_vm = env.backup("lab-vm2")                              # another VM is not held up
            assert other_vm["changed"] is True
        finally:
            running.abort()
            repository.close()
            snapshots.remove_snapshot(other.snapshot)
    assert env.restore_points() == [other_vm["restore_point"]["id"]]
    assert env.backup("lab-vm1")["changed"] is True


def test_session_kept_alive_during_the_transfer_and_a_failed_keepalive_only_logged(env, monkeypatch):
    calls = []
    two_calls = threading.Event()

    def keepalive(session):
        calls.append(session.host)
        if len(calls) >= 2:
            two_calls.set()
        if len(calls) == 1:
            raise VSphereError("The vCenter session to lab has ended (test).")

    backup_disks = ops_backup.backup_disks

    def transfer_after_two_keepalives(*args, **kwargs):
        assert two_calls.wait(30), "keepalive was not called during the transfer"
        return backup_disks(*args, **kwargs)

    monkeypatch.setattr(VSphereSession, "keepalive", keepalive)
    monkeypatch.setattr(_vddk_io.SessionKeepalive, "interval", 0.01)
    monkeypatch.setattr(ops_backup, "backup_disks", transfer_after_two_keepalives)
    status = env.tmp_path / "keepalive.json"
    result = env.backup("lab-vm1", status_file=str(status))
    assert result["changed"] is True and len(calls) >= 2 and set(calls) == {env.vsphere.host}
    assert ("keeping the vCenter session alive during the transfer of lab-vm1 failed: The vCenter session to lab has ended "
            "(test).") in (env.tmp_path / "keepalive.json.log").read_text()


def test_without_vddk_thumbprint_vddk_gets_the_verified_one(env):
    vddk = VddkSettings(libdir=env.vddk.libdir)
    stats = env.new_stats()
    result = ops_backup.backup_vm(BackupRequest(vm={"name": "lab-vm2"}, quiesce=False),
                                  Endpoints(repo=env.repo, vsphere=env.vsphere, vddk=vddk),
                                  RunSettings(status_file=str(env.tmp_path / "no-thumbprint.json")))
    assert result["changed"] is True and [d["mode"] for d in result["disks"]] == ["full"]
    assert result["bytes_read"] == env.read_stats(stats)["bytes_read"] > 0     # VDDK's Open accepted the thumbprint


def test_session_kept_alive_during_a_restore_into_a_vm(env, monkeypatch):
    backup = env.backup("lab-vm1")
    calls = []
    two_calls = threading.Event()

    def keepalive(session):
        calls.append(session.host)
        if len(calls) >= 2:
            two_calls.set()

    restore_disk = _restore_io.restore_disk

    def restore_after_two_keepalives(*args, **kwargs):
        assert two_calls.wait(30), "keepalive was not called during the restore"
        return restore_disk(*args, **kwargs)

    monkeypatch.setattr(VSphereSession, "keepalive", keepalive)
    monkeypatch.setattr(_vddk_io.SessionKeepalive, "interval", 0.01)
    monkeypatch.setattr(_restore_io, "restore_disk", restore_after_two_keepalives)
    name = "keepalive-%s" % backup["run_id"][-8:]
    try:
        restored = env.restore(backup["restore_point"]["id"], NewVm(name))
        assert restored["changed"] is True and len(calls) >= 2
    finally:
        env.destroy(name)
