#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A realistic synthetic VM disk from a fixed seed, and a deterministic guest workload. Benchmark tool, not a test.

The disk is a sparse raw image cut into 4 MiB blocks laid out in runs of 1-8 blocks of one kind (weights by
default): holes 40% (never written: the image stays sparse there), text-like 24% (log/text lines, compresses
about 3:1), random 18% (incompressible), zero runs 6% (written zeros: allocated but all zero), repeated 12% (an
exact copy of an earlier data block, 4 MiB aligned: what cloned files / templates give). About 60% of the
capacity is allocated. Same seed and size = same bytes, on any machine (pseudo-random bytes come from an AES-CTR
keystream keyed by the seed, so generation runs at GB/s).

The workload rewrites ``fraction`` of all 4 MiB blocks (chosen by the seed, holes included) with random bytes,
and can undo itself (the old bytes are kept), so several runs can start from the same image. ``apply_flat``
writes through the lab's disk-state protocol (tests/lab/PROTOCOL.md: flock LOCK_EX on the flat file, no snapshot
may exist, one CBT record appended per write), so CBT sees the writes as a guest's.

    python bench/diskgen.py image PATH --size 4G [--seed 1]       # write the image, print its layout as JSON
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import random
import struct

BLOCK = 4 << 20
KINDS = ("hole", "text", "random", "zero", "repeat")
DEFAULT_WEIGHTS = (0.40, 0.24, 0.18, 0.06, 0.12)
_CBT_MAGIC = b"LABCBT01"

_WORDS = ("kernel", "systemd", "sshd", "session", "opened", "closed", "user", "root", "daemon", "started", "stopped",
          "cron", "job", "nginx", "GET", "POST", "HTTP/1.1", "200", "404", "500", "upstream", "timeout", "connection",
          "reset", "client", "server", "postgres", "checkpoint", "complete", "wrote", "buffers", "WAL", "file", "added",
          "removed", "recycled", "transaction", "commit", "rollback", "INFO", "WARN", "ERROR", "DEBUG", "eth0", "link",
          "up", "down", "dhcp", "lease", "renewed", "disk", "sda1", "mounted", "ext4", "journal", "usr", "lib", "bin",
          "var", "log", "etc", "config", "value", "true", "false", "null", "id", "name", "status", "ok", "failed")


def parse_size(text):
    text = str(text).strip().upper()
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


class Keystream:
    """Deterministic pseudo-random bytes: AES-256-CTR of zeros, keyed by (seed, purpose)."""

    def __init__(self, seed, purpose):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        key = hashlib.sha256(b"blockvault-bench/%d/%s" % (seed, purpose.encode())).digest()
        self._enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
        self._zeros = bytes(BLOCK)

    def block(self, length=BLOCK):
        return self._enc.update(self._zeros[:length] if length <= BLOCK else bytes(length))


def _text_source(seed, size=8 << 20):
    """``size`` bytes of log-like text lines, from the seed."""
    rnd = random.Random(seed)
    lines, total = [], 0
    clock = 1_700_000_000
    while total < size:
        clock += rnd.randint(0, 3)
        line = "%d.%06d host%02d %s[%d]: %s\n" % (
            clock, rnd.randint(0, 999999), rnd.randint(0, 31), rnd.choice(_WORDS), rnd.randint(100, 65000),
            " ".join(rnd.choice(_WORDS) for _word in range(rnd.randint(3, 14))))
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def layout(size, seed=1, weights=DEFAULT_WEIGHTS):
    """The kind of every 4 MiB block: a list of KINDS names. Each kind gets round(weight * blocks) blocks, in
    runs of 1-8 blocks, the runs shuffled; the first run is text (a repeat needs an earlier data block)."""
    rnd = random.Random(seed)
    count = (size + BLOCK - 1) // BLOCK
    targets = [round(weight * count) for weight in weights]
    targets[0] += count - sum(targets)
    runs = []
    for kind, target in zip(KINDS, targets):
        while target > 0:
            length = min(target, rnd.randint(1, 8))
            runs.append((kind, length))
            target -= length
    rnd.shuffle(runs)
    first = next((i for i, run in enumerate(runs) if run[0] == "text"), None)
    if first is not None:
        runs.insert(0, runs.pop(first))
    kinds = [kind for kind, length in runs for _block in range(length)]
    return [("text" if kind == "repeat" and i == 0 else kind) for i, kind in enumerate(kinds)]


