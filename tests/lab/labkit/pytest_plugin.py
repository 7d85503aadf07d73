"""pytest plugin (registered in pytest.ini with `-p labkit.pytest_plugin`): the `lab`, `si` and `labctl` fixtures.

- `lab` (session): a private simulator for this test session (per xdist worker) on a free port in a temporary
  directory, with small disks (lab-vm1: 64 MiB + 16 MiB, lab-vm2: 16 MiB) and a CBT page limit of 4. Fails with
  a clear message when the simulator binary has not been built.
- `si` (module): a pyVmomi ServiceInstance logged in to that lab, logged out after the test module.
- `labctl` (function): run tests/lab/labctl against that lab; returns a subprocess.CompletedProcess.
"""
import os
import subprocess
import sys

import pytest

from labkit import LABCTL, Lab, LabError, binary_path

LAB_SIZES = {"vm1_disk0": 64 << 20, "vm1_disk1": 16 << 20, "vm2_disk0": 16 << 20}
LAB_PAGE_LIMIT = 4


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A running lab simulator (labkit.Lab) shared by the tests of this session."""
    binary = binary_path()
    if not binary.is_file():
        pytest.fail(f"lab simulator binary {binary} is missing: run `make build-lab` first", pytrace=False)
    directory = tmp_path_factory.mktemp("lab")
    try:
        running = Lab.start(directory, port=0, page_limit=LAB_PAGE_LIMIT, **LAB_SIZES)
    except LabError as exc:
        pytest.fail(f"could not start the lab simulator: {exc}", pytrace=False)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def si(lab):
    """A pyVmomi ServiceInstance logged in to the lab, shared by the tests of one module."""
    from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel  # only tests that use it need pyVmomi
    instance = lab.connect()
    yield instance
    Disconnect(instance)


@pytest.fixture
def labctl(lab):
    """labctl(*args, check=True): run tests/lab/labctl with the lab's environment."""
    def run(*args, check=True):
        env = dict(os.environ)
        env.update(lab.env())
        result = subprocess.run([sys.executable, str(LABCTL), *map(str, args)], env=env, capture_output=True,
                                text=True, timeout=300, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"labctl {' '.join(map(str, args))} failed ({result.returncode}):\n"
                                 f"{result.stdout}{result.stderr}")
        return result
    return run
