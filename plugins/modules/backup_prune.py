#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_prune
short_description: Remove restore points by a retention policy and reclaim their space
version_added: 0.1.0
description:
  - Keeps, per VM, the restore points the policy selects and removes the others. The policy is the union of the
    O(keep_last), O(keep_hourly), O(keep_daily), O(keep_weekly), O(keep_monthly) and O(keep_yearly) rules, read
    like restic's C(forget) (C(keep_daily=7) keeps the newest restore point of each of the last 7 days that have one,
    in UTC). A count of V(-1) keeps all the restore points the rule selects.
  - With O(gc=true) (the default), chunks no restore point uses any more are then deleted.
  - Garbage collection keeps the disk indexes of a restore point whose manifest is missing (deleted or lost), and
    the chunks they name, for 7 days after they were written, so that the manifest can still be recovered;
    O(forget_orphans=true) removes them now. The indexes an interrupted backup left are removed at once, and so are
    the leftovers of a prune or delete that was cut short (its removal marker names them).
  - A policy that would remove every restore point (no rule that keeps at least one) is refused.
  - On an S3 repository with Object Lock, a restore point whose retention has not passed is kept (a delete would only
    hide it behind a delete marker, its data staying in the bucket), and a warning names it and the date.
  - In check mode and diff mode the result lists what would be removed.
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
    details: Lists what would be removed and how much garbage collection would reclaim, without removing anything.
  diff_mode:
    support: full
    details: The ids of the restore points before and after.
  platform:
    platforms: posix
  action_group:
    membership:
      - blockvault.vsphere.vsphere
options:
  keep_last:
    description:
      - Keep the newest N restore points.
    type: int
  keep_hourly:
    description:
      - Keep the newest restore point of each of the last N hours that have one.
    type: int
  keep_daily:
    description:
      - Keep the newest restore point of each of the last N days that have one.
    type: int
  keep_weekly:
    description:
      - Keep the newest restore point of each of the last N ISO weeks that have one.
    type: int
  keep_monthly:
    description:
      - Keep the newest restore point of each of the last N months that have one.
    type: int
  keep_yearly:
    description:
      - Keep the newest restore point of each of the last N years that have one.
    type: int
  vm:
    description:
      - Apply the policy to the restore points of the VM with this name only. By default it applies to every VM.
    type: str
  gc:
    description:
      - Delete the chunks that no restore point uses any more after removing restore points.
      - Set to V(false) to only remove restore points now and collect garbage in a later, quieter run.
    type: bool
    default: true
  forget_orphans:
    description:
      - Let garbage collection remove now the disk indexes of restore points that have no manifest (which
        M(blockvault.vsphere.backup_validate) reports), and the chunks only they name, instead of keeping them for
        the grace period. Needs O(gc=true).
      - May be given without a retention rule, to do only that. Defaults to V(false).
    type: bool
seealso:
  - module: blockvault.vsphere.backup_info
"""

EXAMPLES = r"""
- name: Keep 7 daily, 4 weekly and 12 monthly restore points of every VM
  blockvault.vsphere.backup_prune:
    repository: /srv/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 12

- name: Show what keeping the last 3 restore points of web01 would remove
  blockvault.vsphere.backup_prune:
    repository: /srv/backups/vsphere
    vm: web01
    keep_last: 3
  check_mode: true
  diff: true
  register: would_go
"""

RETURN = r"""
removed:
  description: The restore points removed (or that would be removed, in check mode).
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Id of the restore point.
      type: str
      sample: 20261101T083127.530911Z-8c1f2e3d4a5b6c7d-7e6d5c4b
    vm:
      description: Name of the VM.
      type: str
      sample: web01
    created:
      description: When the restore point was taken, UTC ISO-8601.
      type: str
      sample: "2026-11-01T08:31:27Z"
