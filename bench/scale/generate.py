# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the scale benchmark's synthetic repository through the repository's own code (see README.md).

Every restore point is written by a real ``BackupSession``: a real restore point id (of the day it stands for, as a
copy between repositories adopts one), real disk indexes (``DiskIndex``, sealed with the repository key, written
under a real shared lock, with the session's fencing), real manifests (completed, schema-checked, sealed and
committed by ``BackupSession.commit``). The one step left out is the session's check that every entry of an index
names a stored chunk (a Python loop and an HMAC per entry: hours at this size): the generator registers every new
chunk's name before the index that names it, and GC's dry run reports ``chunks_missing`` (zero) over the whole
repository. Chunks are 16-byte plaintexts ``(namespace, counter)``: their digest is their real SHA-256, their name
the real storage id; in "standin" mode only the names are stored (bench/scale/standin.py), in "real" mode each is a
real (tiny) chunk object file. The validation VM (``scale-validate``, one restore point) is backed up by the
ordinary ``begin_backup`` path with real 4 MiB chunks of text-like data, for the full validation.

Run by scale_bench.py; ``python generate.py --worker`` is one generating process.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import threading
import time
from array import array
from concurrent.futures import ThreadPoolExecutor

from common import GIB, PASSPHRASE, KeyAgent, directory_bytes, load, make_backend

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, Repository, crypto, marking
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import check_disk_key, chunk_name, index_name, isotime
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import new_restore_point_id
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.locks import SHARED
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import DiskRecord, ManifestDraft, VmConfig, VmRecord
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.session import BackupSession

# disk capacities (GiB) and their weights: most VMs have a small system disk, a few a large data disk (mean 64 GiB)
DISK_SIZES = ((40, 70), (60, 15), (100, 9), (200, 4), (500, 2))
DAY = 86400
TEXT_POOL = 8


@dataclasses.dataclass
class Scenario:
    """The synthetic fleet. Fractions are of a disk's allocated chunks unless said otherwise."""

    vms: int
    points: int
    seed: int = 1
    disk_sizes: tuple = DISK_SIZES
    second_disk: float = 0.0         # share of VMs with a second disk (from the same distribution)
    alloc: tuple = (0.30, 0.60)      # allocated share of a disk's capacity (thin disks: the rest is zero chunks)
    holes: float = 0.015             # zero chunks scattered in the allocated extents
    change: tuple = (0.01, 0.05)     # chunks rewritten per day, per VM a rate in this range
    hot_fraction: float = 0.10       # the working set: this share of the allocated chunks, contiguous ...
    hot_share: float = 0.80          # ... takes this share of the changes (logs, databases rewrite the same blocks)
    run_mean: float = 4.0            # changes come in runs of consecutive chunks, this long on average
    clone_share: float = 0.30        # share of VMs cloned from a template: they share its chunks ...
    templates: int = 10
    clone_divergence: float = 0.15   # ... except this share of them, their own since the clone
    chunk_size: int = 4 << 20
    encrypted: bool = True
    validate_disk_gib: float = 40.0  # the validation VM's disk (real 4 MiB chunks, 40% allocated); 0: none
    mode: str = "standin"

    @classmethod
    def from_json(cls, data):
        data = dict(data)
        for name in ("disk_sizes", "alloc", "change"):
            if name in data:
                data[name] = tuple(tuple(v) if isinstance(v, list) else v for v in data[name])
        return cls(**data)


PROFILES = {
    "full": {"vms": 1000, "points": 30, "validate_disk_gib": 24.0},
    "reduced": {"vms": 100, "points": 10, "validate_disk_gib": 4.0},
    # about 1 million chunks: the real local run (chunk files on disk) and its stand-in twin
    "check": {"vms": 140, "points": 10, "validate_disk_gib": 0.0},
    "smoke": {"vms": 6, "points": 4, "validate_disk_gib": 0.125},
}


def _rng(*parts):
    return random.Random(hashlib.sha256(repr(parts).encode()).digest())


