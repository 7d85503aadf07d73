#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_restore_point
short_description: Pin, annotate or delete one restore point
version_added: 0.2.0
description:
  - Manages one restore point of a repository by its id (M(blockvault.vsphere.backup_info) lists them).
  - A pinned restore point is kept by M(blockvault.vsphere.backup_prune) whatever its policy (it is listed among the
    kept ones with the reason C(pinned) and does not count against the policy's rules), and cannot be deleted until
    it is unpinned.
  - A note is a short text kept with the restore point (for example C(before the 2026-12 upgrade)), shown by
    M(blockvault.vsphere.backup_info); in an encrypted repository it is encrypted like the restore point's metadata.
  - O(state=absent) deletes the restore point (its manifest, disk indexes, pin and note); its chunks are reclaimed by
    the next garbage collection (M(blockvault.vsphere.backup_prune)). Deleting one that does not exist changes
    nothing.
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
    details: Says what would change (pin, note, deletion) without writing.
  diff_mode:
    support: full
    details: The restore point's pin and note before and after.
  platform:
    platforms: posix
  action_group:
    membership:
      - blockvault.vsphere.vsphere
options:
  restore_point:
    description:
      - Id of the restore point.
    type: str
    required: true
  state:
    description:
      - V(present) sets O(pinned) and O(note) where given; V(absent) deletes the restore point (refused while it is
        pinned).
    type: str
    choices: [present, absent]
    default: present
  pinned:
    description:
      - Pin (V(true)) or unpin (V(false)) the restore point. Left as it is when not given.
    type: bool
  note:
    description:
      - The restore point's note, at most 1000 characters; an empty string removes it. Left as it is when not given.
    type: str
seealso:
  - module: blockvault.vsphere.backup_info
  - module: blockvault.vsphere.backup_prune
"""

EXAMPLES = r"""
- name: Keep the restore point taken before the upgrade, whatever the retention says
  blockvault.vsphere.backup_restore_point:
    repository: /srv/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
    restore_point: "{{ before_upgrade.restore_point.id }}"
    pinned: true
    note: before the 2026-12 upgrade

- name: Delete a restore point taken by mistake
  blockvault.vsphere.backup_restore_point:
    repository: /srv/backups/vsphere
    restore_point: 20261204T091500.123456Z-8c1f2e3d4a5b6c7d-1a2b3c4d
    state: absent
"""

RETURN = r"""
restore_point:
  description: The restore point after the task (null once deleted).
  returned: success
  type: dict
  contains:
    id:
      description: Id of the restore point.
      type: str
      sample: 20261204T091500.123456Z-8c1f2e3d4a5b6c7d-1a2b3c4d
    vm:
      description: Name of the VM.
      type: str
      sample: web01
    created:
      description: When the restore point was taken, UTC ISO-8601.
      type: str
      sample: "2026-12-04T09:15:00Z"
    pinned:
      description: Whether prune keeps it whatever its policy.
      type: bool
      sample: true
    note:
      description: Its note ("" when it has none).
      type: str
      sample: before the 2026-12 upgrade
diff:
  description: The restore point's pin and note before and after.
  returned: diff mode
  type: dict
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import restore_points as ops_restore_points


def manage(bv):
    params = bv.params
    change = ops_restore_points.RestorePointChange(restore_point=params["restore_point"], state=params["state"],
                                                   pinned=params["pinned"], note=params["note"])
    return ops_restore_points.manage_restore_point(change=change, repo=bv.repository_settings(), check=bv.check_mode)


def main():
    argument_spec = dict(
        restore_point=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        pinned=dict(type="bool"),
        note=dict(type="str"),
    )
    bv = BlockvaultModule(argument_spec)
    bv.run(manage)


if __name__ == "__main__":
    main()
