#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File-level restore benchmark: one 1 MiB file out of a restore point of a disk holding an ext4 filesystem full of
other data. Asserts nothing but the file's content.

    .venv/bin/python bench/file_restore_bench.py [--size 1G] [--runs 3] [--accel tcg]

The disk: a GPT partition table and one ext4 filesystem (mke2fs -d, no mount) filled to about 60 % with random
(incompressible) files and the 1 MiB file wanted; backed up with the product (bench/bv_driver.py backup-file). Each
run calls ``ops.file_restore.file_restore`` (what the module runs: the export, the appliance, the copy-out) and
measures, per run:

- the time from the call to the file on disk, and the appliance start within it (the result's
  ``appliance_start_seconds``; with TCG it is most of the time);
- the bytes read from the repository: the chunk objects whose access time moved during the run (the repository is
  a local directory on a filesystem with relatime, each atime set before its mtime first so that a read shows, and
  nothing else reads it meanwhile), summed by their stored size, against the disk's size and the repository's.

Writes bench/results/file_restore.json and prints the summary docs/performance.md quotes (worst of the runs). Work
files live in bench/work/file_restore (git-ignored) and are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import  # the collection and labkit on sys.path

import diskgen  # noqa: E402  pylint: disable=wrong-import-position
from bv_driver import repo_settings, DRIVER, PY, fresh_workdir, log, write_results  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.blockvault.vsphere.plugins.module_utils.guest import GuestSettings  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import file_restore as ops_file_restore  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import (  # noqa: E402
    Endpoints, RestorePointQuery, RunSettings)

WORK = os.path.join(BENCH, "work", "file_restore")
MIB = 1 << 20
PART_START = MIB            # the partition's first byte (sector 2048)
WANTED = "/data/wanted.bin"


def build_disk(image, size):
    """A GPT disk of ``size`` bytes with one ext4 partition filled to about 60 % with random files; the wanted
    file's bytes."""
    tree = os.path.join(WORK, "tree")
    os.makedirs(os.path.join(tree, "data"))
    filler = int(size * 0.6) // (8 * MIB)
    for number in range(filler):
        with open(os.path.join(tree, "data", "filler-%04d.bin" % number), "wb") as handle:
            handle.write(os.urandom(8 * MIB))
    wanted = os.urandom(MIB)
    with open(os.path.join(tree, WANTED.lstrip("/")), "wb") as handle:
        handle.write(wanted)
    with open(image, "wb") as handle:
        handle.truncate(size)
    subprocess.run(["sfdisk", "--quiet", image], input="label: gpt\nstart=2048, type=linux\n", text=True, check=True)
    part_bytes = size - PART_START - MIB       # the GPT backup header lives in the last sectors
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, "-E", "offset=%d" % PART_START, image,
                    "%dk" % (part_bytes // 1024)], check=True)
    shutil.rmtree(tree)
    return wanted


def chunk_objects(repo, reset=False):
    """{path: (atime, stored size)} of the repository's chunk objects. ``reset`` first sets each atime a second
    before its mtime: relatime updates an atime only when it is not newer than the mtime, so the next read shows."""
    out = {}
    for directory, _dirs, files in os.walk(os.path.join(repo, "chunks")):
        for name in files:
            path = os.path.join(directory, name)
            stat = os.stat(path)
            if reset:
                os.utime(path, ns=(stat.st_mtime_ns - 10**9, stat.st_mtime_ns))
                stat = os.stat(path)
            out[path] = (stat.st_atime_ns, stat.st_size)
    return out


def one_run(endpoints, repo, accel, expected):
    dest = os.path.join(WORK, "out")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    before = chunk_objects(repo, reset=True)
    request = ops_file_restore.FileRestoreRequest(RestorePointQuery("latest", "bench"), "restore", paths=[WANTED], dest=dest,
                                                  filesystem="/dev/sda1", guest=GuestSettings(accel=accel))
    start = time.monotonic()
    result = ops_file_restore.file_restore(request, endpoints, RunSettings(status_file=os.path.join(WORK, "status.json")))
    elapsed = time.monotonic() - start
    with open(os.path.join(dest, "wanted.bin"), "rb") as handle:
        assert handle.read() == expected, "the restored file differs from the one written into the disk"
    after = chunk_objects(repo)
    read = [size for path, (atime, size) in after.items() if atime != before.get(path, (None,))[0]]
    return {"seconds": elapsed, "appliance_start_s": result["appliance_start_seconds"],
            "chunks_read": len(read), "bytes_read": sum(read),
            "repository_chunks": len(after), "repository_bytes": sum(size for _atime, size in after.values())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--size", default="1G")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--accel", default=os.environ.get("BLOCKVAULT_TEST_APPLIANCE_ACCEL", "tcg"),
                        choices=["auto", "kvm", "tcg"], help="the appliance's acceleration (tcg where /dev/kvm hangs it)")
    args = parser.parse_args(argv)
    size = diskgen.parse_size(args.size)
    fresh_workdir(WORK)
    try:
        image, repo = os.path.join(WORK, "disk.raw"), os.path.join(WORK, "repo")
        log("building a %d MiB disk with an ext4 filesystem and backing it up" % (size >> 20))
        expected = build_disk(image, size)
        subprocess.run([PY, DRIVER, "init", repo], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([PY, DRIVER, "backup-file", repo, image], check=True, stdout=subprocess.DEVNULL)
        os.unlink(image)
        endpoints = Endpoints(repo=repo_settings(repo))
        runs = []
        for run in range(args.runs):
            measured = one_run(endpoints, repo, args.accel, expected)
            runs.append(measured)
            log("run %d: %.1f s to the file on disk (appliance start %.1f s), %d chunks = %.1f MiB read of %.1f MiB stored"
                % (run + 1, measured["seconds"], measured["appliance_start_s"], measured["chunks_read"],
                   measured["bytes_read"] / MIB, measured["repository_bytes"] / MIB))
        summary = {"disk_bytes": size, "runs": len(runs), "accel": args.accel,
                   "worst_seconds": max(r["seconds"] for r in runs),
                   "worst_appliance_start_s": max(r["appliance_start_s"] for r in runs),
                   "worst_seconds_after_appliance": max(r["seconds"] - r["appliance_start_s"] for r in runs),
                   "most_bytes_read": max(r["bytes_read"] for r in runs),
                   "repository_bytes": runs[0]["repository_bytes"],
                   "most_read_fraction_of_disk": max(r["bytes_read"] for r in runs) / size}
        write_results("file_restore", summary, runs)
        log("summary: %s" % json.dumps(summary))
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
