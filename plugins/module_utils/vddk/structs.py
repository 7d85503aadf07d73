# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctypes mirrors of the VDDK C structures and constants (x86_64 layouts of VDDK 6.5 to 9).

Pure declarations: importing this module loads nothing. The sizes and offsets are pinned by unit tests against the
reference numbers; a layout mismatch with the real library would corrupt memory, so never change a field without
the reference.
"""

from __future__ import annotations

import ctypes

__all__ = [
    "VixError", "SectorType", "SECTOR_SIZE", "MIN_CHUNK_SECTORS", "MAX_CHUNK_NUMBER", "OPEN_UNBUFFERED",
    "OPEN_SINGLE_LINK", "OPEN_READ_ONLY", "CRED_UID", "CRED_SESSIONID", "SPEC_VMX", "ADAPTER_TYPES", "DISK_TYPES",
    "VIX_OK", "VIX_ASYNC", "Geometry", "UidPasswdCreds", "SessionIdCreds", "Creds", "VStorageObjectSpec", "Spec",
    "ConnectParams", "Info", "CreateParams", "Block", "BlockList", "LogFunc", "ProgressFunc", "CompletionFunc",
]

VixError = ctypes.c_uint64
SectorType = ctypes.c_uint64

SECTOR_SIZE = 512
#: QueryAllocatedBlocks: the smallest chunk size and the most chunks one call may cover
MIN_CHUNK_SECTORS = 128
MAX_CHUNK_NUMBER = 512 * 1024

OPEN_UNBUFFERED = 1
OPEN_SINGLE_LINK = 2
OPEN_READ_ONLY = 4

CRED_UID = 1
CRED_SESSIONID = 2
CRED_TICKETID = 3
SPEC_VMX = 0
SPEC_VSTORAGE_OBJECT = 1

ADAPTER_TYPES = {1: "ide", 2: "buslogic", 3: "lsilogic", 256: "unknown"}
DISK_TYPES = {"monolithic_sparse": 1, "monolithic_flat": 2, "split_sparse": 3, "split_flat": 4, "vmfs_flat": 5,
              "stream_optimized": 6, "vmfs_thin": 7, "vmfs_sparse": 8}

VIX_OK = 0
VIX_ASYNC = 25000


class Geometry(ctypes.Structure):
    _fields_ = [("cylinders", ctypes.c_uint32), ("heads", ctypes.c_uint32), ("sectors", ctypes.c_uint32)]


class UidPasswdCreds(ctypes.Structure):
    _fields_ = [("userName", ctypes.c_char_p), ("password", ctypes.c_char_p)]


class SessionIdCreds(ctypes.Structure):
    _fields_ = [("cookie", ctypes.c_char_p), ("userName", ctypes.c_char_p), ("key", ctypes.c_char_p)]


class Creds(ctypes.Union):
    _fields_ = [("uid", UidPasswdCreds), ("sessionId", SessionIdCreds), ("ticketId", ctypes.c_void_p)]


class VStorageObjectSpec(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("datastoreMoRef", ctypes.c_char_p), ("ssId", ctypes.c_char_p)]


class Spec(ctypes.Union):
    _fields_ = [("vStorageObjSpec", VStorageObjectSpec)]


class ConnectParams(ctypes.Structure):
    """VixDiskLibConnectParams, 128 bytes. String fields hold pointers only: the owner keeps the bytes alive."""

    _fields_ = [
        ("vmxSpec", ctypes.c_char_p),
        ("serverName", ctypes.c_char_p),
        ("thumbPrint", ctypes.c_char_p),
        ("privateUse", ctypes.c_long),
        ("credType", ctypes.c_int),
        ("creds", Creds),
        ("port", ctypes.c_uint32),
        ("nfcHostPort", ctypes.c_uint32),
        ("vimApiVer", ctypes.c_char_p),
        ("reserved", ctypes.c_char * 8),
        ("state", ctypes.c_void_p),
        ("spec", Spec),
        ("specType", ctypes.c_int),
    ]


class Info(ctypes.Structure):
    """VixDiskLibInfo, 64 bytes; capacity in sectors. The two sector sizes exist from VDDK 7.0 on only."""

    _fields_ = [
        ("biosGeo", Geometry),
        ("physGeo", Geometry),
        ("capacity", SectorType),
        ("adapterType", ctypes.c_int),
        ("numLinks", ctypes.c_int),
        ("parentFileNameHint", ctypes.c_char_p),
        ("uuid", ctypes.c_char_p),
        ("logicalSectorSize", ctypes.c_uint32),
        ("physicalSectorSize", ctypes.c_uint32),
    ]


class CreateParams(ctypes.Structure):
    """VixDiskLibCreateParams, 32 bytes; capacity in sectors, sector sizes 0 (= default) for VDDK < 7.0."""

    _fields_ = [
        ("diskType", ctypes.c_int),
        ("adapterType", ctypes.c_int),
        ("hwVersion", ctypes.c_uint16),
        ("capacity", SectorType),
        ("logicalSectorSize", ctypes.c_uint32),
        ("physicalSectorSize", ctypes.c_uint32),
    ]


class Block(ctypes.Structure):
    _fields_ = [("offset", SectorType), ("length", SectorType)]


class BlockList(ctypes.Structure):
    """VixDiskLibBlockList: numBlocks, then that many Blocks from offset 8 (declared with one, read by cast)."""

    _fields_ = [("numBlocks", ctypes.c_uint32), ("blocks", Block * 1)]


#: void (*)(const char *fmt, va_list args): on x86_64 a va_list parameter is a pointer
LogFunc = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)
ProgressFunc = ctypes.CFUNCTYPE(ctypes.c_char, ctypes.c_void_p, ctypes.c_int)
CompletionFunc = ctypes.CFUNCTYPE(None, ctypes.c_void_p, VixError)
