# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state file of each export: what a later call needs to find, list, stop or clean it up.

One JSON file per export, ``<XDG_STATE_HOME or ~/.local/state>/blockvault/exports/<name>.json`` (0600 in a 0700
directory), written atomically once every disk serves and removed once every process stopped and the export's
private directory is gone. It holds pids, URIs, the restore point and the scratch directory: no secret.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re

from ..errors import ConfigurationError
from ..fileio import replace_file

__all__ = ["ExportDisk", "ExportState", "exports_dir", "write_state", "read_states", "remove_state", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name):
    """``name`` when it can name an export (letters, digits, ``.``, ``_``, ``-``), else ConfigurationError."""
    if not name or not _NAME.match(str(name)):
        raise ConfigurationError("export name %r: use letters, digits, '.', '_' and '-' (at most 128, not starting "
                                 "with a punctuation mark)." % (name,))
    return str(name)


def exports_dir():
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "blockvault", "exports")


@dataclasses.dataclass(frozen=True)
class ExportDisk:
    """One served disk: its ``key``, ``label``, ``capacity``, the nbdkit ``pid``, the NBD ``uri`` and ``socket``.
    Immutable (thread-safe)."""

    key: str
    label: str
    capacity: int
    pid: int
    uri: str
    socket: str = None


@dataclasses.dataclass(frozen=True)
class ExportState:
    """A running export as its state file records it. Immutable (thread-safe); ``settings`` is what present compares to decide
    that an export runs as asked (restore point, disks, writable, listen)."""

    name: str
    restore_point: str
    vm: str
    created: str
    writable: bool
    listen: dict
    runtime_dir: str
    disks: tuple
    started: str
    owner_pid: int = None

    @property
    def settings(self):
        return {"restore_point": self.restore_point, "disks": sorted(disk.key for disk in self.disks),
                "writable": self.writable, "listen": self.listen}

    def view(self):
        """The export as results show it, with how to stop it."""
        return {"name": self.name, "restore_point": {"id": self.restore_point, "vm": self.vm, "created": self.created},
                "writable": self.writable, "listen": self.listen, "started": self.started,
                "pids": [disk.pid for disk in self.disks], "runtime_dir": self.runtime_dir,
                "uris": {disk.key: disk.uri for disk in self.disks},
                "disks": [dataclasses.asdict(disk) for disk in self.disks],
                "stop": "blockvault.vsphere.backup_export with export_name: %s and state: absent "
                        "(or kill %s)" % (self.name, " ".join(str(disk.pid) for disk in self.disks))}

    def to_json(self):
        return dict(dataclasses.asdict(self), disks=[dataclasses.asdict(disk) for disk in self.disks])

    @classmethod
    def from_json(cls, document):
        fields = dict(document, disks=tuple(ExportDisk(**disk) for disk in document["disks"]))
        return cls(**fields)


def _path(name):
    return os.path.join(exports_dir(), "%s.json" % check_name(name))


def write_state(state):
    directory = exports_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    replace_file(_path(state.name), json.dumps(state.to_json(), indent=1, sort_keys=True).encode("utf-8"), new_mode=0o600)


def read_states():
    """(states, unreadable): every export's ExportState, and the paths of state files that do not parse."""
    states, unreadable = [], []
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.listdir(exports_dir())):
            if not entry.endswith(".json"):
                continue
            path = os.path.join(exports_dir(), entry)
            try:
                with open(path, encoding="utf-8") as handle:
                    states.append(ExportState.from_json(json.load(handle)))
            except FileNotFoundError:
                continue        # stopped meanwhile
            except (OSError, ValueError, TypeError, KeyError):
                unreadable.append(path)
    return states, unreadable


def remove_state(name):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_path(name))
