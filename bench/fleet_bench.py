#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet benchmark (issue 16, "Many VMs through Ansible"): a lab of many small VMs backed up by the collection's
backup playbook at several concurrencies and by several controllers at once. Asserts nothing; a run whose restore
points do not validate or whose restored disks differ from the lab's is reported as failed (exit status 1).

    .venv/bin/python bench/fleet_bench.py [--vms 24] [--disk 128M] [--forks 1,4,8] [--proxies 2,3] [--proxy-forks 4]
                                          [--no-agent 8] [--large-disk 1G] [--change 1M] [--poll-interval 1] [--quick]
                                          [--s3 [seaweedfs|moto]] [--keep]

About 20 minutes on an idle 2-core machine with the defaults (36 beside other engineers' test runs); --quick: 8 VMs.

What it does, through ansible-playbook only (blockvault.vsphere.repository, .backup, .validate, and
bench/fleet/restore_to_files.yml for the byte-exact check):

* a lab (tests/lab: the simulator with ``--extra-vms``) of ``--vms`` VMs of one ``--disk`` disk of seeded data each
  (lab-vm2 ... lab-vm<N+1>), and lab-vm1 whose disk 0 (``--large-disk``) serves the single-VM baseline;
* baseline (``--baseline-runs`` times, fresh repositories, the fastest run of each kept): one fleet VM alone, then
  lab-vm1's large disk alone: the end-to-end throughput of one VM, the marginal throughput ((bytes_large -
  bytes_small) / (wall_large - wall_small): what one more byte costs, fixed costs cancelled) and the product's own
  transfer rate (bytes read / the module's duration); then one VM's incremental run (nothing changed: all fixed
  cost) under cProfile;
* for each ``--forks`` value F: a fresh repository, the whole fleet in one ansible-playbook run with ``-f F`` and
  vm_backup_parallel F (full), a small guest write (``--change``) on every VM, the whole fleet again (incremental);
* for each ``--proxies`` value P: the same with P ansible-playbook processes started at once, each backing up a
  disjoint share of the VMs (round robin) into the same repository with ``-f``/vm_backup_parallel ``--proxy-forks``;
* for each ``--no-agent`` value F: forks F again without the role's key agent (vm_backup_key_agent false: every
  module derives the repository key from the passphrase itself), to show what the agent saves (every other setting
  runs the role as it is, its key agent on);
* after each setting's two rounds: the collection's validate playbook (level full) on its repository, and a few
  disks restored to files and compared with the lab's checksum of the disk at backup time (labctl checksum).

Figures of each round: wall time (first controller start to last controller end); data time = bytes read / the
slower of the baseline's marginal and product-measured rates (a slower rate never overstates the fixed cost); per-VM
fixed cost = (wall - data time) / VMs; aggregate throughput against the single-VM end-to-end one; CPU seconds of
every process of the round by kind (controller, vm_backup, async_status, ...), per VM and beyond the data's CPU
(the baseline's marginal CPU per byte) - on a shared machine the steadier measure of the fixed cost; the
repository's backend requests by kind (method x first name component: locks,
manifests, chunks ...) counted by bench/fleet/hook/sitecustomize.py inside every module process (the innermost
backend's calls, what reaches the disk or the S3 server; the product is not changed); lock acquisitions, lock
retries (a wait for a conflicting lock) and busy errors; each module process's phases (startup, connect, snapshot,
plan, transfer, commit, cleanup) and each controller task's time (bench/fleet/callback_plugins/fleet_record.py).

Note on ``forks``: the backup playbook runs on one host (localhost), so ansible's forks alone changes nothing (forks
parallelise hosts, never loop items of one host); the role's own concurrency is vm_backup_parallel. Each setting sets
both to F, which is what "forks F" can mean for this playbook.

With ``--s3`` the repositories are on the lab's S3 server instead of the local disk: SeaweedFS, or moto, whose
request log (one line per HTTP request) is then also counted per round, server side, as a check of the hook's counts.

Writes bench/results/fleet.json and prints a table. Work files in bench/work/fleet (git-ignored), removed at the end
unless --keep. The simulator must know --extra-vms (`make build-lab` rebuilds it).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import hashlib
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
import benchpath  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import  # the collection and labkit on sys.path

from bv_driver import PASSPHRASE, fresh_workdir, log, write_results  # noqa: E402  pylint: disable=wrong-import-position
from labkit import Lab, binary_path  # noqa: E402  pylint: disable=wrong-import-position

FLEET = os.path.join(BENCH, "fleet")
WORK = os.path.join(BENCH, "work", "fleet")
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
COLLECTIONS = os.path.join(ROOT, "build", "collections")
LABCTL = os.path.join(ROOT, "tests", "lab", "labctl")
RESTORE_PLAYBOOK = os.path.join(FLEET, "restore_to_files.yml")
MIB = 1 << 20
DISK_KEY = "2000"
PLAYBOOK_TIMEOUT = 3600
S3_BUCKET = "blockvault-test"       # labkit.s3servers.PLAIN_BUCKET

