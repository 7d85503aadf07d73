#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_copy
short_description: Copy restore points to a second repository (an offsite copy)
version_added: 0.2.0
description:
  - Copies restore points from the repository O(repository) (the source) to the repository O(destination) (for
    example a local repository to an S3 bucket, for the 3-2-1 rule), without reading the VMs again.
  - Only the chunks the destination lacks are read and sent, whatever the two repositories' keys; chunks it already
    holds (copies of other VMs, earlier copies) are not read from the source. Each chunk is checked against its SHA-256
    on the way; a damaged source chunk fails the task, names the chunk, and is never copied.
  - The manifest of a copied restore point is written last, as in a backup; a copy that is interrupted leaves no
    restore point visible in the destination, and the next run completes it without sending again what arrived.
  - A copied restore point keeps the creation time of the source's, and an id made from it (the same time and suffix,
    the destination's tag of the VM), so a rerun recognises what was copied. Its manifest records where it was copied
    from (C(stats.copied_from)).
  - Both repositories must have the same chunk size; otherwise the task fails before anything is written.
  - The destination must exist (create it with M(blockvault.vsphere.backup_repository)); it has its own keys, and its
    own retention (run M(blockvault.vsphere.backup_prune) on it).
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
    details: Lists the restore points that would be copied, and the chunks and bytes that would be sent (before
      compression), without writing anything.
  diff_mode:
    support: full
    details: The destination ids of the selected restore points present before and after.
  platform:
    platforms: posix
  action_group:
    membership:
      - blockvault.vsphere.vsphere