def _choose_size(rng, sizes):
    total = sum(weight for _size, weight in sizes)
    pick = rng.uniform(0, total)
    for size, weight in sizes:
        pick -= weight
        if pick <= 0:
            return size
    return sizes[-1][0]


@dataclasses.dataclass
class DiskPlan:
    key: str
    gib: int
    count: int
    positions: array          # the allocated chunk positions, in order
    hot_start: int            # the working set: positions[hot_start:hot_start + hot_length]
    hot_length: int
    holes: frozenset          # allocated positions that hold zero chunks at first
    namespace: int            # of the base chunks (the template's for a clone's first disk)
    template: int = None


def _layout(rng, scenario, gib, key, namespace, template=None):
    count = gib * GIB // scenario.chunk_size
    allocated = int(count * rng.uniform(*scenario.alloc))
    extents = rng.randint(1, 4)
    sizes = [allocated // 2 if extents > 1 else allocated]
    rest = allocated - sizes[0]
    for n in range(1, extents):
        sizes.append(rest // (extents - 1) + (1 if n <= rest % (extents - 1) else 0))
    region = count // extents
    positions = array("I")
    for n, size in enumerate(sizes):
        start = n * region + (rng.randrange(max(1, region - size)) if n else 0)
        positions.extend(range(start, min(count, start + size)))
    hot_length = max(1, int(len(positions) * scenario.hot_fraction))
    hot_start = rng.randrange(max(1, len(positions) - hot_length))
    holes = frozenset(p for p in positions if rng.random() < scenario.holes)
    return DiskPlan(key, gib, count, positions, hot_start, hot_length, holes, namespace, template)


def template_plan(scenario, number):
    rng = _rng("template", scenario.seed, number)
    gib = _choose_size(rng, scenario.disk_sizes)
    return _layout(rng, scenario, gib, "2000", namespace=(scenario.seed << 40) | (1 << 32) | number, template=number)


@dataclasses.dataclass
class VmPlan:
    number: int
    key: str
    name: str
    clone_of: int
    disks: list
    rate: float
    offset: int               # seconds after midnight UTC of its nightly backup
    guest: str


def vm_plan(scenario, number):
    rng = _rng("vm", scenario.seed, number)
    clone_of = rng.randrange(scenario.templates) if scenario.templates and rng.random() < scenario.clone_share else None
    disks = []
    for n in range(2 if rng.random() < scenario.second_disk else 1):
        key = str(2000 + n)
        if n == 0 and clone_of is not None:
            template = template_plan(scenario, clone_of)
            disks.append(dataclasses.replace(template, key=key))
        else:
            gib = _choose_size(rng, scenario.disk_sizes)
            disks.append(_layout(rng, scenario, gib, key, namespace=(scenario.seed << 40) | (number << 4) | n))
    return VmPlan(number, "scale-vm-%04d" % number, "scale-vm-%04d" % number, clone_of, disks, rng.uniform(*scenario.change),
                  (20 * 3600 + number * 41) % DAY, rng.choice(["rhel9_64Guest", "ubuntu64Guest", "windows2019srv_64Guest"]))


def chunk_plaintext(namespace, counter):
    return struct.pack("<QQ", namespace, counter)


def day_changes(rng, scenario, disk, rate):
    """The positions rewritten one day: runs of consecutive allocated chunks, mostly in the working set."""
    positions = disk.positions
    wanted = max(1, round(rate * len(positions)))
    changed = set()
    while len(changed) < wanted:
        length = 1 + int(rng.expovariate(1.0 / (scenario.run_mean - 1))) if scenario.run_mean > 1 else 1
        if rng.random() < scenario.hot_share:
            start = disk.hot_start + rng.randrange(disk.hot_length)
        else:
            start = rng.randrange(len(positions))
        changed.update(positions[start:start + min(length, wanted - len(changed))])
    return sorted(changed)


# -- writing -----------------------------------------------------------------------------------

class LockForAll:
    """One real shared lock held for a whole generating process, handed to each session: fencing works as in a
    backup (each index and manifest refreshes and checks it); the session's release keeps it."""

    def __init__(self, lock):
        self._lock = lock
        self.lock_id = lock.lock_id
        self.lease = lock.lease

    def ensure_valid(self):
        self._lock.ensure_valid()

    def check_valid(self):
        self._lock.check_valid()

    def release(self):
        pass


class GeneratorSession(BackupSession):
    """The real BackupSession, whose ``add_disk_index`` leaves out one step: the per-entry check that every chunk the
    index names is stored (see the module docstring); the disk checksum by marking.index_blocksum (the same value as
    ``DiskIndex.blocksum``, which loops in Python over any index holding a zero chunk)."""

    def add_disk_index(self, disk_key, index):
        self._check_open()
        disk_key = check_disk_key(disk_key)
        name = index_name(self.restore_point_id, disk_key)
        blob = self.repository.encode_index(name, index)
        self._ensure_fences()
        self.repository.backend.put(name, blob)
        self._disks[disk_key] = {"index": name, "index_sha256": hashlib.sha256(blob).hexdigest(), "capacity": index.capacity,
                                 "sha256": marking.index_blocksum(index)}
        return name


class ChunkSink:
    """Where new chunks go: their names into the stand-in store (through a Registrar), or real chunk objects."""

    def __init__(self, scenario, repo, backend_inner, tag):
        self.mode = scenario.mode
        self.repo = repo
        self.to_id = marking.storage_id_function(repo.codec)
        self.registered = 0
        if self.mode == "standin":
            from standin import Registrar
            self.registrar = Registrar(backend_inner.store, tag)
        else:
            self.pool = ThreadPoolExecutor(max_workers=2)
            self.pending = []

    def storage_id(self, digest):
        return self.to_id(digest) if self.to_id is not None else digest

    def add(self, plaintext, digest):
        storage_id = self.storage_id(digest)
        self.registered += 1
        if self.mode == "standin":
            self.registrar.add(storage_id)
        else:
            self.pending.append((storage_id, plaintext))
            if len(self.pending) >= 4096:
                self._write()
        return storage_id

    def _write(self):
        batch, self.pending = self.pending, []
        codec, backend = self.repo.codec, self.repo.backend
        list(self.pool.map(lambda item: backend.put(chunk_name(item[0]), codec.encode(item[0], item[1])), batch))

    def flush(self):
        if self.mode == "standin":
            self.registrar.flush()
        else:
            self._write()


def vm_config(plan):
    return VmConfig.from_json({
        "name": plan.name, "guest_id": plan.guest, "firmware": "efi", "num_cpus": 2 + plan.number % 7,
        "cores_per_socket": 1, "memory_mb": 4096 << (plan.number % 3), "annotation": "scale benchmark VM %d" % plan.number,
        "hardware_version": "vmx-19", "instance_uuid": "5000%04x-0000-4000-8000-%012x" % (plan.number, plan.number),
        "bios_uuid": "4200%04x-0000-4000-8000-%012x" % (plan.number, plan.number),
        "controllers": [{"key": 1000, "type": "pvscsi", "bus_number": 0}],
        "disks": [{"key": int(disk.key), "label": "Hard disk %d" % (n + 1), "capacity": disk.count * (4 << 20),
                   "controller_key": 1000, "unit_number": n, "thin": True, "datastore": "ds-%02d" % (plan.number % 12)}
                  for n, disk in enumerate(plan.disks)],
        "nics": [{"key": 4000, "type": "vmxnet3", "network": "VM Network", "mac": "00:50:56:%02x:%02x:%02x" % (
            plan.number >> 16 & 255, plan.number >> 8 & 255, plan.number & 255), "connected": True}],
        "placement": {"datacenter": "dc1", "compute": "cluster-%d" % (plan.number % 4), "folder": "vm/scale"}})


def generate_vm(repo, lock, scenario, plan, base_time, sink, stats, templates):
    """Every restore point of VM ``plan``, oldest first."""
    vm_record = VmRecord(key=plan.key, name=plan.name, moref="vm-%d" % (1000 + plan.number), uuid=None,
                         instance_uuid=plan.key, config=vm_config(plan))
    tag = repo.vm_tag(plan.key)
    rng = _rng("changes", scenario.seed, plan.number)
    states, counters = {}, {}
    for day in range(scenario.points):
        moment = datetime.datetime.fromtimestamp(base_time + day * DAY + plan.offset, datetime.timezone.utc)
        run_id = "scale-%04d-%02d" % (plan.number, day)
        session = GeneratorSession(repo, plan.key, run_id, lock, known_ids=set())
        session.adopt_identity(new_restore_point_id(tag, moment), isotime(moment))
        records = []
        for disk in plan.disks:
            digests = states.get(disk.key)
            if digests is None:
                digests, new = _first_index(scenario, plan, disk, sink, counters, templates)
            else:
                new = 0
                counter = counters[disk.key]
                for position in day_changes(rng, scenario, disk, plan.rate):
                    plaintext = chunk_plaintext(plan_namespace(scenario, plan, disk), next(counter))
                    digest = hashlib.sha256(plaintext).digest()
                    sink.add(plaintext, digest)
                    digests[position * 32:position * 32 + 32] = digest
                    new += 1
            states[disk.key] = digests
            capacity = disk.count * scenario.chunk_size
            session.add_disk_index(disk.key, DiskIndex(capacity, scenario.chunk_size, digests))
            records.append(DiskRecord(key=disk.key, label="Hard disk %d" % (int(disk.key) - 1999), capacity=capacity,
                                      mode="full" if day == 0 else "incremental", reason="first backup" if day == 0 else "CBT",
                                      controller={"key": 1000, "type": "pvscsi", "bus_number": 0}, unit_number=int(disk.key) - 2000,
                                      file_name="[ds-%02d] %s/%s_%d.vmdk" % (plan.number % 12, plan.name, plan.name, int(disk.key) - 2000),
                                      uuid="6000C29%025x" % (plan.number * 16 + int(disk.key) - 2000),
                                      change_id="52 0d 4e 7a 1c 2b 3a 49-%02x/%d" % (plan.number % 256, day + 1),
                                      bytes_read=new * scenario.chunk_size, bytes_new=new * scenario.chunk_size,
                                      bytes_stored=new * (5 << 19), transport="nbdssl"))
            stats["indexes"] += 1
            stats["entries"] += disk.count
            stats["changed"] += new
        draft = ManifestDraft.build(run_id, vm_record, records, started=isotime(moment),
                                    stats={"bytes_read": sum(r.bytes_read for r in records),
                                           "bytes_written": sum(r.bytes_stored for r in records), "transport": "nbdssl",
                                           "duration_s": 60 + len(records) * 30})
        session.commit(draft)
        stats["points"] += 1


def plan_namespace(scenario, plan, disk):
    """The namespace of a VM's own new chunks on ``disk`` (a clone's first disk has the template's for its base)."""
    return (scenario.seed << 40) | (plan.number << 4) | (int(disk.key) - 2000) | (1 << 36)


def _first_index(scenario, plan, disk, sink, counters, templates):
    """(digests bytearray, chunks new to this VM) of the first restore point of ``disk``."""
    digests = bytearray(disk.count * 32)
    own = plan_namespace(scenario, plan, disk)
    counters[disk.key] = iter(range(1 << 32, 1 << 62))
    if disk.template is not None:
        base = templates.get(disk.template)
        if base is None:        # the template's chunks (the template itself is not backed up)
            base = bytearray(disk.count * 32)
            for position in disk.positions:
                if position not in disk.holes:
                    base[position * 32:position * 32 + 32] = hashlib.sha256(chunk_plaintext(disk.namespace, position)).digest()
            templates[disk.template] = bytes(base)
        digests[:] = base
        rng = _rng("clone", scenario.seed, plan.number)
        new = 0
        for position in disk.positions:
            if position in disk.holes:
                continue
            if rng.random() < scenario.clone_divergence:
                plaintext = chunk_plaintext(own, position)
                digest = hashlib.sha256(plaintext).digest()
                digests[position * 32:position * 32 + 32] = digest
                new += 1
            else:       # a template chunk this clone keeps: registered by every clone (the store merges duplicates)
                plaintext = chunk_plaintext(disk.namespace, position)
                digest = base[position * 32:position * 32 + 32]
            sink.add(plaintext, bytes(digest))
        return digests, new
    new = 0
    for position in disk.positions:
        if position in disk.holes:
            continue
        plaintext = chunk_plaintext(disk.namespace, position)
        digest = hashlib.sha256(plaintext).digest()
        sink.add(plaintext, digest)
        digests[position * 32:position * 32 + 32] = digest
        new += 1
    return digests, new


def worker(workdir, scenario, number, jobs, base_time, master_hex):
    """Generate VMs number, number + jobs, ... in this process; returns its stats."""
    started = time.perf_counter()
    backend, counter = make_backend(workdir, scenario.mode, model="local", fsync=False)
    repo = Repository.open(backend, agent=KeyAgent(master_hex)) if scenario.encrypted else Repository.open(backend)
    lock = repo.locks.acquire(SHARED, "scale benchmark generator %d" % number)
    stats = {"points": 0, "indexes": 0, "entries": 0, "changed": 0}
    templates = {}
    sink = ChunkSink(scenario, repo, counter.inner, "w%d" % number)
    try:
        held = LockForAll(lock)
        for vm in range(number, scenario.vms, jobs):
            generate_vm(repo, held, scenario, vm_plan(scenario, vm), base_time, sink, stats, templates)
            repo._manifests.clear()     # the repository caches every manifest it committed: not needed here
        sink.flush()
    finally:
        lock.release()
        backend.close()
    stats["chunk_names_registered"] = sink.registered
    stats["seconds"] = round(time.perf_counter() - started, 1)
    return stats


# -- the validation VM: real 4 MiB chunks through the ordinary backup path -------------------------

def _text_pool(seed):
    rnd = random.Random(seed)
    words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _unused in range(rnd.randint(2, 9))) for _unused in range(2000)]
    pool = []
    for _unused in range(TEXT_POOL):
        parts, size = [], 0
        while size < 4 << 20:
            line = b"%d.%06d host%02d %s: %s\n" % (rnd.randint(10 ** 9, 2 * 10 ** 9), rnd.randint(0, 999999), rnd.randint(0, 99),
                                                   rnd.choice(words), b" ".join(rnd.choice(words) for _unused in range(rnd.randint(3, 12))))
            parts.append(line)
            size += len(line)
        pool.append(b"".join(parts)[:4 << 20])
    return pool


