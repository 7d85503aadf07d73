"""The lab simulator itself: login, TLS, lab endpoint auth, inventory and seeded disks, lifecycle, labkit CLI."""
import base64
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from labkit import REPO_ROOT, Lab, LabError, binary_path
from labkit.testing import allocated_extents, disks_of, find_vm, read_flat, remove_snapshot, snapshot

pytestmark = pytest.mark.lab

MiB = 1 << 20
UUID_RE = re.compile(r"^6000C29[0-9a-f]-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def lab_get(lab, path, headers=None, method="GET"):
    req = urllib.request.Request(f"https://127.0.0.1:{lab.info['port']}{path}", headers=headers or {},
                                 method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, context=lab.ssl_context(), timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_lab_json_describes_the_running_simulator(lab):
    info = json.loads((lab.dir / "lab.json").read_text())
    assert set(info) == {"host", "port", "url", "user", "password", "ca_bundle", "thumbprint", "datastores", "pid"}
    assert info["host"] == "127.0.0.1"
    assert info["url"] == f"https://127.0.0.1:{info['port']}/sdk"
    assert info["pid"] == lab.process.pid
    assert info["ca_bundle"] == str(lab.dir / "ca.pem")
    assert list(info["datastores"]) == ["LocalDS_0"]
    assert info["datastores"]["LocalDS_0"].startswith(str(lab.dir / "datastores") + "/")
    assert os.path.isdir(info["datastores"]["LocalDS_0"])
    env = lab.env()
    assert env == {
        "VMWARE_HOST": "127.0.0.1", "VMWARE_PORT": str(info["port"]), "VMWARE_USER": info["user"],
        "VMWARE_PASSWORD": info["password"], "VMWARE_CA_BUNDLE": info["ca_bundle"],
        "VDDK_LIBDIR": str(REPO_ROOT / "build" / "vddk"), "VDDK_THUMBPRINT": info["thumbprint"],
    }


def test_login_works_and_wrong_password_is_invalid_login(lab, si):
    assert si.content.about.apiType == "VirtualCenter"
    assert si.content.sessionManager.currentSession.userName == lab.info["user"]
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(host="127.0.0.1", port=lab.info["port"], user=lab.info["user"], pwd=lab.info["password"] + "x",
                     sslContext=lab.ssl_context())
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(host="127.0.0.1", port=lab.info["port"], user="root", pwd=lab.info["password"],
                     sslContext=lab.ssl_context())


def test_certificate_verifies_with_the_lab_ca_only(lab):
    verified = ssl.create_default_context(cafile=lab.info["ca_bundle"])
    conn = SmartConnect(host="localhost", port=lab.info["port"], user=lab.info["user"], pwd=lab.info["password"],
                        sslContext=verified)
    Disconnect(conn)
    with pytest.raises(ssl.SSLCertVerificationError):
        SmartConnect(host="127.0.0.1", port=lab.info["port"], user=lab.info["user"], pwd=lab.info["password"],
                     sslContext=ssl.create_default_context())
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", lab.info["port"])))
    digest = hashlib.sha1(der).hexdigest().upper()
    assert lab.info["thumbprint"] == ":".join(digest[i:i + 2] for i in range(0, 40, 2))


def test_lab_endpoints_need_basic_credentials_or_a_live_session_cookie(lab):
    path = "/lab/disks?vm=lab-vm2"
    assert lab_get(lab, path)[0] == 401
    wrong = base64.b64encode(f"{lab.info['user']}:nope".encode()).decode()
    assert lab_get(lab, path, {"Authorization": "Basic " + wrong})[0] == 401
    assert lab_get(lab, path, {"Cookie": "vmware_soap_session=not-a-session"})[0] == 401
    right = base64.b64encode(f"{lab.info['user']}:{lab.info['password']}".encode()).decode()
    assert lab_get(lab, path, {"Authorization": "Basic " + right})[0] == 200
    conn = lab.connect()
    cookie = conn._stub.cookie  # pylint: disable=protected-access
    assert lab_get(lab, path, {"Cookie": cookie})[0] == 200
    Disconnect(conn)
    assert lab_get(lab, path, {"Cookie": cookie})[0] == 401


def test_lab_vddk_lists_datastores_and_checks_vm_and_snapshot(lab, si):
    auth = {"Authorization": "Basic " + base64.b64encode(
        f"{lab.info['user']}:{lab.info['password']}".encode()).decode()}
    vm = find_vm(si, "lab-vm2")
    status, text = lab_get(lab, f"/lab/vddk?vm={vm._moId}", auth)  # pylint: disable=protected-access
    disk_file = [d.backing.fileName for d in disks_of(vm)]
    assert (status, text) == (200, f"datastore LocalDS_0 {lab.info['datastores']['LocalDS_0']}\n"
                                   + "".join(f"disk {name}\n" for name in disk_file))
    assert disk_file == ["[LocalDS_0] lab-vm2/lab-vm2.vmdk"]
    assert lab_get(lab, "/lab/vddk?vm=vm-999999", auth) == (404, 'virtual machine "vm-999999" not found\n')
    snap = snapshot(vm, "vddk-endpoint")
    try:
        status, text = lab_get(lab, f"/lab/vddk?vm={vm._moId}&snapshot={snap._moId}", auth)
        assert status == 200 and text.endswith("disk [LocalDS_0] lab-vm2/lab-vm2.vmdk\n")
        status, text = lab_get(lab, f"/lab/vddk?vm={vm._moId}&snapshot=snapshot-999999", auth)
        assert status == 404 and "snapshot-999999" in text
    finally:
        remove_snapshot(snap)


def test_lab_vms_have_the_configured_disks_on_different_controllers(lab, si):
    vm1 = find_vm(si, "lab-vm1")
    assert vm1.config.version == "vmx-13"
    assert vm1.capability.changeTrackingSupported is True
    assert vm1.runtime.powerState == "poweredOn"
    controllers = {d.key: d for d in vm1.config.hardware.device if isinstance(d, vim.vm.device.VirtualSCSIController)}
    disks = disks_of(vm1)
    assert [(d.key, d.capacityInBytes, d.capacityInKB) for d in disks] == [
        (2000, 64 * MiB, 64 * 1024), (2016, 16 * MiB, 16 * 1024)]
    assert isinstance(controllers[disks[0].controllerKey], vim.vm.device.ParaVirtualSCSIController)
    assert isinstance(controllers[disks[1].controllerKey], vim.vm.device.VirtualLsiLogicController)
    assert [controllers[d.controllerKey].busNumber for d in disks] == [0, 1]
    assert [d.backing.fileName for d in disks] == ["[LocalDS_0] lab-vm1/lab-vm1.vmdk",
                                                   "[LocalDS_0] lab-vm1/lab-vm1_1.vmdk"]
    vm2_disks = disks_of(find_vm(si, "lab-vm2"))
    assert [(d.backing.fileName, d.capacityInBytes) for d in vm2_disks] == [("[LocalDS_0] lab-vm2/lab-vm2.vmdk",
                                                                             16 * MiB)]
    uuids = [d.backing.uuid for d in disks + vm2_disks]
    assert all(UUID_RE.match(u) for u in uuids), uuids
    assert len(set(uuids)) == 3
    listed = lab.disks("lab-vm1")
    assert [(d["index"], d["key"], d["capacity"], d["uuid"]) for d in listed] == [
        (0, 2000, 64 * MiB, uuids[0]), (1, 2016, 16 * MiB, uuids[1])]
    assert listed[0]["flat"] == os.path.join(lab.info["datastores"]["LocalDS_0"], "lab-vm1", "lab-vm1-flat.vmdk")


def start_private(tmp_path, name, **kwargs):
    kwargs.setdefault("vm1_disk0", "8M")
    kwargs.setdefault("vm1_disk1", "4M")
    kwargs.setdefault("vm2_disk0", "4M")
    return Lab.start(tmp_path / name, **kwargs)


def test_initial_disks_are_sparse_realistic_and_seeded(tmp_path):
    first = start_private(tmp_path, "a", vm1_disk0="32M", seed=7)
    try:
        flat = first.disks("lab-vm1")[0]["flat"]
        data = read_flat(flat)
        assert len(data) == 32 * MiB
        holes = 32 * MiB - sum(length for _offset, length in allocated_extents(flat))
        assert holes == 18415616  # seeded: always the same layout (about 40 % holes on big disks, 55 % on this one)
        blocks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
        zero_blocks = sum(1 for b in blocks if b.count(0) == len(b))
        assert zero_blocks * 65536 > holes  # written zero regions on top of the holes
        assert any(b" the " in b for b in blocks)  # text-like regions
        assert len(set(blocks)) < len(blocks) - zero_blocks  # repeated regions
        first_sums = [first.checksum("lab-vm1", 0), first.checksum("lab-vm1", 1), first.checksum("lab-vm2", 0)]
        assert first_sums[0] == "1514af85b4d713f1dbdeab20b550c2a93d44ff7350749673f84528dab12c3223"
        assert first_sums[0] == hashlib.sha256(data).hexdigest()
        first_uuids = [d["uuid"] for d in first.disks("lab-vm1")]
    finally:
        first.stop()
    same = start_private(tmp_path, "b", vm1_disk0="32M", seed=7)
    other = start_private(tmp_path, "c", vm1_disk0="32M", seed=8)
    try:
        assert [same.checksum("lab-vm1", 0), same.checksum("lab-vm1", 1), same.checksum("lab-vm2", 0)] == first_sums
        assert [d["uuid"] for d in same.disks("lab-vm1")] == first_uuids
        assert other.checksum("lab-vm1", 0) != first_sums[0]
        assert [d["uuid"] for d in other.disks("lab-vm1")] != first_uuids
        assert len(set(first_sums)) == 3
    finally:
        same.stop()
        other.stop()


def test_sigterm_stops_cleanly_and_leaves_nothing_behind(tmp_path):
    running = start_private(tmp_path, "gone")
    conn = running.connect()
    vm = find_vm(conn, "lab-vm1")
    snapshot(vm, "left-behind")
    running.write("lab-vm1", 0, 4096, 8192)
    Disconnect(conn)
    pid = running.pid
    assert running.stop() == 0
    assert not os.path.exists(f"/proc/{pid}")
    assert sorted(os.listdir(tmp_path / "gone")) == []


def test_start_fails_clearly_when_the_port_is_taken(lab, tmp_path):
    with pytest.raises(LabError, match=r"(?s)exited with status 1 before it was ready; its log .*address already in use"):
        start_private(tmp_path, "busy", port=lab.info["port"])
    assert sorted(os.listdir(tmp_path / "busy")) == ["vcsim.log"]


def test_labkit_cli_starts_writes_env_and_stops(tmp_path):
    directory = tmp_path / "cli"
    cli = [sys.executable, str(REPO_ROOT / "tests" / "lab" / "labkit")]
    started = subprocess.run(cli + ["start", "--dir", str(directory), "--vm1-disk0", "8M", "--vm1-disk1", "4M",
                                    "--vm2-disk0", "4M"], capture_output=True, text=True, timeout=120, check=False)
    assert started.returncode == 0, started.stderr
    info = json.loads((directory / "lab.json").read_text())
    exported = subprocess.run(["sh", "-c", f". {directory / 'env'} && env"], capture_output=True, text=True,
                              check=True).stdout.splitlines()
    assert f"VMWARE_PASSWORD={info['password']}" in exported
    assert f"VDDK_THUMBPRINT={info['thumbprint']}" in exported
    assert f"VMWARE_PORT={info['port']}" in exported
    assert os.path.exists(f"/proc/{info['pid']}")
    stopped = subprocess.run(cli + ["stop", "--dir", str(directory)], capture_output=True, text=True, timeout=120,
                             check=False)
    assert stopped.returncode == 0, stopped.stderr
    assert sorted(os.listdir(directory)) == []
    again = subprocess.run(cli + ["stop", "--dir", str(directory)], capture_output=True, text=True, check=False)
    assert (again.returncode, again.stderr) == (0, f"no lab runs in {directory}\n")


def test_missing_binary_is_a_clear_error(tmp_path):
    with pytest.raises(LabError, match=r"not found or not executable: run `make build-lab` first"):
        Lab.start(tmp_path / "x", binary=tmp_path / "no-such-binary")
    assert binary_path().name == "blockvault-vcsim"


def test_labkit_start_reuses_a_running_lab_and_replaces_a_dead_one(tmp_path):
    running = start_private(tmp_path, "again")
    try:
        with pytest.raises(LabError, match=r"a lab already runs in .* \(pid \d+\): stop it first"):
            start_private(tmp_path, "again")
        reused = start_private(tmp_path, "again", reuse=True)
        assert (reused.pid, reused.process) == (running.pid, None)
    finally:
        running.process.kill()  # dies without cleaning up, like after kill -9
        running.process.wait()
    assert (tmp_path / "again" / "lab.json").exists()
    fresh = start_private(tmp_path, "again")
    try:
        assert fresh.pid != running.pid
        assert fresh.info["datastores"] != running.info["datastores"]
        assert os.listdir(tmp_path / "again" / "datastores") == [os.path.basename(fresh.info["datastores"]["LocalDS_0"])]
    finally:
        fresh.stop()
    assert sorted(os.listdir(tmp_path / "again")) == []
