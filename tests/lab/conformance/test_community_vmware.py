"""community.vmware modules (from the `ansible` package, in the clients' own venv) against the lab: VM and disk
information, snapshots (create, list, revert, rename, remove, remove with children, remove all), power off and
on. Each playbook runs with TLS verified against the lab CA; the tests assert what the modules report and what
pyVmomi and the lab's checksums see afterwards."""
import json
import pathlib
import subprocess

import pytest

from labkit.testing import find_vm

pytestmark = pytest.mark.lab

PLAYBOOKS = pathlib.Path(__file__).parent / "playbooks"


def run_playbook(venv, lab, name, tmp_path):
    """Run PLAYBOOKS/name with the lab's credentials; returns {task name: localhost result}. Fails on rc != 0
    with the failed tasks' messages."""
    extra = {
        "vcenter": {"hostname": lab.info["host"], "port": int(lab.info["port"]), "username": lab.info["user"],
                    "password": lab.info["password"], "validate_certs": True},
        "lab_url": f"https://{lab.info['host']}:{lab.info['port']}",
        "lab_ca": lab.info["ca_bundle"],
    }
    extra_file = tmp_path / "extra.json"
    extra_file.write_text(json.dumps(extra))
    (tmp_path / "empty-collections").mkdir(exist_ok=True)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        # only the collections the `ansible` package bundles (not this project's build/collections)
        "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "empty-collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_PYTHON_INTERPRETER": str(venv / "bin" / "python"),
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "SSL_CERT_FILE": lab.info["ca_bundle"],  # validate_certs: true trusts the lab CA
    }
    result = subprocess.run([str(venv / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                             "-e", f"@{extra_file}", str(PLAYBOOKS / name)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook {name} printed no JSON report (rc {result.returncode}):\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    tasks = {t["task"]["name"]: t["hosts"]["localhost"] for play in report["plays"] for t in play["tasks"]}
    failed = {n: r.get("msg", "") + r.get("module_stderr", "")[-1500:] for n, r in tasks.items() if r.get("failed")}
    assert result.returncode == 0 and not failed, f"{name} failed (rc {result.returncode}): {failed}\n" \
                                                  f"{result.stderr[-2000:]}"
    return tasks


def snapshot_names(info_result):
    """[(name, description)] depth first of a vmware_guest_snapshot_info result."""
    return [(s["name"], s["description"]) for s in info_result["guest_snapshots"].get("snapshots", [])]


def snapshot_files(lab, vm_name):
    directory = lab.datastore_path() / vm_name
    return sorted(p.name for p in directory.iterdir() if p.suffix in (".vmsn", ".vmem"))


def test_vm_and_disk_info(clients_venv, clients_lab, si, tmp_path):
    tasks = run_playbook(clients_venv, clients_lab, "vm_info.yml", tmp_path)
    instance = tasks["Guest info"]["instance"]
    vm = find_vm(si, "lab-vm1")
    assert instance["hw_name"] == "lab-vm1"
    assert instance["hw_power_status"] == "poweredOn"
    assert (instance["hw_processor_count"], instance["hw_memtotal_mb"]) == (2, 2048)
    assert instance["instance_uuid"] == vm.config.instanceUuid
    assert instance["snapshots"] == [] and instance["current_snapshot"] is None
    vsphere = tasks["Guest info, vSphere schema"]["instance"]
    assert vsphere["config"] == {"name": "lab-vm2", "changeTrackingEnabled": False}
    assert vsphere["runtime"] == {"powerState": "poweredOn"}
    assert vsphere.get("snapshot") is None
    disks = tasks["Disk info"]["guest_disk_info"]
    assert {k: (d["key"], d["capacity_in_bytes"], d["backing_filename"], d["controller_bus_number"],
                d["unit_number"]) for k, d in disks.items()} == {
        "0": (2000, 32 << 20, "[LocalDS_0] lab-vm1/lab-vm1.vmdk", 0, 0),
        "1": (2016, 8 << 20, "[LocalDS_0] lab-vm1/lab-vm1_1.vmdk", 1, 0)}
    live = {d.key: d.backing.uuid for d in vm.config.hardware.device if hasattr(d.backing, "uuid")}
    assert {d["key"]: d["backing_uuid"] for d in disks.values()} == live


def test_snapshot_lifecycle(clients_venv, clients_lab, si, tmp_path):
    original = clients_lab.checksum("lab-vm1", 0)
    tasks = run_playbook(clients_venv, clients_lab, "snapshots.yml", tmp_path)
    assert tasks["Create s1"]["changed"] is True
    assert tasks["Create s1 again"]["changed"] is False  # idempotent: s1 exists
    assert snapshot_names(tasks["List after create"]) == [("s1", "first")]
    assert tasks["Checksum at s1"]["content"].strip() == original
    assert tasks["Checksum after write"]["content"].strip() != original
    assert tasks["Revert to s1"]["changed"] is True
    assert tasks["Checksum after revert"]["content"].strip() == original
    # s1 holds no memory: reverting to it powers the VM off, as vCenter does
    assert tasks["Info after revert"]["instance"]["hw_power_status"] == "poweredOff"
    assert tasks["Power on after revert"]["changed"] is True
    assert snapshot_names(tasks["List after rename"]) == [
        ("s1-renamed", "renamed by community.vmware"), ("s2", ""), ("s3", "")]
    # the rename and the tree, through pyVmomi
    vm = find_vm(si, "lab-vm1")
    root = vm.snapshot.rootSnapshotList
    assert [(n.name, n.description) for n in root] == [("s1-renamed", "renamed by community.vmware")]
    s2 = root[0].childSnapshotList[0]
    assert (s2.name, s2.state) == ("s2", "poweredOff")  # a disk-only snapshot of a running VM
    s3 = s2.childSnapshotList[0]
    assert (s3.name, s3.state) == ("s3", "poweredOn")   # memory_dump: true
    assert vm.snapshot.currentSnapshot == s3.snapshot
    assert clients_lab.checksum("lab-vm1", 0, snapshot="s1-renamed") == original
    assert snapshot_files(clients_lab, "lab-vm1") == [
        "lab-vm1-Snapshot1.vmsn", "lab-vm1-Snapshot2.vmsn", "lab-vm1-Snapshot3.vmem", "lab-vm1-Snapshot3.vmsn"]

    tasks = run_playbook(clients_venv, clients_lab, "snapshots_remove.yml", tmp_path)
    assert snapshot_names(tasks["List after removing s3"]) == [
        ("s1-renamed", "renamed by community.vmware"), ("s2", "")]
    assert tasks["List after removing with children"]["guest_snapshots"] == {}
    assert tasks["Remove all"]["changed"] is True
    # RemoveAllSnapshots_Task on a VM without snapshots succeeds (vCenter too); the module reports it as changed
    assert tasks["Remove all again"]["changed"] is True
    assert tasks["List after remove all"]["guest_snapshots"] == {}
    assert vm.snapshot is None
    assert snapshot_files(clients_lab, "lab-vm1") == []  # state and memory files went with their snapshots
    assert clients_lab.checksum("lab-vm1", 0) == original


def test_power_off_and_on(clients_venv, clients_lab, si, tmp_path):
    tasks = run_playbook(clients_venv, clients_lab, "power.yml", tmp_path)
    assert tasks["Power off"]["changed"] is True
    assert tasks["Power off again"]["changed"] is False
    assert tasks["Info when off"]["instance"]["hw_power_status"] == "poweredOff"
    assert tasks["Power on"]["changed"] is True
    assert tasks["Info when on"]["instance"]["hw_power_status"] == "poweredOn"
    assert tasks["Power off with vmware.vmware"]["changed"] is True
    assert tasks["Info when off with vmware.vmware"]["instance"]["hw_power_status"] == "poweredOff"
    assert tasks["Power on with vmware.vmware"]["changed"] is True
    assert find_vm(si, "lab-vm2").runtime.powerState == "poweredOn"
