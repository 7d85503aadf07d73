# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding inventory objects: VMs (by name, path, BIOS UUID, instance UUID, moref), datacenters,
folders, datastores, resource pools / clusters, networks and hosts.

Design notes
- Lookups by name go through the property collector over a container view, one round trip
  per page, following RetrievePropertiesEx tokens with ContinueRetrievePropertiesEx (real
  vCenters page large inventories; the simulator does not). Names are compared after undoing
  vSphere's escaping of '%', '/' and '\\' (stored as %25, %2f, %5c).
- A name must be unique: several matches raise AmbiguousObjectError listing each match's
  inventory path and moref, so the user can pick the path or moref instead.
- Not found raises VMNotFoundError (VMs) or ObjectNotFoundError (other objects) naming what
  was searched and where.
Functions take a connected VSphereSession (anything with ``content`` and ``stub``) and are
thread-safe as far as pyVmomi's stub is.
"""

from __future__ import annotations

from ..errors import AmbiguousObjectError, ConfigurationError, ObjectNotFoundError, VMNotFoundError
from ._pyvmomi import fault_message, fault_name, is_fault, moref_id, object_properties, require_pyvmomi, vim, vmodl

__all__ = [
    "ObjectNotFoundError", "AmbiguousObjectError", "retrieve_properties", "find_vm", "find_datacenter", "find_folder",
    "find_datastore", "find_resource_pool", "find_network", "find_host", "inventory_path", "datacenter_of",
    "unescape_name", "find_vm_by_spec", "list_vms", "moref_id",
]

#: objects per RetrievePropertiesEx page (vCenter may return fewer)
PAGE_SIZE = 500


def unescape_name(name):
    """Undo vSphere's escaping of special characters in inventory names."""
    text = str(name)
    for escaped, plain in (("%2f", "/"), ("%2F", "/"), ("%5c", "\\"), ("%5C", "\\"), ("%25", "%")):
        text = text.replace(escaped, plain)
    return text


