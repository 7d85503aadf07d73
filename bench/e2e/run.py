# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The end-to-end benchmark's run: the paired repetitions, the scaling run, the report (bench/e2e_bench.py)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import subprocess
import time

import diskgen  # bench/ is on sys.path (bench/e2e_bench.py puts it there)

from . import estimate as estimates
from .common import DRIVER, MIB, PY, Paths, brief, conditions, disk_usage, evict, last_json, log, rmtree, warm
from .floors import compute_floor, measure_ceilings, restore_io_floor
from .render import markdown
from .stats import MIN_REPETITIONS
from .targets import PHASES, evaluate_targets, floors_summary, summarize
from .tools import Blockvault, Borg, Restic, qemu_copy


def one_repetition(number, paths, tools, workload, lab_flat, floor_tool):
    """Every tool on the same disk, then the floors of that disk: one paired repetition (a dict, kept in the JSON)."""
    log("repetition %d: full backups" % number)
    run = {"full": {}, "incremental": {}, "restore": {}, "restore_cold": {}, "conditions": {"start": conditions()}}
    warm(paths.image, lab_flat)
    for tool in tools:
        tool.init()
        run["full"][tool.name] = tool.backup(paths.image)
        log("  %-20s full   %s" % (tool.name, brief(run["full"][tool.name])))
    if any(isinstance(tool, Restic) for tool in tools):
        run["full"]["qemu-img-qcow2"] = m = qemu_copy(paths)
        log("  %-20s copy   %s" % ("qemu-img-qcow2", brief(m)))
    # the compute floor of this repetition's full backups: same disk, same cached source, the same minutes of the
    # machine (a busier machine raises both, the ratio stays paired)
    run["compute_floor"] = compute_floor(paths.image)
    log("  compute floor: %s" % (json.dumps(run["compute_floor"]) if run["compute_floor"] else "not available (no tool)"))
    undo_image = workload.apply_file(paths.image)
    undo_flat = workload.apply_flat(lab_flat) if lab_flat else None
    log("repetition %d: workload %.2f%% (%d MiB) applied; incrementals"
        % (number, workload.fraction * 100, workload.bytes_changed // MIB))
    every_phase = [t for t in tools if not t.full_only]
    for tool in every_phase:
        run["incremental"][tool.name] = tool.backup(paths.image, changed=workload.extents)
        log("  %-20s incr   %s" % (tool.name, brief(run["incremental"][tool.name])))
    log("repetition %d: restores" % number)
    for tool in every_phase:
        run["restore"][tool.name] = tool.restore(os.path.join(paths.work, "restored-%s.img" % tool.name))
        log("  %-20s restore %s" % (tool.name, brief(run["restore"][tool.name])))
    log("repetition %d: restores from a repository out of the page cache" % number)
    for tool in every_phase:
        evict(tool.repo)
        run["restore_cold"][tool.name] = tool.restore(os.path.join(paths.work, "restored-%s.img" % tool.name))
        log("  %-20s cold   %s" % (tool.name, brief(run["restore_cold"][tool.name])))
    if floor_tool is not None:
        run["restore_io_floor"] = restore_io_floor(paths, floor_tool.repo)
        log("  restore I/O floor: %s" % json.dumps(run["restore_io_floor"]))
    run["conditions"]["end"] = conditions()
    for tool in tools:
        tool.cleanup()
    diskgen.undo_file(paths.image, undo_image)
    if undo_flat:
        diskgen.write_flat(lab_flat, undo_flat, sparse=True)
    return run


def scaling(paths, size, fractions, memory_sizes):
    """Incremental time vs changed fraction (engine from the image), full-backup memory vs disk size."""
    result = {"incremental": [], "full_memory": []}
    tool = Blockvault("blockvault-file-scaling", "file", paths)
    tool.init()
    result["base_full"] = tool.backup(paths.image)
    for fraction in fractions:
        workload = diskgen.Workload(size, fraction)
        undo = workload.apply_file(paths.image)
        m = tool.backup(paths.image, changed=workload.extents, base=True)
        diskgen.undo_file(paths.image, undo)
        m.update(fraction=fraction, changed_mib=workload.bytes_changed // MIB)
        result["incremental"].append(m)
        log("  scaling incr %5.1f%%: %s" % (fraction * 100, brief(m)))
    tool.cleanup()
    for disk_size in memory_sizes:
        if disk_size == size:
            path = paths.image
        else:
            path = os.path.join(paths.work, "scale-%d.img" % disk_size)
            # bigger disks stay sparse: the same allocated volume as the main disk at most
            hole = max(0.4, 1 - min(1.0, 0.6 * size / disk_size))
            rest = (1 - hole) / 0.6
            weights = (hole,) + tuple(w * rest for w in diskgen.DEFAULT_WEIGHTS[1:])
            diskgen.generate(path, disk_size, seed=3, weights=weights)
        tool.init()
        m = tool.backup(path)
        m["disk_gib"] = disk_size / (1 << 30)
        m["allocated_mib"] = round(disk_usage(path) / MIB, 1)
        result["full_memory"].append(m)
        log("  scaling full %5.1f GiB: %s" % (m["disk_gib"], brief(m)))
        tool.cleanup()
        if path != paths.image:
            rmtree(path)
    return result


def build_report(report, runs):
    """Fill a report's derived parts from its repetitions: summaries, floors, targets (also for --render)."""
    report["summary"] = {phase: summarize(runs, phase) for phase in PHASES}
    report["floors"] = floors_summary(runs)
    report["targets"] = [evaluation.as_dict() for evaluation in evaluate_targets(runs)]
    report.setdefault("repetition_rule", {"required": MIN_REPETITIONS, "ran": len(runs), "met": len(runs) >= MIN_REPETITIONS})
    return report


def render(path):
    with open(path) as handle:
        report = json.load(handle)
    return markdown(build_report(report, report["raw"]))


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _versions():
    versions = {}
    for name, argv in (("restic", ["restic", "version"]), ("borg", ["borg", "--version"]), ("qemu-img", ["qemu-img", "--version"])):
        try:
            versions[name] = subprocess.run(argv, capture_output=True, text=True, check=False).stdout.splitlines()[0]
        except (OSError, IndexError):
            versions[name] = None
    return versions


def tool_names(args, zstd_level):
    """The tools a run measures, in the order they run (the estimate needs them before the lab starts)."""
    names = [] if args.no_lab else ["blockvault-lab"]
    names.append("blockvault-file")
    if zstd_level != 3:       # the same engine at borg's zstd level: equal compression work, full backup only
        names.append("blockvault-file-zstd3")
    if not args.no_others:
        names += ["restic", "borg-lz4", "borg-zstd3-fixed4M", "qemu-img-qcow2"]
    return names


def make_tools(names, paths, lab):
    makers = {"blockvault-lab": lambda: Blockvault("blockvault-lab", "lab", paths, lab),
              "blockvault-file": lambda: Blockvault("blockvault-file", "file", paths),
              "blockvault-file-zstd3": lambda: Blockvault("blockvault-file-zstd3", "file", paths, level=3, full_only=True),
              "restic": lambda: Restic(paths), "borg-lz4": lambda: Borg("borg-lz4", paths),
              "borg-zstd3-fixed4M": lambda: Borg("borg-zstd3-fixed4M", paths)}
    return [makers[name]() for name in names if name in makers]      # qemu-img runs inside the repetition


def run_benchmark(args, argv):
    """The whole benchmark; returns the report (also written to bench/results)."""
    size = diskgen.parse_size(args.size or ("1G" if args.quick else "4G"))
    runs = args.runs or (2 if args.quick else MIN_REPETITIONS)
    paths = Paths(os.path.abspath(args.work))
    for program in ("restic", "borg", "qemu-img"):
        if not args.no_others and shutil.which(program) is None:
            raise SystemExit("%s is not installed: run `make apt-bench` (or pass --no-others)" % program)
    # as installed, a Python program runs from cached byte-code (Debian's borg does): a development shell's
    # PYTHONDONTWRITEBYTECODE would make every measured run compile the collection again. Warming up also tells
    # the zstd level the product uses by default, whose ceiling is measured.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    zstd_level = last_json(subprocess.run([PY, DRIVER, "warm"], check=True, capture_output=True, text=True).stdout)["zstd_level"]
    names = tool_names(args, zstd_level)
    plan = estimates.Plan(size_bytes=size, repetitions=runs, tools=tuple(names), lab=not args.no_lab,
                          scaling=not args.no_scaling, compute_floor=True, restore_floor=True)
    expected = estimates.estimate(plan)
    log("e2e benchmark: %d MiB disk, tools %s; expected duration %s (an idle 2-core machine; longer beside other work)"
        % (size // MIB, ", ".join(names), expected.describe()))
    if runs < MIN_REPETITIONS:
        log("NOTE: %d repetition(s) requested, fewer than the %d the project's rule needs: the result cannot call a "
            "target met" % (runs, MIN_REPETITIONS))
    rmtree(paths.work)
    os.makedirs(paths.work)
    began = time.monotonic()
    log("generating the %d MiB disk (seed %d)" % (size // MIB, args.seed))
    disk = diskgen.generate(paths.image, size, seed=args.seed)
    log("disk: %s" % json.dumps(disk["kinds"]))
    log("ceilings")
    ceilings = measure_ceilings(paths, 256 if args.quick else 512, zstd_level)
    log("ceilings: %s" % json.dumps(ceilings))
    lab = lab_flat = None
    results, scale, durations, why_fewer = [], None, [], None
    try:
        if not args.no_lab:
            from labkit import Lab  # pylint: disable=import-outside-toplevel
            lab = Lab.start(paths.labdir, vm1_disk0=size, vm1_disk1="1M", vm2_disk0="1M")
            lab_flat = lab.disks("lab-vm1")[0]["flat"]
            diskgen.load_image_into_flat(paths.image, lab_flat)
        tools = make_tools(names, paths, lab)
        floor_tool = next((t for t in tools if t.name == "blockvault-file"), None)
        workload = diskgen.Workload(size, args.change)
        for number in range(1, runs + 1):
            elapsed = time.monotonic() - began
            if args.time_budget and number > 1 and elapsed + max(durations) > args.time_budget:
                why_fewer = "cut by --time-budget %.0f s after %d repetition(s)" % (args.time_budget, number - 1)
                log("TIME BUDGET: %s; a repetition takes up to %.0f s. %s" % (
                    why_fewer, max(durations), "FEWER THAN %d: NO TARGET CAN BE CALLED MET" % MIN_REPETITIONS
                    if number - 1 < MIN_REPETITIONS else ""))
                break
            rep_started = time.monotonic()
            results.append(one_repetition(number, paths, tools, workload, lab_flat, floor_tool))
            durations.append(round(time.monotonic() - rep_started, 1))
            results[-1]["duration_s"] = durations[-1]
            left = estimates.remaining(sum(durations), number, runs, expected.scaling_s)
            log("repetition %d took %.0f s; about %s left (expected end %s)" % (
                number, durations[-1], "%.0f min" % (left / 60) if left >= 90 else "%.0f s" % left,
                time.strftime("%H:%M", time.localtime(time.time() + left))))
        if not args.no_scaling:
            # after the last repetition: its workloads' undo punches holes where the disk had written zeros (10 % of
            # the blocks: 20 MiB less allocated at 1 GiB), which would change the disk of the repetitions after it
            log("scaling run")
            memory_sizes = (size // 4, size, size * 4) if args.quick else (1 << 30, 4 << 30, 16 << 30)
            scale = scaling(paths, size, (0.001, 0.01, 0.1), memory_sizes)
    finally:
        if lab is not None:
            lab.stop()
    if why_fewer is None and runs < MIN_REPETITIONS:
        why_fewer = "--quick" if args.quick and not args.runs else "--runs %d" % runs
    report = {
        "command": "bench/e2e_bench.py " + " ".join(argv) if argv else "make bench",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_model(), "kernel": platform.release(), "python": platform.python_version(),
                    "loadavg_at_end": os.getloadavg(), "versions": _versions()},
        "disk": disk, "workload": {"fraction": args.change, "blocks": len(workload.blocks), "bytes": workload.bytes_changed},
        "runs": len(results), "runs_requested": runs,
        "repetition_rule": {"required": MIN_REPETITIONS, "ran": len(results), "met": len(results) >= MIN_REPETITIONS,
                            "why_fewer": why_fewer if len(results) < MIN_REPETITIONS else None},
        "ceilings": ceilings, "scaling": scale, "raw": results, "repetition_s": durations,
        "expected_s": round(expected.total_s), "duration_s": round(time.monotonic() - began, 1),
    }
    build_report(report, results)
    os.makedirs(args.results, exist_ok=True)
    name = "e2e-quick" if args.quick else "e2e"
    with open(os.path.join(args.results, name + ".json"), "w") as handle:
        json.dump(report, handle, indent=1)
    table = markdown(report)
    with open(os.path.join(args.results, name + ".md"), "w") as handle:
        handle.write(table)
    print(table)
    rmtree(paths.work)
    log("done in %.0f s (expected %.0f s)" % (report["duration_s"], report["expected_s"]))
    if not report["repetition_rule"]["met"]:
        log("NOTE: %d repetition(s) < %d: no target is met by this run (%s)" % (len(results), MIN_REPETITIONS, why_fewer))
    return report
