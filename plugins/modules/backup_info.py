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
  - Without O(status_file) and O(status_files), returns the repository's settings and lists its restore points per VM (of one VM with
    O(vm)) with their disks, modes and sizes. A restore point whose manifest is damaged is left out with a warning
    naming it (its VM is unknown, a VM's name being stored inside its manifest); the listing goes on.
  - With O(status_file), reads the status file of a run of M(blockvault.vsphere.vm_backup) or
    M(blockvault.vsphere.vm_restore), for example one started with C(async) and C(poll=0), and returns its progress.
    The repository is not opened then, so the repository options are not needed.
  - With O(status_files), reads the status files of several runs at once - the VMs of a batch backed up in
    parallel - and returns one entry per run (RV(runs)) and one line showing them all (RV(progress_line)), so that
    one polling loop shows every run's progress together. A status file that does not exist yet is an answer too
    (its run has not started writing it), not a failure.
  - Lists the running exports of M(blockvault.vsphere.backup_export) too (RV(exports)); like every call of that
    module it removes what is left of exports whose nbdkit died.
  - Never changes anything but the lease files of O(renew_leases) and such leftovers of dead exports.
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
      - List only the restore points of the VM with this name. Mutually exclusive with O(status_file) and
        O(status_files).
    type: str
  status_file:
    description:
      - Status file of a run (the O(blockvault.vsphere.vm_backup#module:status_file) of its task) to read instead of
        listing restore points.
      - Fails when the file does not exist (yet). Mutually exclusive with O(status_files).
    type: path
  status_files:
    description:
      - Status files of several runs (each the O(blockvault.vsphere.vm_backup#module:status_file) of its task) to
        read at once instead of listing restore points; RV(runs) has one entry per file, in this order, and
        RV(progress_line) shows them on one line.
      - A file that does not exist yet, or cannot be read, does not fail the call; its entry says so.
      - The role C(blockvault.vsphere.progress) passes the status files of every run of a batch, so that the
        progress of VMs backed up in parallel is shown together.
    type: list
    elements: path
  renew_leases:
    description:
      - Status files of runs started with C(async) whose leases this call renews - the C(<status file>.lease) file
        next to each, naming the run and this ansible process - to tell each run that the job which started it is
        still there. A run whose lease it has seen stops as cancelled when the lease has not been renewed for
        O(lease_seconds) seconds, or when the ansible process the lease names has ended (same machine).
      - A status file whose run is not running (or that does not exist yet) is skipped.
      - The role C(blockvault.vsphere.progress) passes the status files of the runs it waits for.
    type: list
    elements: path
    default: []
  lease_seconds:
    description:
      - How long a lease renewed by this call stays valid; poll again well within it (the progress role uses three
        poll intervals plus 15 seconds).
    type: int
    default: 60
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
  until: progress.status.state in ['succeeded', 'failed', 'cancelled']
  retries: 2880
  delay: 10

- name: Print the last progress line of the run
  ansible.builtin.debug:
    msg: "{{ progress.status.label }}: {{ progress.status.progress_line }}"

- name: Show the progress of two backups running in parallel, together, until both ended
  blockvault.vsphere.backup_info:
    status_files:
      - /var/tmp/blockvault-db01.json
      - /var/tmp/blockvault-web01.json
  register: batch
  # each poll prints e.g. "db01: transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA 29s | web01: snapshot: starting"
  until: batch.all_ended
  retries: 2880
  delay: 10
"""

RETURN = r"""
repository:
  description: The repository's settings, as M(blockvault.vsphere.backup_repository) returns them.
  returned: when neither O(status_file) nor O(status_files) is given
  type: dict
  sample: {"location": "/srv/backups/vsphere", "id": "3b2f0a4c6d8e4f10a1b2c3d4e5f60718", "format_version": 1,
           "chunk_size": 4194304, "encryption": true, "compression_level": 3, "created": "2026-11-20T10:00:00Z",
           "key_slots": [{"id": "k1", "type": "passphrase", "label": "", "created": "2026-11-20T10:00:00Z"}]}
vms:
  description:
    - The restore points per VM, as a mapping from VM name to its restore points, oldest first.
    - Each restore point has C(id), C(vm) (name), C(vm_key) (the repository's key of the VM), C(run_id),
      C(created) (UTC ISO-8601), C(backup_mode) (V(full), V(incremental) or V(auto) when its disks differ),
      C(pinned) (prune keeps it, see M(blockvault.vsphere.backup_restore_point)), C(note) ("" when it has none),
      C(bytes_read), C(bytes_written) (stored in the repository, compressed and encrypted), C(transports_requested)
      (the VDDK transport list the backup asked for), and C(disks), each with C(key), C(label), C(capacity) (bytes),
      C(mode), C(reason), C(transport) (the VDDK transport mode the disk was really read with, for example V(hotadd)
      or V(nbd)), C(bytes_new) (bytes of chunks the repository did not hold yet, before compression),
      C(bytes_stored) (what those chunks took in the repository, compressed and encrypted) and C(sha256).
    - Restore points written before these fields existed have C(transport) and C(bytes_stored) null and hold the stored
      (compressed) size in C(bytes_new).
  returned: when neither O(status_file) nor O(status_files) is given
  type: dict
  sample:
    web01:
      - id: 20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e
        vm: web01
        vm_key: 4211c2f0-9d1c-7e55-0f2b-3c8a1d2e4f60
        run_id: 20261126T083000Z-5f2c9a1e
        created: "2026-11-26T08:31:27Z"
        backup_mode: incremental
        pinned: true
        note: before the 2026-12 upgrade
        bytes_read: 52428800
        bytes_written: 10485760
        transports_requested: "hotadd:nbdssl:nbd"
        disks:
          - key: "2000"
            label: Hard disk 1
            capacity: 17179869184
            mode: incremental
            reason: changed areas since 20261125T083127.118204Z-8c1f2e3d4a5b6c7d-1a2b3c4d
            transport: hotadd
            bytes_new: 20971520
            bytes_stored: 10485760
            sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
exports:
  description: The running exports of M(blockvault.vsphere.backup_export) on this host (each as that module returns its C(export)).
  returned: when listing restore points
  type: list
  elements: dict
  sample: [{"name": "db01-test", "uris": {"2000": "nbd+unix:///?socket=/tmp/blockvault-export-k2j3h4/disk-2000.sock"}}]
count:
  description: Number of restore points listed.
  returned: when neither O(status_file) nor O(status_files) is given
  type: int
  sample: 14
leases_renewed:
  description: The status files of O(renew_leases) whose lease was renewed (their runs are running).
  returned: when O(renew_leases) is given
  type: list
  elements: str
  sample: ["/var/tmp/blockvault/nightly-backup-db01.json"]
status:
  description:
    - The run's status document as last written by the run, with C(label) and C(progress_line) added for display.
  returned: when O(status_file) is given
  type: dict
  contains:
    label:
      description: Who the run is about, to print before its progress line (the VM's name, else the run id).
      type: str
      sample: db01
    progress_line:
      description:
        - The run's progress on one line, ready to print - the phase (or the final state), the percent done, the
          bytes done of the total in the same binary unit (KiB, MiB, GiB...), the throughput in MiB/s (2^20 bytes
          per second, from RV(status.mb_per_s)) and, while running, the ETA.
        - Says V(starting) in place of byte counts until the run knows its totals, and ends with the last error
          when there is one.
      type: str
      sample: "transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA 29s"
    run_id:
      description: Id of the run.
      type: str
      sample: 20261126T083000Z-5f2c9a1e
    vm:
      description: Name of the VM.
      type: str
      sample: db01
    state:
      description:
        - V(running), V(succeeded), V(failed) or V(cancelled).
        - A cancelled run also has C(cancelled_by) - the signal (V(SIGTERM), V(SIGINT), V(SIGHUP)),
          V(controller gone) or V(lease expired) - and its cancel message as C(last_error).
      type: str
      sample: running
    phase:
      description: What the run is doing (for example V(snapshot), V(transfer), V(cleanup)).
      type: str
      sample: transfer
    started:
      description: When the run started, UTC ISO-8601.
      type: str
      sample: "2026-11-26T08:30:00Z"
    updated:
      description: When the file was last written, UTC ISO-8601.
      type: str
      sample: "2026-11-26T08:30:10Z"
    bytes_done:
      description: Bytes transferred so far.
      type: int
      sample: 1073741824
    bytes_total:
      description: Bytes to transfer in all (known per disk once its plan is made).
      type: int
      sample: 4294967296
    mb_per_s:
      description: Average throughput since the start, in MB/s (10^6 bytes per second; RV(status.progress_line) shows it in MiB/s).
      type: float
      sample: 112.5
    eta_seconds:
      description: Estimated seconds to the end of the transfer, null until known.
      type: int
      sample: 29
    disks:
      description: Progress per disk, each with C(key), C(phase), C(bytes_done) and C(bytes_total).
      type: list
      elements: dict
      sample: [{"key": "2000", "phase": "transfer", "bytes_done": 1073741824, "bytes_total": 4294967296}]
    last_error:
      description: The last error, with C(message) (never a secret nor a traceback) and C(class); null if none.
      type: dict
      sample: null
runs:
  description:
    - One entry per file of O(status_files), in that order.
  returned: when O(status_files) is given
  type: list
  elements: dict
  contains:
    status_file:
      description: The status file read.
      type: str
      sample: /var/tmp/blockvault/nightly-backup-db01.json
    found:
      description: Whether the status file was read (false while it does not exist yet, or when it cannot be read).
      type: bool
      sample: true
    ended:
      description: Whether the run has ended - its status file says V(succeeded), V(failed) or V(cancelled).
      type: bool
      sample: false
    label:
      description: The run's RV(status.label); while its status file was not read, the file's name.
      type: str
      sample: db01
    progress_line:
      description:
        - The run's RV(status.progress_line); while its status file was not read, V(no status yet) (the file does
          not exist) or V(status unreadable) with the reason.
      type: str
      sample: "transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA 29s"
    status:
      description: The run's status document with C(label) and C(progress_line), as RV(status); null when not read.
      type: dict
      sample: {"run_id": "20261126T083000Z-5f2c9a1e", "vm": "db01", "state": "running", "phase": "transfer",
               "label": "db01", "progress_line": "transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA 29s"}
    error:
      description: Why the status file could not be read, when it exists; null otherwise.
      type: str
      sample: null
progress_line:
  description:
    - "Every run of O(status_files) on one line, in order, each as C(label: progress_line), separated by C( | )."
  returned: when O(status_files) is given
  type: str
  sample: "db01: transfer 25.0%: 1.00 GiB of 4.00 GiB, 107.3 MiB/s, ETA 29s | web01: snapshot: starting"
all_ended:
  description: Whether every run of O(status_files) has ended (each status file read and saying it ended).
  returned: when O(status_files) is given
  type: bool
  sample: false
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule
from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import cancel as ops_cancel
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import info as ops_info
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import export as ops_export
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import repository as ops_repository
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.status_view import runs_view, status_view


def info(bv):
    params = bv.params
    if params["lease_seconds"] < 1:
        raise ConfigurationError("lease_seconds is %d: give 1 or more." % params["lease_seconds"])
    renewed = [path for path in params["renew_leases"] if ops_cancel.renew_lease(path, params["lease_seconds"])]
    if params["status_files"] is not None:
        result = dict(runs_view(ops_info.run_statuses(params["status_files"])), changed=False)
        if params["renew_leases"]:
            result["leases_renewed"] = renewed
        return result
    if params["renew_leases"] and not params["status_file"] and not params["repository"]:
        return {"changed": False, "leases_renewed": renewed}
    if params["status_file"]:
        status = ops_info.run_status(status_file=params["status_file"])["status"]
        result = {"changed": False, "status": dict(status, **status_view(status))}
        if params["renew_leases"]:
            result["leases_renewed"] = renewed
        return result
    repo = bv.repository_settings()
    listing = ops_info.list_restore_points(repo=repo, vm=params["vm"])
    exports = ops_export.list_exports()     # the exports of this host (whatever their repository)
    return {
        "changed": False,
        "repository": ops_repository.show_repository(repo=repo)["repository"],
        "vms": listing["vms"],
        "count": listing["count"],
        "exports": exports["exports"],
        "warnings": listing["warnings"] + exports["warnings"],
    }


def main():
    argument_spec = dict(
        vm=dict(type="str"),
        status_file=dict(type="path"),
        status_files=dict(type="list", elements="path"),
        renew_leases=dict(type="list", elements="path", default=[]),
        lease_seconds=dict(type="int", default=60),
    )
    bv = BlockvaultModule(argument_spec, mutually_exclusive=[["vm", "status_file", "status_files"]])
    # a read of a moment, run every few seconds by the roles' polling: nothing to cancel
    bv.cancellable = False
    bv.run(info)


if __name__ == "__main__":
    main()
