# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The end-to-end benchmark's expected duration, said before it starts (pure: unit-tested in tests/unit/bench).

A linear model per part, seconds = fixed + per GiB of disk, calibrated on the 2-core benchmark machine when idle:
`make bench` of 26 Nov 2026 (4 GiB, 3 repetitions without the compute floor, setup and scaling run: 636 s; the
model says 644 s) and the tools' own wall times in it; the compute floor from its CPU time on the same disk.
Each tool's cost covers one repetition: its full backup, incremental, two restores with their output checks,
and its repository's creation. Beside other work the run takes longer; the run prints a revised end time after
its first repetition.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

GIB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Cost:
    """Seconds of one part: ``fixed`` plus ``per_gib`` for every GiB of the benchmark disk."""

    fixed: float
    per_gib: float

    def seconds(self, size_bytes):
        return self.fixed + self.per_gib * size_bytes / GIB


#: one repetition, per tool (names as the tools table has them) and per measurement besides the tools
TOOL_COST = {
    "blockvault-lab": Cost(6.0, 3.8),
    "blockvault-file": Cost(3.0, 3.3),
    "blockvault-file-zstd3": Cost(1.5, 1.2),
    "restic": Cost(3.0, 9.0),
    "borg-lz4": Cost(3.0, 8.0),
    "borg-zstd3-fixed4M": Cost(3.0, 8.5),
    "qemu-img-qcow2": Cost(0.5, 0.9),
}
UNKNOWN_TOOL = Cost(3.0, 10.0)
RESTORE_FLOOR = Cost(1.0, 2.0)       # two timed passes over the image's blocks, plus finding them
COMPUTE_FLOOR = Cost(0.5, 2.0)       # compute-floor.py: one thread over every allocated chunk
REPETITION_OVERHEAD = Cost(2.0, 1.5)  # syncs, the workload and its undo, reading the source into the cache
#: once per run: disk generation, imports, ceilings; the lab's start and loading its flat file; the scaling run
SETUP = Cost(16.0, 5.0)
LAB_SETUP = Cost(10.0, 2.0)
SCALING = Cost(15.0, 12.0)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a run will do, as far as its duration goes."""

    size_bytes: int
    repetitions: int
    tools: Tuple[str, ...]
    lab: bool = True
    scaling: bool = True
    compute_floor: bool = True
    restore_floor: bool = True


@dataclasses.dataclass(frozen=True)
class Estimate:
    setup_s: float
    repetition_s: float
    scaling_s: float
    repetitions: int

    @property
    def total_s(self):
        return self.setup_s + self.repetitions * self.repetition_s + self.scaling_s

    def describe(self):
        """One line, e.g. 'about 24 minutes: 5 repetitions of ~4.1 min, plus ~0.9 min of setup and ~1.0 min of
        scaling run'."""
        parts = ["~%.1f min of setup" % (self.setup_s / 60)]
        if self.scaling_s:
            parts.append("~%.1f min of scaling run" % (self.scaling_s / 60))
        minutes = max(1, round(self.total_s / 60))
        return "about %d minute%s: %d repetition%s of ~%.1f min, plus %s" % (
            minutes, "" if minutes == 1 else "s", self.repetitions, "" if self.repetitions == 1 else "s",
            self.repetition_s / 60, " and ".join(parts))


def estimate(plan):
    """The Estimate of a Plan (an idle 2-core machine)."""
    size = plan.size_bytes
    repetition = REPETITION_OVERHEAD.seconds(size)
    repetition += sum(TOOL_COST.get(tool, UNKNOWN_TOOL).seconds(size) for tool in plan.tools)
    if plan.restore_floor:
        repetition += RESTORE_FLOOR.seconds(size)
    if plan.compute_floor:
        repetition += COMPUTE_FLOOR.seconds(size)
    setup = SETUP.seconds(size) + (LAB_SETUP.seconds(size) if plan.lab else 0.0)
    scaling = SCALING.seconds(size) if plan.scaling else 0.0
    return Estimate(setup_s=setup, repetition_s=repetition, scaling_s=scaling, repetitions=plan.repetitions)


def remaining(done_s, repetitions_done, repetitions, scaling_pending_s):
    """Seconds left once ``repetitions_done`` repetitions took ``done_s`` seconds (their mean stands for the rest)."""
    if repetitions_done <= 0:
        raise ValueError("no repetition done yet")
    return done_s / repetitions_done * (repetitions - repetitions_done) + scaling_pending_s
