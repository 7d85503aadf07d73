# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scale benchmark's measurements: each operation in a child process of its own (its peak RSS is its own).

``python measure.py --child '{"op": ..., "workdir": ..., "mode": ..., "model": ...}'`` runs one and prints its JSON:
wall and CPU seconds, peak RSS (VmHWM: see common.rss_mib) and the RSS before the operation (imports and the opened repository),
the S3 requests the operation would send (bench/scale/standin.py's S3RequestCounter), the load average before and
after, and what the operation returned (counts). The measuring child opens the repository with the master key
handed over by a key agent stand-in (common.KeyAgent), not the passphrase: scrypt's 128 MiB would otherwise be the
peak of small operations. ``open`` measures the opening with the passphrase.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from common import PASSPHRASE, KeyAgent, load, make_backend, rss_mib

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, maintenance, marking
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.session import list_chunk_ids

# a GFS policy over every VM: of 30 daily restore points it keeps 11 or 12
POLICY = {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6}
OPS = {}


def operation(name):
    def register(function):
        OPS[name] = function
        return function
    return register


def _fail(rp_id, disk, exc):
    raise SystemExit("restore point %s disk %s does not read: %s" % (rp_id, disk, exc))


def _all_ids(repo):
    return [point.id for point in repo.list_restore_points()]


def _scalars(report):
    """A report dict with its lists replaced by their lengths (GC and validation reports name every object)."""
    return {key: (len(value) if isinstance(value, (list, tuple, set, dict)) else value) for key, value in report.items()}


@operation("open")
def op_open(context):
    backend, context["counter"] = make_backend(context["workdir"], context["mode"], context["model"])
    repo = Repository.open(backend, passphrase=PASSPHRASE) if context["encrypted"] else Repository.open(backend)
    return {"encrypted": repo.encrypted}


@operation("list_all")
def op_list_all(context):
    return {"restore_points": len(context["repo"].list_restore_points())}


@operation("list_vm")
def op_list_vm(context):
    return {"restore_points": len(context["repo"].list_restore_points(context["sample_vm"]))}


def _info(context, vm_name):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import info
    info.open_repository = lambda _settings: context["repo"]     # the opened repository, on the measured backend
    listing = info.list_restore_points(None, vm=vm_name)
    return {"restore_points": listing["count"], "vms": len(listing["vms"]), "warnings": len(listing["warnings"])}


@operation("info_all")
def op_info_all(context):
    return _info(context, None)


@operation("info_vm")
def op_info_vm(context):
    return _info(context, context["sample_vm"])


@operation("chunk_listing")
def op_chunk_listing(context):
    """What a backup's start does after taking its lock: every stored chunk id, into a set (session.list_chunk_ids)."""
    return {"chunks": len(list_chunk_ids(context["repo"].backend))}


@operation("backup_start")
def op_backup_start(context):
    """A new VM cloned from a template the fleet's clones use, its first backup's start: the session's lock and its view of which chunks are
    stored (the presence filter gc/present that GC writes, or a listing of chunks/), then has_chunk for each chunk of
    the template (what deduplication asks first). The session is aborted."""
    import hashlib
    import generate
    scenario = generate.Scenario.from_json(context["scenario"])
    used = (generate.vm_plan(scenario, number).clone_of for number in range(scenario.vms))
    template = generate.template_plan(scenario, next((number for number in used if number is not None), 0))
    digests = [hashlib.sha256(generate.chunk_plaintext(template.namespace, position)).digest()
               for position in template.positions if position not in template.holes]
    started = time.perf_counter()
    session = context["repo"].begin_backup(vm_key="scale-new-clone", run_id="scale-backup-start")
    try:
        opened = time.perf_counter() - started
        present = sum(1 for digest in digests if session.has_chunk(digest))
        return {"session_open_s": round(opened, 2), "dedup_s": round(time.perf_counter() - started - opened, 2),
                "asked": len(digests), "present": present, "path": getattr(session, "chunk_presence", "listing"),
                "head_requests": getattr(session, "presence_requests", 0)}
    finally:
        session.abort()


@operation("mark")
def op_mark(context):
    """The compact mark of every restore point (what GC's mark phase costs, alone)."""
    stats = {}
    referenced = marking.mark_restore_points(context["repo"], _all_ids(context["repo"]), _fail, stats=stats)
    stats = {key: round(value, 2) if isinstance(value, float) else value for key, value in stats.items()}
    return dict(stats, referenced=len(referenced), set_bytes=referenced.memory_bytes())


class _IdSet:
    def __init__(self):
        self.ids = set()

    def update(self, storage_ids):
        self.ids.update(storage_ids)


@operation("mark_ids")
def op_mark_ids(context):
    """The same chain-difference mark into a set of full 32-byte ids (validation's ``into``; GC's before it takes
    ReferencedChunks)."""
    stats = {}
    ids = _IdSet()
    marking.mark_restore_points(context["repo"], _all_ids(context["repo"]), _fail, into=ids, stats=stats)
    return {"referenced": len(ids.ids), "wall_seconds": round(stats["wall_seconds"], 2)}


@operation("mark_legacy")
def op_mark_legacy(context):
    """The mark as it was before marking.py: every index whole, DiskIndex.blocksum, an HMAC per distinct digest of
    each index, a set of full ids (the reference the compact mark is measured against)."""
    repo = context["repo"]
    codec, referenced = repo.codec, set()
    for rp_id in _all_ids(repo):
        manifest = repo.load_manifest(rp_id)
        for disk in manifest.disks:
            index = repo.load_disk_index(rp_id, disk.key)
            if index.blocksum() != disk.sha256:
                raise SystemExit("checksum of %s %s differs" % (rp_id, disk.key))
            referenced.update(codec.storage_id(digest) for digest in index.referenced())
    return {"referenced": len(referenced)}


@operation("validate_quick")
def op_validate_quick(context):
    """Quick validation of the newest restore point of one VM (manifest, indexes, checksums, chunks exist)."""
    repo = context["repo"]
    rp_id = repo.list_restore_points(context["sample_vm"])[-1].id
    return _scalars(repo.validate("quick", restore_point=rp_id))


@operation("validate_full")
def op_validate_full(context):
    """Full validation of the validation VM's restore point: every chunk read, authenticated, decompressed, hashed."""
    repo = context["repo"]
    points = repo.list_restore_points("scale-validate")
    if not points:
        return {"skipped": "no validation VM"}
    report = _scalars(repo.validate("full", restore_point=points[-1].id, workers=2))
    report["plain_bytes"] = report.get("chunks_read", 0) * repo.chunk_size
    return report


@operation("gc_dry")
def op_gc_dry(context):
    return _scalars(maintenance.gc(context["repo"], dry_run=True))


@operation("prune")
def op_prune(context):
    result = maintenance.prune(context["repo"], POLICY, dry_run=False)
    return {"kept": len(result["keep"]), "removed": len(result["remove"]), "policy": POLICY}


@operation("gc")
def op_gc(context):
    return _scalars(maintenance.gc(context["repo"], dry_run=False))


def child(spec):
    """Run one operation in this process; returns its figures."""
    load_before = load()
    context = dict(spec)
    if spec["op"] != "open":
        backend, context["counter"] = make_backend(spec["workdir"], spec["mode"], spec["model"])
        agent = KeyAgent(spec.get("master"))
        context["repo"] = Repository.open(backend, agent=agent) if spec["encrypted"] else Repository.open(backend)
        context["counter"].reset()
    base_rss = rss_mib()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = OPS[spec["op"]](context)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    requests = dict(context["counter"].reset())
    if "repo" in context:
        context["repo"].close()
    return {"op": spec["op"], "wall_s": round(wall, 2),
            "cpu_s": round(after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime, 2),
            "peak_rss_mib": rss_mib("VmHWM"), "base_rss_mib": base_rss,
            "requests": requests, "requests_total": sum(requests.values()), "result": result,
            "load_before": load_before, "load_after": load()}


def run(op, workdir, mode, model, encrypted, master, sample_vm, scenario=None, log=print):
    """Run ``op`` in a child process; returns its figures (raises SystemExit when it fails). ``sample_vm``: the VM
    key (and name) of the one-VM listings and the quick validation; ``scenario``: the repository's (a dict)."""
    spec = {"op": op, "workdir": workdir, "mode": mode, "model": model, "encrypted": encrypted, "master": master,
            "sample_vm": sample_vm, "scenario": scenario}
    started = time.time()
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)], capture_output=True, text=True,
                         check=False)
    if out.returncode:
        raise SystemExit("measurement %s failed (exit %d):\n%s" % (op, out.returncode, out.stderr[-4000:]))
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["started"] = time.strftime("%H:%M:%S", time.localtime(started))
    log("    %-21s %8.1f s wall %8.1f s CPU %8.1f MiB peak (%.0f before)  %s requests  load %s  %s" % (
        op, figures["wall_s"], figures["cpu_s"], figures["peak_rss_mib"], figures["base_rss_mib"] or 0, figures["requests_total"],
        figures["load_before"][0], json.dumps(figures["result"])[:200]))
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--child", required=True)
    args = parser.parse_args()
    print(json.dumps(child(json.loads(args.child))))


if __name__ == "__main__":
    main()
