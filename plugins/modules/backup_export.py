#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_export
short_description: Serve a restore point's disks over NBD (instant access), or stop serving them
version_added: 0.2.0
description:
  - With O(state=present), serves the disks of a restore point as NBD block devices with nbdkit (Debian's C(nbdkit)
    and C(nbdkit-plugin-python)), read through the repository with every chunk verified against its digest. Any NBD
    client reads them at once, without a restore first - C(nbdcopy), C(nbdinfo), C(qemu-img), C(qemu-nbd), C(nbdfuse),
    libguestfs.
  - One nbdkit process per disk, started in its own session so that it outlives the task; the module returns once
    every disk serves, with the NBD URIs, the pids and how to stop it. Present again with the same settings changes
    nothing; with other settings it fails and names the running ones.
  - Read-only unless O(writable). With O(writable=true) nbdkit's copy-on-write filter takes the writes in a scratch
    file of the export's private directory; the repository is never written. The writes are lost when the export stops.
  - Zero chunks are reported as holes (NBD block status, base:allocation), so C(nbdcopy), C(qemu-img convert) and
    C(nbdinfo --map) skip them.
  - While an export runs it holds a shared lock on the repository, so a garbage collection waits for it; a prune may
    remove its restore point meanwhile (the export keeps serving it until it stops, and the collection after frees
    its chunks).
  - O(state=absent) stops the exports named by O(export_name), else those of the restore point O(restore_point) (an
    id), else every export of the VM O(name), and removes their scratch files.
  - Each call first finds exports whose nbdkit died (killed, crashed, a reboot) and removes what is left of them
    (result RV(cleaned)).
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
    details: Selects the restore point and reports what it would start or stop, without starting or stopping anything.
  diff_mode:
    support: full
  action_group:
    membership:
      - blockvault.vsphere.vsphere
  platform:
    platforms: posix
requirements:
  - nbdkit and its Python plugin (Debian packages C(nbdkit), C(nbdkit-plugin-python)) on the proxy
options:
  state:
    description:
      - V(present) serves the restore point; V(absent) stops exports.
    type: str
    choices: [present, absent]
    default: present
  restore_point:
    description:
      - Id of the restore point, or V(latest) (with O(name)) for the VM's newest one (before O(before) when given).
    type: str
    default: latest
  name:
    description:
      - Name of the backed-up VM, for O(restore_point=latest); with O(state=absent) and no O(export_name) or restore
        point id, every export of this VM stops.
    type: str
  before:
    description:
      - With O(restore_point=latest), take the newest restore point created before this time (ISO-8601, UTC unless an
        offset is given).
    type: str
  disks:
    description:
      - Disks to serve, by key (V(2000)) or label (V(Hard disk 1)). Every disk of the restore point when not given.
    type: list
    elements: raw
  export_name:
    description:
      - Name of the export, how a later task finds it. Defaults to the restore point's id.
    type: str
  writable:
    description:
      - Accept writes into a copy-on-write overlay (a scratch file, removed when the export stops). The repository is
        never written.
    type: bool
    default: false
  listen:
    description:
      - V(unix) serves each disk on a Unix socket in a private directory (mode 0700) that only the user running the
        module may enter.
      - V(tcp) serves each disk on a TCP port, the first disk on O(listen_port) and the next ones on the ports after it.
    type: str
    choices: [unix, tcp]
    default: unix
  listen_address:
    description:
      - Address to listen on with O(listen=tcp). Defaults to V(127.0.0.1). An address that is not loopback is
        refused unless O(tls_psk_file) or O(tls_certificates) is given - an export never listens unauthenticated on
        a public address.
    type: str
  listen_port:
    description:
      - First TCP port with O(listen=tcp).
    type: int
    default: 10809
  tls_psk_file:
    description:
      - nbdkit's pre-shared keys file (lines of C(username:hexkey), see nbdkit-tls(1)); TLS is then required of every
        client. Mutually exclusive with O(tls_certificates).
    type: path
  tls_username:
    description:
      - User name of O(tls_psk_file) the returned URIs carry.
    type: str
  tls_certificates:
    description:
      - Directory with C(ca-cert.pem), C(server-cert.pem) and C(server-key.pem); TLS is then required of every client.
    type: path
notes:
  - nbdkit's Python plugin runs the system's C(/usr/bin/python3) (3.11); the export uses a private copy of the
    collection's code and the site-packages of the Python that runs the module, which must be a Python 3.11 too.
  - The repository passphrase reaches nbdkit through an inherited pipe, closed once read; it is never on a command
    line, in the environment, in a file or in the result.
seealso:
  - module: blockvault.vsphere.backup_info
  - module: blockvault.vsphere.vm_restore
