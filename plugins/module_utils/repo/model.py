# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The typed model of a restore point: what a manifest holds, as small immutable values.

One place converts to and from the schema-checked JSON of a manifest (format section 7): ``Manifest.from_json`` and
``Manifest.to_json``. Everything else (backup, restore, validation, listings, the benchmarks and the tests) reads
and builds these values, never the JSON's string keys. A backup describes what it stored with a ``ManifestDraft``
(built with ``ManifestDraft.build``); the repository session completes it (ids, index names, checksums) into the
``Manifest`` it commits.

All classes are frozen dataclasses: hashable where their fields are, safe to share between threads. Mappings
inside them (a captured controller, the statistics) are plain dicts by necessity of JSON; treat them as read-only.
"""

from __future__ import annotations

import dataclasses
import re

from ..errors import ConfigurationError, CorruptionError
from .format import check_disk_key

__all__ = ["manifest_from_document", "RestorePoint", "DiskKey", "VmConfig", "VmRecord", "DiskRecord", "DiskEntry", "Manifest", "ManifestDraft",
           "DiskSummary", "PointSummary", "SUMMARY_STATS", "BACKUP_MODES"]

BACKUP_MODES = ("full", "incremental", "auto")


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class RestorePoint:
    """A restore point as listed from object names (no manifest read): id, created (UTC datetime), vm_tag (16 hex).

    Ordered by id, which sorts by creation time."""

    id: str
    created: object
    vm_tag: str


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class DiskKey:
    """A disk's key within its VM: vSphere's device key ("2000"), as the repository names indexes by it."""

    value: str

    def __post_init__(self):
        if not isinstance(self.value, str):
            raise ConfigurationError("A disk key is text, got %r." % (self.value,))
        check_disk_key(self.value)

    @classmethod
    def of(cls, key):
        """``key`` (a DiskKey, a vSphere device key int, or its text) as a DiskKey."""
        return key if isinstance(key, DiskKey) else cls(str(key))

    def __str__(self):
        return self.value


@dataclasses.dataclass(frozen=True, slots=True)
class VmConfig:
    """The VM's configuration as captured at backup time (what a restore to a new VM recreates).

    ``controllers``, ``disks`` and ``nics`` are tuples of the captured device dicts (vsphere.config documents
    their fields); ``placement`` is where the VM lived ({datacenter, compute, folder}); ``extra`` keeps fields
    this version does not know, so a manifest written by a newer version round-trips unchanged.
    """

    name: str
    guest_id: str = None
    firmware: str = None
    num_cpus: int = None
    cores_per_socket: int = None
    memory_mb: int = None
    annotation: str = None
    hardware_version: str = None
    template: bool = False
    bios_uuid: str = None
    instance_uuid: str = None
    controllers: tuple = ()
    disks: tuple = ()
    nics: tuple = ()
    cdrom: bool = False
    placement: dict = None
    extra: dict = dataclasses.field(default_factory=dict)

    _LISTS = ("controllers", "disks", "nics")

    @classmethod
    def from_json(cls, data):
        data = dict(data or {})
        known = {field.name for field in dataclasses.fields(cls)} - {"extra"}
        values = {name: data.pop(name) for name in list(data) if name in known}
        for name in cls._LISTS:
            values[name] = tuple(dict(item) for item in values.get(name) or ())
        values.setdefault("name", "")
        return cls(extra=data, **values)

    def to_json(self):
        out = dict(self.extra)
        for field in dataclasses.fields(self):
            if field.name == "extra":
                continue
            value = getattr(self, field.name)
            out[field.name] = [dict(item) for item in value] if field.name in self._LISTS else value
        if out.get("placement") is None:
            out.pop("placement")
        return out

    def with_disks(self, keys):
        """The configuration with only the disks whose keys are in ``keys`` (the disks a restore point holds)."""
        wanted = {str(key) for key in keys}
        return dataclasses.replace(self, disks=tuple(d for d in self.disks if str(d.get("key")) in wanted))


@dataclasses.dataclass(frozen=True, slots=True)
class VmRecord:
    """The backed-up VM: ``key`` names it in the repository (its instance UUID, else BIOS UUID, else moref)."""

    key: str
    name: str
    moref: str = None
    uuid: str = None
    instance_uuid: str = None
    config: VmConfig = None

    @classmethod
    def from_json(cls, data):
        return cls(key=data["key"], name=data["name"], moref=data.get("moref"), uuid=data.get("uuid"),
                   instance_uuid=data.get("instance_uuid"), config=VmConfig.from_json(data.get("config")))

    def to_json(self):
        return {"key": self.key, "name": self.name, "moref": self.moref, "uuid": self.uuid,
                "instance_uuid": self.instance_uuid, "config": (self.config or VmConfig(self.name)).to_json()}


@dataclasses.dataclass(frozen=True, slots=True)
class DiskRecord:
    """What a backup knows of one disk it stored, before the repository names its index and checksums it."""

    key: DiskKey
    capacity: int
    mode: str
    reason: str = None
    label: str = None
    controller: dict = None
    unit_number: int = None
    file_name: str = None
    uuid: str = None
    change_id: str = None
    bytes_read: int = 0
    bytes_new: int = 0
    sha256: str = None
    # optional (absent from restore points written before they existed): the bytes the new chunks took in the
    # repository (compressed, encrypted), and the VDDK transport the disk was really read with
    bytes_stored: int = None
    transport: str = None

    def __post_init__(self):
        object.__setattr__(self, "key", DiskKey.of(self.key))
        if self.mode not in ("full", "incremental"):
            raise ConfigurationError("Disk %s: mode %r is neither full nor incremental." % (self.key, self.mode))


@dataclasses.dataclass(frozen=True, slots=True)
class DiskEntry:
    """One disk of a committed restore point: the DiskRecord plus the repository's own fields."""

    record: DiskRecord
    sha256: str
    sha256_block_size: int
    index: str
    index_sha256: str

    # the record's fields read through, so callers write entry.key, entry.capacity
    key = property(lambda self: self.record.key)
    capacity = property(lambda self: self.record.capacity)
    label = property(lambda self: self.record.label)
    mode = property(lambda self: self.record.mode)
    reason = property(lambda self: self.record.reason)
    change_id = property(lambda self: self.record.change_id)
    uuid = property(lambda self: self.record.uuid)
    file_name = property(lambda self: self.record.file_name)
    bytes_read = property(lambda self: self.record.bytes_read)
    bytes_new = property(lambda self: self.record.bytes_new)
    bytes_stored = property(lambda self: self.record.bytes_stored)
    transport = property(lambda self: self.record.transport)

    @property
    def name(self):
        """How a person names the disk: its label, with the key."""
        return "%s (key %s)" % (self.label, self.key) if self.label else "key %s" % self.key

    @classmethod
    def from_json(cls, data):
        record = DiskRecord(key=DiskKey(data["key"]), capacity=data["capacity"], mode=data["mode"], reason=data.get("reason"),
                            label=data.get("label"), controller=data.get("controller"), unit_number=data.get("unit_number"),
                            file_name=data.get("file_name"), uuid=data.get("uuid"), change_id=data.get("change_id"),
                            bytes_read=data.get("bytes_read", 0), bytes_new=data.get("bytes_new", 0), sha256=data["sha256"],
                            bytes_stored=data.get("bytes_stored"), transport=data.get("transport"))
        return cls(record=record, sha256=data["sha256"], sha256_block_size=data["sha256_block_size"], index=data["index"],
                   index_sha256=data["index_sha256"])

    def to_json(self):
        record = self.record
        out = {"key": record.key.value, "label": record.label, "controller": record.controller,
               "unit_number": record.unit_number, "capacity": record.capacity, "file_name": record.file_name,
               "uuid": record.uuid, "change_id": record.change_id, "mode": record.mode, "reason": record.reason,
               "bytes_read": record.bytes_read, "bytes_new": record.bytes_new, "sha256": self.sha256,
               "sha256_block_size": self.sha256_block_size, "index": self.index, "index_sha256": self.index_sha256}
        # the optional fields only when known, so an older manifest round-trips unchanged
        for name in ("bytes_stored", "transport"):
            if getattr(record, name) is not None:
                out[name] = getattr(record, name)
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class ManifestDraft:
    """A restore point as a backup describes it before the commit: the one builder of manifests."""

    run_id: str
    vm: VmRecord
    disks: tuple
    backup_mode: str
    started: str = None
    stats: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.backup_mode not in BACKUP_MODES:
            raise ConfigurationError("backup_mode %r is not one of %s." % (self.backup_mode, ", ".join(BACKUP_MODES)))
        object.__setattr__(self, "disks", tuple(self.disks))

    @classmethod
    def build(cls, run_id, vm, disks, stats=None, started=None):
        """The draft of ``disks`` (DiskRecords) of VmRecord ``vm``; its backup_mode follows from the disks' modes."""
        modes = {disk.mode for disk in disks}
        return cls(run_id=run_id, vm=vm, disks=tuple(disks), backup_mode=modes.pop() if len(modes) == 1 else "auto",
                   started=started, stats=dict(stats or {}))


@dataclasses.dataclass(frozen=True, slots=True)
class Manifest:
    """A committed restore point (format version 1)."""

    id: str
    run_id: str
    vm: VmRecord
    created: str
    started: str
    finished: str
    backup_mode: str
    chunk_size: int
    disks: tuple
    stats: dict

    @classmethod
    def from_json(cls, data):
        """The Manifest of a schema-checked manifest dict (repo.manifest.decode_manifest checks the schema)."""
        return cls(id=data["id"], run_id=data["run_id"], vm=VmRecord.from_json(data["vm"]), created=data["created"],
                   started=data["started"], finished=data["finished"], backup_mode=data["backup_mode"],
                   chunk_size=data["chunk_size"], disks=tuple(DiskEntry.from_json(disk) for disk in data["disks"]),
                   stats=dict(data["stats"]))

    def to_json(self):
        return {"format_version": 1, "id": self.id, "run_id": self.run_id, "vm": self.vm.to_json(), "created": self.created,
                "started": self.started, "finished": self.finished, "backup_mode": self.backup_mode,
                "chunk_size": self.chunk_size, "disks": [disk.to_json() for disk in self.disks], "stats": dict(self.stats)}

    @property
    def vm_name(self):
        return self.vm.name

    def disk(self, reference=None):
        """The DiskEntry named by ``reference`` (a key or a label; the first disk when None), else ConfigurationError."""
        if reference is None:
            return self.disks[0]
        for entry in self.disks:
            if str(reference) in (entry.key.value, entry.label):
                return entry
        raise ConfigurationError("Restore point %s has no disk %r; its disks are %s." % (
            self.id, str(reference), ", ".join(entry.name for entry in self.disks) or "none"))

    def stat(self, name, default=0):
        return self.stats.get(name, default)

    def reference(self):
        """{id, vm, created}: how results name a restore point."""
        return {"id": self.id, "vm": self.vm.name, "created": self.created}


#: the statistics of a manifest that a PointSummary keeps: those the listings show (ops.info, ops.report)
SUMMARY_STATS = ("bytes_read", "bytes_written", "transports_requested", "transport", "duration", "quiesced", "copied_from")
# the patterns of the manifest schema (manifest_schema.py), applied as jsonschema does (re.search): a summary of a
# manifest that passed the schema always reads back from its JSON
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
_HEX64 = re.compile("^[0-9a-f]{64}$")
_TRANSPORT = re.compile("^[a-z]{1,16}$")


# checks of values read back from JSON (whose types are exactly str, int...: ``value.__class__ is int`` excludes bools), in
# one expression per object: a listing checks 30,000 summaries


def _is_text(value, optional=False):
    return value.__class__ is str or (optional and value is None)


def _is_count(value, optional=False):
    return (value.__class__ is int and value >= 0) or (optional and value is None)


@dataclasses.dataclass(frozen=True, slots=True)
class DiskSummary:
    """One disk of a PointSummary: the fields of its DiskEntry that listings show, under the same names."""

    key: DiskKey
    capacity: int
    mode: str
    label: str = None
    reason: str = None
    transport: str = None
    bytes_read: int = 0
    bytes_new: int = 0
    bytes_stored: int = None
    sha256: str = None

    @classmethod
    def of(cls, entry):
        """The summary of a DiskEntry."""
        return cls(key=entry.key, capacity=entry.capacity, mode=entry.mode, label=entry.label, reason=entry.reason,
                   transport=entry.transport, bytes_read=entry.bytes_read, bytes_new=entry.bytes_new,
                   bytes_stored=entry.bytes_stored, sha256=entry.sha256)

    @classmethod
    def from_json(cls, data):
        """The DiskSummary of its JSON (to_json); ValueError, TypeError or ConfigurationError when a value is not what a
        manifest holds: the JSON was not schema-checked."""
        get = data.get if data.__class__ is dict else {}.get
        key, label, reason, transport, sha256 = get("key"), get("label"), get("reason"), get("transport"), get("sha256")
        capacity, bytes_read, bytes_new, bytes_stored = get("capacity"), get("bytes_read"), get("bytes_new"), get("bytes_stored")
        if not (get("mode") in ("full", "incremental") and _is_text(key) and _is_text(label, True) and _is_text(reason, True)
                and (transport is None or (transport.__class__ is str and _TRANSPORT.search(transport)))
                and sha256.__class__ is str and _HEX64.search(sha256) and _is_count(capacity) and _is_count(bytes_read)
                and _is_count(bytes_new) and _is_count(bytes_stored, True)):
            raise ValueError("not a disk of a manifest")
        return cls(key=DiskKey(key), capacity=capacity, mode=get("mode"), label=label, reason=reason, transport=transport,
                   bytes_read=bytes_read, bytes_new=bytes_new, bytes_stored=bytes_stored, sha256=sha256)

    def to_json(self):
        return {"key": self.key.value, "label": self.label, "capacity": self.capacity, "mode": self.mode, "reason": self.reason,
                "transport": self.transport, "bytes_read": self.bytes_read, "bytes_new": self.bytes_new,
                "bytes_stored": self.bytes_stored, "sha256": self.sha256}


@dataclasses.dataclass(frozen=True, slots=True)
class PointSummary:
    """A restore point as listings show it (repo.catalog keeps these): the fields of its Manifest they read, under the
    same names, so that a view takes a Manifest or a PointSummary alike. ``vm`` is a VmRecord with key and name only;
    ``disks`` are DiskSummary values; ``stats`` holds the SUMMARY_STATS the manifest has, as it has them."""

    id: str
    run_id: str
    vm: VmRecord
    created: str
    finished: str
    backup_mode: str
    disks: tuple
    stats: dict

    @classmethod
    def of(cls, manifest):
        """The summary of a Manifest."""
        return cls(id=manifest.id, run_id=manifest.run_id, vm=VmRecord(key=manifest.vm.key, name=manifest.vm.name),
                   created=manifest.created, finished=manifest.finished, backup_mode=manifest.backup_mode,
                   disks=tuple(DiskSummary.of(entry) for entry in manifest.disks),
                   stats={name: manifest.stats[name] for name in SUMMARY_STATS if name in manifest.stats})

    @classmethod
    def from_json(cls, rp_id, data):
        """The PointSummary of restore point ``rp_id`` from its JSON (to_json: a catalog entry); ValueError, TypeError,
        AttributeError or ConfigurationError when a value is not what a manifest holds: the JSON was not schema-checked."""
        get = data.get if data.__class__ is dict else {}.get
        run_id, vm, created, finished, stats, disks = get("run_id"), get("vm"), get("created"), get("finished"), get("stats"), get("disks")
        key, name = (vm.get("key"), vm.get("name")) if vm.__class__ is dict else (None, None)
        if not (get("backup_mode") in BACKUP_MODES and run_id.__class__ is str and 0 < len(run_id) <= 200 and key.__class__ is str
                and 0 < len(key) <= 200 and name.__class__ is str and created.__class__ is str and _TIME.search(created)
                and finished.__class__ is str and _TIME.search(finished) and stats.__class__ is dict and disks.__class__ is list):
            raise ValueError("not a restore point of a manifest")
        return cls(id=rp_id, run_id=run_id, vm=VmRecord(key=key, name=name), created=created, finished=finished,
                   backup_mode=get("backup_mode"), disks=tuple(map(DiskSummary.from_json, disks)),
                   stats={stat: stats[stat] for stat in SUMMARY_STATS if stat in stats})

    def to_json(self):
        return {"id": self.id, "run_id": self.run_id, "vm": {"key": self.vm.key, "name": self.vm.name}, "created": self.created,
                "finished": self.finished, "backup_mode": self.backup_mode, "stats": dict(self.stats),
                "disks": [disk.to_json() for disk in self.disks]}

    def stat(self, name, default=0):
        return self.stats.get(name, default)

    def reference(self):
        """{id, vm, created}: how results name a restore point (as Manifest.reference)."""
        return {"id": self.id, "vm": self.vm.name, "created": self.created}


def manifest_from_document(name, document):
    """The Manifest of the schema-checked manifest ``document`` of object ``name``; CorruptionError naming the object
    when a value the schema lets through does not fit the model (a disk key "..", a configuration list that is not one)."""
    try:
        return Manifest.from_json(document)
    except (ConfigurationError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptionError("Manifest %s does not describe a restore point (%s): it is damaged." % (
            name, exc.message if isinstance(exc, ConfigurationError) else "%s: %s" % (type(exc).__name__, exc)),
            object_name=name) from None
