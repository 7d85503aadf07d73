#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One blockvault operation per process, for bench/e2e_bench.py (which measures the process from outside).

    bv_driver.py init REPO
    bv_driver.py backup-file REPO IMAGE [--changed EXTENTS.json]    # engine straight from a raw image file
    bv_driver.py restore-file REPO OUT                               # ops.restore target=file (latest point)
    bv_driver.py backup-lab REPO LABDIR                              # ops.backup.backup_vm of lab-vm1 (lab)
    bv_driver.py restore-lab REPO LABDIR NEW_NAME                    # ops.restore target=new_vm (lab, VDDK writes)
    bv_driver.py destroy-vm LABDIR NAME
    bv_driver.py init-settings SETTINGS.json                         # init a repository given as settings (S3)
    bv_driver.py copy SOURCE DESTINATION.json                        # ops.copy of every restore point of SOURCE
    bv_driver.py warm                                                # import everything once (byte-code cache)

backup-file is what ops.backup does once VDDK hands it a disk: plan (SEEK_DATA/SEEK_HOLE allocation instead of
QueryAllocatedBlocks; ``--changed`` extents instead of QueryChangedDiskAreas), transfer.pipeline.backup_disks
into a repository session, index, manifest. Prints one JSON object (the operation's figures and this
process's /proc/self/io) on stdout; backup-file and backup-lab add ``transfer_s``, the seconds of the transfer
(transfer.pipeline.backup_disks) within the operation, from which bench/e2e splits off the fixed cost.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import time

from benchpath import ROOT  # noqa: E402  pylint: disable=wrong-import-position  # before the collection's imports

PASSPHRASE = "bench passphrase, not a secret"
VM_KEY = "bench-vm"
DISK_KEY = "2000"
MIB = 1 << 20
CHUNK = 4 * MIB

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, Repository, open_backend  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import DiskRecord, ManifestDraft, VmRecord  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer import TransferOptions  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.endpoints import RawFileSource  # noqa: E402
from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.pipeline import (  # noqa: E402
    BackupDisk, backup_disks, plan_backup)


def proc_io():
    with open("/proc/self/io") as handle:
        return {key: int(value) for key, value in (line.split(": ") for line in handle.read().splitlines())}


#: what the benchmarks that drive this file run it with (each operation in a process of its own)
PY = os.path.join(ROOT, ".venv", "bin", "python")
DRIVER = os.path.abspath(__file__)


def log(message):
    """A benchmark's progress line, timestamped."""
    print("[%s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def fresh_workdir(work):
    """Empty ``work`` (a benchmark's own directory under bench/work) and keep the run's state files (status files'
    logs, the key agent's socket) under it, so that nothing of a run is left elsewhere once it is removed."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.environ["XDG_STATE_HOME"] = os.path.join(work, "state")


def write_results(name, summary, runs):
    """Write bench/results/NAME.json (when, machine, summary, every run) as the instant-access and file-restore
    benchmarks record them; the bench repository's passphrase is said not to be a secret."""
    document = {"when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()},
                "passphrase_note": "bench repository, passphrase %r is not a secret" % PASSPHRASE,
                "summary": summary, "runs": runs}
    results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, name + ".json"), "w") as handle:
        json.dump(document, handle, indent=1)


def repo_settings(repo):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings  # noqa
    return RepositorySettings(location=os.path.abspath(repo), passphrase=PASSPHRASE)


def open_repo(repo):
    return Repository.open(open_backend(os.path.abspath(repo)), passphrase=PASSPHRASE)


def cmd_init(args):
    options = {} if args.level is None else {"compression_level": args.level}      # else the product's default
    Repository.create(open_backend(os.path.abspath(args.repo)), chunk_size=CHUNK, passphrase=PASSPHRASE, **options).close()
    return {}


