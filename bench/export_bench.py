#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Instant access benchmark: a whole disk read through the export with nbdcopy against the product's restore to a
raw file, on the same restore point, in paired repetitions; and the time to the first byte after the export starts.
Asserts nothing.

    .venv/bin/python bench/export_bench.py [--size 1G] [--runs 5]

Writes bench/results/export.json (every measurement) and prints the summary docs/performance.md quotes: per pair the
ratio of nbdcopy's throughput to the restore's, of which the worst (lowest) is the figure; and the worst time to
first byte. Work files live in bench/work/export (git-ignored) and are removed at the end.

- restore: ``ops.restore`` target=file of the latest restore point, timed around the call (what the module runs:
  repository open with its key derivation, then the transfer), in this process;
- export: ``ops.export.start_export`` timed around the call (the module's return), then ``nbdcopy URI FILE`` timed
  as a separate process (the data movement), then ``stop_exports``; the ratio uses nbdcopy's time, and the
  end-to-end ratio (start + nbdcopy) is recorded too;
- time to first byte: from start_export's return to the first 4 KiB a client (nbdcopy to a pipe) delivers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import  # the collection and labkit on sys.path

import diskgen  # noqa: E402  pylint: disable=wrong-import-position
from bv_driver import repo_settings, DRIVER, PY, fresh_workdir, log, write_results  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import export as ops_export  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import restore as ops_restore  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import Endpoints, RunSettings  # noqa: E402

WORK = os.path.join(BENCH, "work", "export")


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def drop(path):
    if os.path.exists(path):
        os.unlink(path)


def time_restore(endpoints, out):
    drop(out)
    request = ops_restore.RestoreRequest(ops_restore.RestorePointQuery("latest", "bench"), ops_restore.File(path=out))
    start = time.monotonic()
    ops_restore.restore(request, endpoints, RunSettings(status_file=os.path.join(WORK, "status.json")))
    return time.monotonic() - start


def time_export(endpoints, out):
    drop(out)
    request = ops_export.ExportRequest(source=ops_export.RestorePointQuery("latest", "bench"), name="bench")
    start = time.monotonic()
    started = ops_export.start_export(request, endpoints)
    returned = time.monotonic()
    uri = next(iter(started["uris"].values()))
    try:
        reader = subprocess.Popen(["nbdcopy", uri, "-"], stdout=subprocess.PIPE)
        first = reader.stdout.read(4096)
        first_byte = time.monotonic() - returned
        reader.kill()
        reader.wait()
        reader.stdout.close()
        assert len(first) == 4096
        copy_start = time.monotonic()
        subprocess.run(["nbdcopy", uri, out], check=True)
        copy = time.monotonic() - copy_start
    finally:
        ops_export.stop_exports(ops_export.ExportSelector(name="bench"))
    return {"start": returned - start, "first_byte": first_byte, "nbdcopy": copy}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    size = diskgen.parse_size(args.size)
    fresh_workdir(WORK)
    try:
        image, repo = os.path.join(WORK, "disk.raw"), os.path.join(WORK, "repo")
        log("generating a %d MiB disk and backing it up" % (size >> 20))
        diskgen.generate(image, size)
        subprocess.run([PY, DRIVER, "init", repo], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([PY, DRIVER, "backup-file", repo, image], check=True, stdout=subprocess.DEVNULL)
        expected = sha256(image)
        endpoints = Endpoints(repo=repo_settings(repo))
        runs = []
        for run in range(args.runs):
            restored, copied = os.path.join(WORK, "restored.raw"), os.path.join(WORK, "copied.raw")
            restore_s = time_restore(endpoints, restored)
            export = time_export(endpoints, copied)
            assert sha256(restored) == expected == sha256(copied), "a read differs from the backed-up image"
            pair = {"restore_s": restore_s, **{k + "_s": v for k, v in export.items()},
                    "ratio": restore_s / export["nbdcopy"], "ratio_end_to_end": restore_s / (export["start"] + export["nbdcopy"])}
            runs.append(pair)
            log("run %d: restore %.2f s, export start %.2f s, first byte %.3f s, nbdcopy %.2f s (throughput ratio %.2f)" % (
                run + 1, restore_s, export["start"], export["first_byte"], export["nbdcopy"], pair["ratio"]))
        summary = {"disk_bytes": size, "runs": len(runs), "worst_ratio": min(r["ratio"] for r in runs),
                   "worst_ratio_end_to_end": min(r["ratio_end_to_end"] for r in runs),
                   "worst_first_byte_s": max(r["first_byte_s"] for r in runs),
                   "worst_start_s": max(r["start_s"] for r in runs)}
        write_results("export", summary, runs)
        log("summary: %s" % json.dumps(summary))
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
