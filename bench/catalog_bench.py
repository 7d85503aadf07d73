# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore point listing benchmark: ops.info listings of a repository of many restore points, with and without the
catalog (repo/catalog.py, format section 7.3). Not a test: it asserts nothing but that both listings agree.

Run: .venv/bin/python bench/catalog_bench.py [--points 30000] [--vms 1000] [--s3-points 3000 --s3-vms 100] [--catalog-only]

Builds (once; kept under bench/work/catalog/ and reused) an encrypted local repository of ``--points`` restore
points spread over ``--vms`` VMs through the real write path (begin_backup, add_disk_index, commit: lock, index,
manifest, catalog), each restore point one 1 MiB all-zero disk (no chunk to store), fsync off to build faster. Then
it times, with the repository already open (opening derives the key: scrypt, 0.25 to 0.4 s, paid once per run
whatever the listing), best of ``--repeat``:

* ``ops.info.list_restore_points`` of one VM (by name) and of every VM: the catalog path;
* the same listing from the manifests, as ops.info did before the catalog (a read, decrypt and schema check per
  restore point), once: it takes minutes at 30,000;
* the first listing after every catalog object was deleted (it reads every manifest and rebuilds the catalogs).

With ``--s3-points`` it builds a second repository on moto's S3 server (tests/lab/labkit) and counts the requests
of each listing (moto's times say nothing about a real store; the counts do).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from benchpath import ROOT  # noqa: E402  pylint: disable=wrong-import-position  # before the collection's imports
WORK = os.path.join(ROOT, "bench", "work", "catalog")
PASSPHRASE = "catalog bench passphrase"
MIB = 1 << 20

# pylint: disable=wrong-import-position
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import _engine, info  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import (  # noqa: E402
    DiskIndex, LocalBackend, Repository, RepositorySettings, open_backend)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import BackendWrapper  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.catalog import CATALOG_PREFIX  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import (  # noqa: E402
    DiskRecord, ManifestDraft, VmConfig, VmRecord)


def vm_name(number):
    return "vm%04d" % number


def commit_one(repository, vm_number, serial):
    """One restore point of VM ``vm_number`` through the real write path (a 1 MiB all-zero disk: no chunk)."""
    key = "4210%04x-0000-4000-8000-%012d" % (vm_number, vm_number)
    run_id = "bench-%06d" % serial
    config = VmConfig.from_json({"name": vm_name(vm_number), "guest_id": "ubuntu64Guest", "firmware": "efi", "num_cpus": 2,
                                 "memory_mb": 4096, "controllers": [{"key": 1000, "type": "pvscsi", "bus_number": 0}],
                                 "nics": [{"network": "VM Network", "type": "vmxnet3"}]})
    disk = DiskRecord(key="2000", label="Hard disk 1", capacity=MIB, mode="full" if serial < 2 else "incremental",
                      reason="bench", controller={"key": 1000, "type": "pvscsi", "bus_number": 0}, unit_number=0,
                      file_name="[ds1] %s/%s.vmdk" % (vm_name(vm_number), vm_name(vm_number)), uuid="6000c29%08d" % vm_number,
                      change_id="52 aa/%d" % serial, bytes_read=MIB, bytes_new=0, bytes_stored=0, transport="nbdssl")
    with repository.begin_backup(vm_key=key, run_id=run_id) as session:
        session.add_disk_index("2000", DiskIndex(MIB, repository.chunk_size))
        session.commit(ManifestDraft.build(run_id, VmRecord(key=key, name=vm_name(vm_number), moref="vm-%d" % vm_number,
                                                            instance_uuid=key, config=config), [disk],
                                           stats={"bytes_read": MIB, "bytes_written": 0, "duration": 12.5, "quiesced": True,
                                                  "transports_requested": ["hotadd", "nbdssl"]}))


def build(backend, points, vms, threads=4):
    """Create an encrypted repository in ``backend`` and commit ``points`` restore points over ``vms`` VMs."""
    Repository.create(backend, chunk_size=MIB, encryption=True, passphrase=PASSPHRASE)
    repository = Repository.open(backend, passphrase=PASSPHRASE)
    started, done, mutex = time.monotonic(), [0], threading.Lock()

    def work(serial):
        commit_one(repository, serial % vms, serial // vms)
        with mutex:
            done[0] += 1
            if done[0] % 2000 == 0:
                print("  built %d of %d restore points (%.0f s)" % (done[0], points, time.monotonic() - started), flush=True)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(points)))
    return time.monotonic() - started


