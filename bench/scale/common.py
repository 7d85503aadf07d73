# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the scale benchmark's scripts share: paths, the collection import, the backends of a work directory."""

from __future__ import annotations

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(ROOT, "bench", "work", "scale")
RESULTS = os.path.join(ROOT, "bench", "results")
PASSPHRASE = "scale benchmark passphrase"
GIB = 1 << 30
MIB = 1 << 20


def _import_paths():
    """The scale scripts import each other (this folder) and, through bench/benchpath.py, the collection."""
    for path in (os.path.dirname(HERE), HERE):
        if path not in sys.path:
            sys.path.insert(0, path)


_import_paths()
import benchpath  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import  # links the collection


def make_backend(workdir, mode, model="s3", fsync=True):
    """(backend as the repository sees it, the S3RequestCounter inside it) of work directory ``workdir``.

    ``mode``: "standin" (chunk objects are names in ``workdir/names``, the rest files in ``workdir/repo``) or "real"
    (every object a file in ``workdir/repo``). ``model``: "s3" (the code takes its S3 paths: parallel listings of
    ``chunks/xx/``, 8 delete workers) or "local" (a local directory's). Wrapped in the retry and concurrency-limit
    wrappers as repo.factory.open_backend wraps a real backend.
    """
    from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import ConcurrencyLimitedBackend, LocalBackend
    from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import RetryingBackend
    from standin import NameStore, S3RequestCounter, StandInBackend

    local = LocalBackend(os.path.join(workdir, "repo"), fsync=fsync)
    inner = StandInBackend(local, NameStore(os.path.join(workdir, "names"))) if mode == "standin" else local
    counter = S3RequestCounter(inner, parallel_listing=(model == "s3"))
    return RetryingBackend(ConcurrencyLimitedBackend(counter, max_concurrency=8)), counter


class KeyAgent:
    """A key agent (repo.keyagent's get/put) holding the master key in this process: a measuring child opens the
    repository without scrypt's 128 MiB and 0.3 s, which would otherwise dominate its peak memory. The open itself is
    measured with the passphrase."""

    def __init__(self, master_hex=None):
        self.master = bytes.fromhex(master_hex) if master_hex else None

    def get(self, _repository_id):
        return self.master

    def put(self, _repository_id, key):
        self.master = key


def rss_mib(field="VmRSS"):
    """This process's resident set now (MiB), or with ``field="VmHWM"`` its peak, from /proc/self/status.

    The peak is VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over an exec, so a child started by a
    parent holding 200 MiB reports at least 200 MiB; VmHWM belongs to the child's own memory map."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def load():
    return [round(value, 2) for value in os.getloadavg()]


def stamp():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def directory_bytes(path):
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total