# controller tasks of the backup role, by what they do (bench/fleet/callback_plugins/fleet_record.py times them)
TASK_KINDS = (("start jobs", ("Start the backups of",)),
              ("progress polls", ("Progress of",)),
              ("collect results", ("Collect the results of",)),
              ("cleanup", ("Remove the result files",)),
              ("record", ("Record the outcome", "Gather the outcomes", "List the VMs", "Queue the VMs")),
              ("rounds", ("Settle the round", "Next round")),
              ("key agent", ("key agent",)))


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    raw = str(text).strip().upper().removesuffix("B").removesuffix("I")
    if raw and raw[-1] in units:
        return int(float(raw[:-1]) * units[raw[-1]])
    return int(raw)


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


def tree_state():
    """HEAD and the product files changed in the work tree (the figures are of this tree, other engineers' edits
    included)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    return {"head": git("rev-parse", "--short", "HEAD"),
            "dirty_product_files": [line[3:] for line in git("status", "--short", "plugins", "roles", "playbooks").splitlines()]}


def expected_seconds(args, disk, large):
    """A rough duration, said up front (calibrated on a 2-core machine, other tests running beside)."""
    def round_s(vms, conc):
        batches = -(-vms // conc)
        return batches * (4.5 + 0.9 * conc) + vms * disk / MIB / 150.0
    total = 30 + args.baseline_runs * (25 + large / MIB / 60.0) + large / MIB / 30.0
    for forks in args.forks:
        total += 2 * round_s(args.vms, forks) + 35
    for proxies in args.proxies:
        total += 2 * round_s(-(-args.vms // proxies), args.proxy_forks) * (1 + 0.25 * (proxies - 1)) + 35
    for forks in args.no_agent:
        total += 2 * round_s(args.vms, forks) + 45
    return total


# -- one ansible-playbook process ------------------------------------------------------------------------------

class Controller:
    """One ansible-playbook process with its own directory: output, callback record, hook counts, async dir."""

    def __init__(self, bench, tag, playbook, extra, forks, vars_file, profile_dir=None):
        self.tag = tag
        self.dir = os.path.join(WORK, "runs", tag)
        os.makedirs(self.dir, exist_ok=True)
        env = dict(os.environ)
        env.update(bench.lab.env())
        env.update({
            "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS,
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_HOME": os.path.join(self.dir, "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": os.path.join(self.dir, "ansible-local"),
            "ANSIBLE_REMOTE_TMP": os.path.join(self.dir, "ansible-remote"),
            "ANSIBLE_ASYNC_DIR": os.path.join(self.dir, "async"),
            "XDG_STATE_HOME": os.path.join(WORK, "state"),
            "ANSIBLE_CALLBACK_PLUGINS": os.path.join(FLEET, "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "fleet_record",
            "FLEET_RECORD_FILE": os.path.join(self.dir, "record.json"),
            "FLEET_COUNT_DIR": os.path.join(self.dir, "counts"),
            "PYTHONPATH": os.pathsep.join(p for p in (os.path.join(FLEET, "hook"), os.environ.get("PYTHONPATH")) if p),
        })
        if profile_dir:
            env["FLEET_CPROFILE"] = profile_dir
        self.argv = [ANSIBLE_PLAYBOOK, "-f", str(forks), playbook, "-e", "@" + vars_file, "-e", json.dumps(extra)]
        self.env = env
        self.process = None
        self.start = self.end = None
        self.returncode = None

    def launch(self):
        self.output = open(os.path.join(self.dir, "output.txt"), "w")  # pylint: disable=consider-using-with
        self.start = time.monotonic()
        self.start_wall = time.time()
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=self.dir, stdout=self.output,  # pylint: disable=consider-using-with
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def wait(self):
        try:
            self.returncode = self.process.wait(timeout=PLAYBOOK_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.returncode = self.process.wait()
        self.end = time.monotonic()
        self.output.close()

    @property
    def wall(self):
        return self.end - self.start

    def record(self):
        try:
            with open(os.path.join(self.dir, "record.json")) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {"tasks": [], "results": [], "failures": [], "custom_stats": {}}

    def counts(self):
        out = []
        for path in sorted(glob.glob(os.path.join(self.dir, "counts", "*.json"))):
            with open(path) as handle:
                out.append(json.load(handle))
        return out

    def output_tail(self, size=4000):
        with open(os.path.join(self.dir, "output.txt"), errors="replace") as handle:
            return handle.read()[-size:]


def run_together(controllers):
    """Start every controller at once, wait for all; (first start, last end) on the monotonic clock."""
    for controller in controllers:
        controller.launch()
    threads = [threading.Thread(target=controller.wait) for controller in controllers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return min(c.start for c in controllers), max(c.end for c in controllers)


# -- figures ----------------------------------------------------------------------------------------------------

def backup_results(controllers):
    """{vm: trimmed vm_backup result} of the backups the progress role collected, and the failures."""
    results, failures = {}, []
    for controller in controllers:
        record = controller.record()
        for result in record["results"]:
            if "Collect the results of" in str(result.get("task")) and isinstance(result.get("restore_point"), dict):
                results[result["restore_point"]["vm"]] = result
        failures += list(record["failures"])
    return results, failures


def phase_split(doc):
    """Seconds of each part of one module process: startup (process start to the first phase), then each phase."""
    marks = [("startup", doc["started"])] + [tuple(phase) for phase in doc["phases"]] + [("end", doc["ended"])]
    parts = {}
    for (name, at), (_next, until) in zip(marks, marks[1:]):
        parts[name] = parts.get(name, 0.0) + (until - at)
    return parts


def summarize_counts(docs, module="vm_backup"):
    """Requests by kind (sums), lock figures and the median phase split of the ``module`` processes."""
    requests, timed = {}, {}
    lock = {"acquired": 0, "retried": 0, "retries": 0, "busy_errors": 0, "max_acquire_seconds": 0.0, "acquire_seconds": 0.0}
    splits = []
    processes = 0
    for doc in docs:
        if doc["module"] != module:
            continue
        processes += 1
        for key, entry in doc["requests"].items():
            total = requests.setdefault(key, {"count": 0, "seconds": 0.0, "bytes": 0, "errors": 0})
            for field in total:
                total[field] += entry[field]
        for key, entry in doc["timed"].items():
            total = timed.setdefault(key, {"count": 0, "seconds": 0.0, "errors": 0})
            for field in total:
                total[field] += entry[field]
        for field in ("acquired", "retried", "retries", "busy_errors", "acquire_seconds"):
            lock[field] += doc["lock"][field]
        lock["max_acquire_seconds"] = max(lock["max_acquire_seconds"], doc["lock"]["max_acquire_seconds"])
        if doc["phases"]:
            splits.append(phase_split(doc))
    names = []
    for split in splits:
        names += [name for name in split if name not in names]
    median_split = {name: round(statistics.median(split.get(name, 0.0) for split in splits), 3) for name in names}
    for entry in list(requests.values()) + list(timed.values()):
        entry["seconds"] = round(entry["seconds"], 3)
    lock["acquire_seconds"] = round(lock["acquire_seconds"], 3)
    lock["max_acquire_seconds"] = round(lock["max_acquire_seconds"], 3)
    lifetimes = [sum(split.values()) for split in splits]
    return {"processes": processes, "requests": dict(sorted(requests.items())), "timed": dict(sorted(timed.items())),
            "lock": lock, "median_phase_seconds": median_split,
            "median_process_seconds": round(statistics.median(lifetimes), 3) if lifetimes else None}


def cpu_summary(docs):
    """CPU seconds of a round by process kind, from the hook's records (os.times at exit of every Python process).

    ansible-playbook's own time plus its children's covers every process it waited for (its workers, which end with
    os._exit and write no record, and the modules they ran); the async jobs' processes are detached (async_wrapper
    forks, reparented to init) and the modules they run (vm_backup) are not in it: they are added from their own
    records. "controller" is what remains of ansible-playbook's total once the modules it waited for are taken out:
    its main process and its workers (templating, task execution, the local connection).
    """
    forked = {doc["pid"] for doc in docs if doc.get("forked")}
    controller = 0.0
    by_module = {}
    for doc in docs:
        if doc["module"] == "ansible-playbook":
            if not doc.get("forked"):
                controller += doc["cpu_self"] + doc["cpu_children"]
            continue
        entry = by_module.setdefault(doc["module"], {"processes": 0, "cpu_s": 0.0})
        entry["processes"] += 1
        entry["cpu_s"] += doc["cpu_self"]
        if not (doc.get("forked") or doc.get("ppid") in forked):
            controller -= doc["cpu_self"]
    kinds = {"controller (ansible-playbook + workers)": {"processes": None, "cpu_s": controller}}
    kinds.update(sorted(by_module.items(), key=lambda kv: -kv[1]["cpu_s"]))
    for entry in kinds.values():
        entry["cpu_s"] = round(entry["cpu_s"], 2)
    total = round(sum(entry["cpu_s"] for entry in kinds.values()), 2)
    return {"total_s": total, "by_kind": kinds}


def task_kinds(controllers):
    """Seconds of the controller tasks by kind, summed over the controllers, plus ansible's start and end."""
    kinds = {name: 0.0 for name, _patterns in TASK_KINDS}
    kinds["other tasks"] = 0.0
    kinds["ansible start + end"] = 0.0
    for controller in controllers:
        record = controller.record()
        tasks = record["tasks"]
        for task in tasks:
            seconds = (task["end"] or task["start"]) - task["start"]
            kind = next((name for name, patterns in TASK_KINDS if any(p in task["name"] for p in patterns)), "other tasks")
            kinds[kind] += seconds
        if tasks:
            kinds["ansible start + end"] += (tasks[0]["start"] - controller.start_wall) + max(
                0.0, controller.wall - (record.get("ended", tasks[-1]["end"]) - controller.start_wall))
    return {name: round(value, 3) for name, value in kinds.items()}