"""

EXAMPLES = r"""
- name: Serve last night's restore point of db01
  blockvault.vsphere.backup_export:
    repository: /srv/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
    name: db01
  register: export

- name: Copy its first disk to a qcow2 file, skipping the holes
  ansible.builtin.command:
    cmd: "qemu-img convert -O qcow2 {{ export.uris | dict2items | map(attribute='value') | first }} /var/tmp/db01.qcow2"
    creates: /var/tmp/db01.qcow2

- name: Stop it
  blockvault.vsphere.backup_export:
    repository: /srv/backups/vsphere
    export_name: "{{ export.export.name }}"
    state: absent

- name: Serve one disk to a test host, over TLS with a pre-shared key, with writes kept in an overlay
  blockvault.vsphere.backup_export:
    repository: /srv/backups/vsphere
    passphrase: "{{ repository_passphrase }}"
    restore_point: 20261204T091500.123456Z-8c1f2e3d4a5b6c7d-1a2b3c4d
    disks: [2000]
    export_name: db01-test
    writable: true
    listen: tcp
    listen_address: 192.0.2.15
    tls_psk_file: /etc/blockvault/nbd.psk
    tls_username: restore
"""

RETURN = r"""
export:
  description: The export (present), as its state file records it.
  returned: state is present
  type: dict
  contains:
    name:
      description: Name of the export.
      type: str
      sample: 20261204T091500.123456Z-8c1f2e3d4a5b6c7d-1a2b3c4d
    restore_point:
      description: The restore point served, {id, vm, created}.
      type: dict
    writable:
      description: Whether writes go to a copy-on-write overlay.
      type: bool
    listen:
      description: How it listens, {kind, address, port, tls}.
      type: dict
    pids:
      description: The nbdkit processes, one per disk.
      type: list
      elements: int
    runtime_dir:
      description: Its private directory (sockets, overlay, logs), removed when it stops.
      type: str
    disks:
      description: Each disk served, {key, label, capacity, pid, uri, socket}.
      type: list
      elements: dict
    stop:
      description: How to stop it.
      type: str
uris:
  description: NBD URI of each disk served, by disk key.
  returned: state is present
  type: dict
  sample: {"2000": "nbd+unix:///?socket=/tmp/blockvault-export-k2j3h4/disk-2000.sock"}
pids:
  description: The nbdkit processes, one per disk.
  returned: state is present
  type: list
  elements: int
  sample: [40211]
stopped:
  description: Names of the exports stopped.
  returned: state is absent
  type: list
  elements: str
cleaned:
  description: Names of exports whose nbdkit had died, whose state and scratch files this call removed.
  returned: success
  type: list
  elements: str
diff:
  description: The export before and after.
  returned: diff mode
  type: dict
"""

from ansible_collections.blockvault.vsphere.plugins.module_utils._module import BlockvaultModule, disk_reference
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import export as ops_export
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import RestorePointQuery


def serve(bv):
    params = bv.params
    if params["state"] == "absent":
        selector = ops_export.ExportSelector(name=params["export_name"], restore_point=params["restore_point"],
                                             vm_name=params["name"])
        return ops_export.stop_exports(selector=selector, check=bv.check_mode)
    listen = ops_export.Listen(kind=params["listen"], address=params["listen_address"], port=params["listen_port"],
                               tls_psk_file=params["tls_psk_file"], tls_certificates=params["tls_certificates"],
                               tls_username=params["tls_username"])
    disks = [disk_reference(disk) for disk in params["disks"]] if params["disks"] else None
    request = ops_export.ExportRequest(source=RestorePointQuery(params["restore_point"], params["name"], params["before"]),
                                       disks=disks, writable=params["writable"], listen=listen, name=params["export_name"])
    return ops_export.start_export(request=request, endpoints=bv.endpoints(vsphere=False), settings=bv.run_settings())


def main():
    argument_spec = dict(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        restore_point=dict(type="str", default="latest"),
        name=dict(type="str"),
        before=dict(type="str"),
        disks=dict(type="list", elements="raw"),
        export_name=dict(type="str"),
        writable=dict(type="bool", default=False),
        listen=dict(type="str", default="unix", choices=["unix", "tcp"]),
        listen_address=dict(type="str"),
        listen_port=dict(type="int", default=10809),
        tls_psk_file=dict(type="path"),
        tls_username=dict(type="str"),
        tls_certificates=dict(type="path"),
    )
    bv = BlockvaultModule(argument_spec, mutually_exclusive=[["tls_psk_file", "tls_certificates"]])
    # the export outlives the task on purpose: a cancel has nothing to stop once it has started
    bv.cancellable = False
    bv.run(serve)


if __name__ == "__main__":
    main()
