#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vm_backup
short_description: Back up one vSphere VM at block level into a restore point
version_added: 0.1.0
description:
  - Takes a snapshot of the VM (quiesced through VMware Tools by default), reads its disks through VDDK and stores
    them in the repository as one restore point, then removes the snapshot.
  - Incremental backups read only the blocks that Changed Block Tracking (CBT) reports as changed since the previous
    restore point of the same disk; unchanged blocks are carried over, so every restore point is a synthetic full.
    CBT is enabled on the VM when it is off and the VM has no snapshot.
  - Disks are read in parallel; memory use is bounded by O(memory_budget_mb) whatever the disk sizes.
  - A restore point becomes visible only when complete. Re-running with the O(run_id) of a complete restore point
    changes nothing, so the task can be retried safely.
  - For long backups run the task with C(async) and C(poll=0), give O(status_file), and poll it with
    M(blockvault.vsphere.backup_info).
  - The result names the VDDK transport mode each disk was really read with (C(disks[].transport)). When VDDK fell
    back from a faster mode asked for first in O(transports) (for example V(hotadd) to V(nbd)), the task warns,
    naming the disk, the mode asked for and the mode used.
author:
  - blockvault.vsphere contributors (@blockvault)
requirements:
  - pyvmomi
  - VMware VDDK 7 or 8 on the controller (see O(vddk_libdir))
extends_documentation_fragment:
  - blockvault.vsphere.vsphere
  - blockvault.vsphere.vddk
  - blockvault.vsphere.repository
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Connects and returns the plan (disks, full or incremental and why) without taking a snapshot or writing.
  diff_mode:
    support: full
    details:
      - Before is the VM's previous restore point (empty for its first backup); after is the new restore point, or in
        check mode the planned one, each disk with its mode (full or incremental), the reason and the transport.
  platform:
    platforms: posix
  action_group:
    membership:
      - blockvault.vsphere.vsphere
options:
  name:
    description:
      - Name of the VM to back up. It must be unique in the inventory, or in O(datacenter) and O(folder) when they are
        given; otherwise use O(uuid) or O(moid).
      - Exactly one of O(name), O(uuid) and O(moid) is required.
    type: str
    aliases: [vm_name]
  datacenter:
    description:
      - Datacenter to look for the VM in (by O(name) or O(uuid)), as community.vmware's modules take it.
    type: str
    aliases: [datacenter_name]
  folder:
    description:
      - VM folder to look for the VM by O(name) in (its subfolders included), as community.vmware's modules take it
        together with O(datacenter) and O(name), for example V(/DC1/vm/prod), V(DC1/vm/prod), or V(prod) relative to
        the VM folder of O(datacenter).
    type: str
  uuid:
    description:
      - BIOS UUID of the VM (C(config.uuid)).
    type: str
  moid:
    description:
      - Managed object id of the VM, for example V(vm-42).
    type: str
  mode:
    description:
      - V(auto) backs up each disk incrementally when its previous restore point and CBT allow it, fully otherwise.
      - V(full) reads every allocated block.
      - V(incremental) fails for a disk that cannot be backed up incrementally instead of falling back to full.
    type: str
    choices: [auto, full, incremental]
    default: auto
  quiesce:
    description:
      - Quiesce the guest file systems through VMware Tools when taking the snapshot.
    type: bool
    default: true
  allow_crash_consistent:
    description:
      - When a quiesced snapshot fails (no VMware Tools, VSS error), take a crash-consistent snapshot instead of failing.
      - The restore point records which kind of snapshot it comes from.
    type: bool
    default: false
  include_disks:
    description:
      - Back up only these disks, each given by label (V(Hard disk 1)) or device key (V(2000)).
      - Mutually exclusive with O(exclude_disks). By default every disk is backed up, except independent disks and
        physical-mode RDMs, which snapshots do not cover (they are listed in RV(skipped_disks)).
    type: list
    elements: raw
  exclude_disks:
    description:
      - Back up every disk but these, each given by label or device key.
      - Mutually exclusive with O(include_disks).
    type: list
    elements: raw
  workers:
    description:
      - Number of threads that hash, compress, encrypt and store chunks (disks are read by one thread each).
    type: int
    default: 4
  memory_budget_mb:
    description:
      - Memory in MiB the data buffers may use; reading pauses when they are full.
    type: int
    default: 256
  run_id:
    description:
      - Id of this run, recorded in the restore point and in the name of the backup snapshot (C(blockvault-RUN_ID)).
      - When the repository holds a complete restore point of this VM from a run with this id, nothing is done and
        the task reports no change, so a retried task does not back up twice.
      - By default a new id is generated and returned in RV(run_id).
    type: str
  status_file:
    description:
      - Path of a JSON file rewritten atomically with the progress of the run (phase, disk, bytes done and total,
        throughput, estimated end, last error); read it with M(blockvault.vsphere.backup_info).
    type: path
  resume_max_age:
    description:
      - Seconds during which the snapshot of a killed run of this VM may be adopted to resume that run from its
        checkpoint, reading only what it had not stored yet. An older snapshot is removed and the backup starts
        over (its delta disk grows on the datastore as long as it exists).
      - V(0) disables resuming and writing checkpoints.
    type: int
    default: 14400
  checkpoint_interval:
    description:
      - Seconds between two writes of the run's checkpoint (its progress, stored in the repository).
    type: int
    default: 30
