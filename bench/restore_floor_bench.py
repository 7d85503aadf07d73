#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paired, interleaved A/B restores of the benchmark disk against the same run's I/O floor.

    .venv/bin/python bench/restore_floor_bench.py --variant before=/tmp/tree-a --variant after=. [--pairs 5] [--lab]
        [--trace-dir DIR] [--out bench/results/restore-floor.json]

Each variant is a copy of the collection (its bench/bv_driver.py runs the restore in a process of its own, measured
from outside as bench/e2e_bench.py measures it: wall until the process exits, CPU, peak RSS). One 4 GiB disk
(bench/diskgen.py, seed 1) is backed up once into one repository (file path; ``--lab``: also through the lab into
another), which every variant restores. Per pair: the I/O floor of e2e_bench (4 O_DIRECT writers alone, then with 4
readers of the repository's chunk files, evicted first), then for the repository cached (every file read first) and
uncached (evicted), each variant once, in an order that alternates from pair to pair (ABBA). The load average is
recorded with each figure. ``--trace-dir``: one more restore per variant and case with BLOCKVAULT_TRACE set (not
timed in the pairs), rendered with bench/timeline.py. The first pair compares every file output byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import  # the collection and labkit on sys.path

import diskgen  # noqa: E402  pylint: disable=wrong-import-position
from e2e import common, floors  # noqa: E402  pylint: disable=wrong-import-position

PY = common.PY
# where this run works (common.Paths): set by main
PATHS = common.Paths(os.path.join(BENCH, "work", "restore-floor"))
MIB = 1 << 20


def log(message):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def warm_tree(directory):
    common.warm(*[os.path.join(parent, name) for parent, _dirs, names in os.walk(directory) for name in names])


class Case:
    """One restore path (file or lab) of one variant: runs the restore, returns e2e's measurement dict."""

    def __init__(self, kind, repo, lab=None):
        self.kind, self.repo, self.lab = kind, repo, lab

    def run(self, tree, compare=False, env=None):
        driver = os.path.join(tree, "bench", "bv_driver.py")
        if self.kind == "file":
            out = os.path.join(PATHS.work, "restored.img")
            m = common.measure(PATHS, [PY, driver, "restore-file", self.repo, out], env=env, label="restore-file")
            if compare:
                m["output_ok"] = common.same_content(out, PATHS.image)
            common.rmtree(out)
        else:
            name = "floor-restored-%d" % time.time_ns()
            m = common.measure(PATHS, [PY, driver, "restore-lab", self.repo, self.lab.directory, name], env=env, label="restore-lab")
            if compare:
                m["output_ok"] = common.same_content(self.lab.disks(name)[0]["flat"], PATHS.image)
            subprocess.run([PY, driver, "destroy-vm", self.lab.directory, name], check=True, stdout=subprocess.DEVNULL)
        m.pop("stdout", None)
        return m


def prepare(repo, cached):
    if cached:
        warm_tree(repo)
    else:
        common.evict(repo)


def summary(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return {"min": round(values[0], 3), "median": round(statistics.median(values), 3), "max": round(values[-1], 3),
            "n": len(values)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=TREE (a copy of the collection)")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--size", default="4G")
    parser.add_argument("--lab", action="store_true", help="also restore to a new VM through the lab")
    parser.add_argument("--no-file", action="store_true", help="only the lab path")
    parser.add_argument("--trace-dir", help="one traced restore per variant and case, written here")
    parser.add_argument("--work", default=os.path.join(BENCH, "work", "restore-floor"))
    parser.add_argument("--out", default=os.path.join(BENCH, "results", "restore-floor.json"))
    parser.add_argument("--keep", action="store_true", help="keep the disk and the file repository for --reuse")
    parser.add_argument("--reuse", action="store_true", help="reuse the disk and file repository a --keep run left")
    args = parser.parse_args(argv)
    variants = [tuple(v.split("=", 1)) for v in args.variant]
    variants = [(name, os.path.abspath(tree)) for name, tree in variants]
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    global PATHS  # pylint: disable=global-statement
    PATHS = common.Paths(os.path.abspath(args.work))
    work, image = PATHS.work, PATHS.image
    reuse = args.reuse and os.path.isdir(os.path.join(work, "repo-file")) and not args.lab
    if not reuse:
        common.rmtree(work)
        os.makedirs(work)
    size = diskgen.parse_size(args.size)
    if not reuse:
        log("generating the disk")
        diskgen.generate(image, size, seed=1)
    for name, tree in variants:
        subprocess.run([PY, os.path.join(tree, "bench", "bv_driver.py"), "warm"], check=True, stdout=subprocess.DEVNULL)
    driver = os.path.join(BENCH, "bv_driver.py")
    cases, lab = [], None
    try:
        if not args.no_file:
            repo = os.path.join(work, "repo-file")
            if not reuse:
                subprocess.run([PY, driver, "init", repo], check=True, stdout=subprocess.DEVNULL)
                common.warm(image)
                subprocess.run([PY, driver, "backup-file", repo, image], check=True, stdout=subprocess.DEVNULL)
            cases.append(("file", Case("file", repo)))
        if args.lab:
            from labkit import Lab  # pylint: disable=import-outside-toplevel
            lab = Lab.start(os.path.join(work, "lab"), vm1_disk0=size, vm1_disk1="1M", vm2_disk0="1M")
            lab.directory = str(lab.dir)
            flat = lab.disks("lab-vm1")[0]["flat"]
            diskgen.load_image_into_flat(image, flat)
            repo = os.path.join(work, "repo-lab")
            subprocess.run([PY, driver, "init", repo], check=True, stdout=subprocess.DEVNULL)
            common.warm(flat)
            subprocess.run([PY, driver, "backup-lab", repo, lab.directory], check=True, stdout=subprocess.DEVNULL)
            cases.append(("lab", Case("lab", repo, lab)))
        floor_repo = cases[0][1].repo
        runs = []
        for number in range(args.pairs):
            order = variants if number % 2 == 0 else list(reversed(variants))
            floor = floors.restore_io_floor(PATHS, floor_repo)
            floor["load"] = os.getloadavg()[0]
            log("pair %d floor %s" % (number + 1, json.dumps(floor)))
            run = {"floor": floor, "restores": []}
            for case_name, case in cases:
                for cached in (True, False):
                    for name, tree in order:
                        prepare(case.repo, cached)
                        m = case.run(tree, compare=number == 0)
                        m.update(variant=name, case=case_name, cached=cached, load=os.getloadavg()[0],
                                 x_floor=round(m["wall_s"] / floor["reads_and_writes_s"], 3))
                        run["restores"].append(m)
                        log("  %-8s %-4s %-8s wall %.3f s (x%.2f floor) cpu %.2f s rss %.0f MiB load %.2f%s"
                            % (name, case_name, "cached" if cached else "uncached", m["wall_s"], m["x_floor"], m["cpu_s"],
                               m["peak_rss_mib"], m["load"], "" if "output_ok" not in m else " same bytes: %s" % m["output_ok"]))
            runs.append(run)
        if args.trace_dir:
            os.makedirs(args.trace_dir, exist_ok=True)
            for case_name, case in cases:
                for cached in (True, False):
                    for name, tree in variants:
                        path = os.path.join(os.path.abspath(args.trace_dir), "%s-%s-%s.json" % (
                            name, case_name, "cached" if cached else "uncached"))
                        prepare(case.repo, cached)
                        m = case.run(tree, env={"BLOCKVAULT_TRACE": path})
                        log("  traced %s: wall %.3f s -> %s" % (os.path.basename(path), m["wall_s"], path))
    finally:
        if lab is not None:
            lab.stop()
    table = {}
    for case_name, _case in cases:
        for cached in (True, False):
            for name, _tree in variants:
                rows = [r for run in runs for r in run["restores"]
                        if r["variant"] == name and r["case"] == case_name and r["cached"] == cached]
                table["%s/%s/%s" % (case_name, "cached" if cached else "uncached", name)] = {
                    "wall_s": summary([r["wall_s"] for r in rows]), "x_floor": summary([r["x_floor"] for r in rows]),
                    "cpu_s": summary([r["cpu_s"] for r in rows]), "peak_rss_mib": summary([r["peak_rss_mib"] for r in rows]),
                    "load": summary([r["load"] for r in rows])}
    table["floor/writes_only_s"] = summary([run["floor"]["writes_only_s"] for run in runs])
    table["floor/reads_and_writes_s"] = summary([run["floor"]["reads_and_writes_s"] for run in runs])
    document = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "variants": dict(variants),
                "pairs": args.pairs, "summary": table, "runs": runs}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(document, handle, indent=1)
    for key, value in table.items():
        log("%-32s %s" % (key, json.dumps(value)))
    if not args.keep:
        common.rmtree(work)


if __name__ == "__main__":
    main()
