# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Operations: what the Ansible modules (and scripts, and tests) call.

Each operation takes settings (``ops.settings``) and plain arguments, returns a plain, JSON-able
dict (``changed``, the operation's figures), raises ``errors.BlockvaultError`` subclasses carrying
phase, VM, disk and run id, and can return its plan without acting (``check=True``). Nothing here
imports Ansible.

The contract the modules program against:

- ``repository.ensure_repository(repo, chunk_size, encryption, compression_level, new_passphrase,
  new_key_file, check) -> {changed, repository: {location, id, format_version, chunk_size,
  encryption, compression_level, key_slots}}`` and ``repository.show_repository(repo)``.
- ``backup.backup_vm(vsphere, vddk, repo, vm, mode, quiesce, allow_crash_consistent, include_disks,
  exclude_disks, workers, memory_budget, run_id, status_file, check) -> {changed, restore_point: {id,
  vm, created}, disks: [{key, label, mode, reason, bytes_read, bytes_new, sha256}], bytes_read,
  bytes_written, duration, throughput_mbps, plan (check mode)}``; ``vm`` is a dict with one of
  ``name``, ``uuid``, ``moid``.
- ``restore.restore(vsphere, vddk, repo, restore_point, vm_name, before, target, new_name, disk, path,
  overrides, force, workers, status_file, check) -> {changed, vm, disks: [{key, sha256, bytes_written}],
  diff}``; ``target`` is new_vm | in_place | disk | file.
- ``validate.validate(repo, level, restore_point, vm, vsphere, vddk, check) -> {changed: False, ok,
  checked: {...}, damaged: [{restore_point, vm, disk, ranges}]}``.
- ``info.list_restore_points(repo, vm)`` and ``info.run_status(status_file)``.
- ``prune.prune(repo, policy, vm, check) -> {changed, removed: [...], kept: [...], gc: {...}}``.
"""