class Counting(BackendWrapper):
    """Counts the calls per method (a request each on S3)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.calls = {}
        self._mutex = threading.Lock()

    def _call(self, method, *args, **kwargs):
        with self._mutex:
            self.calls[method] = self.calls.get(method, 0) + 1
        return getattr(self.inner, method)(*args, **kwargs)


class KeptOpen:
    """The opened repository handed to ops.info again and again: its ``close`` (at the end of a listing) does nothing."""

    def __init__(self, repository):
        self._repository = repository

    def __getattr__(self, name):
        return getattr(self._repository, name)

    def close(self):
        pass


def listing_from_manifests(repository, vm=None):
    """ops.info.list_restore_points as it was before the catalog: a manifest read per restore point."""
    manifests, warnings = _manifests(repository, vm)
    vms = {}
    pinned, noted = repository.pinned_ids(), repository.noted_ids()
    for manifest in manifests:
        note = repository.note(manifest.id) if manifest.id in noted else ""
        vms.setdefault(manifest.vm.name, []).append(info.summarize(manifest, manifest.id in pinned, note))
    return {"changed": False, "vms": vms, "count": sum(len(p) for p in vms.values()), "warnings": warnings}


def _manifests(repository, vm):
    manifests, warnings = [], []
    for read in repository.read_manifests():
        if read.error is not None:
            warnings.append(_engine.damaged_manifest_warning(read.point.id, read.error, vm))
        elif read.manifest is not None and (vm is None or read.manifest.vm.name == vm):
            manifests.append(read.manifest)
    return manifests, warnings


def opened(settings, counting=False):
    backend = open_backend(settings)
    if counting:
        backend = Counting(backend)
    return Repository.open(backend, passphrase=PASSPHRASE), backend


def timed(function, repeat):
    """(best wall seconds, best CPU seconds of this process, the last result) of ``repeat`` calls. On a busy machine
    the CPU time is the better figure of a local listing: it waits for nothing but the page cache."""
    wall = cpu = result = None
    for _number in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = function()
        elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
        wall = elapsed if wall is None else min(wall, elapsed)
        cpu = elapsed_cpu if cpu is None else min(cpu, elapsed_cpu)
    return wall, cpu, result


def measure(settings, one_vm, repeat, manifests_too=True, counting=False):
    """{case: {seconds, count, requests}} of the listings of ``settings``' repository."""
    results = {}
    started = time.perf_counter()
    repository, backend = opened(settings, counting)
    results["open (scrypt)"] = {"seconds": round(time.perf_counter() - started, 3)}
    kept = KeptOpen(repository)
    original = info.open_repository
    info.open_repository = lambda _settings: kept
    try:
        cases = [("catalog: one VM", lambda: info.list_restore_points(settings, vm=one_vm), repeat),
                 ("catalog: all", lambda: info.list_restore_points(settings), repeat)]
        if manifests_too:
            cases += [("manifests: one VM", lambda: listing_from_manifests(fresh(repository), one_vm), 1),
                      ("manifests: all", lambda: listing_from_manifests(fresh(repository)), 1)]
        listings = {}
        for case, function, times in cases:
            if counting:
                backend.calls.clear()
            seconds, cpu, listing = timed(function, times)
            listings[case] = listing
            results[case] = {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "count": listing["count"]}
            if counting:    # every repetition makes the same requests
                results[case]["requests"] = {method: calls // times for method, calls in backend.calls.items()}
            print("  %-32s %8.3f s (CPU %.3f s) %6d restore points%s" % (case, seconds, cpu, listing["count"], "  requests %s" % json.dumps(
                results[case].get("requests")) if counting else ""), flush=True)
        if manifests_too:
            for scope in ("one VM", "all"):
                assert listings["catalog: " + scope] == listings["manifests: " + scope], "the listings differ (%s)" % scope
        if not manifests_too:
            return results
        for stored in backend.list(CATALOG_PREFIX):     # what a repository written before the catalog looks like
            backend.delete(stored.name)
        for case in ("catalog missing: all, rebuilds", "catalog rebuilt: all"):
            if counting:
                backend.calls.clear()
            seconds, cpu, listing = timed(lambda: info.list_restore_points(settings), 1)
            results[case] = {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "count": listing["count"]}
            if counting:
                results[case]["requests"] = dict(backend.calls)
            print("  %-32s %8.3f s (CPU %.3f s) %6d restore points%s" % (case, seconds, cpu, listing["count"], "  requests %s" % json.dumps(
                results[case].get("requests")) if counting else ""), flush=True)
    finally:
        info.open_repository = original
        repository.close()
    return results


def fresh(repository):
    """``repository`` without the manifests it cached (the listing of one process run reads them all once)."""
    repository._manifests.clear()     # pylint: disable=protected-access
    return repository


def local_case(points, vms, repeat, rebuild, manifests_too=True):
    location = os.path.join(WORK, "local-%d-%d" % (points, vms))
    marker = os.path.join(location, "bench-built.json")
    if rebuild or not os.path.exists(marker):
        shutil.rmtree(location, ignore_errors=True)
        print("building %d restore points over %d VMs in %s" % (points, vms, location), flush=True)
        seconds = build(LocalBackend(location, fsync=False), points, vms)
        with open(marker, "w") as handle:
            json.dump({"points": points, "vms": vms, "build_seconds": round(seconds, 1)}, handle)
    with open(marker) as handle:
        built = json.load(handle)
    print("local repository: %d restore points over %d VMs (built in %.0f s)" % (points, vms, built["build_seconds"]), flush=True)
    return measure(RepositorySettings(location, passphrase=PASSPHRASE), vm_name(7), repeat, manifests_too)


def s3_case(points, vms, repeat):
    from labkit.s3servers import PLAIN_BUCKET, MotoServer  # pylint: disable=import-outside-toplevel

    server = MotoServer.start(os.path.join(WORK, "moto"))
    try:
        settings = RepositorySettings("s3://%s/catalog-bench" % PLAIN_BUCKET, passphrase=PASSPHRASE,
                                      s3_endpoint_url=server.endpoint, region=server.region,
                                      access_key=server.access_key, secret_key=server.secret_key)
        print("building %d restore points over %d VMs on moto" % (points, vms), flush=True)
        seconds = build(open_backend(settings), points, vms, threads=8)
        print("moto repository built in %.0f s" % seconds, flush=True)
        return measure(settings, vm_name(7), repeat, counting=True)
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--points", type=int, default=30000)
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true", help="build the local repository again")
    parser.add_argument("--s3-points", type=int, default=0, help="also on moto, with this many restore points")
    parser.add_argument("--s3-vms", type=int, default=100)
    parser.add_argument("--catalog-only", action="store_true", help="only the catalog listings (not the minutes-long others)")
    args = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    results = {"local": local_case(args.points, args.vms, args.repeat, args.rebuild, not args.catalog_only)}
    if args.s3_points:
        results["moto"] = s3_case(args.s3_points, args.s3_vms, args.repeat)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
