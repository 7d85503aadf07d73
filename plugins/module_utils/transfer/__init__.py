# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transfer layer: moving disk data between sources, the repository and targets.

- ``endpoints``: the DiskSource / DiskTarget protocols, raw-file and in-memory implementations;
- ``file_extents``: where a raw file holds data (SEEK_DATA/SEEK_HOLE) and its blocksum from that data only;
- ``plan``: the per-chunk read plan of a backup (READ / ZERO / CARRY) and its read requests;
- ``buffers``: the bounded buffer pool that bounds memory;
- ``executor``: the one worker pool of both pipelines (bounded closable queue, a handler per worker built in its
  thread, producer threads, first error wins, cancel Event);
- ``pipeline``: the backup (a reader per disk feeding ChunkTasks to the executor's workers);
- ``restore``: the restore of one disk (typed work items DataChunk / ZeroRun / CheckZero: parallel fetch +
  verify + write, in-place rollback modes);
- ``options``: ``TransferOptions``, the run settings both take (workers, memory budget, progress, cancel, vm,
  run id);
- ``progress``: progress counters (``NULL_PROGRESS`` when nobody watches), the JSON status file and the run log.

This layer imports only ``errors`` and ``blockhash``: VDDK handles, raw files and repository sessions reach it as
objects satisfying small protocols, wired by ``ops``. The wiring, in short::

    options = TransferOptions(workers=4, memory_budget=budget, progress=run_progress, cancel=event, vm=vm,
                              run_id=run_id)
    plan = pipeline.plan_backup(handle, repo.chunk_size, changed=areas_or_None, previous=previous_index_or_None)
    # check mode stops here and reports plan.summary()
    disks = [pipeline.BackupDisk(key, handle, plan, DiskIndex(handle.capacity, repo.chunk_size), previous_index)]
    with progress.StatusFile(path, run_progress), repo.begin_backup(vm_key=..., run_id=...) as session:
        results = pipeline.backup_disks(session, disks, options)
        for key, result in results.items():        # result.blocksum is the manifest's sha256
            session.add_disk_index(key, result.index)
        session.commit(manifest)

    index = repo.load_disk_index(rp_id, key)
    target = endpoints.RawFileTarget(path, index.capacity)      # or HandleTarget(vddk_handle, known_zeroed, opener)
    fetch = lambda digest: repo.read_chunk(repo.codec.storage_id(digest))   # the repository reads by storage id
    result = restore.restore_disk(restore.DiskRestore(key, index, fetch, target), options)
    # in-place rollback: DiskRestore(..., changed_chunks=plan.chunk_indexes(cbt_areas, capacity, chunk_size)),
    # or DiskRestore(..., compare=True)
"""

from .options import TransferOptions
from .progress import NULL_PROGRESS, NullProgress

__all__ = ["NULL_PROGRESS", "NullProgress", "TransferOptions"]
