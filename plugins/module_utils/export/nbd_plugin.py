# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The script nbdkit's Python plugin runs (``nbdkit python <this file> spec_fd=N``): one disk of one restore point.

nbdkit loads this file by path into Debian's /usr/bin/python3, not the project's venv: the imports below are
absolute because the file is not imported as part of its package, and they resolve through the PYTHONPATH the
launcher (export.server) sets to a private copy of the collection and the venv's site-packages.

What it does, in nbdkit's order (``-f``: no fork, so the lock's heartbeat thread lives in the serving process):

- ``config``: ``spec_fd`` is an inherited pipe holding the export's spec as JSON, repository secrets included (never
  on a command line); ``error_file`` where a start failure is written for the launcher (class and message).
- ``config_complete``: reads and closes the pipe, opens the repository, takes a shared lock (a GC waits while the
  export runs; a prune may remove the restore point, whose manifest and index are already in memory here), loads
  the disk's index, and opens a DiskReader (each chunk verified against its digest).
- ``pread``: through the DiskReader; ``extents``: zero chunks are holes (base:allocation), so nbdinfo --map,
  nbdcopy and qemu-img skip them. No write callback: a writable export is nbdkit's cow filter in front of this.
- ``cleanup`` (nbdkit ≥ 1.28: the Python plugin has no unload): releases the lock (a kill -9 leaves it to go stale: its pid is dead on this machine).

Thread-safety: nbdkit calls ``pread``/``extents`` from several threads at once (thread model parallel); the
DiskReader is thread-safe and the index is read-only after ``config_complete``.
"""

from __future__ import annotations

import json
import os

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BlockvaultError, ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.export.serving import DiskService

API_VERSION = 2

_config = {}
_service = []       # the one DiskService, once config_complete made it


def thread_model():
    import nbdkit  # pylint: disable=import-outside-toplevel,import-error  # exists only inside nbdkit
    return nbdkit.THREAD_MODEL_PARALLEL


def config(key, value):
    if key not in ("spec_fd", "error_file", "export_id"):
        raise ConfigurationError("unknown parameter %s of the blockvault nbdkit plugin" % key)
    _config[key] = value


def _report(exc):
    """Tell the launcher why the start failed (its class and message: the spec's secrets are never in them)."""
    path = _config.get("error_file")
    if not path:
        return
    document = {"error_class": type(exc).__name__ if isinstance(exc, BlockvaultError) else "ExportError",
                "message": exc.message if isinstance(exc, BlockvaultError) else "%s: %s" % (type(exc).__name__, exc)}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)


def config_complete():
    try:
        if "spec_fd" not in _config:
            raise ConfigurationError("the blockvault nbdkit plugin needs spec_fd")
        fd = int(_config["spec_fd"])
        with os.fdopen(fd, "rb") as pipe:        # closes the inherited pipe: nothing else may read the secrets
            spec = json.loads(pipe.read().decode("utf-8"))
        _service.append(DiskService.start(spec))
    except BaseException as exc:
        _report(exc)
        raise


def cleanup():
    while _service:
        _service.pop().close()


def open(readonly):  # pylint: disable=redefined-builtin,unused-argument  # nbdkit's callback name
    return _service[0]


def get_size(service):
    return service.size


def can_multi_conn(service):  # pylint: disable=unused-argument
    return True             # read-only data: every connection sees the same bytes


def can_extents(service):  # pylint: disable=unused-argument
    return True


def can_write(service):  # pylint: disable=unused-argument
    return False


def can_cache(service):  # pylint: disable=unused-argument
    import nbdkit  # pylint: disable=import-outside-toplevel,import-error
    return nbdkit.CACHE_EMULATE


def pread(service, buf, offset, flags):  # pylint: disable=unused-argument
    service.readinto(offset, buf)


def extents(service, count, offset, flags):  # pylint: disable=unused-argument
    import nbdkit  # pylint: disable=import-outside-toplevel,import-error
    hole = nbdkit.EXTENT_HOLE | nbdkit.EXTENT_ZERO
    return [(start, length, hole if zero else 0) for start, length, zero in service.extents(offset, count)]