def cmd_backup_file(args):
    repository = open_repo(args.repo)
    try:
        points = repository.list_restore_points()
        base = points[0] if args.base == "first" else (points[-1] if points else None)
        previous = repository.load_manifest(base.id) if points else None
        changed = None
        if args.changed:
            with open(args.changed) as handle:
                changed = [tuple(item) for item in json.load(handle)]
        run_id = "bench-%d" % time.time_ns()
        with repository.begin_backup(VM_KEY, run_id) as backup:
            source = RawFileSource(args.image)
            previous_index = backup.previous_index(previous.id, DISK_KEY) if (previous and changed is not None) else None
            if previous_index is None:
                changed = None
            plan = plan_backup(source, repository.chunk_size, changed=changed, previous=previous_index)
            item = BackupDisk(key=DISK_KEY, source=source, plan=plan, index=DiskIndex(source.capacity, repository.chunk_size),
                              previous=previous_index)
            transfer_started = time.monotonic()
            results = backup_disks(backup, [item], TransferOptions(workers=args.workers))
            transfer_s = time.monotonic() - transfer_started
            result = results[DISK_KEY]
            backup.add_disk_index(DISK_KEY, result.index)
            mode = "incremental" if changed is not None else "full"
            disk = DiskRecord(key=DISK_KEY, label="Hard disk 1", unit_number=0, file_name=os.path.abspath(args.image),
                              capacity=source.capacity, mode=mode, bytes_read=result.bytes_read, bytes_new=result.bytes_new,
                              bytes_stored=result.bytes_stored)
            draft = ManifestDraft.build(run_id, VmRecord(key=VM_KEY, name="bench"), [disk],
                                        stats={"bytes_read": result.bytes_read})
            rp_id = backup.commit(draft).id
        return {"restore_point": rp_id, "mode": mode, "result": result.as_dict(), "transfer_s": round(transfer_s, 4)}
    finally:
        repository.close()


def cmd_restore_file(args):
    # the product path of `vm_restore target=file`; "latest" of the VM: one repository open (one scrypt), as a user's
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import restore as ops_restore  # noqa
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import Endpoints, RunSettings  # noqa
    request = ops_restore.RestoreRequest(ops_restore.RestorePointQuery("latest", args.vm),
                                         ops_restore.File(path=os.path.abspath(args.out), force=True))
    settings = RunSettings(workers=args.workers,
                           status_file=os.path.join(os.path.dirname(os.path.abspath(args.out)), "status-restore.json"))
    result = ops_restore.restore(request, Endpoints(repo=repo_settings(args.repo)), settings)
    return {"restore_point": result["restore_point"]["id"], "disks": result["disks"]}


def _lab_settings(labdir):
    from labkit import Lab  # pylint: disable=import-outside-toplevel
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import VddkSettings, VSphereSettings  # noqa
    lab = Lab.attach(labdir)
    info = lab.info
    vsphere = VSphereSettings(host=info["host"], username=info["user"], password=info["password"],
                              port=int(info["port"]), ca_bundle=info["ca_bundle"])
    vddk = VddkSettings(libdir=lab.env()["VDDK_LIBDIR"], thumbprint=info["thumbprint"])
    return vsphere, vddk


def _timed_transfer(module):
    """Time ``module``'s calls of backup_disks (the transfer: read, hash, compress, encrypt, store the chunks to move)
    without touching the engine: the benchmark splits an operation's wall time into that transfer and the rest, its
    fixed cost. Returns the list the calls' seconds are appended to."""
    seconds = []
    inner = module.backup_disks

    def backup_disks_timed(*args, **kwargs):
        started = time.monotonic()
        try:
            return inner(*args, **kwargs)
        finally:
            seconds.append(time.monotonic() - started)

    module.backup_disks = backup_disks_timed
    return seconds


def cmd_backup_lab(args):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import backup as ops_backup  # noqa
    transfers = _timed_transfer(ops_backup)
    vsphere, vddk = _lab_settings(args.labdir)
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import Endpoints, RunSettings  # noqa
    settings = RunSettings(workers=args.workers, status_file=os.path.join(os.path.abspath(args.repo) + "-status", "backup.json"))
    result = ops_backup.backup_vm(ops_backup.BackupRequest(vm={"name": args.vm}, quiesce=False),
                                  Endpoints(repo=repo_settings(args.repo), vsphere=vsphere, vddk=vddk), settings)
    return {"restore_point": result["restore_point"]["id"], "disks": result["disks"], "bytes_read": result["bytes_read"],
            "bytes_written": result["bytes_written"], "duration": result["duration"], "transfer_s": round(sum(transfers), 4)}


