# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transfer layer: moving disk data between sources, the repository and targets.

- ``endpoints``: the DiskSource / DiskTarget protocols, raw-file and in-memory implementations;
- ``plan``: the per-chunk read plan of a backup (READ / ZERO / CARRY) and its read requests;
- ``buffers``: the bounded buffer pool that bounds memory;
- ``pipeline``: the backup pipeline (a reader per disk, one shared worker pool);
- ``restore``: the restore pipeline (parallel fetch + verify + write, in-place rollback modes);
- ``progress``: progress counters, the JSON status file and the run log.

This layer imports only ``errors`` and ``blockhash``: VDDK handles, raw files and repository sessions reach it as
objects satisfying small protocols, wired by ``ops``.
"""
