# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The markdown tables of an end-to-end result (what docs/performance.md quotes): per tool and operation, medians
with their min-max; the targets, each at its median and at its worst repetition."""

from __future__ import annotations

from .common import MIB
from .stats import MIN_REPETITIONS
from .targets import PHASES

NAMES = {"full": "full backup", "incremental": "2nd backup (1% changed)", "restore": "restore (latest)",
         "restore_cold": "restore, repository not cached"}


def _f(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.2f" % value if abs(value) < 100 else "%.0f" % value
    return str(value)


def _range(spread, digits=2):
    """'median (min-max)' of a spread dict, '-' without one."""
    if not spread:
        return "-"
    fmt = "%%.%df" % digits
    return (fmt + " (" + fmt + "-" + fmt + ")") % (spread["median"], spread["min"], spread["max"])


def _verdict(flag):
    return {True: "yes", False: "**no**", None: "n/a"}[flag]


def _zstd(ceil):
    """(level, MB/s, ratio) of the zstd level the product used (results before the level was recorded: 3)."""
    if "zstd_level" in ceil:
        return ceil["zstd_level"], ceil["zstd_MBps"], ceil["zstd_ratio"]
    return 3, ceil["zstd3_MBps"], ceil["zstd3_ratio"]


def header(report):
    rule = report.get("repetition_rule") or {}
    runs = report["runs"]
    text = ("Disk: %d MiB, %.0f%% allocated (%s), seed %d; workload: %d blocks of 4 MiB rewritten (%.1f%%). %d paired "
            "repetition(s): medians with min-max across them. Machine: %d x %s, load average at the end %.1f. Restores: "
            "'on disk' adds the time an fsync of the output takes after the tool exits (restic and borg do not sync; "
            "blockvault does)." % (
                report["disk"]["size"] // MIB, report["disk"]["allocated_fraction"] * 100,
                ", ".join("%s %d" % kv for kv in report["disk"]["kinds"].items()), report["disk"]["seed"],
                report["workload"]["blocks"], report["workload"]["fraction"] * 100, runs,
                report["machine"]["cpus"], report["machine"]["cpu"], report["machine"]["loadavg_at_end"][0]))
    lines = [text, ""]
    if runs < rule.get("required", MIN_REPETITIONS):
        lines += ["**%d repetition(s), fewer than the %d the project's rule needs: no target is met by this run** (%s)."
                  % (runs, rule.get("required", MIN_REPETITIONS), rule.get("why_fewer") or "fewer were requested"), ""]
    return lines


def tools_table(report):
    s = report["summary"]
    lines = ["| tool | operation | wall s (min-max) | x restic (min-max) | CPU s | cores busy | peak RSS MiB | read MiB | "
             "repository MiB | output MiB | on disk s (x restic) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for phase in PHASES:
        for tool, m in s.get(phase, {}).items():
            spread = m.get("spread", {})
            wall = _range(spread.get("wall_s")) if spread.get("wall_s") else _f(m["wall_s"])
            vs = _range(spread.get("wall_vs_restic"), 3) if spread.get("wall_vs_restic") else _f(m.get("wall_vs_restic"))
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                tool, NAMES[phase] if tool != "qemu-img-qcow2" else "convert to qcow2", wall, vs, _f(m["cpu_s"]),
                "%.2f" % (m["cpu_s"] / m["wall_s"]) if m["wall_s"] else "-", _f(m["peak_rss_mib"]), _f(m["read_mib"]),
                _f(m["repo_mib"]), _f(m["output_mib"]) + ("" if m.get("output_ok", True) else " (DIFFERS)"),
                "%s (%s)" % (_f(m["durable_wall_s"]), _f(m.get("durable_vs_restic"))) if m.get("durable_wall_s") else ""))
    return lines


def machine_lines(report):
    c = report["ceilings"]
    level, zstd_rate, zstd_ratio = _zstd(c)
    other = " (level 3: %s, ratio %s)" % (c["zstd3_MBps"], c["zstd3_ratio"]) if level != 3 else ""
    lines = ["Ceilings of this machine, same run, per core (MB/s, on the disk's own data): page-cache read %s (one "
             "thread), SHA-256 %s, zstd level %d (the product's) %s (ratio %s)%s, AES-256-GCM %s; hash+compress+encrypt "
             "in series %s per core. Local disk writes of 4 MiB files: %s MB/s with an fsync per file, %s MB/s with "
             "the fsyncs at the end." % (c["page_cache_read_MBps"], c["sha256_MBps"], level, zstd_rate, zstd_ratio, other,
                                         c["aes256gcm_MBps"], c["cpu_pipeline_per_core_MBps"],
                                         c["disk_write_fsync_each_4MiB_MBps"], c["disk_write_fsync_at_end_MBps"]), ""]
    floors = report.get("floors") or {}
    io = floors.get("restore_io_floor")
    if io:
        lines += ["Restore I/O floor, every repetition (the I/O of blockvault-file's restore with no processing, 4 threads "
                  "each; median (min-max)): writing the image's %s MiB of non-zero 4 MiB blocks with O_DIRECT and an fsync "
                  "takes %s s alone, %s s while the repository's %s MiB of chunk files are read from disk at the same time "
                  "(the floor the restore targets use)." % (
                      _f(io["write_mib"]["median"]), _range(io["writes_only_s"]), _range(io["reads_and_writes_s"]),
                      _f(io["read_mib"]["median"])), ""]
    cf = floors.get("compute_floor")
    if cf:
        lines += ["Compute floor of a full backup, every repetition (`compute-floor.py` on the image: SHA-256 of every "
                  "non-zero 4 MiB chunk, zstd-1 of every new chunk that compresses, AES-256-GCM of what is stored, "
                  "single-threaded CPU time divided by the %d cores; median (min-max)): %s s (zstd-1 also on the chunks "
                  "that do not compress: %s s)." % (report["machine"]["cpus"], _range(cf["floor_s"]), _range(cf["full_zstd_floor_s"])),
                  ""]
    incremental = report["summary"].get("incremental", {})
    split = [(tool, m["spread"]) for tool, m in incremental.items() if (m.get("spread") or {}).get("fixed_cost_s")]
    if split:
        lines += ["Incremental split, median (min-max): " + "; ".join(
            "%s: fixed cost %s s, transfer %s s (from the full backup's throughput: fixed %s s)" % (
                tool, _range(sp["fixed_cost_s"]), _range(sp.get("transfer_s")), _range(sp.get("fixed_cost_estimate_s")))
            for tool, sp in split) + ".", ""]
    return lines


def repetition_lines(report):
    """One line on the repetitions' conditions: a repetition beside other work shows in its load and CPU pressure."""
    parts = []
    for number, run in enumerate(report.get("raw", []), 1):
        cond = run.get("conditions") or {}
        start, end = cond.get("start") or {}, cond.get("end") or {}
        if not start:
            continue
        parts.append("%d: %.0f s, load %.1f to %.1f, CPU pressure %.0f to %.0f %%" % (
            number, run.get("duration_s") or 0, start["loadavg"][0], end.get("loadavg", [0.0])[0],
            start.get("cpu_pressure_pct") or 0, end.get("cpu_pressure_pct") or 0))
    return ["Repetitions (duration, 1-minute load average and CPU pressure at start and end): " + "; ".join(parts) + ".", ""] \
        if parts else []


