#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_info
short_description: Show a repository's settings and restore points, or the progress of a backup or restore run
version_added: 0.1.0
description:
  - Without O(status_file), returns the repository's settings and lists its restore points (of one VM with O(vm))
    with their disks, modes and sizes.
  - With O(status_file), reads the status file of a run of M(blockvault.vsphere.vm_backup) or
    M(blockvault.vsphere.vm_restore), for example one started with C(async) and C(poll=0), and returns its progress.
    The repository is not opened then, so the repository options are not needed.
  - Never changes anything.
author:
  - blockvault.vsphere contributors (@blockvault)
requirements:
  - python >= 3.11
  - cryptography
  - zstandard
  - boto3 (for V(s3://) repositories)
extends_documentation_fragment:
  - blockvault.vsphere.repository
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Only reads, so it runs the same in check mode.
  diff_mode:
    support: none
  action_group:
    membership:
      - blockvault.vsphere.vsphere
  platform:
    platforms: posix
options:
  vm:
    description:
      - List only the restore points of the VM with this name. Mutually exclusive with O(status_file).
    type: str
  status_file:
    description:
      - Status file of a run (the O(blockvault.vsphere.vm_backup#module:status_file) of its task) to read instead of
        listing restore points.
    type: path
seealso:
  - module: blockvault.vsphere.vm_backup
  - module: blockvault.vsphere.vm_restore
"""

EXAMPLES = r"""
- name: List the restore points of web01
  blockvault.vsphere.backup_info:
    repository: /srv/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
    vm: web01
  register: points

- name: Start a long backup in the background
  blockvault.vsphere.vm_backup:
    name: db01
    vddk_libdir: /opt/vmware-vix-disklib-distrib
    repository: /srv/backups/vsphere
    status_file: /var/tmp/blockvault-db01.json
  async: 28800
  poll: 0
  register: backup_job

- name: Show its progress until it ends
  blockvault.vsphere.backup_info:
    status_file: /var/tmp/blockvault-db01.json
  register: progress
  until: progress.status.state in ['succeeded', 'failed']
  retries: 2880
  delay: 10
"""

RETURN = r"""
repository:
  description: The repository's settings, as M(blockvault.vsphere.backup_repository) returns them.
  returned: when O(status_file) is not given
  type: dict
  contains:
    location:
      description: Where the repository is.
      type: str
      sample: /srv/backups/vsphere
    id:
      description: Unique id of the repository.
      type: str
      sample: 3b2f0a4c6d8e4f10a1b2c3d4e5f60718
    format_version:
      description: Version of the repository format.
      type: int
      sample: 1
    chunk_size:
      description: Chunk size in bytes.
      type: int
      sample: 4194304
    encryption:
      description: Whether chunks and metadata are encrypted.
      type: bool
      sample: true
    compression_level:
      description: zstd compression level of new chunks.
      type: int
      sample: 3
    key_slots:
      description: Number of passphrases and key files that open the key (never the secrets themselves).
      type: int
      sample: 2
restore_points:
  description: The restore points, oldest first.
  returned: when O(status_file) is not given
  type: list
  elements: dict
  contains:
    id:
      description: Id of the restore point (the run id).
      type: str
      sample: 20261126T083000Z-5f2c
    vm:
      description: Name of the VM at backup time.
      type: str
      sample: web01
    created:
      description: When the snapshot was taken, UTC ISO-8601.
      type: str
      sample: "2026-11-26T08:30:02Z"
    consistency:
      description: V(quiesced) or V(crash-consistent).
      type: str
      sample: quiesced
    size:
      description: Sum of the capacities of the disks, in bytes.
      type: int
      sample: 107374182400
    bytes_new:
      description: Bytes of new chunks this restore point added to the repository.
      type: int
      sample: 52428800
    disks:
      description: The disks of the restore point.
      type: list
      elements: dict
      contains:
        key:
          description: Device key.
          type: int
          sample: 2000
        label:
          description: Label.
          type: str
          sample: Hard disk 1
        capacity:
          description: Capacity in bytes.
          type: int
          sample: 53687091200
        mode:
          description: V(full) or V(incremental).
          type: str
          sample: incremental
        sha256:
          description: Block-based SHA-256 of the disk.
          type: str
          sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
status:
  description: The run's status as last written by the run.
  returned: when O(status_file) is given
  type: dict
  contains:
    run_id:
      description: Id of the run.
      type: str
      sample: 20261126T083000Z-5f2c
    state:
      description: V(running), V(succeeded) or V(failed).
      type: str
      sample: running
    phase:
      description: What the run is doing (for example V(snapshot), V(transfer), V(commit)).
      type: str
      sample: transfer
    disk:
      description: Label of the disk being transferred, when one is.
      type: str
      sample: Hard disk 2
    bytes_done:
      description: Bytes transferred so far.
      type: int
      sample: 1073741824
    bytes_total:
      description: Bytes to transfer in all.
      type: int
      sample: 4294967296
    throughput_mbps:
      description: Current throughput in MB/s (10^6 bytes).
      type: float
      sample: 112.5
    eta:
      description: Estimated end, UTC ISO-8601.
      type: str
      sample: "2026-11-26T09:12:40Z"
    updated:
      description: When the file was written, UTC ISO-8601.
      type: str
      sample: "2026-11-26T09:02:11Z"
    last_error:
      description: Message of the last error, if any.
      type: str
      sample: null
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import info as ops_info
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import repository as ops_repository


def _unwrap(value, key):
    # tolerate an operation that wraps its answer in a one-key dict ({"repository": {...}})
    if isinstance(value, dict) and key in value:
        return value[key]
    return value


def info(bv):
    params = bv.params
    if params["status_file"]:
        return {"changed": False, "status": ops_info.run_status(status_file=params["status_file"])}
    repo = bv.repository_settings()
    return {
        "changed": False,
        "repository": _unwrap(ops_repository.show_repository(repo=repo), "repository"),
        "restore_points": list(_unwrap(ops_info.list_restore_points(repo=repo, vm=params["vm"]), "restore_points")),
    }


def main():
    argument_spec = dict(
        vm=dict(type="str"),
        status_file=dict(type="path"),
    )
    bv = BlockvaultModule(argument_spec, mutually_exclusive=[["vm", "status_file"]])
    bv.run(info)


if __name__ == "__main__":
    main()
