# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options that locate and tune VMware's VDDK; mirrors vddk_argument_spec() in module_utils/_module.py."""

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  vddk_libdir:
    description:
      - Directory where VMware's Virtual Disk Development Kit is unpacked (it holds C(lib64/libvixDiskLib.so.N)).
      - Needed whenever the module reads or writes VM disks; when not given, the environment variable E(VDDK_LIBDIR)
        is used. VDDK is loaded from there when the operation starts, never when the module is imported.
    type: path
  vddk_thumbprint:
    description:
      - SHA-1 thumbprint of the certificate of O(hostname), as 20 hex pairs separated by colons
        (C(openssl x509 -noout -fingerprint -sha1)).
      - When not given, the environment variable E(VDDK_THUMBPRINT) is used, then the thumbprint of the certificate
        verified on the vSphere connection.
    type: str
  transports:
    description:
      - VDDK transport modes to try, in order, separated by colons. Known modes are V(file), V(san), V(hotadd),
        V(nbdssl) and V(nbd).
      - V(hotadd) needs the controller to run in a VM of the same vSphere cluster.
    type: str
    default: nbdssl:nbd
  vddk_config_file:
    description:
      - Path of a VDDK configuration file (key = value lines, for example C(vixDiskLib.nfcAio.Session.BufSizeIn64KB)).
    type: path
"""
