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
objects satisfying small protocols, wired by ``ops``. The wiring, in short::

    plan = pipeline.plan_backup(handle, repo.chunk_size, changed=areas_or_None, previous=previous_index_or_None)
    # check mode stops here and reports plan.summary()
    disks = [pipeline.BackupDisk(key, handle, plan, DiskIndex(handle.capacity, repo.chunk_size), previous_index)]
    with progress.StatusFile(path, run_progress), repo.begin_backup(vm_key=..., run_id=...) as session:
        results = pipeline.backup_disks(session, disks, workers, memory_budget, cancel, run_progress, vm, run_id)
        for key, result in results.items():        # result.blocksum is the manifest's sha256
            session.add_disk_index(key, result.index)
        session.commit(manifest)

    index = repo.load_disk_index(rp_id, key)
    target = endpoints.RawFileTarget(path, index.capacity)      # or HandleTarget(vddk_handle, known_zeroed, opener)
    fetch = lambda digest: repo.read_chunk(repo.codec.storage_id(digest))   # the repository reads by storage id
    result = restore.restore_disk(index, fetch, target, workers, memory_budget, disk_key=key)
    # in-place rollback: changed_chunks=plan.chunk_indexes(cbt_areas, capacity, chunk_size), or compare=True
"""
