"""`make demo`: the collection's playbooks, run by ansible-playbook against the lab, end to end.

  1. start the lab in .lab (or reuse the one running there) and read .lab/env;
  2. create a repository (playbook blockvault.vsphere.repository) in build/demo/repository, replacing the
     previous demo's;
  3. back up lab-vm1 and lab-vm2 (blockvault.vsphere.backup);
  4. write into both disks of lab-vm1 with tests/lab/labctl (guest writes);
  5. back up again: incremental (blockvault.vsphere.backup);
  6. restore lab-vm1's latest restore point into a new VM lab-vm1-demo (blockvault.vsphere.restore);
  7. validate every restore point, reading every chunk (blockvault.vsphere.validate, level full);
  8. print a summary: restore points, disk modes, bytes read and written, speed, and whether each disk of the
     restored VM has the checksum of the same disk of lab-vm1 (labctl checksum on both);
  9. write the repository's report (module backup_report: build/demo/report/report.html, with report.json,
     restore_points.csv and disks.csv) and print its path.

The figures come from what the roles publish with set_stats (shown by ansible-playbook with
ANSIBLE_SHOW_CUSTOM_STATS=1). Ansible's own output goes to build/demo/logs/. Exit status 0 only when every step
succeeded and the checksums match.
"""
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYTHON = pathlib.Path(sys.executable)
ANSIBLE_PLAYBOOK = PYTHON.parent / "ansible-playbook"
LAB_DIR = ROOT / ".lab"
WORK = ROOT / "build" / "demo"
LABCTL = ROOT / "tests" / "lab" / "labctl"
RESTORED = "lab-vm1-demo"
PASSPHRASE = "blockvault demo passphrase"
REPORT_DIR = WORK / "report"
# the play of step 9: the module's result goes out through set_stats like the roles' summaries
REPORT_PLAYBOOK = """\
- name: Write the report of the demo repository
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write the report
      blockvault.vsphere.backup_report:
        repository: "{{ blockvault_repository.repository }}"
        passphrase: "{{ blockvault_repository.passphrase }}"
        dest: "{{ report_dest }}"
        title: blockvault.vsphere demo
      register: report

    - name: Publish where it is and what it covers
      ansible.builtin.set_stats:
        data:
          blockvault_report:
            files: "{{ report.files }}"
            summary: "{{ report.summary }}"
        per_host: false
"""


class DemoError(Exception):
    """A step failed; the message says which and where its log is."""


def start_lab():
    subprocess.run([str(PYTHON), str(ROOT / "tests" / "lab" / "labkit"), "start", "--dir", str(LAB_DIR)], check=True)
    env = {}
    for line in (LAB_DIR / "env").read_text().splitlines():
        if line.startswith("export "):
            name, value = line[len("export "):].split("=", 1)
            env[name] = shlex.split(value)[0] if value else ""
    return env


def custom_stats(output):
    """The set_stats data of a run, from the RUN: line ansible-playbook prints with ANSIBLE_SHOW_CUSTOM_STATS."""
    for line in output.splitlines():
        if line.strip().startswith("RUN: "):
            return json.loads(line.strip()[len("RUN: "):])
    return {}


class Demo:
    def __init__(self, lab_env):
        self.env = dict(os.environ)
        self.env.update(lab_env)
        self.env.update({
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
            "ANSIBLE_SHOW_CUSTOM_STATS": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_NOCOLOR": "1",
        })
        self.logs = WORK / "logs"
        self.step = 0
        if WORK.exists():
            shutil.rmtree(WORK)
        self.logs.mkdir(parents=True)
        self.vars_file = WORK / "vars.json"
        self.vars_file.write_text(json.dumps({
            "blockvault_repository": {"repository": str(WORK / "repository"), "passphrase": PASSPHRASE},
            # hostname, port, username and password come from VMWARE_* in the environment (.lab/env)
            "blockvault_vsphere": {"ca_bundle": lab_env["VMWARE_CA_BUNDLE"]},
            "blockvault_vddk": {"vddk_libdir": lab_env["VDDK_LIBDIR"]},
            "vm_backup_status_dir": str(WORK / "status"),
            "vm_backup_poll_interval": 2,
            "vm_restore_status_dir": str(WORK / "status"),
            "vm_restore_poll_interval": 2,
        }, indent=1))

    def playbook(self, title, name, extra):
        self.step += 1
        # a collection playbook's short name (blockvault.vsphere.backup -> backup), or a playbook file's (report.yml -> report)
        short = pathlib.Path(name).stem if name.endswith(".yml") else name.rsplit(".", 1)[-1]
        log = self.logs / ("%02d-%s.log" % (self.step, short))
        args = [str(ANSIBLE_PLAYBOOK), name, "-e", "@" + str(self.vars_file), "-e", json.dumps(extra)]
        print("[%d] %s: ansible-playbook %s" % (self.step, title, " ".join(shlex.quote(a) for a in args[1:])), flush=True)
        began = time.monotonic()
        result = subprocess.run(args, env=self.env, capture_output=True, text=True, check=False, cwd=WORK)
        log.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
            raise DemoError("%s failed (exit %d); log: %s\n%s" % (name, result.returncode, log, tail))
        print("    ok in %.1f s (log: %s)" % (time.monotonic() - began, log.relative_to(ROOT)), flush=True)
        return custom_stats(result.stdout)

    def labctl(self, *args):
        result = subprocess.run([str(LABCTL), *map(str, args)], env=self.env, capture_output=True,
                                text=True, check=False)
        if result.returncode != 0:
            raise DemoError("labctl %s failed: %s" % (" ".join(map(str, args)), (result.stdout + result.stderr).strip()))
        return result.stdout.strip()


