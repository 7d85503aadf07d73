# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a caller asks of an operation, as immutable values checked once when built.

``Endpoints`` says where things are (repository, vCenter, VDDK), ``RunSettings`` how a run runs (workers, memory,
status file, check mode); each operation takes its own request (``BackupRequest``, ``RestoreRequest`` in
ops.targets, ...) beside them. The modules translate their option names into these; nothing here knows Ansible.
"""

from __future__ import annotations

import dataclasses

from ..errors import ConfigurationError
from ..vsphere.vm import VmSelector
from .settings import RepositorySettings

__all__ = ["MIB", "Endpoints", "RunSettings", "BackupRequest", "RestorePointQuery", "BACKUP_MODES"]

MIB = 1024 * 1024
BACKUP_MODES = ("auto", "full", "incremental")


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Where the data is: the repository, and vCenter and VDDK for the operations that reach a VM."""

    repo: RepositorySettings
    vsphere: object = None      # VSphereSettings
    vddk: object = None         # VddkSettings

    def require_vsphere(self, what):
        if self.vsphere is None or self.vddk is None:
            raise ConfigurationError("%s needs vCenter and VDDK settings (hostname, username, password, vddk_libdir)." % what)
        return self


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How a run runs: ``workers`` threads, ``memory_budget`` bytes of chunk data in flight, the status file
    (default under ~/.local/state/blockvault/runs), ``check`` (plan only, change nothing), and ``cancellation``
    (an ops.cancel.Cancellation the caller requests to stop the run; None: the run makes its own)."""

    workers: int = 4
    memory_budget: int = 256 * MIB
    status_file: str = None
    check: bool = False
    cancellation: object = dataclasses.field(default=None, compare=False)

    def __post_init__(self):
        if int(self.workers) < 1:
            raise ConfigurationError("workers is %s: give 1 or more." % self.workers)
        if int(self.memory_budget) < 1:
            raise ConfigurationError("memory_budget is %s bytes: give 1 or more." % self.memory_budget)


@dataclasses.dataclass(frozen=True)
class BackupRequest:
    """Back up the VM ``vm`` (a VmSelector): ``mode`` auto | full | incremental; disks selected by key or label.

    ``resume_max_age``: seconds an interrupted run's snapshot may be adopted to resume from its checkpoint (0:
    never resume, write no checkpoint); ``checkpoint_interval``: seconds between checkpoint writes."""

    vm: VmSelector
    mode: str = "auto"
    quiesce: bool = True
    allow_crash_consistent: bool = False
    include_disks: tuple = ()
    exclude_disks: tuple = ()
    run_id: str = None
    resume_max_age: float = 4 * 3600
    checkpoint_interval: float = 30.0

    def __post_init__(self):
        object.__setattr__(self, "vm", VmSelector.of(self.vm))
        if self.resume_max_age is None or float(self.resume_max_age) < 0:
            raise ConfigurationError("resume_max_age is %s: give 0 (never resume) or more seconds." % self.resume_max_age)
        if self.checkpoint_interval is None or float(self.checkpoint_interval) <= 0:
            raise ConfigurationError("checkpoint_interval is %s: give more than 0 seconds." % self.checkpoint_interval)
        object.__setattr__(self, "include_disks", tuple(str(disk) for disk in self.include_disks or ()))
        object.__setattr__(self, "exclude_disks", tuple(str(disk) for disk in self.exclude_disks or ()))
        if self.mode not in BACKUP_MODES:
            raise ConfigurationError("mode %r: use one of %s." % (self.mode, ", ".join(BACKUP_MODES)))
        if self.vm is None:
            raise ConfigurationError("Which VM? Give its name, uuid or moid.")


@dataclasses.dataclass(frozen=True)
class RestorePointQuery:
    """Which restore point: an id, or ``latest`` of the VM named ``vm_name`` (created before ``before``)."""

    restore_point: str = "latest"
    vm_name: str = None
    before: str = None

    def __post_init__(self):
        if self.before and self.restore_point not in (None, "latest"):
            raise ConfigurationError("before applies to restore_point=latest only, not to restore point %s." % self.restore_point)

    def describe(self):
        return self.vm_name if self.restore_point in (None, "latest") else self.restore_point
