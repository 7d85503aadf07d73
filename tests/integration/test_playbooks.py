"""The collection's playbooks (blockvault.vsphere.backup, restore, validate, prune) run by ansible-playbook against
the lab: backup then incremental, restore to a new VM with equal checksums, validation finding a flipped byte, prune
in check mode then for real, and the role's progress lines.

Each test has its own repository (tmp_path); the lab (simulator + VDDK stand-in) is the session's `lab` fixture.
Run: .venv/bin/python -m pytest -q tests/integration/test_playbooks.py
"""
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid

import pytest

from labkit import REPO_ROOT

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import Endpoints, RestorePointQuery, RunSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import File, RestoreRequest, restore
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.keyagent import KeyAgentClient

pytestmark = pytest.mark.lab

ANSIBLE_PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"
COLLECTIONS = REPO_ROOT / "build" / "collections"
LABCTL = REPO_ROOT / "tests" / "lab" / "labctl"   # the launcher: runs labctl.py with the venv that has pyvmomi
HELPERS = pathlib.Path(__file__).resolve().parent / "playbooks"
PASSPHRASE = "integration passphrase"
# The lab's datacenter has a host and a cluster, and its VMs have no VMware Tools: place restores explicitly
# and take crash-consistent snapshots.
LAB_TARGET = {"cluster": "DC0_C0", "resource_pool": "DC0_C0", "folder": "DC0/vm", "datastore": "LocalDS_0"}


