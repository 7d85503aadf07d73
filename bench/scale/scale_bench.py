# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scale benchmark (issue 16): a synthetic fleet's repository, and what its maintenance and listings cost.

    python bench/scale/scale_bench.py --size full      # 1,000 VMs x 30 restore points, ~12 M chunks (make bench-scale)
    python bench/scale/scale_bench.py --size reduced   # 100 VMs x 10 restore points, ~0.75 M chunks (make bench)

Builds the repository through the repository code (generate.py; chunk objects stand in as names, standin.py), then
runs each operation in a child process of its own (measure.py): opening, listing restore points (the repository's
and the modules' listing), the chunk listing a backup starts with, GC's mark alone (compact, into full ids, and the
former mark at reduced size), quick and full validation of one restore point, GC dry run, a GFS prune of every VM,
GC dry run and GC. With ``--real-check`` (default at full size) the same operations run on a repository of about a
million real chunk files and on its stand-in twin, to check the stand-in's figures. Writes
bench/results/scale.json (``--size full``; other sizes scale-<size>.json), prints a table, and removes the work
directory (bench/work/scale) unless ``--keep``. Expected duration on the 2-core benchmark machine: reduced about
10 minutes, full about 90 minutes (with the real check).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

from common import GIB, RESULTS, WORK, load, stamp

import generate
import measure

SEQUENCE = ["open", "list_all", "list_vm", "info_all", "info_vm", "chunk_listing", "backup_start", "mark", "mark_ids", "mark_legacy",
            "validate_quick", "validate_full", "gc_dry_before", "prune", "gc_dry", "gc", "backup_start_after_gc"]
CHECK_SEQUENCE = ["list_all", "chunk_listing", "backup_start", "mark", "gc_dry_before", "prune", "gc_dry", "gc", "backup_start_after_gc"]
# measurements that run an operation again at another point of the sequence
AGAIN = {"gc_dry_before": "gc_dry", "backup_start_after_gc": "backup_start"}


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return None


def estimate_bytes(scenario):
    """The disk the repository will take: its indexes (32 bytes per entry), the validation VM's chunks, the chunk
    files of a real-mode repository."""
    total_weight = sum(weight for _size, weight in scenario.disk_sizes)
    mean_gib = sum(size * weight for size, weight in scenario.disk_sizes) / total_weight * (1 + scenario.second_disk)
    entries = scenario.vms * scenario.points * mean_gib * GIB / scenario.chunk_size
    chunks = scenario.vms * mean_gib * GIB / scenario.chunk_size * 0.45 * (1 + 0.03 * scenario.points)
    return int(entries * 32 * 1.05 + scenario.validate_disk_gib * GIB * 0.4 * 0.55
               + (chunks * 4096 if scenario.mode == "real" else chunks * 32) + 0.2 * GIB)


def check_disk(path, scenario, log):
    os.makedirs(path, exist_ok=True)
    needed = estimate_bytes(scenario)
    free = shutil.disk_usage(path).free
    log("  disk: %.1f GiB needed (estimate), %.1f GiB free on %s" % (needed / GIB, free / GIB, path))
    if free < needed + 5 * GIB:
        raise SystemExit("Not enough free disk for this size: %.1f GiB needed plus 5 GiB of margin, %.1f GiB free." % (
            needed / GIB, free / GIB))
    return needed


def measure_all(workdir, summary, sequence, mode, model, log):
    scenario = summary["scenario"]
    sample = "scale-vm-%04d" % min(42, scenario["vms"] - 1)
    figures = {}
    for name in sequence:
        figures[name] = measure.run(AGAIN.get(name, name), workdir, mode, model, scenario["encrypted"], summary["master_key"], sample,
                                    scenario=scenario, log=log)
    return figures


def build_and_measure(workdir, scenario, jobs, sequence, model, keep, log):
    if os.path.exists(workdir):
        shutil.rmtree(workdir)
    check_disk(os.path.dirname(workdir), scenario, log)
    summary = generate.build(workdir, scenario, jobs=jobs, log=log)
    totals = summary["totals"]
    log("  built in %.0f s: %d restore points, %d indexes, %.1f M index entries, %.2f M chunks, %.2f GiB of indexes, load %s" % (
        summary["seconds"], totals["points"] + (1 if summary["validation_vm"] else 0), totals["indexes"], totals["entries"] / 1e6,
        summary["chunks_stored"] / 1e6, summary["index_bytes_on_disk"] / GIB, summary["load_after"]))
    try:
        figures = measure_all(workdir, summary, sequence, scenario.mode, model, log)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = dict(summary)
    summary.pop("master_key", None)
    return {"repository": summary, "measurements": figures}


def derived(run):
    """Per-entry and per-chunk figures of a run's mark and GC."""
    totals = run["repository"]["totals"]
    chunks = run["repository"]["chunks_stored"]
    out = {}
    mark = run["measurements"].get("mark")
    if mark:
        out["mark_ns_per_entry"] = round(mark["wall_s"] / totals["entries"] * 1e9, 1)
        out["mark_cpu_ns_per_entry"] = round(mark["cpu_s"] / totals["entries"] * 1e9, 1)
        out["mark_set_bytes_per_chunk"] = round(mark["result"]["set_bytes"] / max(1, mark["result"]["referenced"]), 2)
        out["mark_peak_above_base_mib"] = round(mark["peak_rss_mib"] - (mark["base_rss_mib"] or 0), 1)
    for name in ("mark_ids", "mark_legacy"):
        if name in run["measurements"] and mark:
            out["%s_vs_mark_wall" % name] = round(run["measurements"][name]["wall_s"] / max(0.01, mark["wall_s"]), 2)
    listing = run["measurements"].get("chunk_listing")
    if listing:
        out["chunk_listing_us_per_chunk"] = round(listing["wall_s"] / max(1, chunks) * 1e6, 2)
        out["chunk_listing_bytes_per_chunk"] = round((listing["peak_rss_mib"] - (listing["base_rss_mib"] or 0)) * (1 << 20) / max(1, chunks), 1)
    return out


BRIEF = ("restore_points", "vms", "chunks", "referenced", "entries", "changed_digests", "ok", "chunks_referenced", "chunks_read",
         "chunks_stored", "chunks_removed", "chunks_condemned", "kept", "removed", "path", "asked", "present", "head_requests")


def brief(result):
    """The telling counts of an operation's result, in a line."""
    return " ".join("%s=%s" % (key, result[key]) for key in BRIEF if key in result)[:120]


def table(result):
    lines = []
    for label, run in result["runs"].items():
        repo = run["repository"]
        totals = repo["totals"]
        lines.append("")
        lines.append("%s: %d VMs x %d restore points (%s), %.1f M index entries, %.2f M chunks, %.2f GiB of indexes; built in %.0f s" % (
            label, repo["scenario"]["vms"], repo["scenario"]["points"], repo["scenario"]["mode"], totals["entries"] / 1e6,
            repo["chunks_stored"] / 1e6, repo["index_bytes_on_disk"] / GIB, repo["seconds"]))
        lines.append("%-21s %9s %9s %10s %9s %10s  %s" % ("operation", "wall s", "CPU s", "peak MiB", "base MiB", "S3 reqs", "load  result"))
        for name, figures in run["measurements"].items():
            result_text = brief(figures["result"])
            lines.append("%-21s %9.1f %9.1f %10.1f %9.1f %10d  %-5s %s" % (
                name, figures["wall_s"], figures["cpu_s"], figures["peak_rss_mib"], figures["base_rss_mib"] or 0,
                figures["requests_total"], figures["load_before"][0], result_text))
        for key, value in run.get("derived", {}).items():
            lines.append("  %s: %s" % (key, value))
    return "\n".join(lines)


def markdown(result):
    """The figures as markdown tables (for docs/performance.md)."""
    lines = []
    for label, run in result["runs"].items():
        repo = run["repository"]
        lines += ["", "**%s** (%d VMs x %d restore points, %.0f M index entries, %.2f M chunks, %.1f GiB of indexes)" % (
            label, repo["scenario"]["vms"], repo["scenario"]["points"], repo["totals"]["entries"] / 1e6,
            repo["chunks_stored"] / 1e6, repo["index_bytes_on_disk"] / GIB), "",
            "| operation | wall s | CPU s | peak RSS MiB | S3 requests | load (1 min) |", "|---|---:|---:|---:|---:|---:|"]
        for name, figures in run["measurements"].items():
            requests = ", ".join("%s %d" % (k, v) for k, v in sorted(figures["requests"].items()))
            lines.append("| %s | %.1f | %.1f | %.0f | %s | %s |" % (
                name, figures["wall_s"], figures["cpu_s"], figures["peak_rss_mib"], requests or "0", figures["load_before"][0]))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--size", choices=("full", "reduced", "smoke"), default="reduced")
    parser.add_argument("--jobs", type=int, default=2, help="generating processes (default 2)")
    parser.add_argument("--model", choices=("s3", "local"), default="s3",
                        help="code paths of the stand-in runs: S3's (default: parallel prefix listings, S3 request counts) or a local directory's")
    parser.add_argument("--real-check", dest="real_check", action="store_true", default=None,
                        help="also the real local run at ~1 M chunk files and its stand-in twin (default at full size)")
    parser.add_argument("--no-real-check", dest="real_check", action="store_false")
    parser.add_argument("--legacy-mark", dest="legacy", action="store_true", default=None,
                        help="also the former mark (every index whole; default except at full size, where it takes ~30 min)")
    parser.add_argument("--no-legacy-mark", dest="legacy", action="store_false")
    parser.add_argument("--check-profile", choices=("check", "smoke"), default="check", help=argparse.SUPPRESS)
    parser.add_argument("--ops", help="a comma-separated subset of the operations (%s)" % ",".join(SEQUENCE))
    parser.add_argument("--keep", action="store_true", help="keep the work directories (bench/work/scale)")
    parser.add_argument("--output")
    parser.add_argument("--markdown", metavar="JSON", help="print the tables of an earlier result and exit")
    parser.add_argument("--table", metavar="JSON", help="print the table of an earlier result and exit")
    args = parser.parse_args()
    if args.markdown or args.table:
        with open(args.markdown or args.table) as handle:
            print((markdown if args.markdown else table)(json.load(handle)))
        return
    real_check = args.real_check if args.real_check is not None else args.size == "full"
    legacy = args.legacy if args.legacy is not None else args.size != "full"
    output = args.output or os.path.join(RESULTS, "scale.json" if args.size == "full" else "scale-%s.json" % args.size)

    def log(text):
        print(text, flush=True)

    started = time.time()
    log("scale benchmark, size %s: started %s; %s" % (args.size, stamp(), uptime()))
    result = {"benchmark": "scale", "size": args.size, "started": stamp(),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                          "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, 1)},
              "uptime_before": uptime(), "load_before": load(), "policy": measure.POLICY, "model": args.model, "runs": {}}
    sequence = [op for op in SEQUENCE if legacy or op != "mark_legacy"]
    if args.ops:
        wanted = args.ops.split(",")
        unknown = sorted(set(wanted) - set(SEQUENCE))
        if unknown:
            raise SystemExit("unknown operation(s) %s; they are %s" % (", ".join(unknown), ", ".join(SEQUENCE)))
        sequence = [op for op in SEQUENCE if op in wanted]
    scenario = generate.Scenario(mode="standin", **generate.PROFILES[args.size])
    log("- %s (stand-in chunk store, %s code paths)" % (args.size, args.model))
    run = build_and_measure(os.path.join(WORK, args.size), scenario, args.jobs, sequence, args.model, args.keep, log)
    run["derived"] = derived(run)
    result["runs"][args.size] = run
    if real_check:
        for mode in ("real", "standin"):
            log("- check: ~1 M chunks, %s, local-directory code paths" % ("real chunk files" if mode == "real" else "stand-in"))
            check = generate.Scenario(mode=mode, **dict(generate.PROFILES[args.check_profile], validate_disk_gib=0.0))
            run = build_and_measure(os.path.join(WORK, "check-%s" % mode), check, args.jobs, CHECK_SEQUENCE, "local", args.keep, log)
            run["derived"] = derived(run)
            result["runs"]["check-%s" % mode] = run
    result.update(seconds=round(time.time() - started), load_after=load(), uptime_after=uptime(), finished=stamp())
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w") as handle:
        json.dump(result, handle, indent=1)
    log(table(result))
    log("\nWritten to %s (%.0f s); %s" % (output, time.time() - started, result["uptime_after"]))
    if not args.keep and os.path.isdir(WORK) and not os.listdir(WORK):
        os.rmdir(WORK)


if __name__ == "__main__":
    sys.exit(main())
