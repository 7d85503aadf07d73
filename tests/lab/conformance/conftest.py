"""Fixtures of the lab's conformance suite: one simulator for the whole suite (clients_lab), which must not log a
panic, and the clients' venv (clients_venv) that `make lab-clients` builds with requirements-clients.txt."""
import os
import pathlib

import pytest
from pyVim.connect import Disconnect

from labkit import REPO_ROOT, Lab, LabError, binary_path

CLIENTS_VENV = pathlib.Path(os.environ.get("BLOCKVAULT_CLIENTS_VENV") or REPO_ROOT / "build" / "clients-venv")
MiB = 1 << 20
# Disk sizes of this suite's lab: small, the clients only read their metadata and labctl checksums them.
LAB_SIZES = {"vm1_disk0": 32 * MiB, "vm1_disk1": 8 * MiB, "vm2_disk0": 8 * MiB}


@pytest.fixture(scope="session")
def clients_lab(tmp_path_factory):
    """A running lab for the suite; at teardown the simulator's log must hold no panic (a panic drops the
    client's connection: real vCenter answers a fault)."""
    if not binary_path().is_file():
        pytest.fail(f"lab simulator binary {binary_path()} is missing: run `make build-lab` first", pytrace=False)
    try:
        lab = Lab.start(tmp_path_factory.mktemp("clients-lab"), port=0, **LAB_SIZES)
    except LabError as exc:
        pytest.fail(f"could not start the lab simulator: {exc}", pytrace=False)
    yield lab
    panics = lab.panics()
    lab.stop()
    assert not panics, "the simulator logged a panic while serving the clients:\n" + "\n---\n".join(panics)


@pytest.fixture(scope="session")
def clients_venv():
    """The venv holding ansible (with community.vmware) for the suite; fails when `make lab-clients` has not
    built it."""
    playbook = CLIENTS_VENV / "bin" / "ansible-playbook"
    if not playbook.is_file():
        pytest.fail(f"{playbook} is missing: run `make lab-clients` (it builds {CLIENTS_VENV})", pytrace=False)
    return CLIENTS_VENV


@pytest.fixture
def si(clients_lab):
    """A pyVmomi ServiceInstance on the suite's lab (TLS verified with the lab CA)."""
    conn = clients_lab.connect()
    yield conn
    Disconnect(conn)
