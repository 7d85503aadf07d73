# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure parts of the end-to-end benchmark (bench/e2e): medians and spreads over paired repetitions, targets
judged at their median and at their worst repetition, the compute floor's parsing, the duration estimate."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "bench"))

from e2e import estimate, floors, render, stats, targets  # noqa: E402  pylint: disable=wrong-import-position


def _target(limit, better=stats.LOWER):
    return stats.Target("t", limit, lambda run: run["v"], better=better)


def _runs(*values):
    return [{"v": v} for v in values]


def test_spread_is_median_and_min_max_of_present_values():
    spread = stats.Spread.of([0.3, None, 0.1, 0.2, 0.5])
    assert (spread.median, spread.low, spread.high, spread.count) == (0.25, 0.1, 0.5, 4)
    assert stats.Spread.of([None, None]) is None


def test_a_target_met_at_the_median_can_miss_at_the_worst_repetition():
    evaluation = stats.evaluate(_target(0.25), _runs(0.20, 0.22, 0.24, 0.26, 0.21))
    assert evaluation.spread.median == 0.22
    assert evaluation.worst == 0.26
    assert evaluation.met_at_median is True
    assert evaluation.holds_at_worst is False
    assert evaluation.met is False


def test_a_target_is_met_only_when_it_holds_at_the_worst_of_at_least_five():
    five = stats.evaluate(_target(0.25), _runs(0.20, 0.22, 0.24, 0.25, 0.21))
    assert five.holds_at_worst is True and five.met is True
    four = stats.evaluate(_target(0.25), _runs(0.20, 0.22, 0.24, 0.25))
    assert four.holds_at_worst is True
    assert four.met is False                 # too few repetitions for the project's rule
    # a repetition that lacks the figure does not count towards the five
    gap = stats.evaluate(_target(0.25), _runs(0.20, 0.22, 0.24, 0.25, None))
    assert gap.spread.count == 4 and gap.met is False


def test_the_worst_of_a_higher_is_better_target_is_its_lowest_value():
    evaluation = stats.evaluate(_target(0.6, better=stats.HIGHER), _runs(0.9, 0.7, 0.55, 0.8, 0.85))
    assert evaluation.worst == 0.55
    assert evaluation.met_at_median is True
    assert evaluation.holds_at_worst is False


def test_a_figure_a_repetition_lacks_is_none_not_an_error():
    evaluation = stats.evaluate(_target(1.0), [{"v": 0.5}, {}, {"v": None}])
    assert evaluation.values == (0.5, None, None)
    assert stats.evaluate(_target(1.0), [{}]).as_dict()["met"] is None


def _repetition(lab_full, restic_full, restore, restic_restore, floor_rw, compute, incr_wall, incr_transfer):
    row = {"peak_rss_mib": 170.0}
    return {
        "full": {"blockvault-lab": dict(row, wall_s=lab_full, bytes_read_by_tool_mib=2400.0),
                 "restic": dict(row, wall_s=restic_full), "borg-zstd3-fixed4M": dict(row, wall_s=10.0)},
        "incremental": {"blockvault-lab": dict(row, wall_s=incr_wall, transfer_s=incr_transfer, bytes_read_by_tool_mib=40.0),
                        "restic": dict(row, wall_s=6.0)},
        "restore": {"blockvault-lab": dict(row, wall_s=restore), "restic": dict(row, wall_s=restic_restore)},
        "restore_cold": {"blockvault-lab": dict(row, wall_s=restore), "restic": dict(row, wall_s=restic_restore)},
        "restore_io_floor": {"reads_and_writes_s": floor_rw, "writes_only_s": floor_rw / 2},
        "compute_floor": {"floor_s": compute},
    }


