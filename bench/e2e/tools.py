# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tools the end-to-end benchmark puts on the same disk: blockvault (lab and file), restic, borg, qemu-img.

Each has ``init`` (a fresh repository), ``backup(image, changed=None, base=False)``, ``restore(out)`` and
``cleanup``; every measured operation runs in its own process (common.measure)."""

from __future__ import annotations

import json
import os
import subprocess
import time

from .common import DRIVER, MIB, PY, TOOL_ENV, disk_usage, fsync_seconds, last_json, measure, rmtree, same_content

BORG_CONFIGS = {
    "borg-lz4": {"init": ["-e", "none"], "create": ["--compression", "lz4"]},
    "borg-zstd3-fixed4M": {"init": ["-e", "repokey"],
                           "create": ["--compression", "zstd,3", "--chunker-params", "fixed,4194304", "--sparse"]},
}


def _transfer_s(info):
    # bv_driver.py times the transfer (transfer.pipeline.backup_disks) inside the process: the wall time minus it
    # is the run's fixed cost (start, imports, key derivation, vCenter and VDDK round trips, commit, exit)
    value = info.get("transfer_s")
    return round(value, 3) if isinstance(value, (int, float)) else None


class Blockvault:
    """The product through bench/bv_driver.py: ``file`` (engine from a raw image) or ``lab`` (ops through the lab)."""

    def __init__(self, name, kind, paths, lab=None, level=None, full_only=False):
        self.name = name
        self.kind = kind
        self.paths = paths
        self.lab = lab
        self.level = level
        self.full_only = full_only
        self.repo = os.path.join(paths.work, "repo-" + name)

    def init(self):
        rmtree(self.repo)
        rmtree(self.repo + "-status")
        level = [] if self.level is None else ["--level", str(self.level)]
        subprocess.run([PY, DRIVER, "init", self.repo] + level, check=True, stdout=subprocess.DEVNULL)

    def backup(self, image, changed=None, base=False):
        if self.kind == "lab":
            m = measure(self.paths, [PY, DRIVER, "backup-lab", self.repo, self.paths.labdir], repo=self.repo, label=self.name)
            info = last_json(m["stdout"])
            m["bytes_read_by_tool_mib"] = round(info.get("bytes_read", 0) / MIB, 1)
            m["modes"] = [d.get("mode") for d in info.get("disks", [])]
        else:
            argv = [PY, DRIVER, "backup-file", self.repo, image]
            if changed is not None:
                path = os.path.join(self.paths.work, "changed.json")
                with open(path, "w") as handle:
                    json.dump(changed, handle)
                argv += ["--changed", path]
                if base:
                    argv += ["--base", "first"]
            m = measure(self.paths, argv, repo=self.repo, label=self.name)
            info = last_json(m["stdout"])
            m["bytes_read_by_tool_mib"] = round(info.get("result", {}).get("bytes_read", 0) / MIB, 1)
            m["modes"] = [info.get("mode")]
        m["transfer_s"] = _transfer_s(info)
        m.pop("stdout")
        return m

    def restore(self, out):
        image = self.paths.image
        if self.kind == "lab":
            name = "bench-restored-%d" % time.time_ns()
            m = measure(self.paths, [PY, DRIVER, "restore-lab", self.repo, self.paths.labdir, name], label=self.name)
            info = last_json(m["stdout"])
            m["restored_sha256"] = [d.get("sha256") for d in info.get("disks", [])]
            flat = self.lab.disks(name)[0]["flat"]       # the new VM's first disk, as the datastore holds it
            m["fsync_s"] = fsync_seconds(flat)
            m["output_mib"] = round(disk_usage(flat) / MIB, 1)
            m["output_ok"] = same_content(flat, image)
            subprocess.run([PY, DRIVER, "destroy-vm", self.paths.labdir, name], check=True, stdout=subprocess.DEVNULL)
        else:
            m = measure(self.paths, [PY, DRIVER, "restore-file", self.repo, out], label=self.name)
            m["fsync_s"] = fsync_seconds(out)
            m["output_mib"] = round(disk_usage(out) / MIB, 1)
            m["output_ok"] = same_content(out, image)
            rmtree(out)
        m.pop("stdout")
        return m

    def cleanup(self):
        rmtree(self.repo)
        rmtree(self.repo + "-status")


class Restic:
    name = "restic"
    full_only = False

    def __init__(self, paths):
        self.paths = paths
        self.repo = os.path.join(paths.work, "repo-restic")
        self.cache = os.path.join(paths.work, "cache-restic")

    def _argv(self, *args):
        return ["restic", "-r", self.repo, "--cache-dir", self.cache, "-q"] + list(args)

    def init(self):
        rmtree(self.repo)
        rmtree(self.cache)
        subprocess.run(self._argv("init", "--repository-version", "2"), check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, **TOOL_ENV))

    def backup(self, image, changed=None, base=False):
        m = measure(self.paths, self._argv("backup", "--host", "bench", image), cwd=os.path.dirname(image), repo=self.repo,
                    label="restic backup")
        m.pop("stdout")
        return m

    def restore(self, out):
        target = out + ".d"
        m = measure(self.paths, self._argv("restore", "latest", "--target", target), repo=None, label="restic restore")
        return _restored(m, os.path.join(target, self.paths.image.lstrip("/")), target, self.paths)

    def cleanup(self):
        rmtree(self.repo)
        rmtree(self.cache)


class Borg:
    full_only = False

    def __init__(self, name, paths):
        self.name = name
        self.paths = paths
        self.config = BORG_CONFIGS[name]
        self.repo = os.path.join(paths.work, "repo-" + name)
        self.env = {"BORG_BASE_DIR": os.path.join(paths.work, "borg-base-" + name)}
        self.archives = 0

    def init(self):
        rmtree(self.repo)
        rmtree(self.env["BORG_BASE_DIR"])
        self.archives = 0
        subprocess.run(["borg", "init"] + self.config["init"] + [self.repo], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=dict(os.environ, **TOOL_ENV, **self.env))

    def backup(self, image, changed=None, base=False):
        self.archives += 1
        m = measure(self.paths, ["borg", "create"] + self.config["create"] + ["%s::a%d" % (self.repo, self.archives),
                                                                              os.path.basename(image)],
                    env=self.env, cwd=os.path.dirname(image), repo=self.repo, label=self.name + " create")
        m.pop("stdout")
        return m

    def restore(self, out):
        target = out + ".d"
        os.makedirs(target, exist_ok=True)
        m = measure(self.paths, ["borg", "extract", "--sparse", "%s::a%d" % (self.repo, self.archives)], env=self.env,
                    cwd=target, label=self.name + " extract")
        return _restored(m, os.path.join(target, os.path.basename(self.paths.image)), target, self.paths)

    def cleanup(self):
        rmtree(self.repo)
        rmtree(self.env["BORG_BASE_DIR"])


def qemu_copy(paths):
    """qemu-img convert of the image to qcow2: the plain-copy baseline (full backup only)."""
    out = os.path.join(paths.work, "copy.qcow2")
    m = measure(paths, ["qemu-img", "convert", "-O", "qcow2", paths.image, out], repo=out, label="qemu-img")
    m.pop("stdout")
    rmtree(out)
    return m


def _restored(m, restored, target, paths):
    """``m`` (a restore's measurement) with what its output cost and whether it is the image; ``target`` removed."""
    m["fsync_s"] = fsync_seconds(restored)
    m["output_mib"] = round(disk_usage(restored) / MIB, 1)
    m["output_ok"] = same_content(restored, paths.image)
    rmtree(target)
    m.pop("stdout")
    return m
