"""Fault helpers and the getattr fallback of object_properties."""
from types import SimpleNamespace

from pyVmomi import vim, vmodl

from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere._pyvmomi import (
    fault_message, fault_name, is_fault, moref_id, object_properties)


def test_fault_name_and_message():
    fault = vim.fault.FileNotFound(msg="File  [ds] a.vmdk\\nwas not found", file="[ds] a.vmdk")
    assert fault_name(fault) == "FileNotFound"
    assert fault_message(fault) == "File [ds] a.vmdk\\nwas not found"
    assert fault_name(ValueError("x")) == "ValueError"
    assert fault_message(vim.fault.InvalidState()) == "InvalidState"
    empty = vim.fault.InvalidState(faultMessage=[vmodl.LocalizableMessage(key="k", message="from faultMessage")])
    assert fault_message(empty) == "from faultMessage"


def test_is_fault_matches_base_types():
    fault = vim.fault.FileNotFound(msg="x")
    assert is_fault(fault, "FileFault")
    assert is_fault(fault, "FileNotFound")
    assert not is_fault(fault, "InvalidArgument")
    assert is_fault(vmodl.fault.InvalidArgument(), "InvalidArgument")
    assert not is_fault(RuntimeError("x"), "FileFault")


def test_object_properties_without_a_stub_reads_each_top_level_attribute_once():
    reads = []

    class Task:
        @property
        def info(self):
            reads.append(1)
            return SimpleNamespace(state="running", error=None, progress=40)

    values = object_properties(Task(), ["info.state", "info.error", "info.progress", "info.result", "missing.x"])
    assert values == {"info.state": "running", "info.error": None, "info.progress": 40, "info.result": None, "missing.x": None}
    assert reads == [1]


def test_moref_id():
    assert moref_id(vim.VirtualMachine("vm-42")) == "vm-42"
    assert moref_id(object()) is None
