# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Operations: what the Ansible modules (and scripts, and tests) call.

Each operation takes a request (what to do), ``Endpoints`` (where the repository, vCenter and VDDK are) and
``RunSettings`` (workers, memory budget, status file, check mode), all immutable values checked when built
(ops.requests); it returns a plain, JSON-able dict (``changed``, the operation's figures), raises
``errors.BlockvaultError`` subclasses carrying phase, VM, disk and run id, and returns its plan without acting in
check mode. A run's shared state (session, repository, progress, ExitStack) travels as one ``RunContext``
(ops.context). Nothing here imports Ansible; the modules translate their option names into these values.

- ``backup.backup_vm(BackupRequest(vm, mode, quiesce, allow_crash_consistent, include_disks, exclude_disks, run_id),
  endpoints, settings) -> {changed, run_id, restore_point: {id, vm, created}, disks: [{key, label, mode, reason,
  transport, bytes_read, bytes_new, bytes_stored, sha256}], bytes_read, bytes_written, duration, throughput_mbps,
  quiesced, skipped_disks, transports_requested, warnings, diff}`` or, in check mode, ``{changed, run_id, vm, plan,
  diff}``; ``vm`` is a VmSelector (name | path | uuid | instance_uuid | moid). ``warnings`` names each disk VDDK
  read with a slower transport than one asked for first.
- ``restore.restore(RestoreRequest(RestorePointQuery(restore_point, vm_name, before), target), endpoints, settings)
  -> {changed, restore_point, vm or path, disks: [{key, sha256, bytes_written, ...}], diff}``; ``target`` is one of
  ``NewVm(name, placement, network_mapping, disk_format, power_on, force)``, ``InPlace(vm, force)``,
  ``DiskToVm(vm, disk, disk_format)``, ``File(path, disk, force, image_format)`` (ops.targets; ``ImageFormat(name,
  vmdk_subformat)``: raw, qcow2 or vmdk), each with its own ``run``.
- ``export.start_export(ExportRequest(source, disks, writable, listen, name), endpoints, settings) -> {changed, export:
  {name, restore_point, writable, listen, pids, runtime_dir, uris, disks, stop}, uris, pids, cleaned, warnings, diff,
  msg}``; ``export.stop_exports(ExportSelector(name, restore_point, vm_name), check) -> {changed, stopped, cleaned,
  diff}``; ``export.list_exports() -> {changed: False, exports, cleaned, warnings}``; ``export.exported(query,
  endpoints, settings, disks, writable)``: a context manager yielding ``Exported(name, uris, restore_point)``.
- ``validate.validate(ValidateRequest(level, restore_point, vm, scratch_path), repo, settings) -> {changed: False, ok,
  level, checked: {...}, damaged: [{chunk, object, problem, affects: [{restore_point, vm, vm_name, disk, ranges}]}],
  errors: [...]}``.
- ``repository.ensure_repository(repo, chunk_size=None, encryption=True, compression_level=None, new_passphrase,
  new_key_file, check) -> {changed, created, keys_added, repository: {...}}``; ``repository.show_repository(repo)``.
- ``info.list_restore_points(repo, vm) -> {changed: False, vms: {name: [summary]}, count}`` and
  ``info.run_status(status_file) -> {changed: False, status}``.
- ``prune.prune(repo, policy, vm, gc, check) -> {changed, removed: [...], kept: [...], gc: {...}, diff, msg}`` (in
  check mode ``gc`` is a dry-run mark and sweep without the restore points prune would remove: the real figures).
- ``report.write_report(ReportRequest(dest, vm, title), repo, check) -> {changed, dest, files: {html, json,
  restore_points_csv, disks_csv}, updated, summary, warnings, msg}``: files written only when their content differs.
- ``copy.copy(CopyRequest(destination, vm, restore_points, last, newer_than, rate_limit_mbps, run_id), repo, settings)
  -> {changed, run_id, destination, copied: [{id, destination_id, vm, created, chunks, bytes}], present: [...],
  chunks_copied, bytes_copied, bytes_sent, duration, throughput_mbps, diff}``.
"""