options:
  destination:
    description:
      - The repository to copy to, and how to open it.
    type: dict
    required: true
    suboptions:
      repository:
        description:
          - Where the destination repository is, a local directory (NFS mounts included) or V(s3://bucket/prefix).
        type: str
        required: true
      passphrase:
        description:
          - Passphrase that opens the destination's key. Mutually exclusive with O(destination.key_file).
          - An unencrypted destination needs neither.
        type: str
      key_file:
        description:
          - Path of a key file that opens the destination's key.
        type: path
      s3_endpoint_url:
        description:
          - URL of an S3-compatible service for an V(s3://) destination. Leave unset for AWS S3.
        type: str
      region:
        description:
          - Region of the destination's S3 bucket.
        type: str
      aws_access_key:
        description:
          - Access key ID for the destination's S3 bucket; unset means boto3's own credential chain.
        type: str
      aws_secret_key:
        description:
          - Secret access key for the destination's S3 bucket.
        type: str
      aws_session_token:
        description:
          - Session token of temporary S3 credentials for the destination.
        type: str
      s3_validate_certs:
        description:
          - Verify the TLS certificate of the destination's S3 endpoint.
        type: bool
        default: true
      object_lock_days:
        description:
          - Write the copied data (chunks, disk indexes, manifests) with an S3 Object Lock retention of this many days,
            in GOVERNANCE mode; the destination bucket must have Object Lock enabled.
        type: int
      storage_class:
        description:
          - S3 storage class of the chunk objects written to the destination (manifests, indexes and keys stay in
            STANDARD, so listing and restore planning never wait on a colder tier). Unset means the bucket's default.
        type: str
        choices: [STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR]
  state:
    description:
      - V(present) copies the selected restore points the destination lacks.
    type: str
    choices: [present]
    default: present
  vm:
    description:
      - Copy the restore points of the VM with this name only. By default, those of every VM.
    type: str
  restore_points:
    description:
      - Copy these restore points (ids in the source) only.
    type: list
    elements: str
  last:
    description:
      - Of the restore points selected by the other options, copy the newest N of each VM only.
    type: int
  newer_than:
    description:
      - Copy the restore points created after this time only, an ISO-8601 time (V(2026-11-01T08:00:00Z); without a
        zone, UTC) or an age (V(36h), V(7d), V(2w)).
    type: str
  validated_only:
    description:
      - Copy only the restore points that a full validation (M(blockvault.vsphere.backup_validate) with O(blockvault.vsphere.backup_validate#module:level=full)
        or V(restore)) of the source found intact since they were made, so that damage in the source never reaches
        the offsite copy. The others selected are listed in RV(skipped_unvalidated) and copied by a later run, once
        validated.
    type: bool
    default: false
  workers:
    description:
      - Number of threads that read, check and store chunks. Each holds one chunk in memory at a time.
    type: int
    default: 4
  rate_limit_mbps:
    description:
      - Limit the data written to the destination to this many megabytes (10^6 bytes) per second, for a copy over a
        WAN link. Unset means no limit.
    type: float
  status_file:
    description:
      - Path of a JSON file rewritten atomically with the progress of the run (phase, bytes done and total per restore
        point, throughput, estimated end, last error); read it with M(blockvault.vsphere.backup_info).
    type: path
notes:
  - O(object_lock_days) applies to the source; the destination's retention is O(destination.object_lock_days).
seealso:
  - module: blockvault.vsphere.backup_repository
  - module: blockvault.vsphere.backup_prune
"""

EXAMPLES = r"""
- name: Copy every new restore point to an S3 bucket with Object Lock
  blockvault.vsphere.backup_copy:
    repository: /srv/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
    destination:
      repository: s3://offsite-backups/vsphere
      passphrase: "{{ offsite_passphrase }}"
      region: eu-west-3
      object_lock_days: 30
      storage_class: STANDARD_IA
    rate_limit_mbps: 50

- name: Show what copying the last restore point of web01 would send
  blockvault.vsphere.backup_copy:
    repository: /srv/backups/vsphere
    vm: web01
    last: 1
    destination:
      repository: /mnt/second-site/vsphere
      key_file: /etc/blockvault/second-site.key
  check_mode: true
  diff: true
  register: would_copy
"""

RETURN = r"""
msg:
  description: One line saying which restore points were (would be) copied where, the chunks and bytes that travelled,
    and how many were there already.
  returned: success
  type: str
  sample: "copied 1 restore point(s) to s3://offsite-backups/vsphere (20261126T083127.123456Z-5f2c0a1b2c3d4e5f-9a8b7c6d):
    12 chunk(s), 50331648 bytes read, 20123456 bytes sent; 6 already there"
copied:
  description: The restore points copied (or that would be copied, in check mode), oldest first.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Id of the restore point in the source.
      type: str
      sample: 20261126T083127.123456Z-5f2c0a1b2c3d4e5f-9a8b7c6d
    destination_id:
      description: Id of its copy in the destination.
      type: str
      sample: 20261126T083127.123456Z-0e1d2c3b4a596877-9a8b7c6d
    vm:
      description: Name of the VM.
      type: str
      sample: web01
    created:
      description: When the restore point was taken, UTC ISO-8601.
      type: str
      sample: "2026-11-26T08:31:27.123456Z"
    chunks:
      description: Chunks of this restore point sent (the others were in the destination already).
      type: int
      sample: 12
    bytes:
      description: Bytes of those chunks, before compression.
      type: int
      sample: 50331648
present:
  description: The selected restore points the destination holds already, in the same form as RV(copied) without
    C(chunks) and C(bytes).
  returned: success
  type: list
  elements: dict
  sample: []
chunks_copied:
  description: Chunks sent (or to send, in check mode).
  returned: success
  type: int
  sample: 12
bytes_copied:
  description: Bytes read from the source and sent, before compression (or to send, in check mode).
  returned: success
  type: int
  sample: 50331648
skipped_unvalidated:
  description: With O(validated_only), the ids of the selected restore points that were not copied because no full
    validation has passed them yet.
  returned: success
  type: list
  elements: str
  sample: []
bytes_sent:
  description: Bytes written to the destination (compressed and encrypted); null in check mode.
  returned: success
  type: int
  sample: 31457280
duration:
  description: Seconds the copy took.
  returned: success
  type: float
  sample: 12.5
throughput_mbps:
  description: RV(bytes_copied) per second, in MB/s; null in check mode.
  returned: success
  type: float
  sample: 4.0
destination:
  description: Location of the destination repository.
  returned: success
  type: str
  sample: s3://offsite-backups/vsphere/
run_id:
  description: Id of this run (in the status file and the run log).
  returned: success
  type: str
  sample: 20261126T090000Z-1a2b3c4d
diff:
  description: Destination ids of the selected restore points present before and after the copy.
  returned: diff mode
  type: dict
  sample: {"before": {"restore_points": []}, "after": {"restore_points": ["20261126T083127.123456Z-0e1d2c3b4a596877-9a8b7c6d"]}}
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule, repository_settings_from
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import copy as ops_copy

DESTINATION_SPEC = dict(
    repository=dict(type="str", required=True),
    passphrase=dict(type="str", no_log=True),
    key_file=dict(type="path", no_log=False),
    s3_endpoint_url=dict(type="str"),
    region=dict(type="str"),
    aws_access_key=dict(type="str", no_log=False),
    aws_secret_key=dict(type="str", no_log=True),
    aws_session_token=dict(type="str", no_log=True),
    s3_validate_certs=dict(type="bool", default=True),
    object_lock_days=dict(type="int"),
    storage_class=dict(type="str", choices=["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"]),
)


def destination_settings(options):
    return repository_settings_from(options, options["passphrase"], storage_class=options["storage_class"])


def copy(bv):
    params = bv.params
    request = ops_copy.CopyRequest(destination=destination_settings(params["destination"]), vm=params["vm"],
                                   restore_points=tuple(params["restore_points"] or ()), last=params["last"],
                                   newer_than=params["newer_than"], rate_limit_mbps=params["rate_limit_mbps"],
                                   validated_only=params["validated_only"])
    return ops_copy.copy(request=request, repo=bv.repository_settings(), settings=bv.run_settings())


def main():
    argument_spec = dict(
        destination=dict(type="dict", required=True, options=DESTINATION_SPEC, mutually_exclusive=[["passphrase", "key_file"]]),
        state=dict(type="str", default="present", choices=["present"]),
        vm=dict(type="str"),
        restore_points=dict(type="list", elements="str"),
        last=dict(type="int"),
        newer_than=dict(type="str"),
        workers=dict(type="int", default=4),
        rate_limit_mbps=dict(type="float"),
        validated_only=dict(type="bool", default=False),
        status_file=dict(type="path"),
    )
    bv = BlockvaultModule(argument_spec)
    bv.run(copy)


if __name__ == "__main__":
    main()
