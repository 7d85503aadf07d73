# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The export layer: a restore point's disks served over NBD by nbdkit (as vddk/ owns libvixDiskLib, this owns nbdkit).

- ``listen``: where an export listens (``Listen``: a Unix socket in a private directory, or TCP; a non-loopback
  address only with TLS) and the NBD URI a client connects to.
- ``server``: starting one nbdkit per disk (Debian's nbdkit and its Python plugin) with the repository's secrets
  passed through an inherited pipe, waiting until it serves, and stopping it.
- ``state``: the small state file per export (pids, URIs, restore point, scratch directory) that lets a later call
  find, list, stop or clean up an export, including one whose processes died.
- ``nbd_plugin``: the script nbdkit's Python plugin runs; ``serving``: what it serves (DiskService): the repository
  opened under a shared lock, one disk read through the repository's DiskReader (each chunk verified against its
  digest), zero chunks as holes.
- ``image``: qcow2 and VMDK images written by ``qemu-img convert`` reading an export.
"""
