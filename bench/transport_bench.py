#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup and restore through each transport the lab's VDDK stand-in models: how busy does the product keep the link?

    transport_bench.py [--disk-mib 64] [--conn-mibps 16] [--host-mibps 40] [--modes nbdssl,nbd,hotadd,san]
                       [--profile-caps] [--attach-us US]

Starts a lab of its own (lab-vm2: one disk; lab-vm1: four disks, two added with labctl), fills every disk with
incompressible data through the lab's guest-write endpoint, then for each mode and each VM runs, each in its own
process (VDDK is initialised once per process, with that run's LABVDDK_* knobs):
- a full backup (ops.backup.backup_vm, transports "MODE") into a fresh repository;
- a restore of it to a new VM (ops.restore.restore target=new_vm, transports "MODE:nbdssl": SAN and hotadd writes
  need a snapshot of the target VM, which a restore to a new VM does not take, so VDDK falls back).

The link is the stand-in's "vmware-default" profile (latency per call, NFC limits, hotadd attach cost, SAN and
hotadd rules) with the bandwidth caps scaled down to --conn-mibps per connection and --host-mibps per host, so
that the link, not this machine's CPU, is the slowest stage. Figures come from the stand-in's own counters
(LABVDDK_STATS): bytes moved, the mode really opened, and the span from the first request to the last completion.
"Link" is min(disks x per-connection cap, per-host cap); "of link" = (bytes / span) / link. Writes JSON to
bench/results/transport.json and a Markdown table to bench/results/transport.md (for docs/performance.md);
with --profile-caps, transport-profile.json/.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
import benchpath  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import  # the collection and labkit on sys.path

MIB = 1 << 20
PASSPHRASE = "bench passphrase, not a secret"
WORK = os.path.join(ROOT, "bench", "work", "transport")
RESULTS = os.path.join(ROOT, "bench", "results")
LABCTL = os.path.join(ROOT, "tests", "lab", "labctl.py")
CASES = (("lab-vm2", 1), ("lab-vm1", 4))
#: the stand-in's vmware-default caps (PROTOCOL.md 5.2), MiB/s per connection and per host
PROFILE_CAPS = {"nbd": (200, 1100), "nbdssl": (120, 1100), "hotadd": (400, 1500), "san": (500, 1600)}
ASYNC_USE = {
    "backup": "one reader thread per disk; ReadAsync batches of up to read_batch 8 MiB requests, then Wait",
    "restore": "one writer per disk; synchronous Write of one chunk at a time (no WriteAsync)",
}


