"""vCenter logs out idle sessions (30 minutes by default): a transfer longer than that must keep its session alive.

A private lab whose sessions idle out after 2 s, and a stand-in slowed down so that the transfer takes longer: with
the product's keepalive the backup ends cleanly; without it, the session is gone by the time the snapshot must be
removed, as it would be on a real vCenter after a long backup.
"""
import os

import pytest
from labkit import Lab

from opslab import LABVDDK_VARS, Env  # pylint: disable=import-error
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import _vddk_io
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import inventory, snapshots

IDLE = 2.0


@pytest.fixture(scope="module")
def idle_lab(tmp_path_factory):
    lab = Lab.start(tmp_path_factory.mktemp("idle-lab"), vm1_disk0="16M", vm1_disk1="16M", vm2_disk0="16M",
                    session_idle=IDLE)
    yield lab
    lab.stop()


@pytest.fixture
def idle_env(idle_lab, tmp_path, monkeypatch):
    for name, value in idle_lab.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    made = Env(idle_lab, tmp_path, monkeypatch)
    made.knobs(LATENCY_US=800000)      # each VDDK call 0.8 s: the transfer outlasts the idle timeout several times
    yield made
    for name in LABVDDK_VARS:
        os.environ.pop(name, None)


def test_a_kept_alive_session_survives_a_transfer_longer_than_the_idle_timeout(idle_env, monkeypatch):
    monkeypatch.setattr(_vddk_io.SessionKeepalive, "interval", IDLE / 4)
    result = idle_env.backup("lab-vm2")
    assert result["changed"] is True and result["snapshot"] == "removed"
    assert idle_env.blockvault_snapshots("lab-vm2") == []


def test_without_keepalive_the_session_idles_out_during_the_transfer(idle_env, monkeypatch):
    monkeypatch.setattr(_vddk_io.SessionKeepalive, "interval", 3600.0)
    result = idle_env.backup("lab-vm2")
    # the restore point is committed (the repository does not need vCenter), but the snapshot could not be removed
    # with the idled-out session: the result says so (the next backup removes it once its lease has expired)
    assert result["changed"] is True and result["snapshot"].startswith("left")
    assert "NotAuthenticated" in result["snapshot"] or "session" in result["snapshot"].lower(), result["snapshot"]
    assert idle_env.blockvault_snapshots("lab-vm2") == ["blockvault-" + result["run_id"]]
    with idle_env.session() as session:     # the admin's clean-up, as the result's warning says
        vm = inventory.find_vm(session, name="lab-vm2")
        for entry in snapshots.list_snapshots(vm):
            snapshots.remove_snapshot(entry.snapshot)
    assert idle_env.blockvault_snapshots("lab-vm2") == []
