"""The ctypes mirrors of the VDDK structures: sizes and offsets against the reference (x86_64)."""
import ctypes

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import structs as S


@pytest.mark.parametrize("struct, size", [
    (S.ConnectParams, 128), (S.Info, 64), (S.CreateParams, 32), (S.Block, 16), (S.Geometry, 12),
    (S.UidPasswdCreds, 16), (S.SessionIdCreds, 24), (S.Creds, 24), (S.Spec, 24),
])
def test_struct_sizes(struct, size):
    assert ctypes.sizeof(struct) == size


@pytest.mark.parametrize("field, offset", [
    ("vmxSpec", 0), ("serverName", 8), ("thumbPrint", 16), ("privateUse", 24), ("credType", 32), ("creds", 40),
    ("port", 64), ("nfcHostPort", 68), ("vimApiVer", 72), ("reserved", 80), ("state", 88), ("spec", 96),
    ("specType", 120),
])
def test_connect_params_offsets(field, offset):
    assert getattr(S.ConnectParams, field).offset == offset


def test_creds_union_members():
    assert S.SessionIdCreds.key.offset == 16
    assert S.UidPasswdCreds.password.offset == 8
    assert 40 + S.SessionIdCreds.key.offset == 56      # creds.sessionId.key in the 128-byte structure


@pytest.mark.parametrize("field, offset", [
    ("biosGeo", 0), ("physGeo", 12), ("capacity", 24), ("adapterType", 32), ("numLinks", 36),
    ("parentFileNameHint", 40), ("uuid", 48), ("logicalSectorSize", 56), ("physicalSectorSize", 60),
])
def test_info_offsets(field, offset):
    assert getattr(S.Info, field).offset == offset


@pytest.mark.parametrize("field, offset", [
    ("diskType", 0), ("adapterType", 4), ("hwVersion", 8), ("capacity", 16), ("logicalSectorSize", 24),
    ("physicalSectorSize", 28),
])
def test_create_params_offsets(field, offset):
    assert getattr(S.CreateParams, field).offset == offset


def test_block_list_layout():
    assert S.BlockList.numBlocks.offset == 0
    assert S.BlockList.blocks.offset == 8
    assert S.Block.offset.offset == 0 and S.Block.length.offset == 8


def test_scalar_types():
    assert ctypes.sizeof(S.VixError) == 8
    assert ctypes.sizeof(S.SectorType) == 8
    assert S.LogFunc._argtypes_ == (ctypes.c_char_p, ctypes.c_void_p)
    assert S.LogFunc._restype_ is None
