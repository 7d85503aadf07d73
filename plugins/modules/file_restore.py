#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: file_restore
short_description: Inspect a restore point's guest, list its directories, restore files to the proxy
version_added: 0.3.0
description:
  - Looks inside a restore point without restoring a disk. The restore point's disks are served read-only over NBD
    (nbdkit reading through the repository, which fetches only the chunks a read touches) and one libguestfs appliance
    reads them with read-only drives and read-only mounts. Nothing is ever written to the repository.
  - O(operation=inspect) returns the operating systems found (type, distribution, version, hostname, mount points,
    Windows drive letters) and every filesystem with the disk it lives on, so the right disk and filesystem can be
    found without knowing the layout.
  - O(operation=list) returns the entries of the directories O(paths) (type, size, mtime, mode, uid, gid, link target).
  - O(operation=restore) copies the files and trees O(paths) into the directory O(dest) on the machine that runs the
    module (the proxy), each under its last name. A destination that already holds identical files is not changed
    (C(changed=false)). Then M(ansible.builtin.copy) or M(ansible.builtin.fetch) take them where they belong.
  - Linux guests (ext2/3/4, XFS, Btrfs, on partitions and LVM) and Windows guests (NTFS on MBR or GPT); Windows paths
    such as V(C:\\Users\\alice\\file.txt) are accepted and looked up without regard to case.
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
    details: A restore reads the files and reports what would change under O(dest) without writing there.
  diff_mode:
    support: full
    details: The files under O(dest) a restore updates.
  platform:
    platforms: posix
  action_group:
    membership:
      - blockvault.vsphere.vsphere