def targets_table(report):
    lines = ["| target | median (min-max) | worst repetition | limit | met at median | holds at worst repetition |",
             "| --- | ---: | ---: | ---: | --- | --- |"]
    for t in report["targets"]:
        if t["median"] is None:
            lines.append("| %s | - | - | %s %s | n/a | n/a |" % (t["target"], ">=" if t.get("better") == "higher" else "<=", t["limit"]))
            continue
        holds = _verdict(t["holds_at_worst"])
        if t["holds_at_worst"] and not t["met"]:       # holds, but too few repetitions for the project's rule
            required = report.get("repetition_rule", {}).get("required", MIN_REPETITIONS)
            holds += " (%d repetition(s) < %d)" % (t["repetitions"], required)
        origin = "" if t.get("origin", "issue 16") == "issue 16" else " (earlier target)"
        num = "%.1f" if t["limit"] >= 10 else "%.3f"       # MiB and seconds vs ratios
        lines.append("| %s%s | %s (%s-%s) | %s | %s %s | %s | %s |" % (
            t["target"], origin, num % t["median"], num % t["min"], num % t["max"], num % t["worst"],
            ">=" if t.get("better") == "higher" else "<=", t["limit"], _verdict(t["met_at_median"]), holds))
    return lines


def scaling_lines(report):
    sc = report.get("scaling")
    if not sc:
        return []
    lines = ["Scaling (blockvault from the image file, once, after the last repetition):", "",
             "| incremental | changed MiB | wall s | CPU s | read MiB | peak RSS MiB |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for m in sc["incremental"]:
        lines.append("| %.1f%% | %d | %s | %s | %s | %s |" % (
            m["fraction"] * 100, m["changed_mib"], _f(m["wall_s"]), _f(m["cpu_s"]), _f(m["read_mib"]), _f(m["peak_rss_mib"])))
    lines += ["", "| full backup, disk GiB | allocated MiB | wall s | CPU s | peak RSS MiB |", "| ---: | ---: | ---: | ---: | ---: |"]
    for m in sc["full_memory"]:
        lines.append("| %g | %s | %s | %s | %s |" % (
            m["disk_gib"], _f(m["allocated_mib"]), _f(m["wall_s"]), _f(m["cpu_s"]), _f(m["peak_rss_mib"])))
    return lines + [""]


def markdown(report):
    lines = header(report) + tools_table(report) + [""] + machine_lines(report) + repetition_lines(report)
    lines += targets_table(report) + [""]
    lines += scaling_lines(report)
    expected = report.get("expected_s")
    said = "; expected %.0f s" % expected if expected else ""
    lines += ["Reproduce: `%s` (%.0f s%s)." % (report["command"], report["duration_s"], said), ""]
    return "\n".join(lines)