def mib(value):
    return "%.1f MiB" % (int(value) / (1 << 20))


def print_backup(title, stats):
    print(title)
    for vm, run in sorted(stats.get("blockvault_backup", {}).items()):
        # each disk's mode and the VDDK transport it was really read with (the role's summary has both)
        transports = run.get("transports") or {}
        modes = ", ".join("%s %s%s" % (label, mode, " via %s" % transports[label] if transports.get(label) else "")
                          for label, mode in sorted(run["modes"].items()))
        # the summary's throughput_mbps is in MB/s (10^6): shown in MiB/s beside the MiB figures
        print("    %-8s restore point %s\n             disks: %s\n             %s read, %s written, %.2f s, %.1f MiB/s"
              % (vm, run["restore_point"], modes, mib(run["bytes_read"]), mib(run["bytes_written"]),
                 float(run["duration"]), float(run["throughput_mbps"]) * 1e6 / (1 << 20)))


def write_report(demo):
    """Step 9: the repository's report (backup_report); prints its path. True when the page was written."""
    playbook = WORK / "report.yml"
    playbook.write_text(REPORT_PLAYBOOK)
    stats = demo.playbook("Write the repository's report", str(playbook), {"report_dest": str(REPORT_DIR)})
    report = stats.get("blockvault_report") or {}
    page = (report.get("files") or {}).get("html")
    if not page or not os.path.isfile(page):
        print("Report: not written (see the log above)")
        return False
    summary = report.get("summary") or {}
    print("Report: %s (%s restore points of %s VMs, %s validated; open it in a browser, it works offline)"
          % (page, summary.get("restore_points"), summary.get("vms"), summary.get("validated_restore_points")))
    print("        the same data for dashboards: %s" % ", ".join(
        os.path.basename(path) for what, path in sorted(report["files"].items()) if what != "html"))
    return True


def main():
    began = time.monotonic()
    demo = Demo(start_lab())
    demo.playbook("Create the repository", "blockvault.vsphere.repository", {})
    full = demo.playbook("Back up lab-vm1 and lab-vm2", "blockvault.vsphere.backup",
                         {"blockvault_vms": ["lab-vm1", "lab-vm2"]})
    print("[-] Guest writes into lab-vm1: 4 MiB into disk 0, 1 MiB into disk 1 (labctl write)", flush=True)
    # a new seed each run: on a lab kept from an earlier demo, the same bytes again would be deduplicated to nothing
    seed = int(time.time()) % 1000000
    demo.labctl("write", "--vm", "lab-vm1", "--disk", 0, "--offset", 8 << 20, "--length", 4 << 20, "--seed", seed)
    demo.labctl("write", "--vm", "lab-vm1", "--disk", 1, "--offset", 1 << 20, "--length", 1 << 20, "--seed", seed + 1)
    incremental = demo.playbook("Back up again (incremental)", "blockvault.vsphere.backup",
                                {"blockvault_vms": ["lab-vm1", "lab-vm2"]})
    restored = demo.playbook("Restore lab-vm1 into a new VM %s" % RESTORED, "blockvault.vsphere.restore", {
        "blockvault_restore_vms": [{"name": "lab-vm1", "new_name": RESTORED}],
        # the lab's datacenter has a standalone host and a cluster: say where the VM goes
        "blockvault_restore_target": {"cluster": "DC0_C0", "resource_pool": "DC0_C0", "folder": "DC0/vm",
                                      "datastore": "LocalDS_0", "power_on": True},
        "vm_restore_force": True,
    })
    validated = demo.playbook("Validate every restore point (full)", "blockvault.vsphere.validate",
                              {"blockvault_validate_level": "full"})

    print("\n== Summary " + "=" * 60)
    print_backup("First backup:", full)
    print_backup("Second backup:", incremental)
    for name, run in restored.get("blockvault_restore", {}).items():
        print("Restore: %s -> %s (%s), restore point %s, %s written"
              % (run["source_vm"], name, run["vm"].get("moid", "?"), run["restore_point"],
                 mib(sum(int(d.get("bytes_written", 0)) for d in run["disks"]))))
    report = validated.get("blockvault_validate", {})
    print("Validation (full): %s" % ("no damage" if report.get("ok") else "DAMAGE: %s" % report.get("report")))
    all_equal = True
    for disk in (0, 1):
        source = demo.labctl("checksum", "--vm", "lab-vm1", "--disk", disk)
        copy = demo.labctl("checksum", "--vm", RESTORED, "--disk", disk)
        equal = source == copy
        all_equal = all_equal and equal
        print("Disk %d checksum: lab-vm1 %s..., %s %s... -> %s"
              % (disk, source[:16], RESTORED, copy[:16], "MATCH" if equal else "DIFFERENT"))
    reported = write_report(demo)
    print("Done in %.0f s. The lab keeps running: make lab-stop stops it." % (time.monotonic() - began))
    return 0 if all_equal and report.get("ok") and reported else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (DemoError, subprocess.CalledProcessError) as exc:
        print("demo: %s" % exc, file=sys.stderr)
        sys.exit(1)
