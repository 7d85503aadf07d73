# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Serving a selected restore point: what ops.export (instant access) and the File target's image formats share.

``launch`` starts one nbdkit per disk (export.server) and writes the export's state file, or leaves nothing behind;
``teardown`` stops and removes an export; ``cleanup_dead`` does that for every export whose nbdkit or owner died;
``held`` serves for a ``with`` block only (nbdkit ends with the thread that entered it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import shutil
import tempfile

from ..export.listen import Listen
from ..export.server import ServerLaunch, prepare_runtime, server_alive, start_server, stop_server
from ..export.state import ExportDisk, ExportState, read_states, remove_state, write_state
from ..lease import pid_alive

__all__ = ["Serving", "launch", "teardown", "cleanup_dead", "held"]


@dataclasses.dataclass(frozen=True)
class Serving:
    """What to serve: the DiskEntries ``entries`` of restore point ``manifest`` as export ``name``, listening as
    ``listen`` says, through a cow overlay when ``writable``; ``owner_pid``: the process whose end ends the export
    (None: it runs until stopped). Immutable."""

    name: str
    manifest: object
    entries: tuple
    listen: Listen = Listen()
    writable: bool = False
    owner_pid: int = None


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def alive(state):
    """True when every nbdkit of ``state`` runs and its owner (if any) too."""
    if state.owner_pid and not pid_alive(state.owner_pid):
        return False
    return all(server_alive(disk.pid, state.runtime_dir) for disk in state.disks)


def teardown(state):
    """Stop every nbdkit of ``state`` still running, remove its private directory and its state file."""
    for disk in state.disks:
        stop_server(disk.pid, state.runtime_dir)
    shutil.rmtree(state.runtime_dir, ignore_errors=True)
    remove_state(state.name)


def cleanup_dead():
    """Stop and remove what is left of every export whose nbdkit (one of its disks') or owner died; their names."""
    states, _unreadable = read_states()
    cleaned = []
    for state in states:
        if not alive(state):
            teardown(state)
            cleaned.append(state.name)
    return cleaned


def launch(serving, repo):
    """Start one nbdkit per disk of ``serving`` reading the repository of RepositorySettings ``repo``; the written
    ExportState, or the start failure with nothing left behind."""
    manifest = serving.manifest
    with contextlib.ExitStack() as stack:
        # short, private (0700): a Unix socket path must stay under 108 bytes and only its owner may connect
        runtime_dir = tempfile.mkdtemp(prefix="blockvault-export-")
        stack.callback(shutil.rmtree, runtime_dir, True)
        pythonpath = prepare_runtime(runtime_dir)
        disks = []
        for position, entry in enumerate(serving.entries):
            server = ServerLaunch(name=serving.name, restore_point=manifest.id, disk=entry.key.value, position=position,
                                  listen=serving.listen, writable=serving.writable, runtime_dir=runtime_dir,
                                  repository=repo, exit_with_parent=serving.owner_pid is not None)
            running = start_server(server, pythonpath)
            stack.callback(stop_server, running.pid, runtime_dir)
            disks.append(ExportDisk(key=entry.key.value, label=entry.label, capacity=entry.capacity, pid=running.pid,
                                    uri=running.uri, socket=running.socket))
        state = ExportState(name=serving.name, restore_point=manifest.id, vm=manifest.vm.name, created=manifest.created,
                            writable=serving.writable, listen=serving.listen.describe(), runtime_dir=runtime_dir,
                            disks=tuple(disks), started=_now(), owner_pid=serving.owner_pid)
        write_state(state)
        stack.pop_all()
    return state


@contextlib.contextmanager
def held(name, manifest, entries, repo):
    """Serve ``entries`` of ``manifest`` read-only on private Unix sockets for a ``with`` block; yields the
    ExportState. Stopped and removed on exit; nbdkit ends with the thread that entered if this process dies."""
    state = launch(Serving(name=name, manifest=manifest, entries=tuple(entries), owner_pid=os.getpid()), repo)
    try:
        yield state
    finally:
        teardown(state)
