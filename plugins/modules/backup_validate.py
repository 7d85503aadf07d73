#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_validate
short_description: Check that restore points can be restored
version_added: 0.1.0
description:
  - Checks one restore point (O(restore_point)), the restore points of one VM (O(vm)) or the whole repository.
  - O(level=quick) checks that the manifests and indexes are intact and that every chunk they name exists.
  - O(level=full) also reads, authenticates and decompresses every chunk and recomputes each disk's block-based
    SHA-256.
  - O(level=restore) performs a test restore of each disk (to raw images in O(scratch_path), removed afterwards)
    and compares the SHA-256 of what was written with the one recorded at backup.
  - Never changes the repository. With O(on_damage=fail) (the default) the task fails when damage is found, and the
    failure carries RV(damaged); with O(on_damage=report) it succeeds with RV(ok=false).
author:
  - blockvault.vsphere contributors (@blockvault)
requirements:
  - python >= 3.11
  - cryptography
  - zstandard
  - boto3 (for V(s3://) repositories)
extends_documentation_fragment:
  - blockvault.vsphere.vsphere
  - blockvault.vsphere.vddk
  - blockvault.vsphere.repository
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Validation only reads, so it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
  action_group:
    membership:
      - blockvault.vsphere.vsphere
options:
  level:
    description:
      - How deep to check, see the description.
    type: str
    choices: [quick, full, restore]
    default: quick
  restore_point:
    description:
      - Id of the one restore point to check. Mutually exclusive with O(vm).
    type: str
  vm:
    description:
      - Name of the VM whose restore points to check. Mutually exclusive with O(restore_point).
      - When neither O(restore_point) nor O(vm) is given, every restore point in the repository is checked.
    type: str
  scratch_path:
    description:
      - Directory for the test restore of O(level=restore); it needs room for the largest disk checked.
      - When not given, a temporary directory is used.
    type: path
  on_damage:
    description:
      - V(fail) makes the task fail when damage is found; V(report) returns RV(ok=false) and the damage instead.
    type: str
    choices: [fail, report]
    default: fail
notes:
  - The vSphere and VDDK options are optional here; O(level=restore) restores to raw images and needs neither. They
    are passed to the validation when O(hostname) (respectively O(vddk_libdir)) is given.
seealso:
  - module: blockvault.vsphere.vm_backup
  - module: blockvault.vsphere.backup_info
"""

EXAMPLES = r"""
- name: Quick check of the whole repository
  blockvault.vsphere.backup_validate:
    repository: /srv/backups/vsphere
    passphrase: "{{ repository_passphrase }}"

- name: Full check of the restore points of one VM, report instead of failing
  blockvault.vsphere.backup_validate:
    repository: s3://backups/vsphere
    key_file: /etc/blockvault/repository.key
    vm: web01
    level: full
    on_damage: report
  register: check

- name: Test restore of the restore point just written
  blockvault.vsphere.backup_validate:
    repository: /srv/backups/vsphere
    restore_point: "{{ backup.restore_point.id }}"
    level: restore
    scratch_path: /var/tmp/blockvault-scratch
"""

RETURN = r"""
ok:
  description: Whether everything checked is intact.
  returned: always
  type: bool
  sample: true
checked:
  description: What was checked, as counts.
  returned: always
  type: dict
  contains:
    restore_points:
      description: Restore points checked.
      type: int
      sample: 14
    disks:
      description: Disks checked.
      type: int
      sample: 28
    chunks:
      description: Chunks checked.
      type: int
      sample: 51200
    bytes:
      description: Bytes of disk data checked (logical size).
      type: int
      sample: 214748364800
damaged:
  description: One entry per damaged disk of a restore point. Empty when RV(ok) is V(true).
  returned: always
  type: list
  elements: dict
  contains:
    restore_point:
      description: Id of the restore point.
      type: str
      sample: 20261126T083000Z-5f2c
    vm:
      description: Name of the VM.
      type: str
      sample: web01
    disk:
      description: Device key of the disk.
      type: int
      sample: 2000
    ranges:
      description: Damaged byte ranges of the disk, each a list of offset and length.
      type: list
      elements: list
      sample: [[8388608, 4194304]]
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule
from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ValidationFailedError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import validate as ops_validate


def _damage_message(result):
    damaged = result.get("damaged") or []
    points = sorted(set(str(item.get("restore_point")) for item in damaged if isinstance(item, dict)))
    return ("Validation found damage in %d disk(s) of %d restore point(s): %s. See 'damaged' for the ranges; "
            "restore from another restore point and run a new full backup." % (len(damaged), len(points), ", ".join(points) or "unknown"))


def validate(bv):
    params = bv.params
    try:
        result = dict(ops_validate.validate(
            repo=bv.repository_settings(),
            level=params["level"],
            restore_point=params["restore_point"],
            vm=params["vm"],
            vsphere=bv.vsphere_settings(optional=True),
            vddk=bv.vddk_settings(optional=True),
            scratch_path=params["scratch_path"],
            check=bv.check_mode,
        ))
    except ValidationFailedError as err:
        if params["on_damage"] == "fail" or not isinstance(err.report, dict):
            raise
        result = dict(err.report, ok=False)
    result["changed"] = False
    if result.get("ok") is False and params["on_damage"] == "fail":
        raise ValidationFailedError(_damage_message(result), report=result)
    return result


def main():
    argument_spec = dict(
        level=dict(type="str", default="quick", choices=["quick", "full", "restore"]),
        restore_point=dict(type="str"),
        vm=dict(type="str"),
        scratch_path=dict(type="path"),
        on_damage=dict(type="str", default="fail", choices=["fail", "report"]),
    )
    bv = BlockvaultModule(argument_spec, vsphere=True, vddk=True, mutually_exclusive=[["restore_point", "vm"]])
    bv.run(validate)


if __name__ == "__main__":
    main()
