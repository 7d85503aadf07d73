# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TransferOptions: how a backup or a restore runs, as opposed to what it moves."""

from __future__ import annotations

import dataclasses

from .buffers import DEFAULT_MEMORY_BUDGET
from .progress import NULL_PROGRESS

__all__ = ["TransferOptions"]


@dataclasses.dataclass(frozen=True)
class TransferOptions:
    """The run settings shared by ``pipeline.backup_disks`` and ``restore.restore_disk``. Immutable.

    ``workers``: threads hashing and storing (backup) or fetching and writing (restore); ``memory_budget``: bytes
    of chunk data in flight; ``progress``: a RunProgress (None means NULL_PROGRESS, which counts nothing);
    ``cancel``: a threading.Event that stops the run with CancelledError; ``vm``, ``run_id``: context put into
    every error raised.
    """

    workers: int = 4
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    progress: object = NULL_PROGRESS
    cancel: object = None
    vm: object = None
    run_id: object = None

    def __post_init__(self):
        if self.progress is None:      # callers that keep an optional progress need not translate it
            object.__setattr__(self, "progress", NULL_PROGRESS)