def generate_validation_vm(repo, scenario):
    """One restore point of VM ``scale-validate``: a disk of validate_disk_gib, 40% allocated with text-like chunks
    (each unique: a counter stamped in it), backed up through begin_backup/put_chunk/add_disk_index/commit."""
    from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import DiskRecord as Record

    chunk = scenario.chunk_size
    count = int(scenario.validate_disk_gib * GIB) // chunk
    used = int(count * 0.4)
    pool = _text_pool(scenario.seed)
    index = DiskIndex(count * chunk, chunk)
    local = threading.local()
    with repo.begin_backup(vm_key="scale-validate", run_id="scale-validate") as session:
        def store(position):
            buffer = getattr(local, "buffer", None)
            if buffer is None:
                buffer = local.buffer = bytearray(chunk)
            buffer[:] = pool[position % TEXT_POOL]
            struct.pack_into("<QQ", buffer, 0, scenario.seed, position)
            digest = hashlib.sha256(buffer).digest()
            index.set(position, digest)
            return session.put_chunk(digest, buffer)

        with ThreadPoolExecutor(max_workers=2) as pool_threads:
            stored = sum(pool_threads.map(store, range(used)))
        session.add_disk_index("2000", index)
        record = Record(key="2000", label="Hard disk 1", capacity=count * chunk, mode="full", reason="first backup",
                        controller={"key": 1000, "type": "pvscsi", "bus_number": 0}, unit_number=0,
                        file_name="[ds-00] scale-validate/scale-validate.vmdk", uuid="6000C29validate", change_id="52 aa/1",
                        bytes_read=used * chunk, bytes_new=used * chunk, bytes_stored=stored, transport="nbdssl")
        rp_id = session.commit(ManifestDraft.build("scale-validate", VmRecord(key="scale-validate", name="scale-validate"), [record])).id
    return {"restore_point": rp_id, "chunks": used, "plain_bytes": used * chunk, "stored_bytes": stored}