def request_table(requests, vms):
    """Per VM: requests by method on each prefix, e.g. {"locks": {"list": 2.0, "get": 2.5, ...}, ...}."""
    table = {}
    for key, entry in requests.items():
        method, prefix = key.split(" ", 1)
        table.setdefault(prefix, {})[method] = round(entry["count"] / max(1, vms), 2)
    return dict(sorted(table.items()))


# -- the benchmark ----------------------------------------------------------------------------------------------

class FleetBench:
    def __init__(self, args):
        self.args = args
        self.disk = parse_size(args.disk)
        self.large = parse_size(args.large_disk)
        self.change = parse_size(args.change)
        self.fleet = ["lab-vm%d" % number for number in range(2, args.vms + 2)]
        self.lab = None
        self.s3 = None
        self.baseline = None
        self.settings = []
        self.problems = []
        self.setting_number = 0
        self.extra_vars = {}    # for every backup round of the setting (vm_backup_key_agent)

    # -- helpers ----------------------------------------------------------------------------------------------
    def repository(self, name):
        if self.s3 is not None:
            server = self.s3
            return {"repository": "s3://%s/fleet-%s-%d" % (S3_BUCKET, name, int(time.time())), "passphrase": PASSPHRASE,
                    "s3_endpoint_url": server.endpoint, "region": server.region, "aws_access_key": server.access_key,
                    "aws_secret_key": server.secret_key}
        return {"repository": os.path.join(WORK, "repo-" + name), "passphrase": PASSPHRASE}

    def vars_file(self, name, repository):
        path = os.path.join(WORK, "vars-%s.json" % name)
        env = self.lab.env()
        with open(path, "w") as handle:
            json.dump({"blockvault_repository": repository,
                       "blockvault_vsphere": {"ca_bundle": env["VMWARE_CA_BUNDLE"]},
                       "blockvault_vddk": {"vddk_libdir": env["VDDK_LIBDIR"]},
                       "vm_backup_quiesce": False,      # the lab's VMs have no VMware Tools
                       "vm_backup_poll_interval": self.args.poll_interval,
                       "vm_backup_status_dir": os.path.join(WORK, "status-" + name)}, handle)
        return path

    def playbook(self, tag, playbook, extra, vars_file, forks=1, profile_dir=None):
        controller = Controller(self, tag, playbook, extra, forks, vars_file, profile_dir=profile_dir)
        run_together([controller])
        if controller.returncode != 0:
            raise RuntimeError("ansible-playbook %s (%s) failed (%s):\n%s" % (
                playbook, tag, controller.returncode, controller.output_tail()))
        return controller

    def labctl_checksum(self, vm):
        done = subprocess.run([LABCTL, "checksum", "--vm", vm, "--disk", "0"], env=dict(os.environ, **self.lab.env()),
                              capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise RuntimeError("labctl checksum --vm %s failed: %s" % (vm, done.stderr))
        return done.stdout.strip()

    def backup_round(self, tag, shares, forks, vars_file, expect_mode, profile_dir=None):
        """Back up each share of VMs with its own ansible-playbook process, all started at once; the round's figures."""
        load_before = os.getloadavg()
        server_log_offset = self.server_log_size()
        controllers = [Controller(self, "%s-c%d" % (tag, number), "blockvault.vsphere.backup",
                                  dict(self.extra_vars, blockvault_vms=share, vm_backup_parallel=forks), forks, vars_file,
                                  profile_dir=profile_dir)
                       for number, share in enumerate(shares, 1)]
        first, last = run_together(controllers)
        wall = last - first
        vms = [vm if isinstance(vm, str) else vm["name"] for share in shares for vm in share]
        results, failures = backup_results(controllers)
        problems = []
        for controller in controllers:
            if controller.returncode != 0:
                problems.append("%s: ansible-playbook exited %s: %s" % (controller.tag, controller.returncode,
                                                                        controller.output_tail(1500)))
        missing = sorted(set(vms) - set(results))
        if missing:
            problems.append("%s: no result for %s" % (tag, ", ".join(missing)))
        modes = sorted({disk["mode"] for result in results.values() for disk in result.get("disks", [])})
        if expect_mode and modes != [expect_mode]:
            problems.append("%s: disk modes %s, expected only %s" % (tag, modes, expect_mode))
        if failures:
            problems.append("%s: %d failed task results: %s" % (tag, len(failures), failures[0]["msg"][:500]))
        docs = [doc for controller in controllers for doc in controller.counts()]
        counted = summarize_counts(docs)
        cpu = cpu_summary(docs)
        bytes_read = sum(int(result.get("bytes_read") or 0) for result in results.values())
        bytes_written = sum(int(result.get("bytes_written") or 0) for result in results.values())
        durations = [float(result.get("duration") or 0.0) for result in results.values()]
        figures = {"tag": tag, "controllers": len(controllers), "forks": forks, "vm_backup_parallel": forks,
                   "vms": len(vms), "mode": expect_mode, "wall_s": round(wall, 3),
                   "controller_walls_s": [round(c.wall, 3) for c in controllers],
                   "bytes_read": bytes_read, "bytes_written": bytes_written,
                   "product_duration_s": {"sum": round(sum(durations), 3),
                                          "median": round(statistics.median(durations), 3) if durations else None},
                   "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
                   "cpu": cpu, "cpu_per_vm_s": round(cpu["total_s"] / len(vms), 3),
                   "module": counted, "requests_per_vm": request_table(counted["requests"], len(vms)),
                   "controller_task_seconds": task_kinds(controllers),
                   "restore_points": {vm: results[vm]["restore_point"]["id"] for vm in vms if vm in results},
                   "problems": problems}
        if server_log_offset is not None:
            server = self.server_requests(server_log_offset)
            figures["server_requests"] = server
            figures["server_requests_per_vm"] = {prefix: {method: round(count / len(vms), 2) for method, count in methods.items()}
                                                 for prefix, methods in server.items()}
        self.derive(figures)
        self.problems += problems
        log("  %s: %d VMs in %.1f s (%s), fixed cost %s s/VM, %s" % (
            tag, len(vms), wall, expect_mode or "?", figures.get("fixed_per_vm_s"),
            "OK" if not problems else "PROBLEMS: " + "; ".join(p[:200] for p in problems)))
        return figures

    def server_log_size(self):
        """moto's request log size now (None unless the repositories are on moto)."""
        if self.s3 is None or self.s3.name != "moto":
            return None
        return os.path.getsize(self.s3.log_path)

    def server_requests(self, offset):
        """moto's requests logged since ``offset`` by first name component and kind (list, get, put, delete, head),
        as the server saw them: a check of the hook's counts (S3 adds HeadBucket before a process's first write, and
        a listing of more than 1000 keys takes several requests)."""
        with open(self.s3.log_path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
        counts = {}
        for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines():     # moto colours the lines of non-200 answers
            match = re.search(r'"(GET|PUT|DELETE|HEAD|POST) (/[^ ]*) HTTP/[0-9.]+"', line)
            if not match:
                continue
            method, target = match.groups()
            path, _sep, query = target.partition("?")
            parts = urllib.parse.unquote(path).lstrip("/").split("/")
            if parts[0] != S3_BUCKET:
                continue
            params = urllib.parse.parse_qs(query, keep_blank_values=True)
            if method == "GET" and "list-type" in params:
                name = params.get("prefix", [""])[0].split("/", 1)[-1]
                kind = "list"
            elif len(parts) >= 3:
                name = "/".join(parts[2:])      # bucket / repository prefix / object name
                kind = {"GET": "get", "PUT": "put", "DELETE": "delete", "HEAD": "head"}.get(method, method.lower())
            else:
                name, kind = "(bucket)", method.lower()
            prefix = name.split("/", 1)[0] if "/" in name else (name or "/")
            counts.setdefault(prefix, {}).setdefault(kind, 0)
            counts[prefix][kind] += 1
        return dict(sorted(counts.items()))

    def derive(self, figures):
        """Data time, per-VM fixed cost and aggregate throughput (needs the baseline's rates)."""
        if not self.baseline:
            return
        rate = self.baseline["data_rate_bytes_per_s"]
        data_s = figures["bytes_read"] / rate if rate else 0.0
        figures["data_s"] = round(data_s, 3)
        figures["fixed_per_vm_s"] = round((figures["wall_s"] - data_s) / figures["vms"], 3)
        cpu_rate = self.baseline.get("cpu_s_per_byte")
        if cpu_rate is not None:
            figures["data_cpu_s"] = round(figures["bytes_read"] * cpu_rate, 3)
            figures["cpu_fixed_per_vm_s"] = round((figures["cpu"]["total_s"] - figures["data_cpu_s"]) / figures["vms"], 3)
        aggregate = figures["bytes_read"] / figures["wall_s"] / MIB
        figures["aggregate_mib_s"] = round(aggregate, 1)
        figures["aggregate_vs_one_vm"] = round(aggregate / self.baseline["one_vm_mib_s"], 2)

    def validate(self, tag, vars_file, expected_points):
        controller = Controller(self, tag + "-validate", "blockvault.vsphere.validate",
                                {"blockvault_validate_level": self.args.validate_level}, 1, vars_file)
        run_together([controller])
        record = controller.record()
        checked = [r for r in record["results"] if "damaged" in r]
        points = sum(int((r.get("checked") or {}).get("restore_points") or 0) for r in checked)
        ok = (controller.returncode == 0 and bool(checked) and points == expected_points
              and all(r.get("ok") and not r.get("damaged") for r in checked))
        if not ok:
            self.problems.append("%s: validation failed (exit %s, %d of %d restore points checked): %s" % (
                tag, controller.returncode, points, expected_points, controller.output_tail(1500)))
        return {"level": self.args.validate_level, "ok": ok, "wall_s": round(controller.wall, 2), "restore_points": points}

    def byte_check(self, tag, vars_file, wanted):
        """Restore each (vm, restore point, expected sha256) to a file; compare the file's SHA-256."""
        restores = []
        for number, (vm, point, _expected) in enumerate(wanted):
            restores.append({"restore_point": point, "disk": DISK_KEY,
                             "path": os.path.join(WORK, "restored-%s-%d-%s.raw" % (tag, number, vm))})
        controller = Controller(self, tag + "-restore", RESTORE_PLAYBOOK, {"fleet_restores": restores}, 1, vars_file)
        run_together([controller])
        checks = []
        for (vm, point, expected), restore in zip(wanted, restores):
            digest = None
            if os.path.exists(restore["path"]):
                with open(restore["path"], "rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
                os.unlink(restore["path"])
            checks.append({"vm": vm, "restore_point": point, "equal": digest == expected})
        if controller.returncode != 0 or not all(check["equal"] for check in checks):
            self.problems.append("%s: byte-exact check failed (%s): %s %s" % (
                tag, controller.returncode, checks, controller.output_tail(1500)))
        return {"checked": len(checks), "equal": sum(check["equal"] for check in checks), "disks": checks,
                "wall_s": round(controller.wall, 2)}

    def guest_writes(self, number):
        """The small change of every VM before an incremental round (the lab's guest write, as labctl write)."""
        slots = max(1, self.disk // MIB - self.change // MIB - 1)
        for index, vm in enumerate(self.fleet):
            offset = ((number * 37 + index * 11) % slots) * MIB
            self.lab.write(vm, 0, offset, self.change, seed=1000 * number + index)

    # -- parts ------------------------------------------------------------------------------------------------
    def run_baseline(self):
        log("baseline: one fleet VM alone, then lab-vm1's %d MiB disk alone, %d time(s), fresh repositories" % (
            self.large // MIB, self.args.baseline_runs))
        pairs = []
        for number in range(1, self.args.baseline_runs + 1):
            repository = self.repository("baseline-%d" % number)
            vars_file = self.vars_file("baseline-%d" % number, repository)
            self.playbook("baseline-%d-create" % number, "blockvault.vsphere.repository", {}, vars_file)
            small = self.backup_round("baseline-%d-small" % number, [[self.fleet[0]]], 1, vars_file, "full")
            large = self.backup_round("baseline-%d-large" % number, [[{"name": "lab-vm1", "include_disks": [DISK_KEY]}]],
                                      1, vars_file, "full")
            pairs.append((small, large, repository, vars_file))
            if number < self.args.baseline_runs:
                self.drop_repository(repository)
        # the fastest of each (the least disturbed by the machine's other load); rates from those
        small = min((pair[0] for pair in pairs), key=lambda f: f["wall_s"])
        large = min((pair[1] for pair in pairs), key=lambda f: f["wall_s"])
        _small, _large, repository, vars_file = pairs[-1]
        marginal = None
        if large["wall_s"] > small["wall_s"] and large["bytes_read"] > small["bytes_read"]:
            marginal = (large["bytes_read"] - small["bytes_read"]) / (large["wall_s"] - small["wall_s"])
        product_rate = large["bytes_read"] / large["product_duration_s"]["sum"] if large["product_duration_s"]["sum"] else None
        # the slower of the two: a disturbed pair of runs may make the marginal rate look faster than the transfer
        # itself; a slower rate gives more of a run's time to its data, never overstating the fixed cost
        rate = min(r for r in (marginal, product_rate) if r) if (marginal or product_rate) else None
        cpu_small = min(pair[0]["cpu"]["total_s"] for pair in pairs)
        cpu_large = min(pair[1]["cpu"]["total_s"] for pair in pairs)
        cpu_rate = max(0.0, (cpu_large - cpu_small) / (large["bytes_read"] - small["bytes_read"]))
        self.baseline = {"runs": [{"small": pair[0], "large": pair[1]} for pair in pairs], "small": small, "large": large,
                         "marginal_mib_s": round(marginal / MIB, 1) if marginal else None,
                         "product_transfer_mib_s": round(product_rate / MIB, 1) if product_rate else None,
                         "data_rate_bytes_per_s": rate, "data_rate_source": "marginal" if rate == marginal else "product duration",
                         "one_vm_mib_s": round(large["bytes_read"] / large["wall_s"] / MIB, 1),
                         "cpu_s_per_byte": cpu_rate, "cpu_s_per_gib": round(cpu_rate * (1 << 30), 2)}
        for pair in pairs:
            for figures in pair[:2]:
                self.derive(figures)
        log("  one VM end to end %.1f MiB/s; marginal %s MiB/s; product-measured transfer %s MiB/s; data CPU %.1f s/GiB" % (
            self.baseline["one_vm_mib_s"], self.baseline["marginal_mib_s"], self.baseline["product_transfer_mib_s"],
            self.baseline["cpu_s_per_gib"]))
        # one VM's incremental run with nothing changed (all fixed cost), profiled
        profile_dir = os.path.join(WORK, "profile")
        profiled = self.backup_round("baseline-profile", [[self.fleet[0]]], 1, vars_file, "incremental",
                                     profile_dir=profile_dir)
        self.baseline["profiled_incremental"] = profiled
        self.baseline["profile_top"] = profile_top(profile_dir)
        self.baseline["validation"] = self.validate("baseline", vars_file, 3)
        last_small, last_large = pairs[-1][0], pairs[-1][1]
        first_sum = self.labctl_checksum(self.fleet[0])
        self.baseline["byte_check"] = self.byte_check("baseline", vars_file, [
            (self.fleet[0], last_small["restore_points"].get(self.fleet[0]), first_sum),
            (self.fleet[0], profiled["restore_points"].get(self.fleet[0]), first_sum),
            ("lab-vm1", last_large["restore_points"].get("lab-vm1"), self.labctl_checksum("lab-vm1"))])
        self.drop_repository(repository)

    def run_setting(self, label, shares, forks, agent=True):
        self.setting_number += 1
        number = self.setting_number
        log("%s: %d VMs, %d controller(s), forks/vm_backup_parallel %d (fresh repository)" % (
            label, len(self.fleet), len(shares), forks))
        repository = self.repository(label)
        vars_file = self.vars_file(label, repository)
        self.playbook(label + "-create", "blockvault.vsphere.repository", {}, vars_file)
        # the role starts its key agent unless told not to (vm_backup_key_agent)
        self.extra_vars = {} if agent else {"vm_backup_key_agent": False}
        sample = [self.fleet[0], self.fleet[len(self.fleet) // 2], self.fleet[-1]][:self.args.check_vms]
        before = {vm: self.labctl_checksum(vm) for vm in sample}
        full = self.backup_round(label + "-full", shares, forks, vars_file, "full")
        self.guest_writes(number)
        after = {vm: self.labctl_checksum(vm) for vm in sample}
        incremental = self.backup_round(label + "-incremental", shares, forks, vars_file, "incremental")
        validation = self.validate(label, vars_file, 2 * len(self.fleet))
        wanted = [(sample[0], full["restore_points"].get(sample[0]), before[sample[0]])]
        wanted += [(vm, incremental["restore_points"].get(vm), after[vm]) for vm in sample]
        byte_check = self.byte_check(label, vars_file, wanted)
        self.extra_vars = {}
        self.drop_repository(repository)
        setting = {"label": label, "controllers": len(shares), "forks": forks, "key_agent": agent,
                   "rounds": [full, incremental],
                   "validation": validation, "byte_check": byte_check}
        self.settings.append(setting)
        return setting

    def drop_repository(self, repository):
        if self.s3 is None and not self.args.keep:
            shutil.rmtree(repository["repository"], ignore_errors=True)

    def run(self):
        args = self.args
        binary = binary_path()
        usage = subprocess.run([str(binary), "-h"], capture_output=True, text=True, check=False)
        if "extra-vms" not in usage.stdout + usage.stderr:
            raise SystemExit("%s does not know --extra-vms: run `make build-lab` first" % binary)
        self.lab = Lab.start(os.path.join(WORK, "lab"), vm1_disk0=self.large, vm1_disk1="1M", vm2_disk0=self.disk,
                             extra_vms=args.vms - 1, extra_vm_disk=self.disk, session_idle=0)
        try:
            if args.s3:
                from labkit.s3servers import MotoServer, SeaweedServer  # pylint: disable=import-outside-toplevel
                server = MotoServer if args.s3 == "moto" else SeaweedServer
                self.s3 = server.start(os.path.join(WORK, args.s3))
            self.run_baseline()
            for forks in args.forks:
                self.run_setting("forks-%d" % forks, [self.fleet], forks)
            for proxies in args.proxies:
                shares = [self.fleet[number::proxies] for number in range(proxies)]
                self.run_setting("proxies-%d" % proxies, shares, args.proxy_forks)
            for forks in args.no_agent:
                self.run_setting("forks-%d-no-agent" % forks, [self.fleet], forks, agent=False)
            panics = self.lab.panics()
            if panics:
                self.problems.append("the simulator logged %d panic(s): %s" % (len(panics), panics[0][:500]))
        finally:
            if self.s3 is not None:
                self.s3.stop()
            self.lab.stop()


def profile_top(directory, count=15):
    """What the profiled vm_backup process's main thread spent its time on: the whole module, the imports (the
    collection's code is compiled from source in every module process: AnsiballZ runs it from a zip), compile()
    alone, the wait for the repository's key derivation (on a helper thread), and the product's functions by
    cumulative time and every function by own time."""
    paths = sorted(glob.glob(os.path.join(directory, "*.prof")))
    if not paths:
        return {}
    stats = pstats.Stats(*paths)
    rows = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append({"function": "%s:%d(%s)" % (shorten(filename), line, function), "calls": calls,
                     "tottime_s": round(tottime, 3), "cumtime_s": round(cumtime, 3)})

    def pick(predicate, key):
        return max((row[key] for row in rows if predicate(row["function"])), default=None)
    product = [row for row in rows if row["function"].startswith("plugins/")]
    return {"module_s": pick(lambda f: f.endswith("(invoke_module)"), "cumtime_s"),
            "imports_s": pick(lambda f: f.endswith("(_find_and_load)"), "cumtime_s"),
            "compile_s": pick(lambda f: "builtins.compile" in f, "tottime_s"),
            "repository_open_wait_s": pick(lambda f: "_engine.py" in f and f.endswith("(result)"), "cumtime_s"),
            "product_by_cumulative": sorted(product, key=lambda row: -row["cumtime_s"])[:count],
            "by_own_time": sorted(rows, key=lambda row: -row["tottime_s"])[:count]}


def shorten(filename):
    for marker in ("ansible_collections/blockvault/vsphere/", "site-packages/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# -- output -----------------------------------------------------------------------------------------------------

def requests_cell(per_vm, prefix, methods=("list", "get", "put", "delete", "exists")):
    entry = per_vm.get(prefix, {})
    return "/".join(("%g" % entry[m]) if m in entry else "-" for m in methods)


def print_table(bench):
    rows = [("setting", "round", "VMs", "wall s", "data s", "fixed s/VM", "CPU s/VM", "CPU fixed s/VM", "MiB/s", "x1 VM",
             "locks l/g/p/d/e per VM",
             "manifests l/g/p per VM", "chunks l/p per VM", "lock retry/busy", "checked")]
    all_rounds = []
    if bench.baseline:
        for name in ("small", "large"):
            all_rounds.append(("baseline", bench.baseline[name], ""))
    for setting in bench.settings:
        check = "valid %s, bytes %d/%d" % ("ok" if setting["validation"]["ok"] else "FAILED", setting["byte_check"]["equal"],
                                           setting["byte_check"]["checked"])
        for figures in setting["rounds"]:
            all_rounds.append((setting["label"], figures, check))
    for label, f, check in all_rounds:
        per_vm = f["requests_per_vm"]
        lock = f["module"]["lock"]
        rows.append((label, f["mode"] or "", str(f["vms"]), "%.1f" % f["wall_s"], "%.1f" % f.get("data_s", 0),
                     "%.2f" % f.get("fixed_per_vm_s", 0), "%.2f" % f["cpu_per_vm_s"], "%.2f" % f.get("cpu_fixed_per_vm_s", 0),
                     "%.1f" % f.get("aggregate_mib_s", 0),
                     "%.2f" % f.get("aggregate_vs_one_vm", 0),
                     requests_cell(per_vm, "locks", ("list", "get", "put", "delete", "exists")),
                     requests_cell(per_vm, "manifests", ("list", "get", "put")),
                     requests_cell(per_vm, "chunks", ("list", "put")),
                     "%d/%d" % (lock["retried"], lock["busy_errors"]), check))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--vms", type=int, default=24, help="VMs of the fleet (lab-vm2 ...)")
    parser.add_argument("--disk", default="128M", help="disk size of each fleet VM (seeded data, ~40 %% holes)")
    parser.add_argument("--large-disk", default="1G", help="lab-vm1's disk 0, for the single-VM data rate")
    parser.add_argument("--forks", default="1,4,8", help="forks (= vm_backup_parallel) of the single-controller runs")
    parser.add_argument("--proxies", default="2,3", help="numbers of controllers at once ('' for none)")
    parser.add_argument("--proxy-forks", type=int, default=4, help="forks (= vm_backup_parallel) of each controller")
    parser.add_argument("--no-agent", default="8", help="forks of the extra settings run without the role's key agent "
                                                        "(vm_backup_key_agent false: the key derived by every VM; '' for none)")
    parser.add_argument("--baseline-runs", type=int, default=2, help="repetitions of the single-VM baseline (best kept)")
    parser.add_argument("--change", default="1M", help="guest write on every VM before the incremental round")
    parser.add_argument("--poll-interval", type=int, default=1, help="vm_backup_poll_interval (the role's default is 10)")
    parser.add_argument("--validate-level", default="full", choices=("quick", "full", "restore"))
    parser.add_argument("--check-vms", type=int, default=3, help="VMs whose restored disks are compared byte for byte")
    parser.add_argument("--s3", nargs="?", const="seaweedfs", choices=("seaweedfs", "moto"),
                        help="repositories on the lab's S3 server (default SeaweedFS; moto also counts requests server side)")
    parser.add_argument("--quick", action="store_true", help="8 VMs of 64 MiB, forks 1,4, 2 controllers, no agent at forks 4")
    parser.add_argument("--keep", action="store_true", help="keep bench/work/fleet (repositories, outputs, counts)")
    args = parser.parse_args()
    if args.quick:
        args.vms, args.disk, args.large_disk, args.forks, args.proxies, args.no_agent = 8, "64M", "512M", "1,4", "2", "4"
    args.forks = [int(x) for x in str(args.forks).split(",") if x.strip()]
    args.proxies = [int(x) for x in str(args.proxies).split(",") if x.strip()]
    args.no_agent = [int(x) for x in str(args.no_agent).split(",") if x.strip()]
    if args.vms < 2:
        parser.error("--vms must be at least 2")
    bench = FleetBench(args)
    estimate = expected_seconds(args, bench.disk, bench.large)
    load_start = uptime()
    log("fleet benchmark: %d VMs of %s, forks %s, controllers %s (x%d forks each); expected duration about %d min "
        "on an idle 2-core machine, up to twice that beside other work" % (
            args.vms, args.disk, args.forks, args.proxies, args.proxy_forks, round(estimate / 60)))
    log("load at start: %s" % load_start)
    fresh_workdir(WORK)
    started = time.monotonic()
    try:
        bench.run()
    finally:
        elapsed = time.monotonic() - started
        summary = {"vms": args.vms, "disk_bytes": bench.disk, "large_disk_bytes": bench.large, "change_bytes": bench.change,
                   "forks": args.forks, "proxies": args.proxies, "proxy_forks": args.proxy_forks, "no_agent": args.no_agent,
                   "poll_interval_s": args.poll_interval, "validate_level": args.validate_level,
                   "repository": "s3 (%s)" % args.s3 if args.s3 else "local",
                   "request_counting": "bench/fleet/hook/sitecustomize.py: calls of the innermost backend "
                                       "(LocalBackend/S3Backend) in every module process, by method and first name component",
                   "uptime_start": load_start, "uptime_end": uptime(), "elapsed_s": round(elapsed, 1),
                   "expected_s": round(estimate), "tree": tree_state(),
                   "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "problems": bench.problems}
        write_results("fleet", summary, {"baseline": bench.baseline, "settings": bench.settings})
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    print()
    print_table(bench)
    print()
    log("load at end: %s; %.0f s (expected %d s); bench/results/fleet.json written" % (summary["uptime_end"], elapsed, estimate))
    if bench.problems:
        log("PROBLEMS:\n  " + "\n  ".join(p[:600] for p in bench.problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
