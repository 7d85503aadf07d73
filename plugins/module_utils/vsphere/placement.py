# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a restored VM goes: datacenter, VM folder, resource pool, datastore and (optional) host.

``resolve_placement`` turns the names a user gives (all optional) into inventory objects, with
defaults that cannot surprise: the only datacenter, the datacenter's VM folder, the only compute
resource's root pool (several -> the user must choose), the datastore the user names or, failing
that, the one the original VM used. Each missing or ambiguous choice is a ConfigurationError that
names the option to set. Stateless; thread-safe as far as pyVmomi's stub is.
"""

from __future__ import annotations

import dataclasses

from ..errors import ConfigurationError
from ._pyvmomi import require_pyvmomi, vim
from .inventory import (ObjectNotFoundError, find_datacenter, find_datastore, find_folder, find_host, find_resource_pool,
                        retrieve_properties)

__all__ = ["Placement", "resolve_placement"]


@dataclasses.dataclass(frozen=True)
class Placement:
    """Inventory objects for CreateVM_Task: ``folder.CreateVM_Task(config, pool=resource_pool, host=host)``.

    Immutable; thread-safe.
    """

    datacenter: object
    folder: object
    resource_pool: object
    datastore: object
    host: object = None

    def describe(self):
        """The placement by inventory names (for a restore's diff): datacenter, folder, compute (the cluster or host
        the pool belongs to), resource_pool, host (or None) and datastore. A few property reads from vCenter."""
        def name(obj):
            return obj if obj is None or isinstance(obj, str) else getattr(obj, "name", None)
        owner = getattr(self.resource_pool, "owner", None)
        return {"datacenter": name(self.datacenter), "folder": name(self.folder), "compute": name(owner),
                "resource_pool": name(self.resource_pool), "host": name(self.host), "datastore": name(self.datastore)}


def resolve_placement(session, datacenter=None, folder=None, resource_pool=None, host=None, datastore=None, default_datastore=None):
    """Resolve user-given names (or defaults) to a Placement; raise ConfigurationError naming what to set."""
    require_pyvmomi()
    datacenter_obj = find_datacenter(session, datacenter)
    folder_obj = find_folder(session, folder, datacenter_obj) if folder else datacenter_obj.vmFolder
    host_obj = find_host(session, host, datacenter_obj) if host else None
    if resource_pool:
        pool = find_resource_pool(session, resource_pool, datacenter_obj)
    elif host_obj is not None:
        pool = host_obj.parent.resourcePool
    else:
        compute = [obj for obj, _props in retrieve_properties(session, vim.ComputeResource, ["name"], container=datacenter_obj)]
        if len(compute) != 1:
            raise ConfigurationError("Datacenter %s has %d clusters/hosts: say where the VM runs with resource_pool (a cluster, "
                                     "host or resource pool name) or host." % (datacenter_obj.name, len(compute)))
        pool = compute[0].resourcePool
    datastore_name = datastore or default_datastore
    if not datastore_name:
        raise ConfigurationError("No datastore for the restored VM: set datastore.")
    try:
        datastore_obj = find_datastore(session, datastore_name, datacenter_obj)
    except ObjectNotFoundError as exc:
        if datastore:
            raise ConfigurationError(exc.message, hint="Set datastore to a datastore of datacenter %s." % datacenter_obj.name) from None
        raise ConfigurationError("The original VM's datastore %s is not in datacenter %s: set datastore." % (
            datastore_name, datacenter_obj.name)) from None
    return Placement(datacenter=datacenter_obj, folder=folder_obj, resource_pool=pool, datastore=datastore_obj, host=host_obj)