# -- the whole build ---------------------------------------------------------------------------------

def create(workdir, scenario):
    """Create the repository (default scrypt cost: opening is measured); returns the master key (hex) or None."""
    backend, _counter = make_backend(workdir, scenario.mode, model="local", fsync=False)
    repo = Repository.create(backend, chunk_size=scenario.chunk_size, encryption=scenario.encrypted,
                             passphrase=PASSPHRASE if scenario.encrypted else None)
    master = repo.keys.master_key.hex() if repo.keys is not None else None
    backend.close()
    return master


def build(workdir, scenario, jobs=2, log=print):
    """Create and fill the repository in ``workdir``; writes and returns ``workdir/scenario.json``."""
    started = time.perf_counter()
    load_before = load()
    os.makedirs(workdir, exist_ok=True)
    master = create(workdir, scenario)
    base_time = int(time.time() // DAY) * DAY - scenario.points * DAY
    log("  generating %d VMs x %d restore points (%s, %d processes) in %s" % (scenario.vms, scenario.points, scenario.mode, jobs, workdir))
    children = []
    for number in range(jobs):
        argv = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(
            {"workdir": workdir, "scenario": dataclasses.asdict(scenario), "number": number, "jobs": jobs, "base_time": base_time,
             "master": master})]
        children.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
    workers = []
    for child in children:
        out, _err = child.communicate()
        if child.returncode:
            raise SystemExit("generator worker failed (exit %d)" % child.returncode)
        workers.append(json.loads(out))
    generated = time.perf_counter()
    validation = None
    backend, counter = make_backend(workdir, scenario.mode, model="local", fsync=False)
    if scenario.validate_disk_gib:
        repo = Repository.open(backend, agent=KeyAgent(master)) if scenario.encrypted else Repository.open(backend)
        validation = generate_validation_vm(repo, scenario)
    backend.close()
    chunks = counter.inner.store.merge_parts() if scenario.mode == "standin" else None
    totals = {key: sum(w[key] for w in workers) for key in workers[0] if key != "seconds"}
    summary = {"scenario": dataclasses.asdict(scenario), "jobs": jobs, "base_time": base_time, "master_key": master,
               "totals": totals, "workers": workers, "validation_vm": validation,
               "chunks_stored": chunks, "generate_seconds": round(generated - started, 1),
               "seconds": round(time.perf_counter() - started, 1), "load_before": load_before, "load_after": load(),
               "disk_bytes": directory_bytes(workdir)}
    if chunks is None:
        top = os.path.join(workdir, "repo", "chunks")
        summary["chunks_stored"] = sum(len(os.listdir(os.path.join(top, d))) for d in os.listdir(top)) if os.path.isdir(top) else 0
    summary["index_bytes_on_disk"] = directory_bytes(os.path.join(workdir, "repo", "indexes"))
    with open(os.path.join(workdir, "scenario.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    parser.add_argument("--mode", choices=("standin", "real"), default="standin")
    parser.add_argument("--workdir", required=False)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        crypto.require_crypto()
        print(json.dumps(worker(spec["workdir"], Scenario.from_json(spec["scenario"]), spec["number"], spec["jobs"],
                                spec["base_time"], spec["master"])))
        return
    scenario = Scenario(mode=args.mode, **PROFILES[args.profile])
    print(json.dumps(build(args.workdir, scenario, jobs=args.jobs), indent=1))


if __name__ == "__main__":
    main()
