# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Measuring one process from outside, file helpers and the paths of a run (bench/e2e_bench.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
PY = os.path.join(ROOT, ".venv", "bin", "python")
DRIVER = os.path.join(BENCH, "bv_driver.py")
MIB = 1 << 20
PASSWORD = "bench passphrase, not a secret"
TOOL_ENV = {"RESTIC_PASSWORD": PASSWORD, "BORG_PASSPHRASE": PASSWORD, "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes", "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "YES", "GOGC": "100"}


@dataclasses.dataclass(frozen=True)
class Paths:
    """Where a run works: its directory (removed at the end), the benchmark disk image in it, the lab's directory."""

    work: str

    @property
    def image(self):
        return os.path.join(self.work, "disk.img")

    @property
    def labdir(self):
        return os.path.join(self.work, "lab")


def log(message):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


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


def measure(paths, argv, env=None, cwd=None, repo=None, label=None):
    """Run argv; return wall, cpu, peak RSS, rchar, repository size and stdout (raises on a non-zero exit)."""
    environ = dict(os.environ, **TOOL_ENV)
    environ.update(env or {})
    out_path = os.path.join(paths.work, ".stdout")
    err_path = os.path.join(paths.work, ".stderr")
    report_path = os.path.join(paths.work, ".rusage")
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


def conditions():
    """The machine's load now: load averages and the CPU and I/O pressure (PSI 'some', 10 s average, percent), so
    that a repetition run beside other work can be told from a quiet one."""
    out = {"loadavg": [round(x, 2) for x in os.getloadavg()]}
    for name in ("cpu", "io"):
        try:
            with open("/proc/pressure/%s" % name) as handle:
                some = handle.readline().split()
            out["%s_pressure_pct" % name] = float(some[1].split("=")[1])
        except (OSError, IndexError, ValueError):
            out["%s_pressure_pct" % name] = None
    return out


def brief(m):
    extra = " transfer %.2fs" % m["transfer_s"] if m.get("transfer_s") is not None else ""
    return "wall %6.2fs cpu %6.2fs rss %6.1fMiB read %7.1fMiB repo %s%s" % (
        m["wall_s"], m["cpu_s"], m["peak_rss_mib"], m["read_mib"], m.get("repo_mib"), extra)
