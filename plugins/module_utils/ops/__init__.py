# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Operations: what the Ansible modules (and scripts, and tests) call.

Each operation takes settings (``ops.settings``) and plain arguments, returns a plain, JSON-able
dict (``changed``, the operation's figures), raises ``errors.BlockvaultError`` subclasses carrying
phase, VM, disk and run id, and can return its plan without acting (``check=True``). Nothing here
imports Ansible.

The contract the modules program against (keyword arguments; the modules' unit tests check their calls against
these signatures):

- ``repository.ensure_repository(repo, chunk_size=None, encryption=True, compression_level=None, new_passphrase,
  new_key_file, check) -> {changed, created, keys_added, repository: {location, id, format_version, chunk_size,
  encryption, compression_level, created, key_slots}}`` (None: the default when creating, not compared otherwise);
  ``repository.show_repository(repo) -> {changed: False, repository}``.
- ``backup.backup_vm(vsphere, vddk, repo, vm, mode, quiesce, allow_crash_consistent, include_disks,
  exclude_disks, workers, memory_budget, run_id, status_file, check) -> {changed, run_id, restore_point: {id, vm,
  created}, disks: [{key, label, mode, reason, bytes_read, bytes_new, sha256}], bytes_read, bytes_written, duration,
  throughput_mbps, quiesced, skipped_disks}`` or, in check mode, ``{changed, run_id, vm, plan}``; ``vm`` is a dict
  with one of ``name``, ``uuid``, ``instance_uuid``, ``moid``, ``path``.
- ``restore.restore(vsphere, vddk, repo, restore_point, vm_name, before, target, new_name, disk, path, overrides,
  force, workers, memory_budget, status_file, check, target_vm) -> {changed, restore_point, vm or path, disks:
  [{key, sha256, bytes_written, ...}], diff}``; ``target`` is new_vm | in_place | disk | file.
- ``validate.validate(repo, level, restore_point, vm, scratch_path, check, workers, memory_budget) -> {changed:
  False, ok, level, checked: {...}, damaged: [{chunk, object, problem, affects: [{restore_point, vm, vm_name, disk,
  ranges}]}], errors: [...]}``.
- ``info.list_restore_points(repo, vm) -> {changed: False, vms: {name: [summary]}, count}`` and
  ``info.run_status(status_file) -> {changed: False, status}``.
- ``prune.prune(repo, policy, vm, gc, check) -> {changed, removed: [...], kept: [...], gc: {...}, diff}``.
"""
