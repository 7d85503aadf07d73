#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end benchmark: blockvault (through the lab and straight from a raw image) against restic, borg and
qemu-img on the same synthetic VM disk, with the machine's ceilings measured in the same run. Asserts nothing.

    .venv/bin/python bench/e2e_bench.py [--size 4G] [--runs 3] [--quick] [--no-scaling] [--no-lab]

Writes bench/results/e2e.json (every measurement and the medians) and bench/results/e2e.md (the tables that go
into docs/performance.md). Work files live in bench/work/e2e (git-ignored) and are removed at the end.

Every tool runs in its own process, measured from outside: wall seconds, CPU seconds (user+system, from
wait4), peak RSS (ru_maxrss of wait4: the largest process of the tree), bytes the process read (rchar of
/proc/PID/io, sampled every 20 ms: up to 20 ms of reads may be missed at the end), repository size (allocated
bytes on disk after the operation). Each repetition uses fresh repositories; ratios to restic are computed
within a repetition, then the median is taken.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))

import diskgen  # noqa: E402  pylint: disable=wrong-import-position

PY = os.path.join(ROOT, ".venv", "bin", "python")
DRIVER = os.path.join(BENCH, "bv_driver.py")
MIB = 1 << 20
PASSWORD = "bench passphrase, not a secret"
TOOL_ENV = {"RESTIC_PASSWORD": PASSWORD, "BORG_PASSPHRASE": PASSWORD, "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes", "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "YES", "GOGC": "100"}
BORG_CONFIGS = {
    "borg-lz4": {"init": ["-e", "none"], "create": ["--compression", "lz4"]},
    "borg-zstd3-fixed4M": {"init": ["-e", "repokey"],
                           "create": ["--compression", "zstd,3", "--chunker-params", "fixed,4194304", "--sparse"]},
}


def log(message):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


# -- measuring one process ----------------------------------------------------------------------------------

# A small launcher process forks the tool and reports its rusage: ru_maxrss of a process starts at what its
# parent had mapped when it forked (the kernel keeps the high-water mark across exec), so the tool must be
# forked from a small process, not from this one (which holds workload undo data and comparison buffers).
LAUNCHER = r"""
import json, os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
started = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
io = {}
while True:
    try:
        with open("/proc/%d/io" % pid) as handle:
            io = {k: int(v) for k, v in (line.split(": ") for line in handle.read().splitlines())}
    except (OSError, ValueError):
        pass
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.02)
wall = time.monotonic() - started
with open(report, "w") as handle:
    json.dump({"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime, "maxrss_kib": usage.ru_maxrss,
               "rchar": io.get("rchar", 0), "status": os.waitstatus_to_exitcode(status)}, handle)
"""


def measure(argv, env=None, cwd=None, repo=None, label=None):
    """Run argv; return wall, cpu, peak RSS, rchar, repository size and stdout (raises on a non-zero exit)."""
    environ = dict(os.environ, **TOOL_ENV)
    environ.update(env or {})
    out_path = os.path.join(WORK, ".stdout")
    err_path = os.path.join(WORK, ".stderr")
    report_path = os.path.join(WORK, ".rusage")
    os.sync()               # every tool starts without the previous one's writeback debt
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        subprocess.run([PY, "-S", "-c", LAUNCHER, report_path] + list(argv), env=environ, cwd=cwd, stdout=out, stderr=err,
                       stdin=subprocess.DEVNULL, check=False)
    with open(report_path) as handle:
        usage = json.load(handle)
    with open(out_path, "rb") as handle:
        stdout = handle.read().decode(errors="replace")
    if usage["status"] != 0:
        with open(err_path, "rb") as handle:
            stderr = handle.read().decode(errors="replace")
        raise RuntimeError("%s failed (%d): %s\n%s" % (label or argv[0], usage["status"], stderr[-3000:], stdout[-2000:]))
    result = {"wall_s": round(usage["wall"], 3), "cpu_s": round(usage["user"] + usage["sys"], 3),
              "user_s": round(usage["user"], 3), "sys_s": round(usage["sys"], 3),
              "peak_rss_mib": round(usage["maxrss_kib"] / 1024, 1), "read_mib": round(usage["rchar"] / MIB, 1)}
    if repo:
        result["repo_mib"] = round(disk_usage(repo) / MIB, 1)
    result["stdout"] = stdout
    return result


def fsync_seconds(path):
    """Seconds to make a file a tool just wrote durable (fsync): 0 for a tool that synced it itself."""
    started = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return round(time.monotonic() - started, 3)


def disk_usage(path):
    total = 0
    if os.path.isfile(path):
        return os.stat(path).st_blocks * 512
    for base, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_blocks * 512
            except OSError:
                pass
    return total


def rmtree(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.unlink(path)


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return {}


# -- the tools ----------------------------------------------------------------------------------------------

class Blockvault:
    """The product through bench/bv_driver.py: ``file`` (engine from a raw image) or ``lab`` (ops through the lab)."""

    def __init__(self, name, kind, lab=None, level=None, full_only=False):
        self.name = name
        self.kind = kind
        self.lab = lab
        self.level = level
        self.full_only = full_only
        self.repo = os.path.join(WORK, "repo-" + name)

    def init(self):
        rmtree(self.repo)
        rmtree(self.repo + "-status")
        level = [] if self.level is None else ["--level", str(self.level)]
        subprocess.run([PY, DRIVER, "init", self.repo] + level, check=True, stdout=subprocess.DEVNULL)

    def backup(self, image, changed=None, base=False):
        if self.kind == "lab":
            m = measure([PY, DRIVER, "backup-lab", self.repo, LABDIR], repo=self.repo, label=self.name)
            info = last_json(m["stdout"])
            m["bytes_read_by_tool_mib"] = round(info.get("bytes_read", 0) / MIB, 1)
            m["modes"] = [d.get("mode") for d in info.get("disks", [])]
        else:
            argv = [PY, DRIVER, "backup-file", self.repo, image]
            if changed is not None:
                path = os.path.join(WORK, "changed.json")
                with open(path, "w") as handle:
                    json.dump(changed, handle)
                argv += ["--changed", path]
                if base:
                    argv += ["--base", "first"]
            m = measure(argv, repo=self.repo, label=self.name)
            info = last_json(m["stdout"])
            m["bytes_read_by_tool_mib"] = round(info.get("result", {}).get("bytes_read", 0) / MIB, 1)
            m["modes"] = [info.get("mode")]
        m.pop("stdout")
        return m

    def restore(self, out):
        if self.kind == "lab":
            name = "bench-restored-%d" % time.time_ns()
            m = measure([PY, DRIVER, "restore-lab", self.repo, LABDIR, name], label=self.name)
            info = last_json(m["stdout"])
            m["restored_sha256"] = [d.get("sha256") for d in info.get("disks", [])]
            flat = self.lab.disks(name)[0]["flat"]       # the new VM's first disk, as the datastore holds it
            m["fsync_s"] = fsync_seconds(flat)
            m["output_mib"] = round(disk_usage(flat) / MIB, 1)
            m["output_ok"] = same_content(flat, IMAGE)
            subprocess.run([PY, DRIVER, "destroy-vm", LABDIR, name], check=True, stdout=subprocess.DEVNULL)
        else:
            m = measure([PY, DRIVER, "restore-file", self.repo, out], label=self.name)
            m["fsync_s"] = fsync_seconds(out)
            m["output_mib"] = round(disk_usage(out) / MIB, 1)
            m["output_ok"] = same_content(out, IMAGE)
            rmtree(out)
        m.pop("stdout")
        return m

    def cleanup(self):
        rmtree(self.repo)
        rmtree(self.repo + "-status")


class Restic:
    name = "restic"

    def __init__(self):
        self.repo = os.path.join(WORK, "repo-restic")
        self.cache = os.path.join(WORK, "cache-restic")

    def _argv(self, *args):
        return ["restic", "-r", self.repo, "--cache-dir", self.cache, "-q"] + list(args)

    def init(self):
        rmtree(self.repo)
        rmtree(self.cache)
        subprocess.run(self._argv("init", "--repository-version", "2"), check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, **TOOL_ENV))

    def backup(self, image, changed=None, base=False):
        m = measure(self._argv("backup", "--host", "bench", image), cwd=os.path.dirname(image), repo=self.repo,
                    label="restic backup")
        m.pop("stdout")
        return m

    def restore(self, out):
        target = out + ".d"
        m = measure(self._argv("restore", "latest", "--target", target), repo=None, label="restic restore")
        restored = os.path.join(target, IMAGE.lstrip("/"))
        m["fsync_s"] = fsync_seconds(restored)
        m["output_mib"] = round(disk_usage(restored) / MIB, 1)
        m["output_ok"] = same_content(restored, IMAGE)
        rmtree(target)
        m.pop("stdout")
        return m

    def cleanup(self):
        rmtree(self.repo)
        rmtree(self.cache)


class Borg:
    def __init__(self, name):
        self.name = name
        self.config = BORG_CONFIGS[name]
        self.repo = os.path.join(WORK, "repo-" + name)
        self.env = {"BORG_BASE_DIR": os.path.join(WORK, "borg-base-" + name)}
        self.archives = 0

    def init(self):
        rmtree(self.repo)
        rmtree(self.env["BORG_BASE_DIR"])
        self.archives = 0
        subprocess.run(["borg", "init"] + self.config["init"] + [self.repo], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=dict(os.environ, **TOOL_ENV, **self.env))

    def backup(self, image, changed=None, base=False):
        self.archives += 1
        m = measure(["borg", "create"] + self.config["create"] + ["%s::a%d" % (self.repo, self.archives),
                                                                  os.path.basename(image)],
                    env=self.env, cwd=os.path.dirname(image), repo=self.repo, label=self.name + " create")
        m.pop("stdout")
        return m

    def restore(self, out):
        target = out + ".d"
        os.makedirs(target, exist_ok=True)
        m = measure(["borg", "extract", "--sparse", "%s::a%d" % (self.repo, self.archives)], env=self.env, cwd=target,
                    label=self.name + " extract")
        restored = os.path.join(target, os.path.basename(IMAGE))
        m["fsync_s"] = fsync_seconds(restored)
        m["output_mib"] = round(disk_usage(restored) / MIB, 1)
        m["output_ok"] = same_content(restored, IMAGE)
        rmtree(target)
        m.pop("stdout")
        return m

    def cleanup(self):
        rmtree(self.repo)
        rmtree(self.env["BORG_BASE_DIR"])


def same_content(path, reference):
    """True when two files hold the same bytes (compared by 8 MiB blocks; both are in the page cache)."""
    if os.path.getsize(path) != os.path.getsize(reference):
        return False
    with open(path, "rb") as a, open(reference, "rb") as b:
        while True:
            x, y = a.read(8 * MIB), b.read(8 * MIB)
            if x != y:
                return False
            if not x:
                return True


# -- ceilings -----------------------------------------------------------------------------------------------

CEILING_CODE = r"""
import hashlib, json, os, sys, time, zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
path, sample = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
extents, off = [], 0
while off < size:
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    extents.append((d, h - d)); off = h
buf = bytearray(8 << 20)
def read_all():
    n = 0
    for o, l in extents:
        p = o
        while p < o + l:
            k = os.preadv(fd, [memoryview(buf)[:min(len(buf), o + l - p)]], p); p += k; n += k
    return n
read_all()                                   # warm the page cache
t = time.perf_counter(); n = read_all(); read_s = time.perf_counter() - t
blocks, got = [], 0
for o, l in extents:
    p = o
    while p < o + l and got < sample:
        b = os.pread(fd, 4 << 20, p); blocks.append(b); got += len(b); p += len(b)
    if got >= sample:
        break
nb = sum(len(b) for b in blocks)
def rate(fn):
    t = time.perf_counter()
    for b in blocks:
        fn(b)
    return nb / (time.perf_counter() - t) / 1e6
zero = bytes(4 << 20)
nonzero = [b for b in blocks if not zero.startswith(b)]
nz = sum(len(b) for b in nonzero)
def rate_nz(fn):
    t = time.perf_counter()
    for b in nonzero:
        fn(b)
    return nz / (time.perf_counter() - t) / 1e6
wdir = sys.argv[3]
def disk_write(per_object):
    blob = os.urandom(4 << 20)
    names = [os.path.join(wdir, "w%03d" % i) for i in range(64)]
    t = time.perf_counter()
    for name in names:
        f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(f, blob)
        if per_object:
            os.fsync(f)
        os.close(f)
    if not per_object:
        for name in names:
            f = os.open(name, os.O_RDONLY); os.fsync(f); os.close(f)
    dt = time.perf_counter() - t
    for name in names:
        os.unlink(name)
    return round(len(names) * len(blob) / dt / 1e6, 1)
os.sync()
write_each = disk_write(True)
write_end = disk_write(False)
z = zstandard.ZstdCompressor(level=3)
level = int(sys.argv[4])
zp = zstandard.ZstdCompressor(level=level)
aead = AESGCM(os.urandom(32)); nonce = os.urandom(12)
comp = [z.compress(b) for b in nonzero]
compp = [zp.compress(b) for b in nonzero]
print(json.dumps({
  "page_cache_read_MBps": round(n / read_s / 1e6, 1), "allocated_bytes": n, "sample_bytes": nb,
  "sha256_MBps": round(rate_nz(lambda b: hashlib.sha256(b).digest()), 1),
  "zstd3_MBps": round(rate_nz(z.compress), 1),
  "zstd3_ratio": round(sum(map(len, comp)) / nz, 3),
  "zstd_level": level, "zstd_MBps": round(rate_nz(zp.compress), 1), "zstd_ratio": round(sum(map(len, compp)) / nz, 3),
  "aes256gcm_MBps": round(rate_nz(lambda b: aead.encrypt(nonce, b, b"")), 1),
  "disk_write_fsync_each_4MiB_MBps": write_each, "disk_write_fsync_at_end_MBps": write_end,
}))
"""


def measure_ceilings(image, sample_mib):
    done = subprocess.run([PY, "-c", CEILING_CODE, image, str(sample_mib * MIB), WORK, str(PRODUCT_ZSTD_LEVEL)], check=True,
                          capture_output=True, text=True)
    figures = json.loads(done.stdout)
    # per core, in series: what one core does per byte of the backup (hash + compress + encrypt the compressed), at
    # the zstd level the product uses by default
    per_byte = 1 / figures["sha256_MBps"] + 1 / figures["zstd_MBps"] + figures["zstd_ratio"] / figures["aes256gcm_MBps"]
    figures["cpu_pipeline_per_core_MBps"] = round(1 / per_byte, 1)
    figures["cores"] = os.cpu_count()
    return figures


RESTORE_FLOOR_CODE = r"""
import json, mmap, os, sys, threading, time
job = json.load(sys.stdin)
source = os.open(job["image"], os.O_RDONLY)
def reader(names):
    for name in names:
        with open(name, "rb", buffering=0) as handle:
            handle.read()
def writer(target, offsets):
    buf = mmap.mmap(-1, job["block"])
    for offset in offsets:
        n = os.preadv(source, [buf], offset)
        os.pwritev(target, [memoryview(buf)[:n - n % 4096 or n]], offset)
target = os.open(job["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
os.ftruncate(target, os.fstat(source).st_size)
threads = [threading.Thread(target=writer, args=(target, job["blocks"][i::4])) for i in range(4)]
if job["chunks"]:
    threads += [threading.Thread(target=reader, args=(job["chunks"][i::4],)) for i in range(4)]
t = time.perf_counter()
for th in threads:
    th.start()
for th in threads:
    th.join()
os.fsync(target)
print(time.perf_counter() - t)
"""


def nonzero_blocks(path, block):
    """Offsets of the ``block``-sized pieces of a file that are not all zero: what a sparse restore writes."""
    zero = bytes(block)
    offsets = []
    with open(path, "rb") as handle:
        for offset in range(0, os.path.getsize(path), block):
            data = handle.read(block)
            if data != zero[:len(data)]:
                offsets.append(offset)
    return offsets


def restore_io_floor(repo):
    """Seconds the disk needs for a restore's I/O alone, with no processing: the image's non-zero 4 MiB blocks
    written with O_DIRECT and fsync'd (4 threads), with and without reading the repository's chunk files from
    disk at the same time (4 threads). A restore that must leave its output on disk cannot end sooner."""
    block = 4 * MIB
    job = {"image": IMAGE, "out": os.path.join(WORK, "floor.img"), "block": block, "blocks": nonzero_blocks(IMAGE, block),
           "chunks": sorted(os.path.join(parent, name) for parent, _dirs, names in os.walk(os.path.join(repo, "chunks"))
                            for name in names)}
    figures = {"write_mib": round(len(job["blocks"]) * block / MIB, 1),
               "read_mib": round(sum(os.path.getsize(name) for name in job["chunks"]) / MIB, 1)}
    for key, chunks in (("writes_only_s", []), ("reads_and_writes_s", job["chunks"])):
        evict(repo)
        done = subprocess.run([PY, "-c", RESTORE_FLOOR_CODE], input=json.dumps(dict(job, chunks=chunks)), check=True,
                              capture_output=True, text=True)
        figures[key] = round(float(done.stdout), 3)
        rmtree(job["out"])
    return figures


# -- the run ------------------------------------------------------------------------------------------------

def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


PHASES = ("full", "incremental", "restore", "restore_cold")


def summarize(runs, key):
    """{tool: {metric: median}} over the repetitions of phase ``key``."""
    tools = sorted({tool for run in runs for tool in run.get(key, {})})
    for run in runs:
        for row in run.get(key, {}).values():
            if "fsync_s" in row:
                row["durable_wall_s"] = round(row["wall_s"] + row["fsync_s"], 3)
    table = {}
    for tool in tools:
        rows = [run[key][tool] for run in runs if tool in run.get(key, {})]
        metrics = {}
        for metric in ("wall_s", "durable_wall_s", "cpu_s", "peak_rss_mib", "read_mib", "repo_mib", "output_mib"):
            metrics[metric] = median([row.get(metric) for row in rows])
        ratios = [row["wall_s"] / run[key]["restic"]["wall_s"] for run, row in zip(runs, rows)
                  if "restic" in run.get(key, {}) and tool in run[key]]
        metrics["wall_vs_restic"] = median(ratios)
        if key.startswith("restore"):
            metrics["durable_vs_restic"] = median([row["durable_wall_s"] / run[key]["restic"]["durable_wall_s"]
                                                   for run, row in zip(runs, rows) if "restic" in run.get(key, {})])
        metrics["runs"] = len(rows)
        oks = [row.get("output_ok") for row in rows if "output_ok" in row]
        if oks:
            metrics["output_ok"] = all(oks)
        table[tool] = metrics
    return table


def evict(directory):
    """Drop a repository's files from the page cache (as ``vmtouch -e``): a restore from a repository written long
    ago reads it from disk. Programs and libraries stay cached, as on a backup host that runs them daily."""
    subprocess.run(["sync"], check=True)
    for parent, _dirs, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(parent, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def warm(*paths):
    """Read files into the page cache: every backup reads a cached source (also after the lab restores' comparisons)."""
    for path in paths:
        if path:
            with open(path, "rb") as handle:
                while handle.read(8 << 20):
                    pass


def one_repetition(number, tools, workload, lab_flat):
    log("repetition %d: full backups" % number)
    run = {"full": {}, "incremental": {}, "restore": {}, "restore_cold": {}}
    warm(IMAGE, lab_flat)
    for tool in tools:
        tool.init()
        run["full"][tool.name] = tool.backup(IMAGE)
        log("  %-20s full   %s" % (tool.name, brief(run["full"][tool.name])))
    qemu_out = os.path.join(WORK, "copy.qcow2")
    run["full"]["qemu-img-qcow2"] = m = measure(["qemu-img", "convert", "-O", "qcow2", IMAGE, qemu_out], repo=qemu_out,
                                                label="qemu-img")
    m.pop("stdout")
    rmtree(qemu_out)
    log("  %-20s copy   %s" % ("qemu-img-qcow2", brief(m)))
    undo_image = workload.apply_file(IMAGE)
    undo_flat = workload.apply_flat(lab_flat) if lab_flat else None
    log("repetition %d: workload %.2f%% (%d MiB) applied; incrementals"
        % (number, workload.fraction * 100, workload.bytes_changed // MIB))
    every_phase = [t for t in tools if not getattr(t, "full_only", False)]
    for tool in every_phase:
        run["incremental"][tool.name] = tool.backup(IMAGE, changed=workload.extents)
        log("  %-20s incr   %s" % (tool.name, brief(run["incremental"][tool.name])))
    log("repetition %d: restores" % number)
    for tool in every_phase:
        run["restore"][tool.name] = tool.restore(os.path.join(WORK, "restored-%s.img" % tool.name))
        log("  %-20s restore %s" % (tool.name, brief(run["restore"][tool.name])))
    log("repetition %d: restores from a repository out of the page cache" % number)
    for tool in every_phase:
        evict(tool.repo)
        run["restore_cold"][tool.name] = tool.restore(os.path.join(WORK, "restored-%s.img" % tool.name))
        log("  %-20s cold   %s" % (tool.name, brief(run["restore_cold"][tool.name])))
    floor_tool = next((t for t in tools if t.name == "blockvault-file"), None)
    if floor_tool is not None:
        run["restore_io_floor"] = restore_io_floor(floor_tool.repo)
        log("  restore I/O floor: %s" % json.dumps(run["restore_io_floor"]))
    for tool in tools:
        tool.cleanup()
    diskgen.undo_file(IMAGE, undo_image)
    if undo_flat:
        diskgen.write_flat(lab_flat, undo_flat, sparse=True)
    return run


def brief(m):
    return "wall %6.2fs cpu %6.2fs rss %6.1fMiB read %7.1fMiB repo %s" % (
        m["wall_s"], m["cpu_s"], m["peak_rss_mib"], m["read_mib"], m.get("repo_mib"))


def scaling(size, fractions, memory_sizes, quick):
    """Incremental time vs changed fraction (engine from the image), full-backup memory vs disk size."""
    result = {"incremental": [], "full_memory": []}
    tool = Blockvault("blockvault-file-scaling", "file")
    tool.init()
    base = tool.backup(IMAGE)
    result["base_full"] = base
    for fraction in fractions:
        workload = diskgen.Workload(size, fraction)
        undo = workload.apply_file(IMAGE)
        m = tool.backup(IMAGE, changed=workload.extents, base=True)
        diskgen.undo_file(IMAGE, undo)
        m.update(fraction=fraction, changed_mib=workload.bytes_changed // MIB)
        result["incremental"].append(m)
        log("  scaling incr %5.1f%%: %s" % (fraction * 100, brief(m)))
    tool.cleanup()
    for disk_size in memory_sizes:
        if disk_size == size:
            path = IMAGE
        else:
            path = os.path.join(WORK, "scale-%d.img" % disk_size)
            # bigger disks stay sparse: the same allocated volume as the main disk at most
            hole = max(0.4, 1 - min(1.0, 0.6 * size / disk_size))
            rest = (1 - hole) / 0.6
            weights = (hole,) + tuple(w * rest for w in diskgen.DEFAULT_WEIGHTS[1:])
            diskgen.generate(path, disk_size, seed=3, weights=weights)
        tool.init()
        m = tool.backup(path)
        m["disk_gib"] = disk_size / (1 << 30)
        m["allocated_mib"] = round(disk_usage(path) / MIB, 1)
        result["full_memory"].append(m)
        log("  scaling full %5.1f GiB: %s" % (m["disk_gib"], brief(m)))
        tool.cleanup()
        if path != IMAGE:
            rmtree(path)
    return result


def main(argv=None):
    global WORK, IMAGE, LABDIR, PRODUCT_ZSTD_LEVEL
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--size", default=None, help="disk size (default 4G; 1G with --quick)")
    parser.add_argument("--runs", type=int, default=None, help="repetitions (default 3; 1 with --quick)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--change", type=float, default=0.01, help="fraction of 4 MiB blocks the workload changes")
    parser.add_argument("--quick", action="store_true", help="1 GiB disk, 1 run, small scaling run (development)")
    parser.add_argument("--no-lab", action="store_true", help="skip the lab path (no simulator needed)")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-others", action="store_true", help="blockvault only (no restic, borg, qemu-img)")
    parser.add_argument("--time-budget", type=float, default=13 * 60,
                        help="seconds: no repetition is started that would end past it (default 13 min)")
    parser.add_argument("--work", default=os.path.join(BENCH, "work", "e2e"))
    parser.add_argument("--results", default=os.path.join(BENCH, "results"))
    parser.add_argument("--render", metavar="JSON", help="print the markdown tables of a result file and exit")
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render) as handle:
            report = json.load(handle)
        report["targets"] = targets(report)
        print(markdown(report))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))     # run the finally blocks (stop the lab)
    size = diskgen.parse_size(args.size or ("1G" if args.quick else "4G"))
    runs = args.runs or (1 if args.quick else 3)
    WORK = os.path.abspath(args.work)
    rmtree(WORK)
    os.makedirs(WORK)
    IMAGE = os.path.join(WORK, "disk.img")
    LABDIR = os.path.join(WORK, "lab")
    began = time.monotonic()
    for program in ("restic", "borg", "qemu-img"):
        if not args.no_others and shutil.which(program) is None:
            raise SystemExit("%s is not installed: run `make apt-bench` (or pass --no-others)" % program)
    log("generating the %d MiB disk (seed %d)" % (size // MIB, args.seed))
    disk = diskgen.generate(IMAGE, size, seed=args.seed)
    log("disk: %s" % json.dumps(disk["kinds"]))
    # as installed, a Python program runs from cached byte-code (Debian's borg does): a development shell's
    # PYTHONDONTWRITEBYTECODE would make every measured run compile the collection again. Warming up also tells
    # the zstd level the product uses by default, whose ceiling is measured.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    PRODUCT_ZSTD_LEVEL = last_json(subprocess.run([PY, DRIVER, "warm"], check=True, capture_output=True, text=True).stdout)["zstd_level"]
    log("ceilings")
    ceilings = measure_ceilings(IMAGE, 256 if args.quick else 512)
    log("ceilings: %s" % json.dumps(ceilings))
    lab = lab_flat = None
    tools = []
    try:
        if not args.no_lab:
            from labkit import Lab  # pylint: disable=import-outside-toplevel
            lab = Lab.start(LABDIR, vm1_disk0=size, vm1_disk1="1M", vm2_disk0="1M")
            lab_flat = lab.disks("lab-vm1")[0]["flat"]
            diskgen.load_image_into_flat(IMAGE, lab_flat)
            tools.append(Blockvault("blockvault-lab", "lab", lab))
        tools.append(Blockvault("blockvault-file", "file"))
        if PRODUCT_ZSTD_LEVEL != 3:        # the same engine at borg's zstd level: equal compression work, full backup only
            tools.append(Blockvault("blockvault-file-zstd3", "file", level=3, full_only=True))
        if not args.no_others:
            tools += [Restic(), Borg("borg-lz4"), Borg("borg-zstd3-fixed4M")]
        workload = diskgen.Workload(size, args.change)
        results, scale = [], None
        durations = []
        for number in range(1, runs + 1):
            elapsed = time.monotonic() - began
            if number > 1 and elapsed + max(durations) > args.time_budget:
                log("time budget: %d of %d repetitions done (%.0f s elapsed, a repetition takes up to %.0f s, budget "
                    "%.0f s)" % (number - 1, runs, elapsed, max(durations), args.time_budget))
                break
            rep_started = time.monotonic()
            results.append(one_repetition(number, tools, workload, lab_flat))
            durations.append(time.monotonic() - rep_started)
            if number == 1 and not args.no_scaling:   # after the first repetition: the scaling run is never cut
                log("scaling run")
                fractions = (0.001, 0.01, 0.1)
                memory_sizes = (size // 4, size, size * 4) if args.quick else (1 << 30, 4 << 30, 16 << 30)
                scale = scaling(size, fractions, memory_sizes, args.quick)
    finally:
        if lab is not None:
            lab.stop()
    summary = {phase: summarize(results, phase) for phase in PHASES}
    floors = [run["restore_io_floor"] for run in results if run.get("restore_io_floor")]
    report = {
        "command": "make bench" if not (args.quick or args.size or args.runs) else "bench/e2e_bench.py " + " ".join(argv or sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_model(), "kernel": platform.release(), "python": platform.python_version(),
                    "loadavg_at_end": os.getloadavg(), "versions": _versions()},
        "disk": disk, "workload": {"fraction": args.change, "blocks": len(workload.blocks), "bytes": workload.bytes_changed},
        "runs": len(results), "runs_requested": runs, "ceilings": ceilings, "summary": summary, "scaling": scale, "raw": results,
        "restore_io_floor": {key: median([floor[key] for floor in floors]) for key in floors[0]} if floors else None,
        "duration_s": round(time.monotonic() - began, 1),
    }
    report["targets"] = targets(report)
    os.makedirs(args.results, exist_ok=True)
    name = "e2e-quick" if args.quick else "e2e"
    with open(os.path.join(args.results, name + ".json"), "w") as handle:
        json.dump(report, handle, indent=1)
    table = markdown(report)
    with open(os.path.join(args.results, name + ".md"), "w") as handle:
        handle.write(table)
    print(table)
    rmtree(WORK)
    log("done in %.0f s" % report["duration_s"])


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _versions():
    versions = {}
    for name, argv in (("restic", ["restic", "version"]), ("borg", ["borg", "--version"]), ("qemu-img", ["qemu-img", "--version"])):
        try:
            versions[name] = subprocess.run(argv, capture_output=True, text=True, check=False).stdout.splitlines()[0]
        except (OSError, IndexError):
            versions[name] = None
    return versions


def targets(report):
    """The issue's targets, each with the measured value and met / missed."""
    s = report["summary"]
    out = []

    def add(name, value, limit, better="lower"):
        if value is None:
            out.append({"target": name, "value": None, "limit": limit, "met": None})
            return
        met = value <= limit if better == "lower" else value >= limit
        out.append({"target": name, "value": round(value, 3), "limit": limit, "met": met})

    zstd3 = s["full"].get("blockvault-file-zstd3")
    if zstd3:        # the same engine at borg's level (zstd 3), for the record: equal compression work
        add("blockvault-file-zstd3 full / restic full (wall)", zstd3.get("wall_vs_restic"), 0.33)
        borg = s["full"].get("borg-zstd3-fixed4M", {}).get("wall_s")
        add("blockvault-file-zstd3 full / borg zstd,3 fixed 4M --sparse (wall)", zstd3["wall_s"] / borg if borg else None, 0.5)
    for tool in ("blockvault-lab", "blockvault-file"):
        full = s["full"].get(tool)
        if not full:
            continue
        add("%s full / restic full (wall)" % tool, full.get("wall_vs_restic"), 0.33)
        borg = s["full"].get("borg-zstd3-fixed4M", {}).get("wall_s")
        add("%s full / borg zstd,3 fixed 4M --sparse (wall)" % tool, full["wall_s"] / borg if borg else None, 0.5)
        add("%s 1%% incremental / restic 2nd backup (wall)" % tool, s["incremental"].get(tool, {}).get("wall_vs_restic"), 0.1)
        add("%s restore / restic restore (wall, tools exit)" % tool, s["restore"].get(tool, {}).get("wall_vs_restic"), 0.5)
        add("%s restore / restic restore (wall until the output is on disk)" % tool,
            s["restore"].get(tool, {}).get("durable_vs_restic"), 0.5)
        if s.get("restore_cold"):
            add("%s restore / restic restore, repositories not cached (wall, tools exit)" % tool,
                s["restore_cold"].get(tool, {}).get("wall_vs_restic"), 0.5)
            add("%s restore / restic restore, repositories not cached (wall until on disk)" % tool,
                s["restore_cold"].get(tool, {}).get("durable_vs_restic"), 0.5)
        rss = [s[phase].get(tool, {}).get("peak_rss_mib") for phase in s]
        if report.get("scaling") and tool == "blockvault-file":
            rss += [m["peak_rss_mib"] for m in report["scaling"]["full_memory"]]
        add("%s peak memory, MiB (every phase and size)" % tool, max(v for v in rss if v is not None), 256)
        stage, ceiling = slowest_stage(report["ceilings"], report["disk"]["allocated_bytes"], full.get("repo_mib"))
        throughput = report["disk"]["allocated_bytes"] / 1e6 / full["wall_s"]
        add("%s full throughput %.0f MB/s / slowest stage ceiling (%s, %.0f MB/s of disk data)" % (tool, throughput, stage, ceiling),
            throughput / ceiling, 0.6, better="higher")
    return out


def _zstd(ceil):
    """(level, MB/s, ratio) of the zstd level the product used (results before the level was recorded: 3)."""
    if "zstd_level" in ceil:
        return ceil["zstd_level"], ceil["zstd_MBps"], ceil["zstd_ratio"]
    return 3, ceil["zstd3_MBps"], ceil["zstd3_ratio"]


def slowest_stage(ceil, allocated_bytes, repo_mib):
    """(name, MB/s of disk data) of the slowest stage a full backup needs, all cores used where a stage is parallel."""
    cores = ceil["cores"]
    stages = {"page-cache read (1 thread)": ceil["page_cache_read_MBps"], "sha256 x%d cores" % cores: ceil["sha256_MBps"] * cores,
              "zstd-%d x%d cores" % (_zstd(ceil)[0], cores): _zstd(ceil)[1] * cores,
              "aes-256-gcm x%d cores" % cores: ceil["aes256gcm_MBps"] * cores / max(_zstd(ceil)[2], 0.01)}
    if repo_mib:
        # the repository's writes, fsync'd object by object, in MB/s of the disk data they represent
        stages["repository write (fsync per object)"] = ceil["disk_write_fsync_each_4MiB_MBps"] * allocated_bytes / (repo_mib * MIB)
    name = min(stages, key=stages.get)
    return name, stages[name]


def markdown(report):
    s = report["summary"]
    lines = ["Disk: %d MiB, %.0f%% allocated (%s), seed %d; workload: %d blocks of 4 MiB rewritten (%.1f%%). %d run(s), "
             "medians. Machine: %d x %s, load average at the end %.1f. Restores: 'on disk' adds the time an fsync of the "
             "output takes after the tool exits (restic and borg do not sync; blockvault does)." % (
                 report["disk"]["size"] // MIB, report["disk"]["allocated_fraction"] * 100,
                 ", ".join("%s %d" % kv for kv in report["disk"]["kinds"].items()), report["disk"]["seed"],
                 report["workload"]["blocks"], report["workload"]["fraction"] * 100, report["runs"],
                 report["machine"]["cpus"], report["machine"]["cpu"], report["machine"]["loadavg_at_end"][0]), ""]
    names = {"full": "full backup", "incremental": "2nd backup (1% changed)", "restore": "restore (latest)",
             "restore_cold": "restore, repository not cached"}
    lines.append("| tool | operation | wall s | x restic | CPU s | cores busy | peak RSS MiB | read MiB | repository MiB | output MiB | "
                 "on disk s (x restic) |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for phase in PHASES:
        for tool, m in s.get(phase, {}).items():
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                tool, names[phase] if tool != "qemu-img-qcow2" else "convert to qcow2", _f(m["wall_s"]),
                _f(m["wall_vs_restic"]), _f(m["cpu_s"]), "%.2f" % (m["cpu_s"] / m["wall_s"]) if m["wall_s"] else "-",
                _f(m["peak_rss_mib"]), _f(m["read_mib"]), _f(m["repo_mib"]),
                _f(m["output_mib"]) + ("" if m.get("output_ok", True) else " (DIFFERS)"),
                "%s (%s)" % (_f(m["durable_wall_s"]), _f(m.get("durable_vs_restic"))) if m.get("durable_wall_s") else ""))
    c = report["ceilings"]
    level, zstd_rate, zstd_ratio = _zstd(c)
    other = " (level 3: %s, ratio %s)" % (c["zstd3_MBps"], c["zstd3_ratio"]) if level != 3 else ""
    lines += ["", "Ceilings of this machine, same run, per core (MB/s, on the disk's own data): page-cache read %s (one "
              "thread), SHA-256 %s, zstd level %d (the product's) %s (ratio %s)%s, AES-256-GCM %s; hash+compress+encrypt "
              "in series %s per core. Local disk writes of 4 MiB files: %s MB/s with an fsync per file, %s MB/s with "
              "the fsyncs at the end." % (c["page_cache_read_MBps"], c["sha256_MBps"], level, zstd_rate, zstd_ratio, other,
                                          c["aes256gcm_MBps"], c["cpu_pipeline_per_core_MBps"],
                                          c["disk_write_fsync_each_4MiB_MBps"], c["disk_write_fsync_at_end_MBps"]), ""]
    floor = report.get("restore_io_floor")
    if floor:
        restic = s["restore"].get("restic", {}).get("wall_s")
        restic_cold = s.get("restore_cold", {}).get("restic", {}).get("wall_s")
        lines[-1:-1] = ["Restore I/O floor, same run (the I/O of blockvault-file's restore with no processing, 4 threads each): "
                        "writing the image's %s MiB of non-zero 4 MiB blocks with O_DIRECT and an fsync takes %s s alone, "
                        "%s s while the repository's %s MiB of chunk files are read from disk at the same time. Half of "
                        "restic's restore as it exits: %s s (repository cached), %s s (not cached)." % (
                            _f(floor["write_mib"]), _f(floor["writes_only_s"]), _f(floor["reads_and_writes_s"]),
                            _f(floor["read_mib"]), _f(restic / 2 if restic else None),
                            _f(restic_cold / 2 if restic_cold else None)), ""]
    lines.append("| target | value | limit | met |")
    lines.append("| --- | ---: | ---: | --- |")
    for t in report["targets"]:
        lines.append("| %s | %s | %s | %s |" % (
            t["target"], "-" if t["value"] is None else "%.3f" % t["value"], t["limit"], {True: "yes", False: "**no**", None: "n/a"}[t["met"]]))
    sc = report.get("scaling")
    if sc:
        lines += ["", "Scaling (blockvault from the image file):", "",
                  "| incremental | changed MiB | wall s | CPU s | read MiB | peak RSS MiB |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for m in sc["incremental"]:
            lines.append("| %.1f%% | %d | %s | %s | %s | %s |" % (
                m["fraction"] * 100, m["changed_mib"], _f(m["wall_s"]), _f(m["cpu_s"]), _f(m["read_mib"]), _f(m["peak_rss_mib"])))
        lines += ["", "| full backup, disk GiB | allocated MiB | wall s | CPU s | peak RSS MiB |", "| ---: | ---: | ---: | ---: | ---: |"]
        for m in sc["full_memory"]:
            lines.append("| %g | %s | %s | %s | %s |" % (
                m["disk_gib"], _f(m["allocated_mib"]), _f(m["wall_s"]), _f(m["cpu_s"]), _f(m["peak_rss_mib"])))
    lines += ["", "Reproduce: `%s` (%.0f s)." % (report["command"], report["duration_s"]), ""]
    return "\n".join(lines)


def _f(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.2f" % value if abs(value) < 100 else "%.0f" % value
    return str(value)


WORK = IMAGE = LABDIR = None
PRODUCT_ZSTD_LEVEL = 3

if __name__ == "__main__":
    main()