class Runner:
    """Runs ansible-playbook with the lab's environment and a vars file describing this test's repository."""

    def __init__(self, lab, tmp_path):
        self.lab = lab
        self.tmp_path = tmp_path
        self.repository = tmp_path / "repository"
        self.status_dir = tmp_path / "status"
        self.env = dict(os.environ)
        self.env.update(lab.env())
        self.env.update({
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
            "ANSIBLE_ASYNC_DIR": str(tmp_path / "async"),
        })
        self.vars_file = tmp_path / "lab-vars.json"
        self.vars_file.write_text(json.dumps({
            "blockvault_repository": {"repository": str(self.repository), "passphrase": PASSPHRASE},
            "blockvault_vsphere": {"ca_bundle": lab.env()["VMWARE_CA_BUNDLE"]},
            "blockvault_vddk": {"vddk_libdir": lab.env()["VDDK_LIBDIR"]},
            "vm_backup_quiesce": False,
            "vm_backup_poll_interval": 1,
            "vm_backup_status_dir": str(self.status_dir),
            "vm_restore_poll_interval": 1,
            "vm_restore_status_dir": str(self.status_dir),
        }))

    def run(self, playbook, extra=None, check=False, expect_ok=True, env=None):
        args = [str(ANSIBLE_PLAYBOOK), playbook, "-e", "@" + str(self.vars_file)]
        if extra:
            args += ["-e", json.dumps(extra)]
        if check:
            args.append("--check")
        run_env = dict(self.env, **(env or {}))
        result = subprocess.run(args, env=run_env, cwd=self.tmp_path, capture_output=True, text=True, timeout=300,
                                check=False)
        output = result.stdout + result.stderr
        if expect_ok and result.returncode != 0:
            raise AssertionError(f"ansible-playbook {playbook} failed ({result.returncode}):\n{output}")
        if not expect_ok and result.returncode == 0:
            raise AssertionError(f"ansible-playbook {playbook} succeeded but should have failed:\n{output}")
        return output

    def run_until(self, playbook, extra, pattern, action, env=None, timeout=300, expect_ok=True):
        """Run a playbook that must succeed (or fail: ``expect_ok``), calling ``action`` once when a line of its output
        matches ``pattern`` (or when the output ends without one, so that a held run is never left waiting); its output."""
        args = [str(ANSIBLE_PLAYBOOK), playbook, "-e", "@" + str(self.vars_file), "-e", json.dumps(extra)]
        with subprocess.Popen(args, env=dict(self.env, **(env or {})), cwd=self.tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as child:
            timer = threading.Timer(timeout, child.kill)
            timer.start()
            lines, acted = [], False
            try:
                for line in child.stdout:
                    lines.append(line)
                    if not acted and pattern.search(line):
                        action()
                        acted = True
            finally:
                timer.cancel()
                if not acted:
                    action()
            returncode = child.wait()
        output = "".join(lines)
        if expect_ok and returncode != 0:
            raise AssertionError(f"ansible-playbook {playbook} failed ({returncode}):\n{output}")
        if not expect_ok and returncode == 0:
            raise AssertionError(f"ansible-playbook {playbook} succeeded but should have failed:\n{output}")
        return output

    def create_repository(self):
        self.run("blockvault.vsphere.repository", {"blockvault_repository_options": {"chunk_size": 1 << 20}})

    def backup(self, vms, **extra):
        return self.run("blockvault.vsphere.backup", dict(extra, blockvault_vms=vms))

    def restore_points(self, vm=None):
        out = self.tmp_path / ("points-%s.json" % uuid.uuid4().hex[:8])
        extra = {"blockvault_out": str(out)}
        if vm:
            extra["blockvault_info_vm"] = vm
        self.run(str(HELPERS / "list_restore_points.yml"), extra)
        return json.loads(out.read_text())

    def labctl(self, *args):
        result = subprocess.run([str(LABCTL), *map(str, args)], env=self.env, capture_output=True,
                                text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise AssertionError(f"labctl {args} failed: {result.stdout}{result.stderr}")
        return result.stdout.strip()


@pytest.fixture
def runner(lab, tmp_path):
    return Runner(lab, tmp_path)


def test_backup_then_incremental(runner):
    runner.create_repository()
    first = runner.backup(["lab-vm1", {"name": "lab-vm2"}])
    runner.labctl("write", "--vm", "lab-vm1", "--disk", 0, "--offset", 3 << 20, "--length", 1 << 20, "--seed", 41)
    plan = runner.run("blockvault.vsphere.backup", {"blockvault_vms": ["lab-vm1"]}, check=True)
    assert re.search(r"lab-vm1: \S+ incremental \(.*\), \S+ incremental \(", plan), plan
    assert len(runner.restore_points("lab-vm1")["lab-vm1"]) == 1   # check mode wrote nothing
    second = runner.backup(["lab-vm1"])

    points = runner.restore_points()
    assert sorted(points) == ["lab-vm1", "lab-vm2"]
    assert len(points["lab-vm1"]) == 2 and len(points["lab-vm2"]) == 1
    assert [disk["mode"] for disk in points["lab-vm1"][0]["disks"]] == ["full", "full"]
    assert [disk["mode"] for disk in points["lab-vm1"][1]["disks"]] == ["incremental", "incremental"]
    # the role's summary names each VM's restore point, the disks' modes and the transport each was read with
    assert re.search(r"lab-vm1: restore point %s, \S+ full via nbdssl, \S+ full via nbdssl;"
                     % re.escape(points["lab-vm1"][0]["id"]), first)
    assert re.search(r"lab-vm2: restore point %s, \S+ full via nbdssl;" % re.escape(points["lab-vm2"][0]["id"]), first)
    assert re.search(r"lab-vm1: restore point %s, \S+ incremental via nbdssl, \S+ incremental via nbdssl;"
                     % re.escape(points["lab-vm1"][1]["id"]), second)


def test_failed_vm_is_reported_at_the_end_and_only_successes_are_pruned(runner, runtime):
    runner.create_repository()
    runner.backup(["lab-vm2"])
    runner.backup(["lab-vm2"])
    before = [point["id"] for point in runner.restore_points()["lab-vm2"]]
    output = runner.run("blockvault.vsphere.backup", {
        "blockvault_vms": ["no-such-vm", "lab-vm2"], "vm_backup_keep": {"keep_last": 1}, "vm_backup_status_grace": 3,
    }, expect_ok=False, env={"XDG_RUNTIME_DIR": str(runtime)})
    # the play failed, and its key agent (which did start) was stopped all the same (the always section of the role)
    assert "The key agent did not start" not in output, output
    assert "TASK [blockvault.vsphere.vm_backup : Stop the key agent of the run]" in output
    assert list(runtime.iterdir()) == []
    points = runner.restore_points()
    assert list(points) == ["lab-vm2"] and len(points["lab-vm2"]) == 1
    newest = points["lab-vm2"][0]["id"]
    assert re.search(r"lab-vm2: restore point %s, " % re.escape(newest), output)
    assert "1 of 2 backup(s) failed: no-such-vm: FAILED: No VM named 'no-such-vm'" in output
    # the retention says which restore points it removed and kept
    removed = [point for point in before if point != newest]
    assert "lab-vm2: removed 2 restore point(s) (%s, %s); kept 1 (%s); GC freed " % (removed[0], removed[1], newest) in output, output


@pytest.fixture
def runtime():
    """A runtime directory of the test's own (XDG_RUNTIME_DIR), where the role's key agent makes its socket: in the
    temporary directory, as a tmp_path is too deep for a Unix socket path (the agent would pass it over)."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="bv-runtime-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_the_key_agent_serves_every_backup_of_the_run_and_is_stopped_at_its_end(runner, runtime):
    runner.create_repository()
    seen = {}

    def look_at_the_agent():
        # while the backups are held in their transfer: one agent, for this user only, holding the repository key
        # that the first backup gave it; then the gate opens
        sockets = list(runtime.glob("blockvault-agent-*/agent.sock"))
        seen["sockets"] = len(sockets)
        if sockets:
            seen["modes"] = (oct(sockets[0].parent.stat().st_mode & 0o777), oct(sockets[0].stat().st_mode & 0o777))
            seen["keys"] = KeyAgentClient(str(sockets[0])).info()["repositories"]
        gate.unlink()

    gate = runner.tmp_path / "gate"
    gate.touch()
    both_held = re.compile(r"\(item=lab-vm1: transfer \d+\.\d%: [^|]* \| lab-vm2: transfer \d+\.\d%: ")
    output = runner.run_until("blockvault.vsphere.backup", {"blockvault_vms": ["lab-vm1", "lab-vm2"], "vm_backup_parallel": 2},
                              both_held, look_at_the_agent, env={"LABVDDK_GATE": str(gate), "XDG_RUNTIME_DIR": str(runtime)})
    # (messages as text: pytest would shorten a tuple's repr, and the play's output is what tells a failure's cause)
    assert both_held.search(output), "the agent was looked at after the play, not while both backups were held:\n" + output
    assert seen == {"sockets": 1, "modes": ("0o700", "0o600"), "keys": 1}, "%s\n%s" % (seen, output)
    assert "TASK [blockvault.vsphere.vm_backup : Stop the key agent of the run]" in output
    assert list(runtime.iterdir()) == []
    # and without it (vm_backup_key_agent false) no agent is started
    runner.run("blockvault.vsphere.backup", {"blockvault_vms": ["lab-vm2"], "vm_backup_key_agent": False},
               env={"XDG_RUNTIME_DIR": str(runtime)})
    assert list(runtime.iterdir()) == []


def test_a_slot_is_refilled_as_soon_as_its_backup_ends(runner):
    runner.create_repository()
    # two at a time: no-such-vm fails at once and lab-vm2 takes its slot while lab-vm1 still runs (held in its
    # transfer by the VDDK stand-in's gate until a progress line shows both lab-vm1 and lab-vm2 running together)
    gate = runner.tmp_path / "gate"
    gate.touch()
    together = re.compile(r"\(item=lab-vm1: transfer \d+\.\d%: [^|]* \| lab-vm2: ")
    output = runner.run_until("blockvault.vsphere.backup", {"blockvault_vms": ["lab-vm1", "no-such-vm", "lab-vm2"],
                                                            "vm_backup_parallel": 2},
                              together, gate.unlink, env={"LABVDDK_GATE": str(gate)}, expect_ok=False)
    assert together.search(output), output
    starts = re.findall(r"TASK \[blockvault.vsphere.vm_backup : Start the backups of ([^\]]*)\]", output)
    assert starts == ["lab-vm1, no-such-vm", "lab-vm2"], output
    # every VM reported, in the order of the list; the failure fails the play at the end
    summary = re.findall(r'"(lab-vm1|no-such-vm|lab-vm2): (?:restore point|FAILED)', output)
    assert summary == ["lab-vm1", "no-such-vm", "lab-vm2"], output
    assert "1 of 3 backup(s) failed: no-such-vm: FAILED: No VM named 'no-such-vm'" in output
    assert sorted(runner.restore_points()) == ["lab-vm1", "lab-vm2"]
    # the jobs' result files and the runs' leases are removed; the status files are kept
    assert not list(runner.status_dir.glob("*.lease")) and len(list(runner.status_dir.glob("*.json"))) == 3
    assert not [path for path in (runner.tmp_path / "async").iterdir() if path.is_file()]


def test_one_retention_variable_and_the_repository_by_its_location(runner):
    runner.create_repository()
    runner.backup(["lab-vm2"])
    runner.backup(["lab-vm2"])
    # as docs/awx.md has it: the repository by its location alone (the passphrase from the environment, as an AWX
    # credential injects it) and the prune playbook's retention variable
    output = runner.run("blockvault.vsphere.backup", {
        "blockvault_vms": ["lab-vm2"], "blockvault_repository": str(runner.repository), "blockvault_keep": {"keep_last": 1},
    }, env={"BLOCKVAULT_PASSPHRASE": PASSPHRASE})
    (kept,) = runner.restore_points()["lab-vm2"]
    assert "lab-vm2: removed 2 restore point(s) " in output and "kept 1 (%s)" % kept["id"] in output


def test_misspelt_variables_and_two_retention_policies_are_refused_before_anything_runs(runner):
    runner.create_repository()
    output = runner.run("blockvault.vsphere.backup", {"blockvault_vms": ["lab-vm2"], "blockvault_keep_daily": 7},
                        expect_ok=False)
    assert "Unknown variable(s) blockvault_keep_daily: no playbook of blockvault.vsphere has such a variable" in output
    output = runner.run("blockvault.vsphere.backup", {"blockvault_vms": ["lab-vm2"], "vm_backup_kepp": {"keep_last": 1}},
                        expect_ok=False)
    assert "Unknown variable(s) vm_backup_kepp: the vm_backup role has no such variable" in output
    output = runner.run("blockvault.vsphere.backup", {
        "blockvault_vms": ["lab-vm2"], "blockvault_keep": {"keep_last": 1}, "vm_backup_keep": {"keep_last": 3},
    }, expect_ok=False)
    assert "Two retention policies are given" in output
    assert "lab-vm2" not in runner.restore_points()


def test_restore_to_new_vm_has_equal_checksums(runner):
    runner.create_repository()
    runner.backup(["lab-vm1"])
    new_name = "it-restored-%s" % uuid.uuid4().hex[:6]
    output = runner.run("blockvault.vsphere.restore", {
        "blockvault_restore_vms": [{"name": "lab-vm1", "new_name": new_name}],
        "blockvault_restore_target": dict(LAB_TARGET, power_on=True),
        "vm_restore_validate": True,
    })
    # the restore ends saying what was restored where, in the binary units of the progress lines
    assert re.search(r"lab-vm1 -> %s \(vm-\d+\): restore point \S+, 2 disk\(s\), \d+\.\d\d MiB written, checksums verified, "
                     r"validated \(full\)" % new_name, output), output
    for disk in (0, 1):
        source = runner.labctl("checksum", "--vm", "lab-vm1", "--disk", disk)
        restored = runner.labctl("checksum", "--vm", new_name, "--disk", disk)
        assert len(source) == 64 and restored == source


def test_validate_names_the_damaged_restore_point(runner):
    runner.create_repository()
    runner.backup(["lab-vm2"])
    (point,) = runner.restore_points()["lab-vm2"]
    runner.run("blockvault.vsphere.validate", {"blockvault_validate_level": "full"})

    chunk = max((p for p in (runner.repository / "chunks").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))

    output = runner.run("blockvault.vsphere.validate", {"blockvault_validate_level": "full"}, expect_ok=False)
    assert "Damage found (full validation) in restore point(s) %s:" % point["id"] in output
    assert "damaged: restore point %s (VM lab-vm2, disk" % point["id"] in output


def test_prune_check_mode_then_for_real(runner):
    runner.create_repository()
    for attempt in range(3):
        if attempt:     # the guest writes between backups: the chunk of the second one is used by it alone
            runner.labctl("write", "--vm", "lab-vm2", "--disk", 0, "--offset", 1 << 20, "--length", 1 << 20,
                          "--seed", 70 + attempt)
        runner.backup(["lab-vm2"])
    before = [point["id"] for point in runner.restore_points()["lab-vm2"]]
    assert len(before) == 3
    # what the garbage collection frees, as the play says it: a count of chunks (at least the one only the second
    # restore point used) and their size
    freed = re.compile(r"garbage collection: ([1-9][0-9]*) chunk\(s\), ([0-9.]+ \w+)")

    checked = runner.run("blockvault.vsphere.prune", {"blockvault_keep": {"keep_last": 1}}, check=True)
    assert "Would remove 2 restore point(s): %s, %s;" % (before[0], before[1]) in checked
    assert freed.search(checked), checked
    assert [point["id"] for point in runner.restore_points()["lab-vm2"]] == before

    pruned = runner.run("blockvault.vsphere.prune", {"blockvault_keep": {"keep_last": 1}})
    assert "Removed 2 restore point(s): %s, %s;" % (before[0], before[1]) in pruned
    assert freed.search(pruned).groups() == freed.search(checked).groups(), pruned
    assert [point["id"] for point in runner.restore_points()["lab-vm2"]] == before[2:]


def run_line(name):
    """The pattern of one run's progress line as backup_info builds it (ops/status_view.py), its label in group
    ``name``: sizes and rate in binary units, never a count of zero bytes before the totals are known ("starting"),
    the status file's name as the label while the file is not written yet."""
    return (rf"(?P<{name}>[\w.-]+): (\w+: starting|starting|no status yet"
            rf"|\w+ \d+\.\d%: (\d+\.\d\d MiB of \d+\.\d\d MiB|\d+ B of \d+ B), \d+\.\d MiB/s, ETA (unknown|(\d+h )?(\d+m )?\d+s)"
            rf"|succeeded 100\.0%: (?P<{name}_total>\d+\.\d\d MiB) of (?P={name}_total), \d+\.\d MiB/s)")


def progress_lines(output):
    """The lines of the progress loop: what each poll showed (the item of the loop), in order."""
    return re.findall(r"^ok: \[localhost\] => \(item=(.*)\)$", output.split("Progress of the backup", 1)[-1].split(
        "TASK [blockvault.vsphere.vm_backup : Collect the results of", 1)[0], re.MULTILINE)


def test_backup_progress_is_shown_while_it_runs(runner):
    runner.create_repository()
    # the VDDK stand-in holds the backup after its first read until the play has shown a transfer line (the gate),
    # so that the test does not depend on how fast polls come on a loaded machine
    gate = runner.tmp_path / "gate"
    gate.touch()
    output = runner.run_until("blockvault.vsphere.backup", {"blockvault_vms": ["lab-vm1"]},
                              re.compile(r"\(item=lab-vm1: transfer \d+\.\d%: "), gate.unlink,
                              env={"LABVDDK_GATE": str(gate)})
    lines = progress_lines(output)
    # every line is the label and progress line backup_info builds (ops/status_view.py)
    assert lines and all(re.fullmatch(run_line("vm"), line) for line in lines), output
    assert any(re.match(r"lab-vm1: transfer \d+\.\d%: ", line) for line in lines), output
    assert lines[-1].startswith("lab-vm1: succeeded 100.0%: "), output
    assert not any("Bytes" in line or "MB/s" in line for line in lines), output


def test_the_backups_of_a_batch_show_their_progress_together(runner):
    runner.create_repository()
    # both backups of the batch held after their first read (the VDDK stand-in's gate counts per process, and each
    # backup is a process of its own) until one line of the play showed both in their transfer: neither can finish
    # before, so the line shows them both running, whatever the speed of the machine
    gate = runner.tmp_path / "gate"
    gate.touch()
    both = re.compile(r"\(item=lab-vm1: transfer \d+\.\d%: [^|]* \| lab-vm2: transfer \d+\.\d%: [^|]*\)$")
    output = runner.run_until("blockvault.vsphere.backup", {"blockvault_vms": ["lab-vm1", "lab-vm2"], "vm_backup_parallel": 2},
                              both, gate.unlink, env={"LABVDDK_GATE": str(gate)})
    lines = progress_lines(output)
    # one loop for the batch: each line has both VMs, in the batch's order, each in the shape of a run's line
    shape = re.compile(run_line("first") + r" \| " + run_line("second"))
    matches = [shape.fullmatch(line) for line in lines]
    assert lines and all(matches), output
    # the file's name stands for a run while its status file is not written yet; then the VM's name
    assert all(match["first"] == "lab-vm1" or match["first"].endswith("-lab-vm1.json") for match in matches), output
    assert all(match["second"] == "lab-vm2" or match["second"].endswith("-lab-vm2.json") for match in matches), output
    held = [index for index, line in enumerate(lines) if both.search("(item=%s)" % line)]
    finished = [index for index, line in enumerate(lines) if "succeeded" in line]
    assert held and (not finished or held[0] < finished[0]), output
    assert re.fullmatch(r"lab-vm1: succeeded 100\.0%: [^|]* \| lab-vm2: succeeded 100\.0%: [^|]*", lines[-1]), output
    # then each job's result, and the summary of both
    assert output.index("(item=%s)" % lines[-1]) < output.index("Collect the results of the backups of lab-vm1, lab-vm2")
    assert re.search(r"lab-vm1: restore point \S+, .*; \d+\.\d\d MiB read, \d+\.\d\d MiB written, [\d.]+ s, \d+\.\d MiB/s", output)
    assert re.search(r"lab-vm2: restore point \S+, .*; \d+\.\d\d MiB read, ", output)
    assert sorted(runner.restore_points()) == ["lab-vm1", "lab-vm2"]


def test_dr_runbook_restores_in_order_and_validates(runner):
    runner.create_repository()
    runner.backup(["lab-vm1", "lab-vm2"])
    suffix = "-dr-%s" % uuid.uuid4().hex[:6]
    output = runner.run("blockvault.vsphere.dr", {
        "blockvault_dr_vms": ["lab-vm2", {"name": "lab-vm1"}],
        "blockvault_dr_cluster": "DC0_C0",
        "blockvault_dr_datastore": LAB_TARGET["datastore"],
        "blockvault_dr_folder": LAB_TARGET["folder"],
        "blockvault_dr_network_mapping": {"VM Network": "DC0_DVPG0"},
        "blockvault_dr_name_suffix": suffix,
        "blockvault_dr_power_on_delay": 1,
        "blockvault_dr_validate_level": "quick",
        # the originals are in the same (lab) vCenter: the new VMs cannot keep their identity (a real DR site has none)
        "blockvault_dr_keep_identity": False,
    })
    lines = [line.strip().strip('",') for line in output.splitlines() if " -> lab-vm" in line and "restore point" in line]
    assert [line.split(" -> ")[0] for line in lines] == ["lab-vm2", "lab-vm1"], output
    assert all(line.endswith("checksums verified, validated (quick)") for line in lines), lines
    assert runner.labctl("checksum", "--vm", "lab-vm2" + suffix, "--disk", 0) == \
        runner.labctl("checksum", "--vm", "lab-vm2", "--disk", 0)


def test_dr_runbook_refuses_a_vm_without_restore_point(runner):
    runner.create_repository()
    output = runner.run("blockvault.vsphere.dr", {
        "blockvault_dr_vms": ["lab-vm2"], "blockvault_dr_cluster": "DC0_C0", "blockvault_dr_network_mapping": {},
    }, expect_ok=False)
    assert "Check that every VM has a restore point" in output
    assert "Start the restore of" not in output


def test_backup_copies_each_new_restore_point_offsite(runner):
    runner.create_repository()
    offsite = {"repository": str(runner.tmp_path / "offsite"), "passphrase": "offsite passphrase"}
    runner.run("blockvault.vsphere.repository", {"blockvault_repository": offsite,
                                                 "blockvault_repository_options": {"chunk_size": 1 << 20}})
    backed_up = runner.lab.checksum("lab-vm2", 0)
    output = runner.backup(["lab-vm2"], blockvault_copy_to=offsite)
    (point,) = runner.restore_points()["lab-vm2"]
    assert "lab-vm2: copied: copied 1 restore point(s) to %s (%s): " % (offsite["repository"], point["id"]) in output
    # the copy alone restores the disk as the lab had it at the backup (the lab's checksum, not the product's)
    settings = RepositorySettings(location=offsite["repository"], passphrase=offsite["passphrase"])
    repository = Repository.open(open_backend(settings), passphrase=offsite["passphrase"])
    try:
        (copy_id,) = [p.id for p in repository.list_restore_points()]
        assert repository.load_manifest(copy_id).stats["copied_from"]["restore_point"] == point["id"]
    finally:
        repository.close()
    restored = runner.tmp_path / "from-offsite.raw"
    restore(RestoreRequest(RestorePointQuery(copy_id), File(path=str(restored))), Endpoints(repo=settings),
            RunSettings(status_file=str(runner.tmp_path / "from-offsite.json")))
    assert hashlib.sha256(restored.read_bytes()).hexdigest() == backed_up

    # a copy that fails keeps its backup, says which VM's copy failed and why, and fails the play at the end
    wrong = dict(offsite, passphrase="not the offsite passphrase")
    output = runner.run("blockvault.vsphere.backup", {"blockvault_vms": ["lab-vm2"], "blockvault_copy_to": wrong},
                        expect_ok=False)
    assert len(runner.restore_points()["lab-vm2"]) == 2
    assert "lab-vm2: copy FAILED: " in output
    assert re.search(r"1 copy\(ies\) to %s failed \(their backups are kept\): lab-vm2: " % re.escape(offsite["repository"]),
                     output), output