options:
  restore_point:
    description:
      - Id of the restore point, or V(latest) for the newest restore point of the VM named O(name) (the newest one
        created before O(before), when given).
    type: str
    default: latest
  name:
    description:
      - Name of the backed-up VM, as recorded in its restore points. Required with O(restore_point=latest).
    type: str
  before:
    description:
      - With O(restore_point=latest), choose the newest restore point created strictly before this time, ISO-8601
        (for example V(2026-11-25T22:00:00Z); UTC when no offset is given).
    type: str
  operation:
    description:
      - V(inspect), V(list) or V(restore), see the description.
    type: str
    choices: [inspect, list, restore]
    default: list
  paths:
    description:
      - Absolute guest paths. O(operation=list) lists each (default V(/)); O(operation=restore) copies each file,
        directory tree or link. Paths containing V(..) are refused.
    type: list
    elements: str
    default: []
  dest:
    description:
      - Directory on the proxy the restored paths are put in (made when missing). Required with O(operation=restore).
      - The module never writes through a link found in O(dest), and nothing in the restore point can place a file
        outside it.
    type: path
  disks:
    description:
      - Disks of the restore point to look into (keys or labels). Default all.
    type: list
    elements: str
  filesystem:
    description:
      - Filesystem the paths are in (an appliance device such as V(/dev/sdb1), a filesystem label or UUID, as
        O(operation=inspect) shows them). Needed when the disks hold no single operating system and several
        filesystems; otherwise the operating system's filesystems are mounted at their mount points.
    type: str
  preserve_owner:
    description:
      - Give restored files the numeric owner and group they have in the guest (effective when the module runs as
        root). Otherwise they belong to the user running the module.
    type: bool
    default: false
  preserve_times:
    description:
      - Give restored files the modification times they have in the guest. Otherwise the time of the restore.
    type: bool
    default: true
  appliance_accel:
    description:
      - How the libguestfs appliance runs. V(auto) lets libguestfs use KVM when available, else TCG (software
        emulation, slower to start). V(tcg) forces TCG, for machines whose C(/dev/kvm) exists but cannot run the
        appliance (for example without nested virtualisation). V(kvm) requires KVM.
      - With V(auto), libguestfs's own environment variables apply, so C(LIBGUESTFS_BACKEND_SETTINGS=force_tcg) set
        on such a machine makes TCG its default for every task.
    type: str
    choices: [auto, kvm, tcg]
    default: auto
  appliance_memory_mb:
    description:
      - Memory of the appliance in MiB (default libguestfs's).
    type: int
  appliance_timeout:
    description:
      - Seconds the libguestfs appliance may take to start. After that it is stopped and the task fails saying so,
        rather than wait forever (where C(/dev/kvm) exists but cannot run a guest, a KVM start never ends).
    type: int
    default: 600
notes:
  - Needs libguestfs with its Python binding and an appliance kernel on the proxy (Debian 12 C(libguestfs-tools),
    C(python3-guestfs), C(linux-image-amd64); C(ntfs-3g) for NTFS), and nbdkit for the export.
  - Restored files lose setuid, setgid and sticky bits and group/other write permission; device files, FIFOs and
    sockets are skipped (listed in RV(skipped)).
seealso:
  - module: blockvault.vsphere.vm_restore
  - module: blockvault.vsphere.backup_info
"""

EXAMPLES = r"""
- name: What is inside last night's restore point of web01
  blockvault.vsphere.file_restore:
    repository: /srv/backups/vsphere
    restore_point: latest
    name: web01
    operation: inspect
  register: inside

- name: List /etc/nginx as it was before the change window
  blockvault.vsphere.file_restore:
    repository: /srv/backups/vsphere
    name: web01
    before: "2026-12-03T22:00:00Z"
    operation: list
    paths: [/etc/nginx]

- name: Restore the configuration to the proxy, then put it back on the server
  block:
    - name: Restore to the proxy
      blockvault.vsphere.file_restore:
        repository: /srv/backups/vsphere
        name: web01
        before: "2026-12-03T22:00:00Z"
        operation: restore
        paths: [/etc/nginx/nginx.conf]
        dest: /var/tmp/restore-web01
        preserve_owner: true
    - name: Copy it where it belongs
      ansible.builtin.copy:
        src: /var/tmp/restore-web01/nginx.conf
        dest: /etc/nginx/nginx.conf
        mode: "0644"
        backup: true
      delegate_to: web01

- name: A user's spreadsheet from a Windows file server (its data disk has no OS, so name the filesystem)
  blockvault.vsphere.file_restore:
    repository: /srv/backups/vsphere
    name: fs01
    operation: restore
    filesystem: DATA
    paths: ['D:\Users\alice\Documents\budget.xlsx']
    dest: /var/tmp/restore-fs01
    appliance_accel: tcg
"""

RETURN = r"""
restore_point:
  description: The restore point looked into.
  returned: success
  type: dict
  sample: {id: 20261204T091500.123456Z-8c1f2e3d4a5b6c7d-1a2b3c4d, vm: web01, created: "2026-12-04T09:15:00Z"}
operation:
  description: The operation run.
  returned: success
  type: str
  sample: restore
appliance_start_seconds:
  description: How long the libguestfs appliance took to start (most of a run's time; see appliance_accel).
  returned: success
  type: float
  sample: 16.5
operating_systems:
  description: O(operation=inspect). The operating systems found, each with C(root), C(type), C(distro),
    C(product_name), C(version), C(hostname), C(mountpoints) (mount point to device) and C(drives) (letter to device).
  returned: operation is inspect
  type: list
  elements: dict
filesystems:
  description: O(operation=inspect). Every filesystem, with C(device), C(disk) (the restore point's disk key; null
    for a logical volume), C(type), C(label), C(uuid) and C(size) in bytes.
  returned: operation is inspect
  type: list
  elements: dict
mounted:
  description: What the paths were looked up in (the operating system or the filesystem mounted read-only).
  returned: operation is list or restore
  type: str
  sample: linux Debian GNU/Linux 12 (root /dev/sda1)
entries:
  description: O(operation=list). The entries of each listed directory (a listed file gives itself), with C(name),
    C(path), C(type) (file, directory, link, char, block, fifo, socket), C(size), C(mtime) (seconds since the epoch),
    C(mode) (permission bits), C(uid), C(gid) and C(target) (of a link).
  returned: operation is list
  type: list
  elements: dict
dest:
  description: The directory the files were restored into.
  returned: operation is restore
  type: str
files:
  description: Each restored path with its C(path), the C(name) it got under RV(dest), C(type) and C(size).
  returned: operation is restore
  type: list
  elements: dict
updated:
  description: Paths under RV(dest) (relative) that were (in check mode, would be) created or replaced.
  returned: operation is restore
  type: list
  elements: str
skipped:
  description: Entries of restored trees that were not restored (device files, FIFOs, sockets).
  returned: operation is restore
  type: list
  elements: str
diff:
  description: The files under O(dest) the restore updates.
  returned: diff mode
  type: dict
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import file_restore as ops_file_restore
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import RestorePointQuery


def restore_files(bv):
    params = bv.params
    request = ops_file_restore.FileRestoreRequest(
        source=RestorePointQuery(restore_point=params["restore_point"], vm_name=params["name"], before=params["before"]),
        operation=params["operation"],
        paths=tuple(params["paths"] or ()),
        dest=params["dest"],
        disks=tuple(params["disks"]) if params["disks"] else None,
        filesystem=params["filesystem"],
        keep_owner=params["preserve_owner"],
        keep_times=params["preserve_times"],
        guest=ops_file_restore.GuestSettings(accel=params["appliance_accel"], memory_mb=params["appliance_memory_mb"],
                                             launch_timeout=params["appliance_timeout"]),
    )
    return ops_file_restore.file_restore(request=request, endpoints=bv.endpoints(vsphere=False),
                                         settings=bv.run_settings())


def main():
    argument_spec = dict(
        restore_point=dict(type="str", default="latest"),
        name=dict(type="str"),
        before=dict(type="str"),
        operation=dict(type="str", default="list", choices=["inspect", "list", "restore"]),
        paths=dict(type="list", elements="str", default=[]),
        dest=dict(type="path"),
        disks=dict(type="list", elements="str"),
        filesystem=dict(type="str"),
        preserve_owner=dict(type="bool", default=False),
        preserve_times=dict(type="bool", default=True),
        appliance_accel=dict(type="str", default="auto", choices=["auto", "kvm", "tcg"]),
        appliance_memory_mb=dict(type="int"),
        appliance_timeout=dict(type="int", default=600),
    )
    bv = BlockvaultModule(
        argument_spec,
        required_if=[
            ["restore_point", "latest", ["name"]],
            ["operation", "restore", ["dest", "paths"]],
        ],
    )
    bv.run(restore_files)


if __name__ == "__main__":
    main()