def cmd_restore_lab(args):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import restore as ops_restore  # noqa
    vsphere, vddk = _lab_settings(args.labdir)
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import Endpoints, RunSettings  # noqa
    request = ops_restore.RestoreRequest(ops_restore.RestorePointQuery("latest", args.vm),
                                         ops_restore.NewVm(args.name, placement=ops_restore.Placement(resource_pool="DC0_C0")))
    settings = RunSettings(workers=args.workers, status_file=os.path.join(os.path.abspath(args.repo) + "-status", "restore.json"))
    result = ops_restore.restore(request, Endpoints(repo=repo_settings(args.repo), vsphere=vsphere, vddk=vddk), settings)
    return {"restore_point": result["restore_point"]["id"], "vm": result["vm"], "disks": result["disks"]}


def cmd_destroy_vm(args):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import config as vm_config, inventory  # noqa
    from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.session import VSphereSession  # noqa
    vsphere, vddk = _lab_settings(args.labdir)
    with VSphereSession(vsphere, vddk_thumbprint=vddk.thumbprint) as session:
        vm_config.destroy_vm(inventory.find_vm(session, name=args.name))
    return {}


def _settings_from(path):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings  # noqa
    with open(path) as handle:
        return RepositorySettings(**json.load(handle))


def cmd_init_settings(args):
    settings = _settings_from(args.settings)
    Repository.create(open_backend(settings), chunk_size=CHUNK, passphrase=settings.passphrase).close()
    return {}


def cmd_copy(args):
    # the product path of backup_copy: both repositories opened (two scrypt), then what the destination lacks
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import copy as ops_copy  # noqa
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import RunSettings  # noqa
    request = ops_copy.CopyRequest(destination=_settings_from(args.destination))
    status = os.path.join(os.path.dirname(os.path.abspath(args.destination)), "status-copy.json")
    result = ops_copy.copy(request, repo_settings(args.source), RunSettings(workers=args.workers, status_file=status))
    return {key: result[key] for key in ("chunks_copied", "bytes_copied", "bytes_sent", "duration", "throughput_mbps")}


def cmd_warm(args):
    """Import what the measured commands import (untimed), so that Python caches its byte-code."""
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import backup, restore  # noqa: F401
    from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import session  # noqa: F401
    from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DEFAULT_COMPRESSION_LEVEL  # noqa
    return {"zstd_level": DEFAULT_COMPRESSION_LEVEL}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--workers", type=int, default=4)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init")
    p.add_argument("repo")
    p.add_argument("--level", type=int, help="zstd level of the new repository (default: the product's)")
    p = sub.add_parser("backup-file")
    p.add_argument("repo")
    p.add_argument("image")
    p.add_argument("--changed")
    p.add_argument("--base", choices=("latest", "first"), default="latest",
                   help="the restore point the changed extents are relative to")
    p = sub.add_parser("restore-file")
    p.add_argument("repo")
    p.add_argument("out")
    p.add_argument("--vm", default="bench", help="the backed-up VM's name (latest restore point)")
    p = sub.add_parser("backup-lab")
    p.add_argument("repo")
    p.add_argument("labdir")
    p.add_argument("--vm", default="lab-vm1")
    p = sub.add_parser("restore-lab")
    p.add_argument("repo")
    p.add_argument("labdir")
    p.add_argument("name")
    p.add_argument("--vm", default="lab-vm1", help="the backed-up VM's name (latest restore point)")
    sub.add_parser("warm")
    p = sub.add_parser("init-settings")
    p.add_argument("settings")
    p = sub.add_parser("copy")
    p.add_argument("source")
    p.add_argument("destination")
    p = sub.add_parser("destroy-vm")
    p.add_argument("labdir")
    p.add_argument("name")
    args = parser.parse_args(argv)
    os.environ.setdefault("XDG_STATE_HOME", os.path.join(ROOT, "bench", "work", "state"))
    started = time.monotonic()
    out = globals()["cmd_" + args.command.replace("-", "_")](args)
    out["op_seconds"] = round(time.monotonic() - started, 3)
    out["io"] = proc_io()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
