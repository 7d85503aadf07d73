# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the presence filter gc/present (repo/presence.py, format section 9.1) costs and saves. Not a test.

1. The filter itself: build time (pure Python) at 1 M and 10 M ids, encode/decode, lookups per id.
2. A backup session's start, and an incremental's requests, in a repository of ``--ids`` chunks (1 M by default),
   with the filter and with the listing: chunk objects are names only (bench/scale/standin.py's NameStore and
   StandInBackend), requests counted as S3 would receive them (its S3RequestCounter; ``parallel_listing`` on, so the
   code takes its S3 paths: 256 parallel listings of ``chunks/xx/``).

    .venv/bin/python bench/presence_bench.py [--ids 1000000] [--build 1000000,10000000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "scale"))
import common  # noqa: E402  (links the collection: ansible_collections.blockvault.vsphere importable)
from standin import NameStore  # noqa: E402

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, Repository  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import presence  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import isotime  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import (  # noqa: E402
    DiskRecord, ManifestDraft, VmConfig, VmRecord)

MIB = 1 << 20
CHUNK = 4 * MIB


def timed(function, *args, **kwargs):
    cpu, wall = time.process_time(), time.perf_counter()
    result = function(*args, **kwargs)
    return result, round(time.perf_counter() - wall, 3), round(time.process_time() - cpu, 3)


def measure_filter(count, rng):
    ids = [rng.randbytes(32) for _unused in range(count)]
    built, wall, cpu = timed(presence.PresenceFilter.build, ids, count, "bench", isotime())
    blob, encode_wall, _cpu = timed(built.encode)
    _decoded, decode_wall, _cpu = timed(presence.decode_filter, blob)
    sample = ids[:200000]
    _result, present_wall, _cpu = timed(lambda: sum(storage_id in built for storage_id in sample))
    others = [rng.randbytes(32) for _unused in range(200000)]
    positives, absent_wall, _cpu = timed(lambda: sum(storage_id in built for storage_id in others))
    return {"ids": count, "bytes": len(blob), "build_wall_s": wall, "build_cpu_s": cpu, "encode_s": encode_wall,
            "decode_s (sha256, popcount)": decode_wall, "lookup_present_us": round(present_wall / len(sample) * 1e6, 2),
            "lookup_absent_us": round(absent_wall / len(others) * 1e6, 2),
            "false_positive_rate": round(positives / len(others), 4)}


def vm_record(vm_key):
    config = VmConfig.from_json({"name": vm_key, "guest_id": "otherGuest64", "firmware": "efi", "num_cpus": 2,
                                 "memory_mb": 2048, "controllers": [], "nics": [], "annotation": ""})
    return VmRecord(key=vm_key, name=vm_key, moref="vm-1", instance_uuid=vm_key, config=config)


def disk_record(capacity, mode):
    return DiskRecord(key="2000", label="Hard disk 1", capacity=capacity, controller={"key": 1000, "type": "pvscsi", "bus_number": 0},
                      unit_number=0, file_name="[ds1] vm/vm.vmdk", uuid="6000c292000", change_id=None, mode=mode,
                      reason="bench", bytes_read=0, bytes_new=0)


def measure_sessions(workdir, count, parent_chunks, changed, rng):
    """Session start and an incremental (``parent_chunks`` carried, ``changed`` new chunks) in a repository of
    ``count`` chunk names, with the filter and with the listing."""
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    backend, counter = common.make_backend(workdir, "standin", model="s3", fsync=False)
    repo = Repository.create(backend, chunk_size=CHUNK, encryption=False)       # storage id = digest: names are digests
    repo = Repository.open(backend)
    store = NameStore(os.path.join(workdir, "names"))
    ids = [rng.randbytes(32) for _unused in range(count)]
    for shard in range(256):
        store.append_raw(shard, b"".join(i for i in ids if i[0] == shard), "bench")
    store.merge_parts()
    # the parent restore point: one disk of ``parent_chunks`` stored chunks (committed through a listing session)
    capacity = parent_chunks * CHUNK
    with repo.begin_backup("vm-bench", "parent") as session:
        index = DiskIndex(capacity, CHUNK)
        for position in range(parent_chunks):
            index.set(position, ids[position])
        session.add_disk_index("2000", index)
        parent = session.commit(ManifestDraft.build("parent", vm_record("vm-bench"), [disk_record(capacity, "full")])).id
    # what GC writes at its end (a real GC here would condemn every chunk no restore point references)
    _written, gc_build_wall, gc_build_cpu = timed(presence.write_filter, backend, ids, count, "bench-gc", isotime())
    results = {"chunks": count, "filter_write_s": gc_build_wall, "filter_write_cpu_s": gc_build_cpu,
               "incremental": {"carried_chunks": parent_chunks - changed, "new_chunks": changed}}
    for path, use in (("filter", True), ("listing", False)):
        new_digests = [rng.randbytes(32) for _unused in range(changed)]      # new content for each run
        session_repo = Repository.open(backend)
        session_repo.presence_settings.use_filter = use
        counter.reset()
        session, wall, cpu = timed(session_repo.begin_backup, "vm-bench", "run-" + path)
        start = {"wall_s": wall, "cpu_s": cpu, "requests": dict(counter.reset()), "chunk_presence": session.chunk_presence}
        with session:
            index, load_wall, _cpu = timed(session.previous_index, parent, "2000")
            requests_load = dict(counter.reset())

            def incremental():
                for position, digest in zip(range(0, parent_chunks, max(1, parent_chunks // changed)), new_digests):
                    if not session.has_chunk(digest):
                        session.put_chunk(digest, b"x")     # the digest is trusted by put_chunk: a name is enough here
                    index.set(position, digest)
                session.add_disk_index("2000", index)
            _result, inc_wall, inc_cpu = timed(incremental)
            requests_inc = dict(counter.reset())
            session.abort()
        results[path] = {"start": start, "previous_index": {"wall_s": load_wall, "requests": requests_load},
                         "chunks_and_index": {"wall_s": inc_wall, "cpu_s": inc_cpu, "requests": requests_inc,
                                              "presence_requests": session.presence_requests}}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--ids", type=int, default=1000000)
    parser.add_argument("--build", default="1000000,10000000", help="filter sizes to build (comma separated)")
    parser.add_argument("--parent-chunks", type=int, default=250000, help="chunks of the parent disk (250,000: 1 TiB)")
    parser.add_argument("--changed", type=int, default=2500, help="chunks the incremental stores (1%% of the disk)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    rng = random.Random(16)
    report = {"load_before": common.load(), "filter": []}
    for count in [int(text) for text in args.build.split(",") if text]:
        report["filter"].append(measure_filter(count, rng))
        print(json.dumps(report["filter"][-1]), flush=True)
    workdir = os.path.join(common.ROOT, "bench", "work", "presence")
    try:
        report["sessions"] = measure_sessions(workdir, args.ids, min(args.parent_chunks, args.ids), args.changed, rng)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report["load_after"] = common.load()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
