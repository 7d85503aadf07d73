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
  - O(level=quick) checks the manifests, their schema and the disk indexes, and that every chunk they name exists.
  - O(level=full) also reads, authenticates and decompresses every chunk and checks that it hashes to its id.
  - O(level=restore) does what V(full) does, then restores each disk to a scratch file and compares its block-based
    SHA-256 with the one recorded at backup. The scratch files are deleted as soon as they are checked.
  - Changes nothing in the repository but, at O(level=full) and O(level=restore), the record of the restore points it
    found intact (C(validated/)), which M(blockvault.vsphere.backup_copy) reads with its
    O(blockvault.vsphere.backup_copy#module:validated_only); not in check mode, and a repository it cannot write to
    only gets a warning. With O(on_damage=fail) (the default) the task fails when anything is damaged, and
    the failure carries RV(damaged) and RV(errors); with O(on_damage=report) it succeeds with RV(ok=false).
  - A restore point whose disk indexes exist without its manifest (a deleted manifest) is an error of the whole
    repository's validation; the indexes of a backup still running, or of one that was interrupted (its lock is
    stale), are not, nor are the leftovers of a removal cut short (its removal marker says so). Selecting by O(vm)
    passes over damaged manifests with a warning (their VM is unknown).
  - Accepts the vSphere and VDDK options without using them, so that one C(module_defaults) group
    (C(group/blockvault.vsphere.vsphere)) can carry them for every module of the collection.
author:
  - blockvault.vsphere contributors (@blockvault)
extends_documentation_fragment:
  - blockvault.vsphere.repository
  - blockvault.vsphere.vsphere
  - blockvault.vsphere.vddk
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Validation only reads (the test restores of O(level=restore) go to scratch files), so it runs the same
      in check mode.
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
      - Id of the one restore point to check, or V(latest) for the newest restore point of the VM O(vm).
    type: str
  vm:
    description:
      - Name of the VM whose restore points to check (all of them, or the newest with O(restore_point=latest)).
      - When neither O(restore_point) nor O(vm) is given, every restore point in the repository is checked.
    type: str
  scratch_path:
    description:
      - Directory for the scratch files of O(level=restore); it needs room for the largest disk checked.
      - When not given, the system's temporary directory is used.
    type: path
  workers:
    description:
      - Number of threads that read and check chunks.
    type: int
    default: 2
  memory_budget_mb:
    description:
      - Memory in MiB the test restores of O(level=restore) may use for buffers.
    type: int
    default: 256
  on_damage:
    description:
      - V(fail) makes the task fail when anything is damaged; V(report) returns RV(ok=false) and the damage instead.
    type: str
    choices: [fail, report]
    default: fail
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

- name: Test restore of the newest restore point of web01
  blockvault.vsphere.backup_validate:
    repository: /srv/backups/vsphere
    vm: web01
    restore_point: latest
    level: restore
    scratch_path: /var/tmp/blockvault-scratch
"""

RETURN = r"""
ok:
  description: Whether everything checked is intact (no damaged chunk, no error).
  returned: success, and in the failure of O(on_damage=fail)
  type: bool
  sample: true
level:
  description: The level checked.
  returned: success
  type: str
  sample: full
checked:
  description: What was checked.
  returned: success, and in the failure of O(on_damage=fail)
  type: dict
  contains:
    restore_points:
      description: Restore points checked.
      type: int
      sample: 14
    chunks_referenced:
      description: Distinct chunks the restore points checked refer to.
      type: int
      sample: 51200
    chunks_read:
      description: Chunks read and verified (0 at O(level=quick)).
      type: int
      sample: 51200
    backups_in_progress:
      description: Restore points whose indexes exist without a manifest because their backup is running (not damage).
      returned: when the whole repository is validated
      type: list
      elements: str
      sample: []
    interrupted_backups:
      description: Restore points whose indexes a killed or lost backup left (its lock is stale; not damage, the next
        garbage collection removes them).
      returned: when the whole repository is validated
      type: list
      elements: str
      sample: []
    unfinished_removals:
      description: Restore points whose removal (by prune or delete) was cut short, or is running, after their manifest
        was deleted (their removal marker is still there; not damage, the next garbage collection finishes them).
      returned: when the whole repository is validated
      type: list
      elements: str
      sample: []
    test_restores:
      description: One entry per disk restored to a scratch file, with C(restore_point), C(disk), C(ok), and
        C(sha256) or C(error).
      returned: when O(level=restore)
      type: list
      elements: dict
      sample: [{"restore_point": "20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e", "disk": "2000", "ok": true, "sha256": "9f86d0..."}]
damaged:
  description: One entry per damaged chunk, with the restore points, disks and byte ranges it affects. Empty when
    nothing is damaged.
  returned: success, and in the failure of O(on_damage=fail)
  type: list
  elements: dict
  contains:
    chunk:
      description: Id of the chunk (hex).
      type: str
      sample: 5a1c9e...
    object:
      description: Name of the chunk's object in the repository.
      type: str
      sample: chunks/5a/5a1c9e...
    problem:
      description: What is wrong with it (V(missing), or why it does not read or verify).
      type: str
      sample: missing
    affects:
      description: Each restore point disk that uses the chunk, with C(restore_point), C(vm) (the repository's VM key),
        C(vm_name), C(disk) and C(ranges), the damaged byte ranges of the disk as [start, end) pairs.
      type: list
      elements: dict
      sample: [{"restore_point": "20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e", "vm": "4211c2f0-9d1c", "vm_name": "web01", "disk": "2000",
                "ranges": [[8388608, 12582912]]}]
errors:
  description: Objects that could not be read or checked (a manifest, an index, a test restore), each with
    C(restore_point), C(disk), C(error_class) and C(error); a restore point whose indexes exist without its manifest
    also has C(objects), the names of those indexes.
  returned: success, and in the failure of O(on_damage=fail)
  type: list
  elements: dict
  sample: []
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule
from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, ValidationFailedError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import validate as ops_validate


def _affected_restore_points(result):
    points = set()
    for item in (result.get("damaged") or []) + (result.get("errors") or []):
        if item.get("restore_point"):
            points.add(str(item["restore_point"]))
        for affected in item.get("affects") or []:
            points.add(str(affected["restore_point"]))
    return sorted(points)


def _damage_message(result):
    points = _affected_restore_points(result)
    return ("Validation found %d damaged chunk(s) and %d error(s), affecting restore point(s) %s. See 'damaged' and "
            "'errors'; restore from an intact restore point, and take a new full backup (mode=full) of the VMs affected."
            % (len(result.get("damaged") or []), len(result.get("errors") or []), ", ".join(points) or "(none named)"))


def validate(bv):
    params = bv.params
    if params["restore_point"] == "latest" and not params["vm"]:
        raise ConfigurationError("restore_point=latest needs vm: the name of the VM whose newest restore point to check.")
    request = ops_validate.ValidateRequest(level=params["level"], restore_point=params["restore_point"], vm=params["vm"],
                                           scratch_path=params["scratch_path"])
    try:
        result = dict(ops_validate.validate(request=request, repo=bv.repository_settings(), settings=bv.run_settings()))
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
        workers=dict(type="int", default=2),
        memory_budget_mb=dict(type="int", default=256),
        on_damage=dict(type="str", default="fail", choices=["fail", "report"]),
    )
    bv = BlockvaultModule(argument_spec)
    bv.run(validate)


if __name__ == "__main__":
    main()
