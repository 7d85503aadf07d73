"""The modules end to end against the lab: real argument parsing, real engine, the JSON a controller receives.

The vSphere and VDDK settings come from the lab's environment variables (VMWARE_HOST, VDDK_LIBDIR, ...), the way
`source .lab/env` feeds a playbook. One repository per test (tmp_path), with a cheap scrypt cost.
"""
import hashlib
import json
import uuid

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import VMNotFoundError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import VSphereSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import config as vm_config
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.session import VSphereSession
from ansible_collections.blockvault.vsphere.plugins.modules import (
    backup_info, backup_prune, backup_repository, backup_validate, vm_backup, vm_restore,
)

from labkit.httpproxy import HttpProxy

from modrun import PASSPHRASE, run

pytestmark = pytest.mark.lab

PLACEMENT = {"resource_pool": "DC0_C0"}   # the lab datacenter has 2 compute resources: placement must be given


def test_backup_list_validate_restore_prune_through_the_modules(lab, repo_args, tmp_path):
    created = run(backup_repository, dict(repo_args, chunk_size=1 << 20))
    assert created["changed"] is True and created["repository"]["chunk_size"] == 1 << 20
    # settings not given are the existing repository's: no change, no failure
    assert run(backup_repository, repo_args)["changed"] is False

    plan = run(vm_backup, dict(repo_args, name="lab-vm1", quiesce=False), check_mode=True)
    assert plan["changed"] is True and [d["mode"] for d in plan["plan"]["disks"]] == ["full", "full"]

    status_file = str(tmp_path / "status.json")
    run_id = "modules-%s" % uuid.uuid4().hex[:8]
    backup = run(vm_backup, dict(repo_args, name="lab-vm1", quiesce=False, run_id=run_id, status_file=status_file))
    assert backup.get("failed") is not True, backup.get("msg")
    assert backup["changed"] is True and backup["run_id"] == run_id
    assert [d["key"] for d in backup["disks"]] == [d["key"] for d in plan["plan"]["disks"]]
    assert all(isinstance(d["bytes_read"], int) for d in backup["disks"])
    again = run(vm_backup, dict(repo_args, name="lab-vm1", quiesce=False, run_id=run_id))
    assert again["changed"] is False and again["restore_point"] == backup["restore_point"]

    status = run(backup_info, {"status_file": status_file})
    assert status["status"]["state"] == "succeeded" and status["status"]["run_id"] == run_id
    listing = run(backup_info, dict(repo_args, vm="lab-vm1"))
    assert listing["count"] == 1 and [p["id"] for p in listing["vms"]["lab-vm1"]] == [backup["restore_point"]["id"]]

    checked = run(backup_validate, dict(repo_args, level="full"))
    assert checked["ok"] is True and checked["changed"] is False and checked["checked"]["restore_points"] == 1

    first = backup["disks"][0]
    image = str(tmp_path / "disk0.raw")
    restored = run(vm_restore, dict(repo_args, restore_point=backup["restore_point"]["id"], target="file", disk=first["key"],
                                    path=image))
    assert restored.get("failed") is not True, restored.get("msg")
    assert restored["path"] == image and restored["disks"][0]["sha256"] == first["sha256"]
    with open(image, "rb") as raw:
        assert hashlib.file_digest(raw, "sha256").hexdigest() == lab.checksum("lab-vm1", 0)  # the lab's plain SHA-256
    refused = run(vm_restore, dict(repo_args, restore_point=backup["restore_point"]["id"], target="file", disk=first["key"],
                                   path=image))
    assert refused["failed"] is True and refused["error_class"] == "RestoreRefusedError"

    would = run(vm_restore, dict(repo_args, name="lab-vm1", new_name="copy-%s" % run_id, overrides=PLACEMENT),
                check_mode=True, diff=True)
    assert would["changed"] is True and would["diff"]["before"]["exists"] is False

    pruned = run(backup_prune, dict(repo_args, keep_last=1), check_mode=True, diff=True)
    assert pruned["removed"] == [] and pruned["diff"]["after"]["restore_points"] == [backup["restore_point"]["id"]]


def test_a_vm_found_and_backed_up_with_community_vmware_options(lab, repo_args, monkeypatch):
    # the options a community.vmware user writes: datacenter + folder + name, the user/pass aliases
    monkeypatch.delenv("VMWARE_USER")
    monkeypatch.delenv("VMWARE_PASSWORD")
    run(backup_repository, repo_args)
    args = dict(repo_args, datacenter="DC0", folder="/DC0/vm", vm_name="lab-vm1", quiesce=False,
                user=lab.info["user"], pwd=lab.info["password"])
    result = run(vm_backup, args)
    assert result["changed"] is True and result["restore_point"]["vm"] == "lab-vm1", result
    missing = run(vm_backup, dict(args, folder="DC0/vm/nope"))
    assert missing["failed"] is True and "No folder at 'DC0/vm/nope'" in missing["msg"]


