# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options to reach vCenter (or an ESXi host); mirrors vsphere_argument_spec() in module_utils/_module.py."""

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  hostname:
    description:
      - Name or address of the vCenter Server (or ESXi host) that manages the VM.
      - Needed whenever the module talks to vSphere; when not given, the value of the environment variable
        E(VMWARE_HOST) is used.
    type: str
  port:
    description:
      - HTTPS port of O(hostname).
      - When not given, the environment variable E(VMWARE_PORT) is used, then V(443).
    type: int
    default: 443
  username:
    description:
      - vSphere user, for example V(backup@vsphere.local). It needs the privileges listed in the collection's README.
      - When not given, the environment variable E(VMWARE_USER) is used.
      - The aliases are those of community.vmware and vmware.vmware.
    type: str
    aliases: [admin, user]
  password:
    description:
      - Password of O(username).
      - When not given, the environment variable E(VMWARE_PASSWORD) is used.
    type: str
    aliases: [pass, pwd]
  validate_certs:
    description:
      - Verify the TLS certificate of O(hostname) (against O(ca_bundle) or the system CA store).
      - The SHA-1 thumbprint handed to VDDK is taken from this verified connection unless O(vddk_thumbprint) is given.
      - Set to V(false) only in labs; when not given, the environment variable E(VMWARE_VALIDATE_CERTS) is used.
    type: bool
    default: true
  ca_bundle:
    description:
      - Path of a PEM file with the CA certificates that sign the certificate of O(hostname).
      - When not given, the environment variable E(VMWARE_CA_BUNDLE) is used, then the system CA store.
    type: path
  proxy_host:
    description:
      - Host name or address of an HTTP proxy through which the vSphere API of O(hostname) is reached (HTTP CONNECT).
      - TLS runs end to end to O(hostname) through the proxy and is verified as without one.
      - Only the vSphere API goes through the proxy. VDDK's data connections to the ESXi hosts (port 902) and the
        repository's S3 requests do not.
      - When not given, the environment variable E(VMWARE_PROXY_HOST) is used.
    type: str
  proxy_port:
    description:
      - Port of the HTTP proxy O(proxy_host). Required with O(proxy_host).
      - When not given, the environment variable E(VMWARE_PROXY_PORT) is used.
    type: int
"""