def log(message):
    print("[transport-bench %s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


# -- one operation per process ---------------------------------------------------------------------------------

def _settings(labdir, transports):
    from labkit import Lab  # pylint: disable=import-outside-toplevel
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import (  # noqa
        RepositorySettings, VddkSettings, VSphereSettings)
    lab = Lab.attach(labdir)
    info = lab.info
    vsphere = VSphereSettings(host=info["host"], username=info["user"], password=info["password"],
                              port=int(info["port"]), ca_bundle=info["ca_bundle"])
    vddk = VddkSettings(libdir=lab.env()["VDDK_LIBDIR"], thumbprint=info["thumbprint"], transports=transports)
    return vsphere, vddk


def run_op(args):
    """The child: one product operation; prints its result as JSON."""
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import backup as ops_backup  # noqa
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import restore as ops_restore  # noqa
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import Endpoints, RunSettings  # noqa
    from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings  # noqa
    from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, open_backend  # noqa
    from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere import config as vm_config, inventory  # noqa
    from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.session import VSphereSession  # noqa
    vsphere, vddk = _settings(args.labdir, args.transports)
    repo = RepositorySettings(location=args.repo, passphrase=PASSPHRASE)
    endpoints = Endpoints(repo=repo, vsphere=vsphere, vddk=vddk)
    started = time.monotonic()
    if args.op == "init":
        Repository.create(open_backend(args.repo), chunk_size=4 * MIB, passphrase=PASSPHRASE).close()
        out = {}
    elif args.op == "backup":
        result = ops_backup.backup_vm(ops_backup.BackupRequest(vm={"name": args.vm}, quiesce=False), endpoints,
                                      RunSettings(workers=args.workers, status_file=args.repo + "-status/backup.json"))
        out = {"bytes_read": result["bytes_read"], "disks": len(result["disks"])}
    elif args.op == "restore":
        target = ops_restore.NewVm(args.name, placement=ops_restore.Placement(resource_pool="DC0_C0"))
        result = ops_restore.restore(ops_restore.RestoreRequest(ops_restore.RestorePointQuery("latest", args.vm), target),
                                     endpoints, RunSettings(workers=args.workers,
                                                            status_file=args.repo + "-status/restore.json"))
        out = {"disks": len(result["disks"])}
    else:
        with VSphereSession(vsphere, vddk_thumbprint=vddk.thumbprint) as session:
            vm_config.destroy_vm(inventory.find_vm(session, name=args.name))
        out = {}
    out["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(out))


def child(op, labdir, env, **kwargs):
    argv = [sys.executable, os.path.abspath(__file__), "op", op, "--labdir", labdir]
    for key, value in kwargs.items():
        argv += ["--" + key.replace("_", "-"), str(value)]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LABVDDK_")}
    environ.update(env)
    done = subprocess.run(argv, env=environ, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise SystemExit("transport bench: %s failed (%d):\n%s" % (op, done.returncode, done.stderr[-4000:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_stats(path):
    with open(path) as handle:
        return {key: int(value) for key, value in (line.split() for line in handle.read().splitlines())}


# -- the benchmark ---------------------------------------------------------------------------------------------

def knobs(mode, args, stats_path):
    env = {"LABVDDK_TRANSPORT_PROFILE": "vmware-default", "LABVDDK_HOTADD_PROXY": "1", "LABVDDK_SAN_ACCESS": "1",
           "LABVDDK_STATS": stats_path}
    if not args.profile_caps:
        for name in ("NBD", "NBDSSL", "HOTADD", "SAN"):
            env["LABVDDK_%s_CONN_MIBPS" % name] = str(args.conn_mibps)
            env["LABVDDK_%s_HOST_MIBPS" % name] = str(args.host_mibps)
    if args.attach_us is not None:
        env["LABVDDK_HOTADD_ATTACH_US"] = str(args.attach_us)
    return env


def figures(stats, disks, args, seconds):
    used = [mode for mode in ("nbd", "nbdssl", "hotadd", "san") if stats.get("opens_" + mode)]
    moved = sum(stats["bytes_" + mode] for mode in used)
    span = max(stats["span_ns_" + mode] for mode in used) / 1e9 if used else 0.0
    conn, host = PROFILE_CAPS[used[0]] if args.profile_caps and used else (args.conn_mibps, args.host_mibps)
    link = min(disks * conn, host)
    mibps = moved / MIB / span if span else 0.0
    return {"modes_opened": {mode: stats["opens_" + mode] for mode in used}, "bytes": moved,
            "span_s": round(span, 3), "op_s": seconds, "mibps": round(mibps, 2), "link_mibps": link,
            "of_link": round(mibps / link, 3) if link else None, "op_mibps": round(moved / MIB / seconds, 2),
            "async_max_in_flight": stats["async_max_in_flight"], "calls": sum(stats["calls_" + m] for m in used),
            "nfc_fragments": stats["nfc_fragments"], "hotadd_attaches": stats["hotadd_attaches"]}


def prepare_lab(args):
    from labkit import Lab  # pylint: disable=import-outside-toplevel
    labdir = os.path.join(WORK, "lab")
    size = args.disk_mib * MIB
    lab = Lab.start(labdir, vm1_disk0=size, vm1_disk1=size, vm2_disk0=size)
    try:
        environ = dict(os.environ, **lab.env())
        for _extra in range(2):
            done = subprocess.run([sys.executable, LABCTL, "add-disk", "--vm", "lab-vm1", "--size", str(size)],
                                  env=environ, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit("transport bench: labctl add-disk failed:\n%s%s" % (done.stdout, done.stderr))
        for vm, count in CASES:
            if len(lab.disks(vm)) != count:
                raise SystemExit("transport bench: %s has %d disks, expected %d" % (vm, len(lab.disks(vm)), count))
            for disk in range(count):
                lab.write(vm, disk, 0, size, seed=100 + disk)
    except BaseException:
        lab.stop()
        raise
    return lab, labdir


def run(args):
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    lab, labdir = prepare_lab(args)
    report = {"disk_mib": args.disk_mib, "conn_mibps": "profile" if args.profile_caps else args.conn_mibps,
              "host_mibps": "profile" if args.profile_caps else args.host_mibps,
              "profile": "vmware-default" + ("" if args.profile_caps else " (bandwidth scaled)"), "async_use": ASYNC_USE,
              "runs": []}
    try:
        for mode in args.modes.split(","):
            for vm, disks in CASES:
                tag = "%s-%s" % (mode, vm)
                repo = os.path.join(WORK, "repo-" + tag)
                child("init", labdir, {}, repo=repo, transports="nbdssl", vm=vm)
                restore_modes = mode if mode == "nbdssl" else mode + ":nbdssl"
                for op, transports in (("backup", mode), ("restore", restore_modes)):
                    stats_path = os.path.join(WORK, "stats-%s-%s" % (tag, op))
                    extra = {"name": "restored-" + tag} if op == "restore" else {}
                    log("%s of %s (%d disk(s) of %d MiB) through %s" % (op, vm, disks, args.disk_mib, transports))
                    out = child(op, labdir, knobs(mode, args, stats_path), repo=repo, transports=transports, vm=vm,
                                workers=args.workers, **extra)
                    row = {"mode": mode, "vm": vm, "disks": disks, "op": op, "transports": transports}
                    row.update(figures(read_stats(stats_path), disks, args, out["seconds"]))
                    log(json.dumps(row))
                    report["runs"].append(row)
                child("destroy", labdir, {}, repo=repo, transports="nbdssl", vm=vm, name="restored-" + tag)
                shutil.rmtree(repo, ignore_errors=True)
    finally:
        lab.stop()
    os.makedirs(RESULTS, exist_ok=True)
    name = "transport-profile" if args.profile_caps else "transport"
    with open(os.path.join(RESULTS, name + ".json"), "w") as handle:
        json.dump(report, handle, indent=2)
    with open(os.path.join(RESULTS, name + ".md"), "w") as handle:
        handle.write(markdown(report))
    print(markdown(report))


def markdown(report):
    lines = ["Disks of %d MiB of incompressible data; link per connection %s MiB/s, per host %s MiB/s; profile %s."
             % (report["disk_mib"], report["conn_mibps"], report["host_mibps"], report["profile"]), "",
             "| operation | mode asked | mode opened | disks | link MiB/s | MiB/s during transfer | of link | "
             "MiB/s whole op | requests | max async in flight |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in report["runs"]:
        opened = ", ".join("%s x%d" % item for item in row["modes_opened"].items())
        lines.append("| %s | %s | %s | %d | %s | %.1f | %.0f%% | %.1f | %d | %d |" % (
            row["op"], row["transports"], opened, row["disks"], row["link_mibps"], row["mibps"],
            100 * (row["of_link"] or 0), row["op_mibps"], row["calls"], row["async_max_in_flight"]))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command")
    op = sub.add_parser("op", help="(internal) one product operation in this process")
    op.add_argument("op", choices=("init", "backup", "restore", "destroy"))
    op.add_argument("--labdir", required=True)
    op.add_argument("--repo", required=True)
    op.add_argument("--transports", required=True)
    op.add_argument("--vm", required=True)
    op.add_argument("--name")
    op.add_argument("--workers", type=int, default=4)
    parser.add_argument("--disk-mib", type=int, default=64)
    parser.add_argument("--conn-mibps", type=float, default=16)
    parser.add_argument("--host-mibps", type=float, default=40)
    parser.add_argument("--attach-us", type=int, help="hotadd attach/detach cost (default: the profile's, 3 s)")
    parser.add_argument("--profile-caps", action="store_true",
                        help="keep the profile's bandwidth caps (then this machine's CPU, not the link, may limit)")
    parser.add_argument("--modes", default="nbdssl,nbd,hotadd,san")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    os.environ.setdefault("XDG_STATE_HOME", os.path.join(WORK, "state"))
    if args.command == "op":
        run_op(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
