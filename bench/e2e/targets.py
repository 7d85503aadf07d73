# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The targets of the end-to-end benchmark, each a figure per repetition, and the per-tool summaries.

Every figure is taken within one repetition (the tools ran on the same disk, one after the other), then evaluated
over the repetitions (stats.evaluate): median, min-max, worst. Works on result files of earlier harness versions
too (figures they lack are n/a)."""

from __future__ import annotations

from .stats import Spread, Target, evaluate, median, ratio

PHASES = ("full", "incremental", "restore", "restore_cold")
PRODUCT = ("blockvault-lab", "blockvault-file")
BORG_BEST = "borg-zstd3-fixed4M"
METRICS = ("wall_s", "durable_wall_s", "cpu_s", "peak_rss_mib", "read_mib", "repo_mib", "output_mib")


def _wall(run, phase, tool):
    return run[phase][tool]["wall_s"]


def fixed_cost(row):
    """An incremental's fixed cost, measured: its wall time (the process from outside) minus the time its transfer
    (transfer.pipeline.backup_disks, timed inside the process by bv_driver.py) took to move the changed bytes."""
    if row.get("transfer_s") is None:
        return None
    return max(0.0, row["wall_s"] - row["transfer_s"])


def fixed_cost_estimate(run, tool):
    """The same from outside only, as a cross-check: the incremental's wall time minus the time its changed bytes
    take at the same repetition's full-backup throughput (bytes the tool read / full backup wall time)."""
    full, incremental = run["full"][tool], run["incremental"][tool]
    rate = ratio(full.get("bytes_read_by_tool_mib"), full["wall_s"])
    if not rate or incremental.get("bytes_read_by_tool_mib") is None:
        return None
    return incremental["wall_s"] - incremental["bytes_read_by_tool_mib"] / rate


def _peak_rss(run, tool):
    values = [run[phase][tool]["peak_rss_mib"] for phase in PHASES if tool in run.get(phase, {})]
    return max(values) if values else None


def _floor(run, key):
    return (run.get("restore_io_floor") or {}).get(key)


def _compute_floor(run):
    return (run.get("compute_floor") or {}).get("floor_s")


def target_list(tools=PRODUCT):
    """The targets table, issue 16's first, then the earlier targets that still mean something."""
    out = []
    for tool in tools:
        out += [
            Target("%s full backup / restic full backup (wall)" % tool, 0.25,
                   lambda run, t=tool: ratio(_wall(run, "full", t), _wall(run, "full", "restic"))),
            Target("%s full backup / same-run compute floor (wall)" % tool, 1.2,
                   lambda run, t=tool: ratio(_wall(run, "full", t), _compute_floor(run))),
        ]
        if tool == "blockvault-lab":
            out.append(Target("blockvault-lab 1% incremental: fixed cost, s (wall minus the transfer of the changed bytes)",
                              0.5, lambda run: fixed_cost(run["incremental"]["blockvault-lab"])))
        for phase, cached in (("restore", "repository cached"), ("restore_cold", "repository not cached")):
            out += [
                Target("%s restore / restic restore (wall as the tools exit, %s)" % (tool, cached), 0.4,
                       lambda run, t=tool, p=phase: ratio(_wall(run, p, t), _wall(run, p, "restic"))),
                Target("%s restore / same-run I/O floor with repository reads (%s)" % (tool, cached), 1.3,
                       lambda run, t=tool, p=phase: ratio(_wall(run, p, t), _floor(run, "reads_and_writes_s"))),
            ]
    for tool in tools:
        out += [
            Target("%s full backup / borg zstd,3 fixed 4M --sparse (wall)" % tool, 0.5,
                   lambda run, t=tool: ratio(_wall(run, "full", t), _wall(run, "full", BORG_BEST)), origin="earlier"),
            Target("%s 1%% incremental / restic 2nd backup (wall)" % tool, 0.1,
                   lambda run, t=tool: ratio(_wall(run, "incremental", t), _wall(run, "incremental", "restic")),
                   origin="earlier"),
            Target("%s peak memory, MiB (every phase)" % tool, 256, lambda run, t=tool: _peak_rss(run, t), origin="earlier"),
        ]
    return out


def evaluate_targets(runs, tools=PRODUCT):
    """[stats.Evaluation] of every target over the repetitions (the tools that did not run are left out)."""
    ran = [tool for tool in tools if any(tool in run.get("full", {}) for run in runs)]
    return [evaluate(target, runs) for target in target_list(ran)]


def with_durable(runs):
    """Add durable_wall_s (wall time plus the fsync of the output after the tool exits) to every restore row."""
    for run in runs:
        for phase in PHASES:
            for row in run.get(phase, {}).values():
                if "fsync_s" in row:
                    row["durable_wall_s"] = round(row["wall_s"] + row["fsync_s"], 3)
    return runs


def _spread_dict(values):
    spread = Spread.of(values)
    return None if spread is None else {"median": round(spread.median, 3), "min": round(spread.low, 3),
                                        "max": round(spread.high, 3)}


def summarize(runs, phase):
    """{tool: {metric: median, "spread": {metric: {median, min, max}}}} over the repetitions of ``phase``."""
    with_durable(runs)
    tools = sorted({tool for run in runs for tool in run.get(phase, {})})
    table = {}
    for tool in tools:
        pairs = [(run, run[phase][tool]) for run in runs if tool in run.get(phase, {})]
        rows = [row for _run, row in pairs]
        metrics = {metric: median([row.get(metric) for row in rows]) for metric in METRICS}
        per_rep = {"wall_s": [row["wall_s"] for row in rows],
                   "wall_vs_restic": [ratio(row["wall_s"], run[phase].get("restic", {}).get("wall_s")) for run, row in pairs]}
        if phase.startswith("restore"):
            per_rep["durable_vs_restic"] = [ratio(row.get("durable_wall_s"), run[phase].get("restic", {}).get("durable_wall_s"))
                                            for run, row in pairs]
        if phase == "incremental" and any(row.get("transfer_s") is not None for row in rows):
            per_rep["transfer_s"] = [row.get("transfer_s") for row in rows]
            per_rep["fixed_cost_s"] = [fixed_cost(row) for row in rows]
            per_rep["fixed_cost_estimate_s"] = [fixed_cost_estimate(run, tool) if tool in run.get("full", {}) else None
                                                for run, _row in pairs]
        for key in ("wall_vs_restic", "durable_vs_restic", "transfer_s", "fixed_cost_s", "fixed_cost_estimate_s"):
            if key in per_rep:
                metrics[key] = median(per_rep[key])
        metrics["spread"] = {key: _spread_dict(values) for key, values in per_rep.items()}
        metrics["runs"] = len(rows)
        oks = [row.get("output_ok") for row in rows if "output_ok" in row]
        if oks:
            metrics["output_ok"] = all(oks)
        table[tool] = metrics
    return table


def floors_summary(runs):
    """Median and min-max of the restore I/O floor and compute floor figures over the repetitions."""
    out = {}
    for name in ("restore_io_floor", "compute_floor"):
        rows = [run[name] for run in runs if run.get(name)]
        if rows:
            keys = [key for key, value in rows[0].items() if isinstance(value, (int, float))]
            out[name] = {key: _spread_dict([row.get(key) for row in rows]) for key in keys}
    return out