def test_ratios_are_paired_within_each_repetition():
    # restic's slow repetition goes with blockvault's slow one: paired, every ratio is 0.25; the ratio of the
    # medians (3.5 / 12) would be 0.29 and miss
    runs = [_repetition(3.0, 12.0, 2.0, 6.0, 2.0, 3.0, 0.6, 0.2), _repetition(4.0, 16.0, 2.0, 6.0, 2.0, 3.0, 0.6, 0.2),
            _repetition(3.5, 14.0, 2.0, 6.0, 2.0, 3.0, 0.6, 0.2), _repetition(3.0, 12.0, 2.0, 6.0, 2.0, 3.0, 0.6, 0.2),
            _repetition(4.0, 16.0, 2.0, 6.0, 2.0, 3.0, 0.6, 0.2)]
    found = {e.target.name: e for e in targets.evaluate_targets(runs)}
    assert set(found) >= {"blockvault-lab full backup / restic full backup (wall)"}
    full = found["blockvault-lab full backup / restic full backup (wall)"]
    assert full.values == (0.25,) * 5 and full.met is True
    assert "blockvault-file full backup / restic full backup (wall)" not in found     # a tool that did not run


def test_each_new_target_takes_its_figure_from_its_own_repetition():
    runs = [_repetition(3.0, 12.0, 2.6, 6.0, 2.0, 3.0, 0.9, 0.2)] * 4 + [_repetition(3.9, 12.0, 2.8, 6.0, 2.0, 3.0, 0.6, 0.2)]
    found = {e.target.name: e for e in targets.evaluate_targets(runs)}
    floor = found["blockvault-lab full backup / same-run compute floor (wall)"]
    assert floor.worst == pytest.approx(1.3) and floor.holds_at_worst is False and floor.met_at_median is True
    fixed = found["blockvault-lab 1% incremental: fixed cost, s (wall minus the transfer of the changed bytes)"]
    assert fixed.spread.median == pytest.approx(0.7) and fixed.worst == pytest.approx(0.7) and fixed.met is False
    io = found["blockvault-lab restore / same-run I/O floor with repository reads (repository not cached)"]
    assert io.worst == pytest.approx(1.4) and io.spread.median == pytest.approx(1.3) and io.met_at_median is True
    assert io.holds_at_worst is False
    restic = found["blockvault-lab restore / restic restore (wall as the tools exit, repository cached)"]
    assert restic.worst == pytest.approx(2.8 / 6.0) and restic.holds_at_worst is False


def test_fixed_cost_is_wall_minus_transfer_and_needs_the_split():
    assert targets.fixed_cost({"wall_s": 0.66, "transfer_s": 0.16}) == pytest.approx(0.5)
    assert targets.fixed_cost({"wall_s": 0.66}) is None
    run = _repetition(4.0, 12.0, 2.0, 6.0, 2.0, 3.0, 0.66, 0.16)
    # from outside: 40 MiB at the full backup's 2400 MiB / 4 s take 0.0667 s
    assert targets.fixed_cost_estimate(run, "blockvault-lab") == pytest.approx(0.66 - 40 / 600)


def test_the_targets_table_shows_median_spread_worst_and_both_verdicts():
    runs = [_repetition(3.0, 12.0, 2.6, 6.0, 2.0, 3.0, 0.9, 0.2)] * 3
    report = {"targets": [e.as_dict() for e in targets.evaluate_targets(runs)], "repetition_rule": {"required": 5}}
    table = "\n".join(render.targets_table(report))
    assert "| blockvault-lab full backup / restic full backup (wall) | 0.250 (0.250-0.250) | 0.250 | <= 0.25 | yes | " \
           "yes (3 repetition(s) < 5) |" in table
    assert "| 0.700 (0.700-0.700) | 0.700 | <= 0.5 | **no** | **no** |" in table


COMPUTE_FLOOR_OUTPUT = (
    "read 0.41 s CPU; chunks 611, unique 540, stored 1110 MB; sha 1.32 s, zstd-1 3.05 s (0.44 on incompressible), aes 0.12 s CPU\n"
    "floor on 2 cores: 2.45 s (full zstd on every new chunk), 2.23 s (ideal sampler)\n")