notes:
  - The user needs the vSphere privileges to take and remove snapshots, enable CBT and open disks for backup.
  - SIGTERM, SIGINT and SIGHUP, and the end of the job that started the run (the ansible processes of a direct run;
    under C(async), the lease that M(blockvault.vsphere.backup_info) renews with O(blockvault.vsphere.backup_info#module:renew_leases)),
    stop the run as a cancel - its cleanup runs, nothing is committed after the cancel, the O(status_file) ends
    C(cancelled) with C(cancelled_by), and the failure has C(error_class=CancelledError) and C(cancelled_by).
  - Snapshots named C(blockvault-*) left by a killed run are removed before the new snapshot is taken, except the
    snapshot of a killed run that this run resumes (see O(resume_max_age)).
seealso:
  - module: blockvault.vsphere.vm_restore
  - module: blockvault.vsphere.backup_info
  - module: blockvault.vsphere.backup_repository
"""

EXAMPLES = r"""
- name: Back up a VM to a local repository
  blockvault.vsphere.vm_backup:
    hostname: vcenter.example.com
    username: backup@vsphere.local
    password: "{{ vcenter_password }}"
    vddk_libdir: /opt/vmware-vix-disklib-distrib
    repository: /srv/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
    name: web01
  register: backup

- name: Back up two disks of a VM to S3, crash-consistent if quiescing fails, with progress polling
  blockvault.vsphere.vm_backup:
    hostname: vcenter.example.com
    vddk_libdir: /opt/vmware-vix-disklib-distrib
    transports: hotadd:nbdssl:nbd
    repository: s3://backups/vsphere
    region: eu-west-1
    key_file: /etc/blockvault/repository.key
    moid: vm-1042
    include_disks:
      - Hard disk 1
      - 2001
    allow_crash_consistent: true
    run_id: "db01-{{ ansible_date_time.iso8601_basic_short }}"
    status_file: /var/tmp/blockvault-db01.json
  async: 28800
  poll: 0
  register: backup_job

- name: Show what a backup would do
  blockvault.vsphere.vm_backup:
    name: web01
    vddk_libdir: /opt/vmware-vix-disklib-distrib
    repository: /srv/backups/vsphere
  check_mode: true
  register: plan
"""

RETURN = r"""
run_id:
  description: Id of the run (the one given in O(run_id), or the one generated).
  returned: success
  type: str
  sample: 20261126T083000Z-5f2c9a1e
restore_point:
  description: The restore point written (or found complete, for a repeated O(run_id)).
  returned: success, not in check mode
  type: dict
  contains:
    id:
      description: Id of the restore point.
      type: str
      sample: 20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e
    vm:
      description: Name of the VM at backup time.
      type: str
      sample: web01
    created:
      description: When the restore point was committed, UTC ISO-8601.
      type: str
      sample: "2026-11-26T08:31:27Z"
disks:
  description: One entry per disk backed up.
  returned: success, not in check mode
  type: list
  elements: dict
  contains:
    key:
      description: Device key of the disk.
      type: str
      sample: "2000"
    label:
      description: Label of the disk.
      type: str
      sample: Hard disk 1
    mode:
      description: How the disk was read, V(full) or V(incremental).
      type: str
      sample: incremental
    reason:
      description: Why this mode was chosen.
      type: str
      sample: changed areas since 20261125T083127.118204Z-8c1f2e3d4a5b6c7d-1a2b3c4d
    transport:
      description:
        - The VDDK transport mode the disk was really read with (VixDiskLib_GetTransportMode), for example V(hotadd),
          V(san), V(nbdssl) or V(nbd).
        - Null for a restore point written before transports were recorded (a rerun of an old run id).
      type: str
      sample: hotadd
    bytes_read:
      description: Bytes read from the disk.
      type: int
      sample: 1073741824
    bytes_new:
      description: Bytes of chunks the repository did not hold yet (after deduplication, before compression).
      type: int
      sample: 52428800
    bytes_stored:
      description:
        - What those new chunks took in the repository (compressed and, in an encrypted repository, encrypted).
        - Null for a restore point written before this figure was recorded.
      type: int
      sample: 31457280
    sha256:
      description: Block-based SHA-256 of the whole disk, checked again at restore and validation.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
bytes_read:
  description: Bytes read from all disks.
  returned: success, not in check mode
  type: int
  sample: 2147483648
bytes_written:
  description: Bytes written to the repository (compressed and encrypted).
  returned: success, not in check mode
  type: int
  sample: 31457280
duration:
  description: Duration of the run in seconds.
  returned: success, not in check mode
  type: float
  sample: 84.2
throughput_mbps:
  description: Bytes read per second during the run, in MB/s (10^6 bytes).
  returned: success, not in check mode
  type: float
  sample: 25.5
quiesced:
  description: Whether the snapshot was quiesced (V(false) for a crash-consistent restore point).
  returned: success, when a backup ran
  type: bool
  sample: true
chunk_presence:
  description:
    - How the backup learnt which chunks the repository already stores (deduplication), and the requests it cost.
    - C(method) is V(filter) (the presence filter GC writes, each chunk it cannot rule out confirmed by one request),
      or starts with V(listing) (a listing of every stored chunk; the reason the filter was not used follows in
      parentheses), or with V(filter, then listing) (the filter's request budget ran out).
    - C(requests) counts the presence requests (0 after a listing).
    - Null for a restore point made by a version that did not record it.
  returned: success, when a backup ran
  type: dict
  sample: {"method": "filter", "requests": 12}
skipped_disks:
  description: Disks not backed up, as a mapping from label to the reason.
  returned: success, when a backup ran
  type: dict
  sample: {"Hard disk 3": "in exclude_disks"}
snapshot:
  description:
    - What became of the backup snapshot once the restore point was committed. V(removed) as planned;
      V(already_gone) when it had been removed from outside (a warning says so); V(left) with the reason when it could
      not be removed (a warning names it; the next backup of the VM removes it). Neither makes the backup fail, since
      the restore point exists. V(not_taken) when the restore point of O(run_id) existed already and this call took
      no snapshot.
  returned: success, not in check mode
  type: str
  sample: removed
transports_requested:
  description: The VDDK transport list the backup asked for (O(transports)); each disk's C(transport) is the one used.
  returned: success, not in check mode
  type: str
  sample: "hotadd:nbdssl:nbd"
resumed:
  description: Set when this run resumed a killed run from its checkpoint; the bytes still to read and the total.
  returned: success, when a backup ran
  type: dict
  contains:
    from_run:
      description: Id of the killed run whose snapshot and checkpoint were adopted.
      type: str
      sample: 20261126T083000Z-5f2c9a1e
    bytes_left:
      description: Bytes this run had to read.
      type: int
      sample: 1073741824
    bytes_total:
      description: Bytes the killed run had planned to read.
      type: int
      sample: 2147483648
resume_declined:
  description: Set when a checkpoint of a killed run was found but not used; the run started over.
  returned: success, when a backup ran
  type: dict
  contains:
    from_run:
      description: Id of the killed run.
      type: str
      sample: 20261126T083000Z-5f2c9a1e
    reason:
      description: Why it was not resumed.
      type: str
      sample: its snapshot blockvault-20261126T083000Z-5f2c9a1e no longer exists
msg:
  description: What happened, when it is worth saying (a resume, a declined resume, an unchanged repeated run).
  returned: sometimes
  type: str
  sample: resumed from checkpoint of run 20261126T083000Z-5f2c9a1e, 1073741824 of 2147483648 bytes left
vm:
  description: Name of the VM (check mode).
  returned: check mode
  type: str
  sample: web01
plan:
  description: What the backup would do.
  returned: check mode
  type: dict
  contains:
    disks:
      description: The disks that would be backed up, each with key, label, capacity (bytes), mode and reason.
      type: list
      elements: dict
      sample: [{"key": "2000", "label": "Hard disk 1", "capacity": 17179869184, "mode": "full",
                "reason": "this is the VM's first restore point"}]
    skipped:
      description: Disks that would not be backed up, as a mapping from label to the reason.
      type: dict
      sample: {}
    previous_restore_point:
      description: Id of the restore point an incremental backup would build on, or null.
      type: str
      sample: 20261125T083127.118204Z-8c1f2e3d4a5b6c7d-1a2b3c4d
diff:
  description: The VM's previous restore point and the new (in check mode, the planned) one.
  returned: diff mode, when a backup ran or was planned
  type: dict
  contains:
    before:
      description:
        - The previous restore point of the VM (C(restore_point), C(vm), C(created), C(transports_requested) and
          C(disks) with C(key), C(label), C(capacity), C(mode), C(reason) and C(transport)); empty for the VM's first
          backup.
      type: dict
    after:
      description:
        - The new restore point in the same form; in check mode the planned one (C(restore_point) says it is to be
          made, and each disk has the mode and reason planned, without a transport, which VDDK picks when it opens
          the disk).
      type: dict
  sample:
    before: {}
    after: {"restore_point": "(new, of this run)", "vm": "web01", "transports_requested": "nbdssl:nbd",
            "disks": [{"key": "2000", "label": "Hard disk 1", "capacity": 17179869184, "mode": "full",
                       "reason": "this is the VM's first restore point"}]}
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule, disk_reference
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import backup as ops_backup


def _disk_references(values):
    return tuple(disk_reference(value) for value in values or ())


def backup(bv):
    params = bv.params
    request = ops_backup.BackupRequest(
        vm=dict((key, params[key]) for key in ("name", "uuid", "moid", "datacenter", "folder") if params[key]),
        mode=params["mode"],
        quiesce=params["quiesce"],
        allow_crash_consistent=params["allow_crash_consistent"],
        include_disks=_disk_references(params["include_disks"]),
        exclude_disks=_disk_references(params["exclude_disks"]),
        run_id=params["run_id"],
        resume_max_age=params["resume_max_age"],
        checkpoint_interval=params["checkpoint_interval"],
    )
    return ops_backup.backup_vm(request=request, endpoints=bv.endpoints(), settings=bv.run_settings())


def main():
    argument_spec = dict(
        name=dict(type="str", aliases=["vm_name"]),
        uuid=dict(type="str"),
        moid=dict(type="str"),
        datacenter=dict(type="str", aliases=["datacenter_name"]),
        folder=dict(type="str"),
        mode=dict(type="str", default="auto", choices=["auto", "full", "incremental"]),
        quiesce=dict(type="bool", default=True),
        allow_crash_consistent=dict(type="bool", default=False),
        include_disks=dict(type="list", elements="raw"),
        exclude_disks=dict(type="list", elements="raw"),
        workers=dict(type="int", default=4),
        memory_budget_mb=dict(type="int", default=256),
        run_id=dict(type="str"),
        status_file=dict(type="path"),
        resume_max_age=dict(type="int", default=14400),
        checkpoint_interval=dict(type="int", default=30),
    )
    bv = BlockvaultModule(
        argument_spec,
        mutually_exclusive=[["name", "uuid", "moid"], ["include_disks", "exclude_disks"]],
        required_one_of=[["name", "uuid", "moid"]],
    )
    bv.run(backup)


if __name__ == "__main__":
    main()