def test_vm_backup_reaches_vcenter_through_the_http_proxy_of_community_vmwares_variables(lab, repo_args, monkeypatch):
    run(backup_repository, repo_args)
    with HttpProxy(connect_ports=[int(lab.info["port"])]) as proxy:
        monkeypatch.setenv("VMWARE_PROXY_HOST", "127.0.0.1")
        monkeypatch.setenv("VMWARE_PROXY_PORT", str(proxy.port))
        plan = run(vm_backup, dict(repo_args, name="lab-vm1", quiesce=False), check_mode=True)
        assert plan["changed"] is True and [d["mode"] for d in plan["plan"]["disks"]] == ["full", "full"], plan
        assert "%s:%s" % (lab.info["host"], lab.info["port"]) in proxy.connects()
        refused = run(vm_backup, dict(repo_args, name="lab-vm1", quiesce=False, proxy_port=1), check_mode=True)
    assert refused["failed"] is True
    assert refused["msg"].startswith("Cannot reach the HTTP proxy 127.0.0.1:1: connection refused."), refused["msg"]


def test_failures_carry_context_and_no_secret(lab, repo_args):
    run(backup_repository, repo_args)
    wrong = run(backup_info, dict(repo_args, passphrase="not the passphrase"))
    assert wrong["failed"] is True and wrong["error_class"] == "WrongKeyError" and wrong["phase"] == "repository"
    missing = run(vm_backup, dict(repo_args, name="no-such-vm", quiesce=False))
    assert missing["failed"] is True and missing["error_class"] == "VMNotFoundError"
    text = json.dumps([wrong, missing])
    assert PASSPHRASE not in text and "not the passphrase" not in text and lab.info["password"] not in text


@pytest.fixture
def new_vm_name(lab):
    """A unique VM name, and the VM of that name destroyed after the test if the test made one."""
    name = "modules-%s" % uuid.uuid4().hex[:8]
    yield name
    info = lab.info
    settings = VSphereSettings(host=info["host"], username=info["user"], password=info["password"], port=int(info["port"]),
                               ca_bundle=info["ca_bundle"])
    with VSphereSession(settings, vddk_thumbprint=info["thumbprint"]) as session:
        try:
            vm = inventory.find_vm(session, name=name)
        except VMNotFoundError:
            return
        vm_config.destroy_vm(vm)


def test_restore_to_a_new_vm_then_roll_it_back_in_place(lab, repo_args, new_vm_name):
    assert run(backup_repository, dict(repo_args, chunk_size=1 << 20))["changed"] is True
    backup = run(vm_backup, dict(repo_args, name="lab-vm2", quiesce=False))
    assert backup.get("failed") is not True, backup.get("msg")
    restored = run(vm_restore, dict(repo_args, name="lab-vm2", new_name=new_vm_name, overrides=dict(PLACEMENT, disk_format="thin")))
    assert restored.get("failed") is not True, restored.get("msg")
    assert restored["vm"]["name"] == new_vm_name and restored["vm"]["powered_on"] is False
    assert [d["sha256"] for d in restored["disks"]] == [d["sha256"] for d in backup["disks"]]
    assert lab.checksum(new_vm_name, 0) == lab.checksum("lab-vm2", 0)

    # the new VM is backed up, then changes; rolling it back in place writes only what differs
    own = run(vm_backup, dict(repo_args, name=new_vm_name, quiesce=False))
    assert own.get("failed") is not True, own.get("msg")
    lab.write(new_vm_name, 0, 1 << 20, 65536, seed=9)
    assert lab.checksum(new_vm_name, 0) != lab.checksum("lab-vm2", 0)
    rolled = run(vm_restore, dict(repo_args, restore_point=own["restore_point"]["id"], target="in_place",
                                  target_vm={"name": new_vm_name}), diff=True)
    assert rolled.get("failed") is not True, rolled.get("msg")
    assert rolled["changed"] is True and rolled["diff"]["before"]["vm"] == new_vm_name
    assert rolled["disks"][0]["chunks_written"] == 1 and rolled["disks"][0]["chunks_unchanged"] > 0
    assert lab.checksum(new_vm_name, 0) == lab.checksum("lab-vm2", 0)


def _warnings(result, capsys):
    """The module's Ansible warnings: in its JSON on a managed host; shown at once by Display when, as in this test
    process, ansible-core runs as the controller."""
    shown = [line[len("[WARNING]: "):] for line in capsys.readouterr().err.splitlines() if line.startswith("[WARNING]: ")]
    return list(result.get("warnings", ())) + shown


def test_vm_backup_warns_of_a_transport_fallback_and_shows_its_diff(lab, repo_args, capsys):
    run(backup_repository, repo_args)
    capsys.readouterr()
    done = run(vm_backup, dict(repo_args, name="lab-vm1", quiesce=False, transports="hotadd:nbd"), diff=True)
    assert done["changed"] is True and [d["transport"] for d in done["disks"]] == ["nbd", "nbd"]
    # Ansible warnings (shown by every callback), one per disk that fell back
    warnings = _warnings(done, capsys)
    assert [w.split(" was read with")[0] for w in warnings] == ["Disk disk-1000-0 (key 2000)", "Disk disk-1001-0 (key 2016)"]
    assert all(" transport nbd although hotadd was asked for first (transports hotadd:nbd)" in w for w in warnings)
    assert done["diff"]["before"] == {} and done["diff"]["after"]["restore_point"] == done["restore_point"]["id"]
    plain = run(vm_backup, dict(repo_args, name="lab-vm1", quiesce=False))
    assert _warnings(plain, capsys) == [] and "diff" not in plain
    assert [d["transport"] for d in plain["disks"]] == ["nbdssl"] * 2
