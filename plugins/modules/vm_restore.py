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
  - O(target=new_vm) creates a new VM named O(new_name) from the configuration captured at backup time, writes its
    disks, and removes the VM again if anything fails, so that no half-restored VM is left.
  - O(target=in_place) rolls the disks of an existing VM (by default the backed-up VM itself) back to the restore
    point; only the chunks that differ are written.
  - O(target=disk) adds one disk of the restore point as a new disk to the VM O(target_vm).
  - O(target=file) writes one disk as a raw image file on the controller; it needs neither vSphere nor VDDK.
  - The block-based SHA-256 of each disk written is checked against the one recorded at backup.
  - Nothing is overwritten without O(force) (a powered-on VM, an existing VM named O(new_name), an existing O(path)).
  - Reruns converge. A VM this module restored from the same restore point (it carries the advanced setting
    C(blockvault.restore.from), written once its disks are complete) is left as it is and the task reports no change,
    so a DR playbook rerun after a later step failed resumes where it stopped. With O(target=disk), a disk already
    added from the same restore point (the advanced setting C(blockvault.restore.disk.<restore point>.<disk key>)
    names it) is not added again.
author:
  - blockvault.vsphere contributors (@blockvault)
requirements:
  - pyvmomi
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
    details: Resolves the restore point, the target and the placement, and refuses what would be refused, without writing.
  diff_mode:
    support: full
    details:
      - Returns the target before and after (VM name, existence, power state, disks; or the file).
      - For O(target=new_vm) the after side has the placement (datacenter, folder, compute, resource pool, host,
        datastore) and each network adapter's network before and after O(overrides.network_mapping).
      - For O(target=in_place) the after side says the VM ends powered off (and whether the restore powers it off)
        and, per disk, how many chunks are written; in check mode an upper bound (V(up to N)), since which chunks
        differ is learnt only by the rollback itself.
  platform:
    platforms: posix
  action_group:
    membership:
      - blockvault.vsphere.vsphere