def test_compute_floor_output_is_parsed_and_the_floor_is_the_ideal_sampler():
    parsed = floors.parse_compute_floor(COMPUTE_FLOOR_OUTPUT)
    assert parsed.cores == 2 and parsed.floor_s == 2.23 and parsed.full_zstd_floor_s == 2.45
    assert (parsed.chunks, parsed.unique, parsed.stored_mb) == (611, 540, 1110.0)
    assert parsed.cpu_s["zstd_incompressible"] == 0.44
    with pytest.raises(ValueError):
        floors.parse_compute_floor("Traceback (most recent call last):\n")


def test_the_estimate_grows_with_repetitions_tools_and_disk():
    tools = ("blockvault-lab", "blockvault-file", "restic")
    five = estimate.estimate(estimate.Plan(size_bytes=4 << 30, repetitions=5, tools=tools))
    six = estimate.estimate(estimate.Plan(size_bytes=4 << 30, repetitions=6, tools=tools))
    assert six.total_s - five.total_s == pytest.approx(five.repetition_s)
    assert five.total_s == pytest.approx(five.setup_s + 5 * five.repetition_s + five.scaling_s)
    fewer_tools = estimate.estimate(estimate.Plan(size_bytes=4 << 30, repetitions=5, tools=tools[:2]))
    assert fewer_tools.repetition_s < five.repetition_s
    smaller = estimate.estimate(estimate.Plan(size_bytes=1 << 30, repetitions=5, tools=tools))
    assert smaller.total_s < five.total_s
    no_scaling = estimate.estimate(estimate.Plan(size_bytes=4 << 30, repetitions=5, tools=tools, scaling=False))
    assert no_scaling.scaling_s == 0 and no_scaling.total_s < five.total_s


def test_the_estimate_is_said_in_minutes_with_its_repetitions():
    est = estimate.Estimate(setup_s=60.0, repetition_s=240.0, scaling_s=60.0, repetitions=5)
    assert est.describe() == ("about 22 minutes: 5 repetitions of ~4.0 min, plus ~1.0 min of setup and ~1.0 min of "
                              "scaling run")
    assert estimate.Estimate(setup_s=20.0, repetition_s=10.0, scaling_s=0.0, repetitions=1).describe() == (
        "about 1 minute: 1 repetition of ~0.2 min, plus ~0.3 min of setup")
    assert estimate.remaining(500.0, 2, 5, 60.0) == pytest.approx(3 * 250.0 + 60.0)
    with pytest.raises(ValueError):
        estimate.remaining(0.0, 0, 5, 0.0)


def test_a_repetition_costs_its_overhead_its_floors_and_each_tool():
    size = 4 << 30
    bare = estimate.estimate(estimate.Plan(size_bytes=size, repetitions=5, tools=(), lab=False, scaling=False,
                                           compute_floor=False, restore_floor=False))
    assert bare.repetition_s == pytest.approx(estimate.REPETITION_OVERHEAD.seconds(size))
    floors_only = estimate.estimate(estimate.Plan(size_bytes=size, repetitions=5, tools=(), lab=False, scaling=False))
    assert floors_only.repetition_s == pytest.approx(bare.repetition_s + estimate.RESTORE_FLOOR.seconds(size)
                                                     + estimate.COMPUTE_FLOOR.seconds(size))
    restic = estimate.estimate(estimate.Plan(size_bytes=size, repetitions=5, tools=("restic",), lab=False, scaling=False))
    assert restic.repetition_s - floors_only.repetition_s == pytest.approx(estimate.TOOL_COST["restic"].seconds(size))
    lab = estimate.estimate(estimate.Plan(size_bytes=size, repetitions=5, tools=(), scaling=False))
    assert lab.setup_s - bare.setup_s == pytest.approx(estimate.LAB_SETUP.seconds(size))
