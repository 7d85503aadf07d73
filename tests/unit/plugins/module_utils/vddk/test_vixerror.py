"""VixError -> exception classes, codes, texts and hints."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import (
    VddkError, VddkTransientError, BlockvaultError)
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import vixerror as V


@pytest.mark.parametrize("code", [5, 26, 36, 14011, 18000, 30001, 30100, 30202])
def test_transient_codes(code):
    assert V.is_transient(code)
    err = V.error_for(code, "text", "VixDiskLib_Read", "[ds] a.vmdk")
    assert err.__class__ is VddkTransientError
    assert err.code == code


@pytest.mark.parametrize("code", [0, 1, 3, 4, 13, 35, 4000, 13003, 16007, 30000, 30203])
def test_permanent_codes(code):
    assert not V.is_transient(code)


@pytest.mark.parametrize("code, cls", [
    (35, V.VddkAuthenticationError), (4000, V.VddkNotFoundError), (13003, V.VddkNotFoundError),
    (4, V.VddkNotFoundError), (13, V.VddkAccessError), (16007, V.VddkOutOfRangeError), (11, V.VddkReadOnlyError),
    (1, VddkError), (3, VddkError),
])
def test_permanent_classes(code, cls):
    err = V.error_for(code, "some text", "VixDiskLib_Open", "[ds] vm/vm.vmdk")
    assert err.__class__ is cls
    assert isinstance(err, VddkError) and isinstance(err, BlockvaultError)
    assert not isinstance(err, VddkTransientError)


def test_code_is_low_16_bits_and_fields():
    err = V.error_for((7 << 32) | 16007, "The requested sectors are out of range", "VixDiskLib_Read", "d, offset 0")
    assert err.code == 16007
    assert err.text == "The requested sectors are out of range"
    assert err.function == "VixDiskLib_Read"
    assert err.message == ("VDDK call VixDiskLib_Read(d, offset 0) failed with error 16007 "
                           "(The requested sectors are out of range).")
    assert err.phase == "vddk"


def test_open_fail_hints_at_thumbprint():
    err = V.error_for(1, "Unknown error", "VixDiskLib_Open", "[ds] vm/vm.vmdk")
    assert "thumbprint" in str(err)
    assert "thumbprint" not in str(V.error_for(1, "Unknown error", "VixDiskLib_Read", "x"))


def test_missing_text():
    assert V.error_for(18000, None, "VixDiskLib_ConnectEx").message == \
        "VDDK call VixDiskLib_ConnectEx failed with error 18000 (no error text)."
