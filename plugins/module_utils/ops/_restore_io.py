# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a restore point's disks: what every restore target shares.

``restore_one_disk`` moves one disk from the repository to a DiskTarget (a raw file, a VDDK handle) through the
transfer layer and checks the blocksum of what was written against the manifest's; ``write_vm_disks`` does it for
disks of a VM, each through its own read-write VDDK connection behind a RetryingDisk (a transient failure reconnects
and repeats the write instead of failing a restore that may have run for hours).
"""

from __future__ import annotations

import contextlib
import dataclasses

from ..errors import BlockvaultError
from ..transfer import trace
from ..transfer.restore import DiskRestore, restore_disk
from ._vddk_io import VddkTarget

__all__ = ["DiskWrite", "restore_one_disk", "write_vm_disks"]


@dataclasses.dataclass(frozen=True)
class DiskWrite:
    """One disk to write into a VM: the restore point's DiskEntry, the target disk (a DiskInfo: ``file_name``,
    ``label``, ``key``), and for an in-place rollback the chunks to rewrite or ``compare``."""

    entry: object
    disk: object
    changed_chunks: frozenset = None
    compare: bool = False


def restore_one_disk(context, manifest, write, target):
    """Restore ``write.entry`` of ``manifest`` onto ``target``; the disk's result dict. Raises when the blocksum of
    what was written differs from the recorded one."""
    entry = write.entry
    recorder = trace.current()
    with recorder.span("load-index"):
        index = context.repository.load_disk_index(manifest.id, entry.key)
    context.set_phase("transfer")
    repository = context.repository
    fetch = _traced_fetch(repository, recorder) if recorder.enabled else repository.fetch_chunk
    job = DiskRestore(key=entry.key.value, index=index, fetch_chunk=fetch, target=target,
                      changed_chunks=write.changed_chunks, compare=write.compare)
    result = restore_disk(job, context.transfer_options())
    if result.blocksum != entry.sha256:
        raise BlockvaultError("Disk %s restored to data whose SHA-256 %s differs from the recorded %s." % (
            entry.key, result.blocksum, entry.sha256), phase="restore", disk=entry.key.value)
    return {"key": entry.key.value, "label": entry.label, "sha256": result.blocksum, "bytes_written": result.bytes_written,
            "chunks_written": result.chunks_written, "chunks_zeroed": result.chunks_zeroed, "bytes_zeroed": result.bytes_zeroed,
            "chunks_unchanged": result.chunks_unchanged}


def _traced_fetch(repository, recorder):
    """``repository.fetch_chunk`` in two spans, the object's read and its decoding (decryption, decompression),
    for a timeline; the same calls as ``Repository.read_chunk``."""
    codec, backend, span = repository.codec, repository.backend, recorder.span

    def fetch(digest):
        storage_id = codec.storage_id(digest)
        name = repository.chunk_object_name(storage_id)
        with span("read"):
            blob = backend.get(name)
        with span("decode", nbytes=len(blob)):
            return codec.decode(storage_id, blob, name)
    return fetch


def write_vm_disks(context, manifest, vm, writes, known_zeroed, before_write=None):
    """Write each DiskWrite into VM ``vm`` (a VmHandle), one disk after the other; their result dicts.

    ``known_zeroed``: the target disks are new and sparse (zero chunks are skipped); ``before_write``: called once
    before the first write (an in-place rollback switches CBT off there).
    """
    results = []
    context.keepalive()
    for write in writes:
        handle = context.open_disk(vm.moref, write.disk, read_only=False)
        with contextlib.closing(VddkTarget(handle, known_zeroed, before_write=before_write)) as target:
            results.append(restore_one_disk(context, manifest, write, target))
    return results
