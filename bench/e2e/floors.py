# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the machine allows, measured in the same run as the tools: the stage ceilings (once), the restore's I/O
floor and the full backup's compute floor (in every repetition)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess

from .common import MIB, PY, evict, rmtree

#: the project's compute floor of a full backup (per 4 MiB chunk: SHA-256 of every non-zero chunk, zstd-1 of every
#: new chunk or nothing where it does not compress, AES-256-GCM of what is stored; single-threaded CPU seconds
#: divided by the cores); run with the venv's python on the benchmark image in every repetition
COMPUTE_FLOOR_TOOL = "/work/shared/tools/compute-floor.py"

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


def measure_ceilings(paths, sample_mib, zstd_level):
    done = subprocess.run([PY, "-c", CEILING_CODE, paths.image, str(sample_mib * MIB), paths.work, str(zstd_level)], check=True,
                          capture_output=True, text=True)
    figures = json.loads(done.stdout)
    # per core, in series: what one core does per byte of the backup (hash + compress + encrypt the compressed), at
    # the zstd level the product uses by default
    per_byte = 1 / figures["sha256_MBps"] + 1 / figures["zstd_MBps"] + figures["zstd_ratio"] / figures["aes256gcm_MBps"]
    figures["cpu_pipeline_per_core_MBps"] = round(1 / per_byte, 1)
    figures["cores"] = os.cpu_count()
    return figures


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


def restore_io_floor(paths, repo):
    """Seconds the disk needs for a restore's I/O alone, with no processing: the image's non-zero 4 MiB blocks
    written with O_DIRECT and fsync'd (4 threads), with and without reading the repository's chunk files from
    disk at the same time (4 threads). A restore that must leave its output on disk cannot end sooner."""
    block = 4 * MIB
    job = {"image": paths.image, "out": os.path.join(paths.work, "floor.img"), "block": block,
           "blocks": nonzero_blocks(paths.image, block),
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


@dataclasses.dataclass(frozen=True)
class ComputeFloor:
    """What compute-floor.py prints: the floor of a full backup on this machine's cores, two ways, and its parts."""

    cores: int
    floor_s: float              # the ideal sampler: no zstd on chunks that do not compress (what the product's probe aims at)
    full_zstd_floor_s: float    # zstd-1 run on every new chunk
    chunks: int
    unique: int
    stored_mb: float
    cpu_s: dict                 # read, sha256, zstd, zstd on incompressible chunks, aes (single-threaded CPU seconds)

    def as_dict(self):
        return dataclasses.asdict(self)


_FLOOR_LINE = re.compile(r"floor on (\d+) cores: ([\d.]+) s \(full zstd[^)]*\), ([\d.]+) s \(ideal sampler\)")
_PARTS_LINE = re.compile(r"read ([\d.]+) s CPU; chunks (\d+), unique (\d+), stored ([\d.]+) MB; sha ([\d.]+) s, "
                         r"zstd-1 ([\d.]+) s \(([\d.]+) on incompressible\), aes ([\d.]+) s CPU")


def parse_compute_floor(text):
    """The ComputeFloor of compute-floor.py's output; ValueError when its floor line is not there."""
    floor = _FLOOR_LINE.search(text)
    if floor is None:
        raise ValueError("no 'floor on N cores' line in compute-floor output: %r" % text[-500:])
    parts = _PARTS_LINE.search(text)
    numbers = [float(x) for x in parts.groups()] if parts else [0.0] * 8
    return ComputeFloor(cores=int(floor.group(1)), floor_s=float(floor.group(3)), full_zstd_floor_s=float(floor.group(2)),
                        chunks=int(numbers[1]), unique=int(numbers[2]), stored_mb=numbers[3],
                        cpu_s={"read": numbers[0], "sha256": numbers[4], "zstd": numbers[5], "zstd_incompressible": numbers[6],
                               "aes": numbers[7]})


def compute_floor(image, tool=COMPUTE_FLOOR_TOOL):
    """Run the compute floor on ``image`` (a cached source, as the backups read it): a dict, or None without the tool."""
    if not os.path.exists(tool):
        return None
    done = subprocess.run([PY, tool, image], check=True, capture_output=True, text=True)
    return parse_compute_floor(done.stdout).as_dict()
