#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end benchmark: blockvault (through the lab and straight from a raw image) against restic, borg and
qemu-img on the same synthetic VM disk, with the machine's ceilings and floors measured in the same run. Asserts
nothing.

    .venv/bin/python bench/e2e_bench.py [--size 4G] [--runs 5] [--quick] [--no-scaling] [--no-lab] [--no-others]
    .venv/bin/python bench/e2e_bench.py --render bench/results/e2e.json

Runs 5 paired repetitions by default (the project's rule: a target is met when it holds at the worst of at least 5
paired repetitions); each repetition puts every tool on the same disk with fresh repositories, then measures the
full backup's compute floor and the restore's I/O floor of that disk. Every ratio is taken within a repetition and
reported as its median with the min-max across repetitions; each target says whether it is met at the median and
whether it holds at the worst repetition. The expected duration is printed before anything starts; fewer
repetitions (``--runs``, ``--quick``: 2 by default, ``--time-budget``) are said loudly and recorded in the JSON as not
meeting the 5-repetition rule.

Writes bench/results/e2e.json (every repetition's measurements, the medians, spreads and target verdicts) and
bench/results/e2e.md (the tables that go into docs/performance.md); --quick writes e2e-quick.*. Work files live in
bench/work/e2e (git-ignored) and are removed at the end. The parts are in bench/e2e/ (see its __init__).

Every tool runs in its own process, measured from outside: wall seconds, CPU seconds (user+system, from wait4),
peak RSS (ru_maxrss of wait4: the largest process of the tree), bytes the process read (rchar of /proc/PID/io,
sampled every 20 ms: up to 20 ms of reads may be missed at the end), repository size (allocated bytes on disk
after the operation).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import  # the collection and labkit on sys.path

from e2e import run as e2e_run  # noqa: E402  pylint: disable=wrong-import-position


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--size", default=None, help="disk size (default 4G; 1G with --quick)")
    parser.add_argument("--runs", type=int, default=None,
                        help="paired repetitions (default 5, the fewest the project's rule accepts; 2 with --quick)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--change", type=float, default=0.01, help="fraction of 4 MiB blocks the workload changes")
    parser.add_argument("--quick", action="store_true", help="1 GiB disk, 2 repetitions, small scaling run (development)")
    parser.add_argument("--no-lab", action="store_true", help="skip the lab path (no simulator needed)")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-others", action="store_true", help="blockvault only (no restic, borg, qemu-img)")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds: start no repetition that would end past it (default: none; a run cut below 5 "
                             "repetitions says so and is recorded as not meeting the 5-repetition rule)")
    parser.add_argument("--work", default=os.path.join(BENCH, "work", "e2e"))
    parser.add_argument("--results", default=os.path.join(BENCH, "results"))
    parser.add_argument("--render", metavar="JSON", help="print the markdown tables of a result file and exit")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render:
        print(e2e_run.render(args.render))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))     # run the finally blocks (stop the lab)
    e2e_run.run_benchmark(args, argv)


if __name__ == "__main__":
    main()
