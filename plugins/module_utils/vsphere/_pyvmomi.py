# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guarded pyVmomi import and fault helpers shared by the vsphere layer (private to the layer).

ansible-test's import sanity check imports module_utils without pyVmomi installed, so the
import is guarded here once; code that needs pyVmomi calls ``require_pyvmomi()`` first,
which raises MissingDependencyError with the original ImportError text.
"""

from __future__ import annotations

import threading
import weakref

from ..errors import MissingDependencyError, redact

try:
    from pyVmomi import vim, vmodl  # noqa: F401  (re-exported for the layer)
    HAS_PYVMOMI = True
    PYVMOMI_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised by ansible-test's import check
    vim = None
    vmodl = None
    HAS_PYVMOMI = False
    PYVMOMI_IMPORT_ERROR = str(_exc)


def require_pyvmomi():
    """Raise MissingDependencyError unless pyVmomi could be imported."""
    if not HAS_PYVMOMI:
        raise MissingDependencyError(
            "The Python library pyVmomi is required to talk to vSphere but could not be imported (%s)."
            % PYVMOMI_IMPORT_ERROR,
            library="pyvmomi",
            hint="Install it on the host that runs the module: pip install pyvmomi.")


def fault_name(fault):
    """The vSphere type name of a fault ("FileNotFound", "InvalidLogin"), or the Python class name."""
    name = getattr(type(fault), "_wsdlName", None)
    return name or type(fault).__name__


def fault_message(fault):
    """The localized message vSphere attached to a fault (falls back to the fault's text), redacted."""
    text = getattr(fault, "msg", None) or getattr(fault, "localizedMessage", None)
    if not text:
        for item in getattr(fault, "faultMessage", None) or ():
            text = getattr(item, "message", None)
            if text:
                break
    if not text:
        # str() of a pyVmomi fault without a message is a dump of all its fields: use its type name then
        text = fault_name(fault) if hasattr(type(fault), "_wsdlName") else (str(fault) or fault_name(fault))
    return redact(" ".join(str(text).split()))


def is_fault(exc, *names):
    """True when ``exc`` is a vSphere fault whose type (or one of its base types) is named in ``names``."""
    for klass in type(exc).__mro__:
        if getattr(klass, "_wsdlName", klass.__name__) in names:
            return True
    return False


def moref_id(managed_object):
    """The managed object id ("vm-42") of a pyVmomi managed object, or None."""
    return getattr(managed_object, "_moId", None)


_collectors = weakref.WeakKeyDictionary()
_collectors_lock = threading.Lock()


def _property_collector(stub):
    with _collectors_lock:
        collector = _collectors.get(stub)
    if collector is None:
        collector = vim.ServiceInstance("ServiceInstance", stub).content.propertyCollector
        with _collectors_lock:
            _collectors[stub] = collector
    return collector


def _read_with_getattr(obj, paths):
    """Fallback for objects without a stub: each top-level attribute is read once, like one server read."""
    tops = {}
    values = {}
    for path in paths:
        head, _sep, rest = path.partition(".")
        if head not in tops:
            tops[head] = getattr(obj, head, None)
        value = tops[head]
        for name in rest.split(".") if rest else ():
            if value is None:
                break
            value = getattr(value, name, None)
        values[path] = value
    return values


def object_properties(managed_object, paths):
    """``{path: value}`` of one managed object, read with one RetrievePropertiesEx call.

    ``paths`` may be nested ("info.state"). Unset properties come back as None. This is used instead of pyVmomi's attribute accessors for
    properties that may be unset (``vm.snapshot``, a root folder's ``parent``): some servers
    (govmomi's simulator) fail such single-property reads instead of returning nothing. Objects
    without a SOAP stub (test fakes) are read with getattr.
    """
    stub = getattr(managed_object, "_stub", None)
    if stub is None or vim is None:
        return _read_with_getattr(managed_object, paths)
    collector_type = vmodl.query.PropertyCollector
    spec = collector_type.FilterSpec(
        objectSet=[collector_type.ObjectSpec(obj=managed_object, skip=False)],
        propSet=[collector_type.PropertySpec(type=type(managed_object), all=False, pathSet=list(paths))])
    result = _property_collector(stub).RetrievePropertiesEx(specSet=[spec], options=collector_type.RetrieveOptions())
    values = {path: None for path in paths}
    for item in getattr(result, "objects", None) or ():
        for prop in item.propSet or ():
            values[prop.name] = prop.val
    return values