options:
  restore_point:
    description:
      - Id of the restore point to restore, or V(latest) for the newest restore point of the VM named O(name)
        (the newest one created before O(before), when given).
    type: str
    default: latest
  name:
    description:
      - Name of the backed-up VM, as recorded in its restore points. Required with O(restore_point=latest).
    type: str
  before:
    description:
      - With O(restore_point=latest), choose the newest restore point created strictly before this time,
        ISO-8601 (for example V(2026-11-25T22:00:00Z); UTC when no offset is given).
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
  target_vm:
    description:
      - The existing VM to restore to. Required with O(target=disk).
      - With O(target=in_place) it defaults to the backed-up VM (found by its instance UUID, else by its name).
    type: dict
    suboptions:
      name:
        description:
          - Name of the VM (it must be unique).
        type: str
      uuid:
        description:
          - BIOS UUID of the VM.
        type: str
      moid:
        description:
          - Managed object id of the VM, for example V(vm-42).
        type: str
  disk:
    description:
      - The disk of the restore point to restore with O(target=disk) or O(target=file), by label (V(Hard disk 1))
        or device key (V(2000)). Defaults to the first disk of the restore point.
    type: raw
  path:
    description:
      - Raw image file to write, or a block device (a LUN, a local disk) to write the disk onto in place. Required with
        O(target=file).
      - A block device is written in place with direct I/O, only with O(force=true), never while it (or one of its
        partitions) is mounted or held by LVM, device-mapper or RAID, and never when it is smaller than the disk; on a
        larger device the bytes past the disk are left as they were (RV(device) and a warning say so).
      - A directory, a character device, a FIFO or a socket is refused.
    type: path
  format:
    description:
      - Format of the image file O(target=file) writes. V(raw) is a sparse raw image, written by the product itself
        and checked against the disk's recorded checksum.
      - V(qcow2) (sparse) and V(vmdk) are written by C(qemu-img convert) (Debian package C(qemu-utils)) reading the
        restore point through a private, read-only NBD export (nbdkit, as M(blockvault.vsphere.backup_export)); every
        chunk is verified against its digest as it is read and zero chunks are skipped.
      - A block device O(path) takes V(raw) only.
    type: str
    choices: [raw, qcow2, vmdk]
    default: raw
  vmdk_subformat:
    description:
      - With O(format=vmdk), V(streamOptimized) (compressed grains, what vSphere imports - an OVF/OVA, ovftool, a
        content library) or V(monolithicSparse) (VMware Workstation, qemu). Defaults to V(streamOptimized).
    type: str
    choices: [streamOptimized, monolithicSparse]
  overrides:
    description:
      - Changes to the captured configuration and placement of the VM, for O(target=new_vm).
        O(target=disk) uses O(overrides.disk_format) only.
    type: dict
    suboptions:
      datacenter:
        description:
          - Datacenter of the new VM. Needed only when vCenter has several.
        type: str
      folder:
        description:
          - VM folder for the new VM (name or inventory path); default the datacenter's root VM folder.
        type: str
      cluster:
        description:
          - Cluster (or standalone host) whose root resource pool receives the new VM. Needed when the datacenter has
            several clusters or hosts and O(overrides.resource_pool) is not given.
        type: str
      resource_pool:
        description:
          - Resource pool for the new VM (takes precedence over O(overrides.cluster)).
        type: str
      host:
        description:
          - ESXi host to run the new VM on.
        type: str
      datastore:
        description:
          - Datastore for the new VM's files and disks; default the datastore of the backed-up VM's first disk.
        type: str
      network_mapping:
        description:
          - Networks to replace, as a mapping from the network name at backup time to the network to connect to.
          - Every key must be a network the backed-up VM had a network adapter on; any other (a typo) is refused,
            naming the networks the VM had, unless O(overrides.shared_network_mapping) is set.
        type: dict
      shared_network_mapping:
        description:
          - O(overrides.network_mapping) is one site's mapping shared by several VMs (a DR runbook), so entries for
            networks this VM never had are ignored instead of refused.
        type: bool
        default: false
      disk_format:
        description:
          - Provisioning of the disks created, V(same) as at backup, V(thin), V(thick) (lazy zeroed) or
            V(eagerzeroedthick).
        type: str
        choices: [same, thin, thick, eagerzeroedthick]
        default: same
      power_on:
        description:
          - Power the VM on after the restore, the new VM with O(target=new_vm) or the rolled-back VM with
            O(target=in_place) (which a forced rollback of a running VM otherwise leaves off).
        type: bool
        default: false
      keep_identity:
        description:
          - With O(target=new_vm), give the new VM the backed-up VM's BIOS and instance UUIDs and its MAC addresses, as a
            DR restore wants (licences, monitoring agents and DHCP reservations keep working).
          - Refused, naming the VM, when another VM of the vCenter has one of them (vCenter would silently change a
            duplicate instance UUID; two NICs with one MAC break both VMs' network). Off by default; the DR playbook
            turns it on.
        type: bool
        default: false
  force:
    description:
      - Allow the restore to replace or overwrite, that is to power off and roll back a running VM in place, to power
        off and replace an existing VM named O(new_name), or to replace an existing O(path) or overwrite the block device
        O(path).
    type: bool
    default: false
  workers:
    description:
      - Number of threads that fetch, decrypt and decompress chunks.
    type: int
    default: 4
  memory_budget_mb:
    description:
      - Memory in MiB the data buffers may use.
    type: int
    default: 256
  status_file:
    description:
      - Path of a JSON file rewritten atomically with the progress of the run; read it with
        M(blockvault.vsphere.backup_info).
    type: path
notes:
  - The restore point is chosen once, at the start; backups written meanwhile do not change it.
  - Choosing V(latest) (or O(before)) by VM name passes over restore points whose manifest is damaged, with a
    warning naming each (their VM is unknown, a VM's name being stored inside its manifest). A restore point asked for
    by id fails when its manifest is damaged.
  - SIGTERM, SIGINT and SIGHUP, and the end of the job that started the run (the ansible processes of a direct run;
    under C(async), the lease that M(blockvault.vsphere.backup_info) renews with O(blockvault.vsphere.backup_info#module:renew_leases)),
    stop the run as a cancel - its cleanup runs, nothing is committed after the cancel, the O(status_file) ends
    C(cancelled) with C(cancelled_by), and the failure has C(error_class=CancelledError) and C(cancelled_by).
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
      cluster: cluster-b
      datastore: ds-fast-02
      network_mapping:
        VM Network: Isolated Restore
      disk_format: thin
      power_on: true

- name: Roll web01 back in place to its last restore point of yesterday
  blockvault.vsphere.vm_restore:
    vddk_libdir: /opt/vmware-vix-disklib-distrib
    repository: /srv/backups/vsphere
    name: web01
    before: "2026-11-26T00:00:00Z"
    target: in_place
    force: true
  diff: true

- name: Attach the data disk of a restore point to a helper VM to pick files from it
  blockvault.vsphere.vm_restore:
    vddk_libdir: /opt/vmware-vix-disklib-distrib
    repository: /srv/backups/vsphere
    restore_point: 20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e
    target: disk
    disk: Hard disk 2
    target_vm:
      name: file-recovery-helper

- name: Extract one disk as a raw image (no vSphere needed)
  blockvault.vsphere.vm_restore:
    repository: s3://backups/vsphere
    key_file: /etc/blockvault/repository.key
    restore_point: 20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e
    target: file
    disk: "2001"
    path: /var/tmp/web01-disk2.raw
"""

RETURN = r"""
msg:
  description:
    - What was restored and where - the restore point (id and VM), the target (the new VM or the VM with its moid,
      the file or the block device), the disks and the bytes written (binary units); in check mode what would be
      restored where.
    - When the target already held the restore point (a rerun of a restore that succeeded), why it was left as it is.
  returned: success
  type: str
  sample: "Restored restore point 20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e of VM web01 into the new VM
    web01-restored (vm-1077): 2 disk(s), 12.00 GiB written, powered on."
restore_point:
  description: The restore point restored.
  returned: success
  type: dict
  contains:
    id:
      description: Id of the restore point.
      type: str
      sample: 20261126T083127.412093Z-8c1f2e3d4a5b6c7d-5f2c9a1e
    vm:
      description: Name of the backed-up VM.
      type: str
      sample: web01
    created:
      description: When the restore point was taken, UTC ISO-8601.
      type: str
      sample: "2026-11-26T08:30:02Z"
vm:
  description: The VM restored to.
  returned: success, when O(target) is not V(file)
  type: dict
  contains:
    name:
      description: Name of the VM.
      type: str
      sample: web01-restored
    moid:
      description: Managed object id of the VM (not known in check mode for a VM still to create).
      type: str
      sample: vm-1077
    powered_on:
      description: Whether the new VM was powered on (O(target=new_vm) only).
      type: bool
      sample: true
path:
  description: Absolute path of the image file (or the block device) written.
  returned: success, when O(target=file)
  type: str
  sample: /var/tmp/web01-disk2.raw
format:
  description: Format of the image written (V(raw), V(qcow2), or V(vmdk) with its subformat in parentheses).
  returned: success, when O(target=file) and O(path) is not a block device
  type: str
  sample: vmdk (streamOptimized)
device:
  description: The block device written, when O(path) is one.
  returned: success, when O(target=file) and O(path) is a block device
  type: dict
  contains:
    size:
      description: Size of the device in bytes.
      type: int
      sample: 107374182400
    bytes_past_disk:
      description: Bytes of the device after the restored disk, left as they were.
      type: int
      sample: 0
disks:
  description: One entry per disk written (or that would be written, in check mode, with RV(disks[].key) and
    RV(disks[].sha256) only).
  returned: success
  type: list
  elements: dict
  contains:
    key:
      description: Device key of the disk in the restore point.
      type: str
      sample: "2000"
    label:
      description: Label of the disk in the restore point.
      type: str
      sample: Hard disk 1
    sha256:
      description: Block-based SHA-256 of the disk as written; equal to the one recorded at backup.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    bytes_written:
      description: Bytes written to the disk.
      type: int
      sample: 1073741824
    bytes_zeroed:
      description: Bytes of ranges zeroed (data where the restore point has zeros).
      type: int
      sample: 0
    chunks_written:
      description: Chunks written.
      type: int
      sample: 256
    chunks_zeroed:
      description: Chunks zeroed.
      type: int
      sample: 0
    chunks_unchanged:
      description: Chunks already equal to the restore point and left alone (O(target=in_place)).
      type: int
      sample: 0
    method:
      description:
        - How the in-place rollback chose what to write (O(target=in_place)).
        - V(cbt) writes only the chunks Changed Block Tracking reports changed since the restore point, reading none.
        - V(compare) reads every chunk of the disk and writes those that differ.
      type: str
      returned: O(target=in_place)
      sample: cbt
    reason:
      description: Why that method was used (for V(compare), why CBT could not answer).
      type: str
      returned: O(target=in_place)
      sample: CBT reports 3 chunk(s) changed since the restore point's change id 52 de c0 d9/17
cbt_reset:
  description:
    - O(target=in_place) only. True when Changed Block Tracking was switched off before writing, because the
      writes of a rollback make the VM's change ids meaningless; the next backup of the VM then reads in full and
      turns CBT on again.
  returned: O(target=in_place)
  type: bool
  sample: true
diff:
  description: The target before and after the restore.
  returned: diff mode
  type: dict
  contains:
    before:
      description: State of the target before.
      type: dict
    after:
      description:
        - State of the target after.
        - O(target=new_vm) adds C(placement) ({datacenter, folder, compute, resource_pool, host, datastore}) and
          C(networks) (per adapter C(adapter), C(backed_up_network) and C(network), the one it connects to).
        - O(target=in_place) adds C(power_state) (V(poweredOff)), C(powered_off_by_restore) and per disk
          C(chunks_to_write) (in check mode a text such as V(up to 256 (of 256; ...)), else the number written).
      type: dict
      sample: {"vm": "web01", "power_state": "poweredOff", "powered_off_by_restore": true,
               "disks": [{"key": "2000", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                          "chunks_to_write": 12}]}
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule, disk_reference
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import restore as ops_restore
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.status_view import restore_message


def _target(params):
    """The engine's restore target from the module's options (the option names are translated here)."""
    target, disk = params["target"], disk_reference(params["disk"])
    overrides = params["overrides"] or {}
    if target == "file":
        image_format = ops_restore.ImageFormat(name=params["format"], vmdk_subformat=params["vmdk_subformat"])
        return ops_restore.File(path=params["path"], disk=disk, force=params["force"], image_format=image_format)
    if target == "disk":
        return ops_restore.DiskToVm(vm=params["target_vm"], disk=disk, disk_format=overrides.get("disk_format") or "same")
    if target == "in_place":
        return ops_restore.InPlace(vm=params["target_vm"], force=params["force"], power_on=bool(overrides.get("power_on")))
    placement = ops_restore.Placement(
        datacenter=overrides.get("datacenter"), folder=overrides.get("folder"),
        resource_pool=overrides.get("resource_pool") or overrides.get("cluster"), host=overrides.get("host"),
        datastore=overrides.get("datastore"))
    return ops_restore.NewVm(name=params["new_name"], placement=placement, network_mapping=overrides.get("network_mapping"),
                             disk_format=overrides.get("disk_format") or "same", power_on=bool(overrides.get("power_on")),
                             force=params["force"], keep_identity=bool(overrides.get("keep_identity")),
                             shared_network_mapping=bool(overrides.get("shared_network_mapping")))


def restore(bv):
    params = bv.params
    request = ops_restore.RestoreRequest(
        source=ops_restore.RestorePointQuery(restore_point=params["restore_point"], vm_name=params["name"],
                                             before=params["before"]),
        target=_target(params),
    )
    result = ops_restore.restore(request=request, endpoints=bv.endpoints(vsphere=request.target.needs_vsphere),
                                 settings=bv.run_settings())
    # what was restored, where: kept when the operation said why it left the target as it was (a rerun)
    if result.get("msg"):
        return result
    return dict(result, msg=restore_message(result, params["target"], check=bv.check_mode))


def main():
    argument_spec = dict(
        restore_point=dict(type="str", default="latest"),
        name=dict(type="str"),
        before=dict(type="str"),
        target=dict(type="str", default="new_vm", choices=["new_vm", "in_place", "disk", "file"]),
        new_name=dict(type="str"),
        target_vm=dict(
            type="dict",
            options=dict(name=dict(type="str"), uuid=dict(type="str"), moid=dict(type="str")),
            mutually_exclusive=[["name", "uuid", "moid"]],
            required_one_of=[["name", "uuid", "moid"]],
        ),
        disk=dict(type="raw"),
        path=dict(type="path"),
        format=dict(type="str", default="raw", choices=["raw", "qcow2", "vmdk"]),
        vmdk_subformat=dict(type="str", choices=["streamOptimized", "monolithicSparse"]),
        overrides=dict(
            type="dict",
            apply_defaults=True,
            options=dict(
                datacenter=dict(type="str"),
                folder=dict(type="str"),
                cluster=dict(type="str"),
                resource_pool=dict(type="str"),
                host=dict(type="str"),
                datastore=dict(type="str"),
                network_mapping=dict(type="dict"),
                shared_network_mapping=dict(type="bool", default=False),
                disk_format=dict(type="str", default="same", choices=["same", "thin", "thick", "eagerzeroedthick"]),
                power_on=dict(type="bool", default=False),
                keep_identity=dict(type="bool", default=False),
            ),
        ),
        force=dict(type="bool", default=False),
        workers=dict(type="int", default=4),
        memory_budget_mb=dict(type="int", default=256),
        status_file=dict(type="path"),
    )
    bv = BlockvaultModule(
        argument_spec,
        required_if=[
            ["restore_point", "latest", ["name"]],
            ["target", "new_vm", ["new_name"]],
            ["target", "disk", ["target_vm"]],
            ["target", "file", ["path"]],
        ],
    )
    bv.run(restore)


if __name__ == "__main__":
    main()
