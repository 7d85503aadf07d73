#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy benchmark (issue 18): a copy's throughput local -> local and local -> SeaweedFS against the product's own
backup of the same data, in paired repetitions, and the copy's peak memory for two repository sizes. Asserts
nothing.

    .venv/bin/python bench/copy_bench.py [--size 1G] [--runs 5]

Each repetition: a backup of a diskgen image (``bv_driver.py backup-file``: the engine from a raw image, as a backup
once VDDK hands it the disk) into a new local repository, then a copy of it into a new local repository and into a
new repository on SeaweedFS (``bv_driver.py copy``: ops.copy, what backup_copy runs). Each operation runs in its own
process, timed from outside (repository opens included) with its peak RSS from wait4. The figure per destination is
the worst, over the repetitions, of copy throughput / backup throughput of the same repetition. Peak memory is
measured for copies of a repository of ``--size`` and of a quarter of it: a copy holds a bounded number of chunks in
flight, so it should not grow with the repository.

Writes bench/results/copy.json; work files in bench/work/copy (git-ignored), removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
import uuid

BENCH = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import  # the collection and labkit on sys.path

import diskgen  # noqa: E402  pylint: disable=wrong-import-position
from bv_driver import PASSPHRASE, DRIVER, PY, fresh_workdir, log, write_results  # noqa: E402  pylint: disable=wrong-import-position
from labkit.s3servers import PLAIN_BUCKET, SeaweedServer  # noqa: E402  pylint: disable=wrong-import-position

WORK = os.path.join(BENCH, "work", "copy")
MB = 1000 * 1000


def driver(*args):
    """Run one bv_driver command; (its JSON output, wall seconds, peak RSS in MiB)."""
    started = time.monotonic()
    process = subprocess.Popen([PY, DRIVER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    out, err = process.stdout.read(), process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("bv_driver %s failed: %s" % (" ".join(args), err[-2000:]))
    return json.loads(out.strip().splitlines()[-1]), seconds, usage.ru_maxrss / 1024.0


def s3_destination(server, name):
    path = os.path.join(WORK, name + ".json")
    with open(path, "w") as handle:
        json.dump({"location": "s3://%s/copy-bench-%s" % (PLAIN_BUCKET, uuid.uuid4().hex[:10]), "passphrase": PASSPHRASE,
                   "s3_endpoint_url": server.endpoint, "region": server.region, "access_key": server.access_key,
                   "secret_key": server.secret_key}, handle)
    return path


def local_destination(name):
    path = os.path.join(WORK, name + ".json")
    with open(path, "w") as handle:
        json.dump({"location": os.path.join(WORK, name), "passphrase": PASSPHRASE}, handle)
    return path


def one_run(number, image, size, server):
    source = os.path.join(WORK, "source-%d" % number)
    driver("init", source)
    backed, backup_s, backup_rss = driver("backup-file", source, image)
    run = {"run": number, "backup": {"seconds": round(backup_s, 2), "mb_per_s": round(size / MB / backup_s, 1),
                                     "peak_rss_mib": round(backup_rss, 1), "bytes_stored": backed["result"].get("bytes_stored")}}
    for kind in ("local", "seaweedfs"):
        name = "dest-%s-%d" % (kind, number)
        settings = local_destination(name) if kind == "local" else s3_destination(server, name)
        driver("init-settings", settings)
        copied, copy_s, copy_rss = driver("copy", source, settings)
        run[kind] = {"seconds": round(copy_s, 2), "mb_per_s": round(size / MB / copy_s, 1), "peak_rss_mib": round(copy_rss, 1),
                     "ratio_to_backup": round(backup_s / copy_s, 2), "bytes_sent": copied["bytes_sent"]}
        if kind == "local":
            shutil.rmtree(os.path.join(WORK, name), ignore_errors=True)
    shutil.rmtree(source, ignore_errors=True)
    log("run %d: backup %.1f MB/s; copy local %.1f MB/s (x%.2f), SeaweedFS %.1f MB/s (x%.2f)" % (
        number, run["backup"]["mb_per_s"], run["local"]["mb_per_s"], run["local"]["ratio_to_backup"],
        run["seaweedfs"]["mb_per_s"], run["seaweedfs"]["ratio_to_backup"]))
    return run


def memory_by_size(size):
    """Peak RSS of a local -> local copy of a repository of ``size`` and of ``size`` / 4."""
    peaks = {}
    for label, part in (("quarter", size // 4), ("full", size)):
        image = os.path.join(WORK, "mem-%s.img" % label)
        diskgen.generate(image, part, seed=7)
        source = os.path.join(WORK, "mem-source-%s" % label)
        driver("init", source)
        driver("backup-file", source, image)
        settings = local_destination("mem-dest-%s" % label)
        driver("init-settings", settings)
        _copied, _seconds, rss = driver("copy", source, settings)
        peaks[label] = {"bytes": part, "peak_rss_mib": round(rss, 1)}
        for path in (image, source, os.path.join(WORK, "mem-dest-%s" % label)):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.unlink(path)
    return peaks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--size", default="1G", help="disk image size (diskgen's realistic layout)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    size = diskgen.parse_size(args.size)
    fresh_workdir(WORK)
    image = os.path.join(WORK, "disk.img")
    diskgen.generate(image, size, seed=1)
    server = SeaweedServer.start(os.path.join(WORK, "seaweedfs"))
    try:
        driver("warm")
        runs = [one_run(number, image, size, server) for number in range(1, args.runs + 1)]
        memory = memory_by_size(size)
    finally:
        server.stop()
        shutil.rmtree(WORK, ignore_errors=True)
    summary = {"size_bytes": size, "runs": len(runs),
               "worst_ratio_local": min(run["local"]["ratio_to_backup"] for run in runs),
               "worst_ratio_seaweedfs": min(run["seaweedfs"]["ratio_to_backup"] for run in runs),
               "peak_rss_mib": memory, "load": os.getloadavg()}
    write_results("copy", summary, runs)
    log("copy throughput / backup throughput, worst of %d pairs: local %.2f, SeaweedFS %.2f; copy peak RSS %s" % (
        len(runs), summary["worst_ratio_local"], summary["worst_ratio_seaweedfs"], memory))


if __name__ == "__main__":
    main()
