# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GC's mark: the set of chunk storage ids that restore points reference (format section 9.1).

``ReferencedChunks`` is what GC asks of the mark: membership of a storage id, a count, and additions (checkpoints,
orphan indexes kept). ``mark_restore_points`` reads each restore point's manifest and verified disk indexes into it.
"""

from __future__ import annotations

from ..errors import BlockvaultError, CorruptionError


class ReferencedChunks:
    """A set of chunk storage ids (32-byte values): ``add``, ``update``, ``in``, ``len``.
    Not thread-safe: one marking thread adds; lookups follow."""

    def __init__(self):
        self._ids = set()

    def add(self, storage_id):
        self._ids.add(bytes(storage_id))

    def update(self, storage_ids):
        self._ids.update(bytes(storage_id) for storage_id in storage_ids)

    def __contains__(self, storage_id):
        return bytes(storage_id) in self._ids

    def __len__(self):
        return len(self._ids)


def mark_restore_points(repository, rp_ids, on_error, into=None):
    """Add to ``into`` (a new ReferencedChunks when None) the storage id of every chunk the restore points ``rp_ids``
    reference, from their verified manifests and indexes; returns it. A restore point or disk that cannot be read is
    reported to ``on_error(rp_id, disk key or None, BlockvaultError)`` and skipped."""
    referenced = ReferencedChunks() if into is None else into
    codec = repository.codec
    for rp_id in rp_ids:
        try:
            manifest = repository.load_manifest(rp_id)
        except BlockvaultError as exc:
            on_error(rp_id, None, exc)
            continue
        for disk in manifest.disks:
            try:
                index = repository.load_disk_index(rp_id, disk.key)
                if index.blocksum() != disk.sha256:
                    raise CorruptionError("The checksum of disk %s of %s computed from its index differs from the manifest's." % (
                        disk.key, rp_id), object_name=disk.index)
            except BlockvaultError as exc:
                on_error(rp_id, disk.key.value, exc)
                continue
            referenced.update(codec.storage_id(digest) for digest in index.referenced())
    return referenced