def generate(path, size, seed=1, weights=DEFAULT_WEIGHTS):
    """Write the sparse image ``path`` of ``size`` bytes (a multiple of 4 MiB); return a summary dict."""
    if size % BLOCK:
        raise ValueError("the size must be a multiple of 4 MiB")
    kinds = layout(size, seed, weights)
    rnd = random.Random(seed + 1)
    stream = Keystream(seed, "disk")
    source = _text_source(seed)
    slice_len = 4096
    data_blocks = []          # offsets of text/random blocks, candidates for repeats
    counts = dict.fromkeys(KINDS, 0)
    zeros = bytes(BLOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        for number, kind in enumerate(kinds):
            counts[kind] += 1
            offset = number * BLOCK
            if kind == "hole":
                continue
            if kind == "text":
                parts = [source[o:o + slice_len] for o in (rnd.randrange(0, len(source) - slice_len) for _slice in range(BLOCK // slice_len))]
                data = b"".join(parts)
                data_blocks.append(offset)
            elif kind == "random":
                data = stream.block()
                data_blocks.append(offset)
            elif kind == "zero":
                data = zeros
            else:
                data = os.pread(fd, BLOCK, rnd.choice(data_blocks[-256:]))
            os.pwrite(fd, data, offset)
    finally:
        os.close(fd)
    allocated = size - counts["hole"] * BLOCK
    return {"path": str(path), "size": size, "seed": seed, "blocks": len(kinds), "kinds": counts,
            "allocated_bytes": allocated, "allocated_fraction": round(allocated / size, 3)}


class Workload:
    """The guest workload: rewrite ``fraction`` of the disk's 4 MiB blocks with random bytes (fixed seed)."""

    def __init__(self, size, fraction, seed=7):
        count = (size + BLOCK - 1) // BLOCK
        changed = max(1, round(count * fraction))
        rnd = random.Random(seed * 1000003 + int(fraction * 1e6))
        self.blocks = sorted(rnd.sample(range(count), changed))
        self.size = size
        self.fraction = fraction
        self.seed = seed

    @property
    def extents(self):
        """The changed ranges [(offset, length)], merged: what CBT reports."""
        merged = []
        for number in self.blocks:
            offset = number * BLOCK
            length = min(BLOCK, self.size - offset)
            if merged and merged[-1][0] + merged[-1][1] == offset:
                merged[-1][1] += length
            else:
                merged.append([offset, length])
        return [tuple(item) for item in merged]

    @property
    def bytes_changed(self):
        return sum(length for _offset, length in self.extents)

    def writes(self):
        stream = Keystream(self.seed, "workload-%f" % self.fraction)
        for number in self.blocks:
            offset = number * BLOCK
            yield offset, stream.block(min(BLOCK, self.size - offset))

    def apply_file(self, path):
        """Write the workload into a raw image; returns the undo list [(offset, old bytes)]."""
        undo = []
        fd = os.open(path, os.O_RDWR)
        try:
            for offset, data in self.writes():
                undo.append((offset, os.pread(fd, len(data), offset)))
                os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
        return undo

    def apply_flat(self, flat_path):
        """Write the workload into a lab disk's flat file through the protocol; returns the undo list."""
        return write_flat(flat_path, list(self.writes()), keep_old=True)


def undo_file(path, undo):
    """Put back the bytes a workload replaced (zeros are punched back to holes by rewriting sparse)."""
    fd = os.open(path, os.O_RDWR)
    try:
        for offset, data in undo:
            _write_sparse(fd, offset, data)
    finally:
        os.close(fd)


def _write_sparse(fd, offset, data):
    if data.count(0) == len(data):
        try:
            fallocate = _fallocate()
            if fallocate(fd, 0x01 | 0x02, offset, len(data)) == 0:
                return
        except OSError:
            pass
    os.pwrite(fd, data, offset)


_FALLOCATE = None


def _fallocate():
    global _FALLOCATE
    if _FALLOCATE is None:
        import ctypes
        fn = ctypes.CDLL(None, use_errno=True).fallocate
        fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
        fn.restype = ctypes.c_int
        _FALLOCATE = fn
    return _FALLOCATE


def write_flat(flat_path, writes, keep_old=False, sparse=False):
    """Guest writes [(offset, bytes)] into a lab flat file F (PROTOCOL.md section 2): under flock LOCK_EX on F,
    refuse when a snapshot of F exists (no copy-on-write is done here), pwrite, append one CBT record per write."""
    snap_dir = flat_path + ".snap"
    cbt_path = flat_path + ".cbt"
    undo = []
    fd = os.open(flat_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.path.isdir(snap_dir) and [name for name in os.listdir(snap_dir) if not name.startswith(".")]:
            raise RuntimeError("%s has a snapshot: write the disk only while no snapshot exists" % flat_path)
        if not os.path.exists(cbt_path):
            with open(cbt_path, "wb") as cbt:
                cbt.write(_CBT_MAGIC + struct.pack("<Q", random.getrandbits(63) | 1) + bytes(16))
        with open(cbt_path, "ab") as cbt:
            for offset, data in writes:
                if keep_old:
                    undo.append((offset, os.pread(fd, len(data), offset)))
                if sparse:
                    _write_sparse(fd, offset, data)
                else:
                    os.pwrite(fd, data, offset)
                cbt.write(struct.pack("<QQ", offset, len(data)))
    finally:
        os.close(fd)            # releases the flock
    return undo


def load_image_into_flat(image_path, flat_path, block=BLOCK):
    """Make the lab flat file F hold exactly the image (holes stay holes), under the protocol's LOCK_EX; F must
    have the image's size and no snapshot. Not recorded in CBT: do it before the first backup."""
    size = os.path.getsize(image_path)
    fd = os.open(flat_path, os.O_RDWR)
    src = os.open(image_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_size != size:
            raise RuntimeError("%s is %d bytes, the image %d" % (flat_path, os.fstat(fd).st_size, size))
        snap_dir = flat_path + ".snap"
        if os.path.isdir(snap_dir) and [name for name in os.listdir(snap_dir) if not name.startswith(".")]:
            raise RuntimeError("%s has a snapshot" % flat_path)
        os.ftruncate(fd, 0)
        os.ftruncate(fd, size)
        offset = 0
        while offset < size:
            try:
                data_at = os.lseek(src, offset, os.SEEK_DATA)
            except OSError:
                break
            hole_at = os.lseek(src, data_at, os.SEEK_HOLE)
            pos = data_at
            while pos < hole_at:
                chunk = os.pread(src, min(block, hole_at - pos), pos)
                os.pwrite(fd, chunk, pos)
                pos += len(chunk)
            offset = hole_at
    finally:
        os.close(src)
        os.close(fd)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    image = sub.add_parser("image")
    image.add_argument("path")
    image.add_argument("--size", default="4G")
    image.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(generate(args.path, parse_size(args.size), args.seed), indent=1))


if __name__ == "__main__":
    main()
