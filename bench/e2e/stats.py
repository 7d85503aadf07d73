# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Medians, spreads and targets over paired repetitions (pure: no I/O, unit-tested in tests/unit/bench).

The project's rule: a target is met when it holds at the worst of at least MIN_REPETITIONS paired repetitions, not
at one run's median. Each repetition gives one value per target (a ratio taken within the repetition, where every
tool ran on the same disk); the worst is the largest value for a "lower is better" limit, the smallest otherwise.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Callable, Optional, Tuple

#: the fewest paired repetitions whose worst value may call a target met
MIN_REPETITIONS = 5
LOWER = "lower"
HIGHER = "higher"


def median(values):
    """The median of the values that are not None (rounded to 3 places), None when there is none."""
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


@dataclasses.dataclass(frozen=True)
class Spread:
    """The median and the min-max of one figure over the repetitions that measured it."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values):
        """The Spread of the values that are not None; None when no repetition measured it."""
        present = [float(v) for v in values if v is not None]
        if not present:
            return None
        return cls(median=statistics.median(present), low=min(present), high=max(present), count=len(present))

    def worst(self, better):
        """The worst value for a limit: the highest when lower is better, else the lowest."""
        return self.high if better == LOWER else self.low


@dataclasses.dataclass(frozen=True)
class Target:
    """One row of the targets table: a figure taken per repetition and the limit it must keep.

    ``value`` maps one repetition (the JSON dict of bench/e2e/run.one_repetition) to the figure, or None where the
    repetition lacks what it needs (a tool not run, a floor not measured)."""

    name: str
    limit: float
    value: Callable[[dict], Optional[float]] = dataclasses.field(compare=False, repr=False)
    better: str = LOWER
    origin: str = "issue 16"

    def passes(self, figure):
        return figure <= self.limit if self.better == LOWER else figure >= self.limit


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A target against the repetitions: per-repetition values, their spread, and the two verdicts.

    ``met_at_median``: the median keeps the limit. ``holds_at_worst``: the worst repetition keeps it.
    ``met``: holds at the worst of at least MIN_REPETITIONS repetitions (the project's rule); None when no
    repetition measured the figure."""

    target: Target
    values: Tuple[Optional[float], ...]
    spread: Optional[Spread]
    min_repetitions: int = MIN_REPETITIONS

    @property
    def worst(self):
        return None if self.spread is None else self.spread.worst(self.target.better)

    @property
    def met_at_median(self):
        return None if self.spread is None else self.target.passes(self.spread.median)

    @property
    def holds_at_worst(self):
        return None if self.spread is None else self.target.passes(self.worst)

    @property
    def enough_repetitions(self):
        return self.spread is not None and self.spread.count >= self.min_repetitions

    @property
    def met(self):
        if self.spread is None:
            return None
        return self.holds_at_worst and self.enough_repetitions

    def as_dict(self):
        spread = self.spread
        return {"target": self.target.name, "limit": self.target.limit, "better": self.target.better,
                "origin": self.target.origin, "values": [None if v is None else round(v, 4) for v in self.values],
                "median": None if spread is None else round(spread.median, 4),
                "min": None if spread is None else round(spread.low, 4), "max": None if spread is None else round(spread.high, 4),
                "worst": None if spread is None else round(self.worst, 4), "repetitions": 0 if spread is None else spread.count,
                "met_at_median": self.met_at_median, "holds_at_worst": self.holds_at_worst, "met": self.met}


def evaluate(target, runs, min_repetitions=MIN_REPETITIONS):
    """The Evaluation of ``target`` over ``runs`` (one dict per repetition, in order)."""
    values = tuple(_safe(target.value, run) for run in runs)
    return Evaluation(target=target, values=values, spread=Spread.of(values), min_repetitions=min_repetitions)


def _safe(function, run):
    # a figure a repetition lacks (an older result file, a tool not run) is None, never an error of the whole table
    try:
        value = function(run)
    except (KeyError, TypeError, ZeroDivisionError):
        return None
    return None if value is None else float(value)


def ratio(numerator, denominator):
    """numerator / denominator, None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator
