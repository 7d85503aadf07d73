# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The JSON schema of a restore point manifest (format version 1).

Kept as a Python dict because AnsiballZ ships only .py files; docs/schemas/manifest.schema.json is the same
schema written out for other programs (a unit test checks they are identical).
"""

from __future__ import annotations

_NON_NEG = {"type": "integer", "minimum": 0}
_TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"}
_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_OPT_STR = {"type": ["string", "null"]}

MANIFEST_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://blockvault.invalid/schemas/manifest-v1.json",
    "title": "blockvault restore point manifest, format version 1",
    "type": "object",
    "additionalProperties": False,
    "required": ["format_version", "id", "run_id", "vm", "created", "started", "finished", "backup_mode",
                 "chunk_size", "disks", "stats"],
    "properties": {
        "format_version": {"const": 1},
        "id": {"type": "string", "pattern": r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{16}-[0-9a-f]{8}$"},
        "run_id": {"type": "string", "minLength": 1, "maxLength": 200},
        "vm": {
            "type": "object",
            "additionalProperties": False,
            "required": ["key", "name", "moref", "uuid", "instance_uuid", "config"],
            "properties": {
                "key": {"type": "string", "minLength": 1, "maxLength": 200},
                "name": {"type": "string"},
                "moref": _OPT_STR,
                "uuid": _OPT_STR,
                "instance_uuid": _OPT_STR,
                "config": {
                    "type": "object",
                    "additionalProperties": True,
                    "properties": {
                        "guest_id": _OPT_STR,
                        "firmware": _OPT_STR,
                        "num_cpus": {"type": ["integer", "null"], "minimum": 1},
                        "memory_mb": {"type": ["integer", "null"], "minimum": 0},
                        "controllers": {"type": "array", "items": {"type": "object"}},
                        "nics": {"type": "array", "items": {"type": "object"}},
                        "annotation": _OPT_STR,
                    },
                },
            },
        },
        "created": _TIME,
        "started": _TIME,
        "finished": _TIME,
        "backup_mode": {"type": "string", "enum": ["full", "incremental", "auto"]},
        "chunk_size": {"type": "integer", "minimum": 4096},
        "disks": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "label", "controller", "unit_number", "capacity", "file_name", "uuid", "change_id", "mode", "reason",
                             "bytes_read", "bytes_new", "sha256", "sha256_block_size", "index", "index_sha256"],
                "properties": {
                    "key": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                    "label": _OPT_STR,
                    "controller": {
                        "type": ["object", "null"],
                        "additionalProperties": True,
                        "properties": {
                            "key": {"type": ["integer", "string", "null"]},
                            "type": _OPT_STR,
                            "bus_number": {"type": ["integer", "null"], "minimum": 0},
                        },
                    },
                    "unit_number": {"type": ["integer", "null"], "minimum": 0},
                    "capacity": _NON_NEG,
                    "file_name": _OPT_STR,
                    "uuid": _OPT_STR,
                    "change_id": _OPT_STR,
                    "mode": {"type": "string", "enum": ["full", "incremental"]},
                    "reason": _OPT_STR,
                    "bytes_read": _NON_NEG,
                    "bytes_new": _NON_NEG,
                    "sha256": _HEX64,
                    "sha256_block_size": {"type": "integer", "minimum": 4096},
                    "index": {"type": "string", "pattern": r"^indexes/\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{16}-[0-9a-f]{8}/[A-Za-z0-9_.-]{1,64}$"},
                    "index_sha256": _HEX64,
                    "bytes_stored": _NON_NEG,
                    "transport": {"type": "string", "pattern": "^[a-z]{1,16}$"},
                },
            },
        },
        "stats": {"type": "object", "additionalProperties": True},
    },
}