kept:
  description: The restore points kept, in the same form as RV(removed), each with C(reasons), the rules that keep it
    (C(pinned), or C(object lock until <time>) for one the policy would remove but S3 Object Lock still protects).
  returned: success
  type: list
  elements: dict
  sample: [{"id": "20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e", "vm": "web01", "created": "2026-11-26T08:31:27Z", "reasons": ["last", "daily"]}]
msg:
  description: One line saying which restore points were removed and kept (in check mode, would be), and what garbage
    collection freed (would free).
  returned: success
  type: str
  sample: "removed 1 restore point(s) (20261101T083127.530911Z-8c1f2e3d4a5b6c7d-7e6d5c4b); kept 1
    (20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e); GC freed 12 chunk(s), 25165824 bytes"
gc:
  description:
    - What garbage collection removed (or would remove, in check mode). Empty when O(gc=false).
    - In check mode the figures come from a dry-run mark and sweep that treats the restore points the prune would
      remove as gone, so they are those the same task frees when run for real (unless backups run meanwhile).
  returned: success
  type: dict
  contains:
    dry_run:
      description: Whether this was a check-mode count.
      type: bool
      sample: false
    chunks_removed:
      description: Chunks no restore point uses any more, deleted.
      type: int
      sample: 1200
    bytes_removed:
      description: Bytes those chunks took in the repository.
      type: int
      sample: 2516582400
    chunks_stored:
      description: Chunks in the repository before the collection.
      type: int
      sample: 51200
    chunks_referenced:
      description: Chunks the remaining restore points use.
      type: int
      sample: 50000
    indexes_removed:
      description: Disk indexes without a manifest deleted (of interrupted backups, older than the grace period, or
        forgotten with O(forget_orphans)).
      type: int
      sample: 2
    orphans_removed:
      description: Ids of the restore points without manifest whose indexes were deleted.
      type: list
      elements: str
      sample: []
    orphans_kept:
      description: Ids of the restore points without manifest (deleted or lost) whose indexes, and the chunks they
        name, are kept for the grace period.
      type: list
      elements: str
      sample: ["20261126T083000.123456Z-3f2a9c0d11e2b4a7-9c1e2f30"]
    removals_finished:
      description: Ids of the restore points whose removal a killed prune or delete had begun (their manifest deleted)
        and that garbage collection finished (their remaining indexes, pin, note and removal marker deleted).
      type: list
      elements: str
      sample: []
    removals_not_begun:
      description: Ids of the restore points with a removal marker whose manifest is still there (the removal was cut
        short before it deleted anything); they are kept whole, and only the marker is deleted.
      type: list
      elements: str
      sample: []
    checkpoints_removed:
      description: Checkpoints of killed backups deleted because they are older than their C(resume_max_age) (their
        chunks are kept until then, so that the next backup can resume).
      type: int
      sample: 0
diff:
  description: Ids of the restore points in scope before and after the prune.
  returned: diff mode
  type: dict
  sample: {"before": {"restore_points": ["20261101T083127.530911Z-8c1f2e3d4a5b6c7d-7e6d5c4b",
                                       "20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e"]},
           "after": {"restore_points": ["20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e"]}}
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import prune as ops_prune

KEEP_OPTIONS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")


def prune(bv):
    params = bv.params
    # the engine checks the policy (counts >= -1, at least one rule that keeps something)
    policy = dict((name, params[name]) for name in KEEP_OPTIONS if params[name] is not None)
    result = dict(ops_prune.prune(repo=bv.repository_settings(), policy=policy, vm=params["vm"], gc=params["gc"], check=bv.check_mode,
                                  forget_orphans=bool(params["forget_orphans"])))
    result["gc"] = result.get("gc") or {}
    return result


def main():
    argument_spec = dict((name, dict(type="int", no_log=False)) for name in KEEP_OPTIONS)
    argument_spec.update(
        vm=dict(type="str"),
        gc=dict(type="bool", default=True),
        forget_orphans=dict(type="bool"),
    )
    bv = BlockvaultModule(argument_spec, required_one_of=[list(KEEP_OPTIONS) + ["forget_orphans"]])
    bv.run(prune)


if __name__ == "__main__":
    main()