def retrieve_properties(session, vim_type, properties, container=None, page_size=PAGE_SIZE):
    """Return ``[(managed_object, {property: value})]`` for every ``vim_type`` object under ``container``.

    ``container`` defaults to the root folder; the search is recursive. Objects whose properties
    could not be read (no permission, deleted meanwhile) are skipped.
    """
    require_pyvmomi()
    content = session.content
    collector_type = vmodl.query.PropertyCollector
    view = content.viewManager.CreateContainerView(container or content.rootFolder, [vim_type], True)
    collector = content.propertyCollector
    token = None
    try:
        traversal = collector_type.TraversalSpec(name="traverseView", path="view", skip=False, type=vim.view.ContainerView)
        filter_spec = collector_type.FilterSpec(
            objectSet=[collector_type.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
            propSet=[collector_type.PropertySpec(type=vim_type, all=False, pathSet=list(properties))])
        rows = []
        result = collector.RetrievePropertiesEx(specSet=[filter_spec], options=collector_type.RetrieveOptions(maxObjects=page_size))
        while result is not None:
            for item in result.objects or ():
                if getattr(item, "missingSet", None):
                    continue
                rows.append((item.obj, {prop.name: prop.val for prop in item.propSet or ()}))
            token = getattr(result, "token", None)
            if not token:
                break
            result = collector.ContinueRetrievePropertiesEx(token=token)
            token = None
        return rows
    except BaseException:
        if token:
            _quietly(collector.CancelRetrievePropertiesEx, token=token)
        raise
    finally:
        _quietly(view.Destroy)


def inventory_path(entity):
    """The inventory path of an entity ("DC0/vm/folder/web01"), as FindByInventoryPath takes it."""
    names = []
    current = entity
    for _depth in range(64):  # inventories are shallow; the bound guards against a cycle in a fake
        if current is None:
            break
        props = object_properties(current, ["name", "parent"])
        if props["parent"] is None:  # the root folder ("Datacenters") is not part of paths
            break
        names.append(unescape_name(props["name"]))
        current = props["parent"]
    return "/".join(reversed(names))


def datacenter_of(entity):
    """The datacenter containing ``entity`` (or None)."""
    require_pyvmomi()
    current = entity
    for _depth in range(64):
        if current is None or isinstance(current, vim.Datacenter):
            return current
        current = object_properties(current, ["parent"])["parent"]
    return None


def _describe(entity):
    try:
        return "%s (%s)" % (inventory_path(entity), moref_id(entity))
    except Exception:  # a path is a nicety in an error message; the moref is enough
        return str(moref_id(entity))


def _quietly(function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except Exception:  # cleanup of a view or a paging token: nothing useful to do on failure
        pass


# -- VMs -------------------------------------------------------------------------------------

def _vm_selector_text(name, path, bios_uuid, instance_uuid, moref):
    for label, value in (("named", name), ("at inventory path", path), ("with BIOS UUID", bios_uuid),
                         ("with instance UUID", instance_uuid), ("with moref", moref)):
        if value:
            return "%s %r" % (label, value)
    return "?"


def find_vm(session, name=None, path=None, bios_uuid=None, instance_uuid=None, moref=None, within=None):
    """Return the one VM matching exactly one selector; raise VMNotFoundError or AmbiguousObjectError.

    ``within``, a vim.Datacenter, narrows name and UUID searches; a vim.Folder (with its subfolders) narrows a search
    by name only.
    """
    require_pyvmomi()
    given = [key for key, value in (("name", name), ("path", path), ("bios_uuid", bios_uuid), ("instance_uuid", instance_uuid),
                                    ("moref", moref)) if value]
    if len(given) != 1:
        raise ConfigurationError("Identify the VM by exactly one of name, path, bios_uuid, instance_uuid or moref (got %s)."
                                 % (", ".join(given) or "none"))
    what = _vm_selector_text(name, path, bios_uuid, instance_uuid, moref)
    in_folder = within is not None and isinstance(within, vim.Folder)
    if in_folder and not name:
        raise ConfigurationError("folder narrows a search by name: give the VM's name with it (a %s names one VM "
                                 "wherever it is)." % given[0])
    datacenter = None if in_folder else within
    where = " in %s %s" % ("folder" if in_folder else "datacenter", within.name) if within is not None else ""
    if name:
        matches = [obj for obj, props in retrieve_properties(session, vim.VirtualMachine, ["name"], container=within)
                   if unescape_name(props.get("name", "")) == name]
        return _one_vm(matches, what, where, session)
    if path:
        found = session.content.searchIndex.FindByInventoryPath(inventoryPath=path)
        if not isinstance(found, vim.VirtualMachine):
            raise VMNotFoundError("No VM %s in vCenter %s%s." % (what, session.host, " (it is not a VM)" if found is not None else ""),
                                  hint="A path looks like DATACENTER/vm/FOLDER/NAME.")
        return found
    if bios_uuid or instance_uuid:
        return _find_vm_by_uuid(session, bios_uuid or instance_uuid, bool(instance_uuid), datacenter, what, where)
    return _find_vm_by_moref(session, moref, what)


def list_vms(session, datacenter=None):
    """Every VM (templates included) as ``{name, moref, bios_uuid, instance_uuid, power_state, template}``, sorted by name.

    One property-collector pass (paged), for listings and for matching restore points to VMs.
    """
    require_pyvmomi()
    paths = ["name", "config.uuid", "config.instanceUuid", "config.template", "runtime.powerState"]
    rows = retrieve_properties(session, vim.VirtualMachine, paths, container=datacenter)
    vms = [{"name": unescape_name(props.get("name", "")), "moref": moref_id(obj), "bios_uuid": props.get("config.uuid"),
            "instance_uuid": props.get("config.instanceUuid"), "template": bool(props.get("config.template")),
            "power_state": str(props["runtime.powerState"]) if props.get("runtime.powerState") is not None else None}
           for obj, props in rows]
    return sorted(vms, key=lambda vm: (vm["name"], vm["moref"] or ""))


#: keys find_vm_by_spec accepts, and the find_vm selector each one means
_SPEC_KEYS = {"name": "name", "path": "path", "bios_uuid": "bios_uuid", "instance_uuid": "instance_uuid", "moref": "moref",
              "moid": "moref"}


def find_vm_by_spec(session, spec):
    """find_vm from a dict as the modules take it: one of name, path, uuid, bios_uuid, instance_uuid, moid/moref;
    optional ``datacenter`` (a name), ``folder`` (a path, see find_folder) and ``use_instance_uuid`` (``uuid`` is the
    BIOS UUID unless it is true)."""
    spec = dict(spec or {})
    datacenter_name = spec.pop("datacenter", None)
    folder_path = spec.pop("folder", None)
    use_instance_uuid = bool(spec.pop("use_instance_uuid", False))
    if spec.get("uuid"):
        spec["instance_uuid" if use_instance_uuid else "bios_uuid"] = spec.pop("uuid")
    spec.pop("uuid", None)
    unknown = sorted(key for key in spec if key not in _SPEC_KEYS)
    if unknown:
        raise ConfigurationError("Unknown VM selector(s) %s: identify the VM by name, path, uuid or moid." % ", ".join(unknown))
    datacenter = find_datacenter(session, datacenter_name) if datacenter_name else None
    folder = find_folder(session, folder_path, datacenter) if folder_path else None
    return find_vm(session, within=folder if folder is not None else datacenter,
                   **{_SPEC_KEYS[key]: value for key, value in spec.items() if value})


def _one_vm(matches, what, where, session):
    if not matches:
        raise VMNotFoundError("No VM %s in vCenter %s%s." % (what, session.host, where),
                              hint="Check the name (it is case-sensitive) and that the user may see the VM.")
    if len(matches) > 1:
        described = sorted(_describe(vm) for vm in matches)
        what = what.replace("named", "are named")
        message = "%d VMs %s in vCenter %s%s: %s." % (len(matches), what, session.host, where, "; ".join(described))
        raise AmbiguousObjectError(message, matches=described, hint="Identify the VM by its path or moref instead.")
    return matches[0]


def _find_vm_by_uuid(session, uuid, instance, datacenter, what, where):
    search_index = session.content.searchIndex
    try:
        matches = search_index.FindAllByUuid(datacenter=datacenter, uuid=uuid, vmSearch=True, instanceUuid=instance) or []
    except Exception as exc:
        if not is_fault(exc, "MethodNotFound", "NotImplemented", "NotSupported"):
            raise
        found = search_index.FindByUuid(datacenter=datacenter, uuid=uuid, vmSearch=True, instanceUuid=instance)
        matches = [found] if found is not None else []
    matches = [vm for vm in matches if isinstance(vm, vim.VirtualMachine)]
    return _one_vm(matches, what, where, session)


def _find_vm_by_moref(session, moref, what):
    vm = session.managed_object(vim.VirtualMachine, moref)
    try:
        vm.name  # noqa: B018 - fetching a property proves the object exists and is a VM
    except Exception as exc:
        if is_fault(exc, "ManagedObjectNotFound", "InvalidType", "InvalidArgument", "InvalidRequest"):
            raise VMNotFoundError("No VM %s in vCenter %s (%s)." % (what, session.host, fault_name(exc)),
                                  hint="A VM moref looks like vm-123.") from None
        raise
    return vm


# -- other objects ---------------------------------------------------------------------------

def _find_by_name(session, vim_type, kind, name, datacenter=None, hint=None):
    where = " in datacenter %s" % datacenter.name if datacenter is not None else ""
    matches = [obj for obj, props in retrieve_properties(session, vim_type, ["name"], container=datacenter)
               if unescape_name(props.get("name", "")) == name]
    if not matches:
        raise ObjectNotFoundError("No %s named %r in vCenter %s%s." % (kind, name, session.host, where), hint=hint)
    if len(matches) > 1:
        described = sorted(_describe(obj) for obj in matches)
        message = "%d %ss are named %r in vCenter %s%s: %s." % (len(matches), kind, name, session.host, where, "; ".join(described))
        raise AmbiguousObjectError(message, matches=described, hint="Give the datacenter to narrow the search.")
    return matches[0]


def find_datacenter(session, name=None):
    """The datacenter named ``name``; without a name, the only datacenter (error when there are several)."""
    require_pyvmomi()
    if name:
        return _find_by_name(session, vim.Datacenter, "datacenter", name)
    datacenters = [obj for obj, _props in retrieve_properties(session, vim.Datacenter, ["name"])]
    if len(datacenters) != 1:
        raise ConfigurationError("vCenter %s has %d datacenters: give the datacenter name." % (session.host, len(datacenters)))
    return datacenters[0]


def find_folder(session, path, datacenter=None):
    """A VM folder by inventory path ("DC0/vm/prod"), or relative to the datacenter's VM folder ("prod")."""
    require_pyvmomi()
    search_index = session.content.searchIndex
    candidates = [path]
    if datacenter is not None:
        candidates.append("%s/vm/%s" % (datacenter.name, path.strip("/")))
    for candidate in candidates:
        found = search_index.FindByInventoryPath(inventoryPath=candidate)
        if isinstance(found, vim.Folder):
            return found
    raise ObjectNotFoundError("No folder at %s in vCenter %s." % (" or ".join(repr(c) for c in candidates), session.host),
                              hint="A folder path looks like DATACENTER/vm/FOLDER.")


def find_datastore(session, name, datacenter=None):
    require_pyvmomi()
    return _find_by_name(session, vim.Datastore, "datastore", name, datacenter)


def find_network(session, name, datacenter=None):
    """A standard port group, distributed port group or opaque network, by name."""
    require_pyvmomi()
    return _find_by_name(session, vim.Network, "network", name, datacenter)


def find_host(session, name, datacenter=None):
    require_pyvmomi()
    return _find_by_name(session, vim.HostSystem, "host", name, datacenter)


def find_resource_pool(session, name, datacenter=None):
    """A resource pool by name; a cluster's or standalone host's name gives its root pool; a host's name its parent's pool."""
    require_pyvmomi()
    for vim_type in (vim.ComputeResource, vim.HostSystem):
        try:
            owner = _find_by_name(session, vim_type, "compute resource", name, datacenter)
        except ObjectNotFoundError:
            continue
        if isinstance(owner, vim.HostSystem):
            owner = owner.parent
        return owner.resourcePool
    return _find_by_name(session, vim.ResourcePool, "resource pool", name, datacenter,
                         hint="Give a cluster, host or resource pool name.")


def describe_fault(exc):
    """"message (FaultType)" for a vSphere fault, for callers that wrap inventory errors."""
    return "%s (%s)" % (fault_message(exc), fault_name(exc))
