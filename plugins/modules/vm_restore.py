#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_restore
short_description: Restore a vSphere VM, one disk or a raw disk image from a restore point
version_added: 0.1.0
description:
  - Restores a restore point written by M(blockvault.vsphere.vm_backup). Every restore point is a synthetic full,
    so a restore never replays a chain.
  - V(new_vm) creates a new VM from the configuration captured at backup time and writes its disks.
  - V(in_place) writes the disks of the restore point over the disks of the original VM.
  - V(disk) writes one disk of the restore point over the same disk of the original VM.
  - V(file) writes one disk as a raw image file on the controller; it does not need vSphere nor VDDK.
  - The block-based SHA-256 of each disk written is checked against the one recorded at backup.
  - Nothing is overwritten without O(force) (a powered-on VM, an existing VM name, an existing file).
author:
  - blockvault.vsphere contributors (@blockvault)
requirements:
  - python >= 3.11
  - pyvmomi
  - cryptography
  - zstandard
  - boto3 (for V(s3://) repositories)
  - VMware VDDK 7 or 8 on the controller (see O(vddk_libdir)), except for O(target=file)
extends_documentation_fragment:
  - blockvault.vsphere.vsphere
  - blockvault.vsphere.vddk
  - blockvault.vsphere.repository
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Resolves the restore point and checks the target, then returns what would be restored without writing.
  diff_mode:
    support: full
    details: Returns the target's state before and after (VM name, placement, disks, power state).
  platform:
    platforms: posix
  action_group:
    membership:
      - blockvault.vsphere.vsphere
options:
  restore_point:
    description:
      - Id of the restore point to restore, or V(latest) for the newest restore point of the VM named O(name)
        (optionally the newest one created before O(before)).
    type: str
    default: latest
  name:
    description:
      - Name of the backed-up VM, as recorded in its restore points. Required with O(restore_point=latest).
    type: str
  before:
    description:
      - With O(restore_point=latest), choose the newest restore point created strictly before this time
        (ISO-8601, UTC when no offset is given, for example V(2026-11-25T22:00:00Z)).
    type: str
  target:
    description:
      - What to restore to, see the description.
    type: str
    choices: [new_vm, in_place, disk, file]
    default: new_vm
  new_name:
    description:
      - Name of the VM to create. Required with O(target=new_vm).
    type: str
  disk:
    description:
      - The disk of the restore point to restore, by label (V(Hard disk 1)) or device key (V(2000)).
      - Required with O(target=disk). With O(target=file) it may be omitted when the restore point holds one disk.
    type: raw
  path:
    description:
      - Raw image file to write. Required with O(target=file).
    type: path
  overrides:
    description:
      - Changes to the captured VM configuration, for O(target=new_vm) (and O(overrides.power_on) for every VM target).
    type: dict
    suboptions:
      folder:
        description:
          - VM folder for the new VM (inventory path or name); default the original folder.
        type: str
      datastore:
        description:
          - Datastore for the new VM's files and disks; default the original datastore.
        type: str
      cluster:
        description:
          - Cluster to place the new VM in; default the original cluster.
        type: str
      resource_pool:
        description:
          - Resource pool for the new VM; default the root pool of O(overrides.cluster) or the original pool.
        type: str
      network_mapping:
        description:
          - Network names to replace, as a mapping from the network in the backup to the network to connect to.
        type: dict
      disk_format:
        description:
          - Provisioning of the disks created, V(thin), V(thick) (lazy zeroed) or V(same) as at backup.
        type: str
        choices: [thin, thick, same]
        default: same
      power_on:
        description:
          - Power the VM on after the restore.
        type: bool
        default: false
  force:
    description:
      - Allow the restore to overwrite, that is to power off and overwrite a VM or disk in place, to replace an
        existing VM named O(new_name), or to replace an existing O(path).
    type: bool
    default: false
  workers:
    description:
      - Number of threads that fetch, decrypt and decompress chunks.
    type: int
    default: 4
  status_file:
    description:
      - Path of a JSON file rewritten atomically with the progress of the run; read it with
        M(blockvault.vsphere.backup_info).
    type: path
notes:
  - The restore point is chosen once, at the start; backups written meanwhile do not change it.
seealso:
  - module: blockvault.vsphere.vm_backup
  - module: blockvault.vsphere.backup_info
"""

EXAMPLES = r"""
- name: Restore the latest backup of web01 as a new VM on another datastore and network
  blockvault.vsphere.vm_restore:
    hostname: vcenter.example.com
    username: restore@vsphere.local
    password: "{{ vcenter_password }}"
    vddk_libdir: /opt/vmware-vix-disklib-distrib
    repository: /srv/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
    name: web01
    new_name: web01-restored
    overrides:
      datastore: ds-fast-02
      network_mapping:
        VM Network: Isolated Restore
      disk_format: thin
      power_on: true

- name: Roll web01 back in place to the state of last night
  blockvault.vsphere.vm_restore:
    vddk_libdir: /opt/vmware-vix-disklib-distrib
    repository: /srv/backups/vsphere
    name: web01
    before: "2026-11-26T00:00:00Z"
    target: in_place
    force: true
  diff: true

- name: Extract one disk of a given restore point as a raw image (no vSphere needed)
  blockvault.vsphere.vm_restore:
    repository: s3://backups/vsphere
    key_file: /etc/blockvault/repository.key
    restore_point: 20261126T083000Z-5f2c
    target: file
    disk: Hard disk 2
    path: /var/tmp/web01-disk2.raw
"""

RETURN = r"""
vm:
  description: The VM restored to (created, or the original one). Not returned for O(target=file).
  returned: success and O(target) is not V(file)
  type: dict
  contains:
    name:
      description: Name of the VM.
      type: str
      sample: web01-restored
    moid:
      description: Managed object id of the VM.
      type: str
      sample: vm-1077
  sample: {"name": "web01-restored", "moid": "vm-1077"}
disks:
  description: One entry per disk written (or that would be written, in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: Device key of the disk in the restore point.
      type: int
      sample: 2000
    sha256:
      description: Block-based SHA-256 of the disk as written; equal to the one recorded at backup.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    bytes_written:
      description: Bytes written to the disk (zero ranges of thin disks are skipped).
      type: int
      sample: 1073741824
diff:
  description: The target before and after the restore.
  returned: diff mode
  type: dict
  contains:
    before:
      description: State of the target before.
      type: dict
    after:
      description: State of the target after.
      type: dict
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule, disk_reference
from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import restore as ops_restore


def restore(bv):
    params = bv.params
    if params["before"] and params["restore_point"] != "latest":
        raise ConfigurationError("before applies to restore_point=latest only, not to restore point %s." % params["restore_point"])
    if params["workers"] < 1:
        raise ConfigurationError("workers is %d: give 1 or more." % params["workers"])
    needs_vsphere = params["target"] != "file"
    result = dict(ops_restore.restore(
        vsphere=bv.vsphere_settings(optional=not needs_vsphere),
        vddk=bv.vddk_settings(optional=not needs_vsphere),
        repo=bv.repository_settings(),
        restore_point=params["restore_point"],
        vm_name=params["name"],
        before=params["before"],
        target=params["target"],
        new_name=params["new_name"],
        disk=disk_reference(params["disk"]),
        path=params["path"],
        overrides=dict(params["overrides"] or {}),
        force=params["force"],
        workers=params["workers"],
        status_file=params["status_file"],
        check=bv.check_mode,
    ))
    diff = result.pop("diff", None)
    if bv.diff_mode and diff:
        result["diff"] = diff
    return result


def main():
    argument_spec = dict(
        restore_point=dict(type="str", default="latest"),
        name=dict(type="str"),
        before=dict(type="str"),
        target=dict(type="str", default="new_vm", choices=["new_vm", "in_place", "disk", "file"]),
        new_name=dict(type="str"),
        disk=dict(type="raw"),
        path=dict(type="path"),
        overrides=dict(
            type="dict",
            apply_defaults=True,
            options=dict(
                folder=dict(type="str"),
                datastore=dict(type="str"),
                cluster=dict(type="str"),
                resource_pool=dict(type="str"),
                network_mapping=dict(type="dict"),
                disk_format=dict(type="str", default="same", choices=["thin", "thick", "same"]),
                power_on=dict(type="bool", default=False),
            ),
        ),
        force=dict(type="bool", default=False),
        workers=dict(type="int", default=4),
        status_file=dict(type="path"),
    )
    bv = BlockvaultModule(
        argument_spec,
        vsphere=True,
        vddk=True,
        required_if=[
            ["restore_point", "latest", ["name"]],
            ["target", "new_vm", ["new_name"]],
            ["target", "disk", ["disk"]],
            ["target", "file", ["path"]],
        ],
    )
    bv.run(restore)


if __name__ == "__main__":
    main()
