# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report of a repository (module backup_report): its restore points gathered into small immutable rows, rendered
(ops.report_render) into one self-contained HTML file, a JSON document and two CSV tables, written to a directory.

What the rows hold comes from the manifests, as the engine's listing summarises them (``select_summaries``: the
repository's catalog where it matches the manifests, else the manifests themselves), and
from the repository's pins, notes and validation records (format section 7.2). Nothing in the files depends on the
moment the report is made: the "as of" time is the newest event the repository records (a restore point finished,
a validation passed), so that a report of an unchanged repository is byte for byte the previous one and a rerun
writes nothing (``changed`` is false). Each file is written atomically (a temporary file in the same directory,
synced, renamed over the old one), and only when its content differs.

Figures, per restore point (the manifest's own, never recomputed from chunks): ``bytes_read`` (what the backup read
from the VM's disks), ``bytes_new`` (of that, the chunks the repository did not hold yet, before compression),
``bytes_stored`` (what those took once compressed and encrypted); the deduplication ratio is read / new and the
compression ratio new / stored. Restore points written before ``bytes_stored`` existed have no ``bytes_new`` of
their own (theirs held the stored size) and no ratios. A VM's stored bytes are what its restore points added to the
repository when written: a chunk shared by two VMs counts for the one that stored it first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os

from ..errors import ConfigurationError, CorruptionError
from ..fileio import replace_file
from . import report_render
from ._report_svg import parse_time
from ._engine import open_repository, select_summaries

__all__ = ["ReportRequest", "DiskRow", "PointRow", "VmReport", "RepositoryFacts", "RatioPoint", "ReportData", "gather",
           "render_files", "write_report", "FILE_NAMES", "DEFAULT_TITLE"]

#: the files a report writes into its ``dest`` directory, by the name the result gives each one
FILE_NAMES = {"html": "report.html", "json": "report.json", "restore_points_csv": "restore_points.csv",
              "disks_csv": "disks.csv"}
DEFAULT_TITLE = "Backup report"
MAX_TITLE = 200
#: mode of a report file written where none was: the report names VMs, as the repository's encrypted manifests do
NEW_FILE_MODE = 0o600


@dataclasses.dataclass(frozen=True)
class ReportRequest:
    """Where to write the report (``dest``, a directory, created when missing), of which VM (``vm``, a name; None:
    every VM) and under which ``title`` (None: DEFAULT_TITLE)."""

    dest: str
    vm: str = None
    title: str = None

    def __post_init__(self):
        if not self.dest:
            raise ConfigurationError("dest is empty: give the directory to write the report into.")
        if self.title is not None and (not self.title.strip() or len(self.title) > MAX_TITLE):
            raise ConfigurationError("title must be 1 to %d characters (or left out)." % MAX_TITLE)


def _count(value):
    """A byte count from a manifest: a non-negative integer, else None (``stats`` is free-form: never trust its types)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _seconds(value):
    """A duration from a manifest's free-form stats: a finite non-negative number of seconds, else None (an integer too
    large for a float included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _ratio(numerator, denominator):
    return round(numerator / denominator, 4) if numerator is not None and denominator else None


@dataclasses.dataclass(frozen=True)
class DiskRow:
    """One disk of a restore point: how it was read (``mode`` and ``reason``, ``transport``: the VDDK transport mode
    really used, None when not recorded) and what it cost. ``bytes_new`` is None for a restore point written before
    ``bytes_stored`` existed (its manifest's bytes_new is the stored size, shown as ``bytes_stored``)."""

    key: str
    label: str
    capacity: int
    mode: str
    reason: str
    transport: str
    bytes_read: int
    bytes_new: int
    bytes_stored: int

    @classmethod
    def of(cls, entry):
        """The row of a repo.model DiskEntry or DiskSummary."""
        stored = _count(entry.bytes_stored)
        new = _count(entry.bytes_new)
        if stored is None:
            new, stored = None, new
        return cls(key=entry.key.value, label=entry.label or "", capacity=entry.capacity, mode=entry.mode,
                   reason=entry.reason or "", transport=entry.transport, bytes_read=_count(entry.bytes_read) or 0,
                   bytes_new=new, bytes_stored=stored or 0)


@dataclasses.dataclass(frozen=True)
class PointRow:
    """One restore point as the report shows it. ``validated`` is the repo.pins.ValidationRecord of the last
    validation it passed (None: never), ``copied`` says it came from another repository (backup_copy: its figures are
    those of the backup that made it), ``duration`` is in seconds and ``quiesced`` None when not recorded."""

    id: str
    vm_name: str
    vm_key: str
    run_id: str
    created: str
    finished: str
    backup_mode: str
    bytes_read: int
    bytes_stored: int
    duration: float
    quiesced: bool
    disks: tuple
    validated: object = None
    pinned: bool = False
    note: str = ""
    copied: bool = False

    @classmethod
    def of(cls, manifest, validated=None, pinned=False, note=""):
        """The row of a repo.model Manifest or PointSummary."""
        disks = tuple(DiskRow.of(entry) for entry in manifest.disks)
        stats = manifest.stats
        read = _count(stats.get("bytes_read"))
        stored = _count(stats.get("bytes_written"))
        duration = stats.get("duration")
        quiesced = stats.get("quiesced")
        return cls(id=manifest.id, vm_name=manifest.vm.name, vm_key=manifest.vm.key, run_id=manifest.run_id,
                   created=manifest.created, finished=manifest.finished, backup_mode=manifest.backup_mode,
                   bytes_read=sum(d.bytes_read for d in disks) if read is None else read,
                   bytes_stored=sum(d.bytes_stored for d in disks) if stored is None else stored,
                   duration=_seconds(duration),
                   quiesced=quiesced if isinstance(quiesced, bool) else None, disks=disks, validated=validated,
                   pinned=bool(pinned), note=note or "", copied=bool(stats.get("copied_from")))

    @property
    def moment(self):
        """When it was made (its ``created``), as a datetime."""
        return parse_time(self.created) or datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)

    @property
    def bytes_new(self):
        """New bytes (before compression) of all its disks; None when a disk does not record them."""
        news = [d.bytes_new for d in self.disks]
        return None if any(n is None for n in news) else sum(news)

    @property
    def logical_bytes(self):
        """The size of the VM's disks it holds (a restore point is a synthetic full)."""
        return sum(d.capacity for d in self.disks)

    @property
    def dedup_ratio(self):
        """bytes read / new bytes: how much of what the backup read the repository held already (None: unknown or
        nothing new)."""
        return _ratio(self.bytes_read if self.bytes_new is not None else None, self.bytes_new)

    @property
    def compression_ratio(self):
        """new bytes / stored bytes of its disks (None: unknown or nothing stored)."""
        return _ratio(self.bytes_new, sum(d.bytes_stored for d in self.disks))


@dataclasses.dataclass(frozen=True)
class VmReport:
    """The restore points of one VM (``key``: the repository's key of the VM), oldest first; ``name`` is the name of
    its newest restore point (a VM renamed between backups is one VM)."""

    key: str
    name: str
    points: tuple

    @property
    def bytes_stored(self):
        return sum(p.bytes_stored for p in self.points)

    @property
    def bytes_read(self):
        return sum(p.bytes_read for p in self.points)

    @property
    def validated_count(self):
        return sum(1 for p in self.points if p.validated is not None)


@dataclasses.dataclass(frozen=True)
class RepositoryFacts:
    """The repository as listed: where, which, its chunk size and encryption, and what its chunks take."""

    location: str
    id: str
    chunk_size: int
    encrypted: bool
    compression_level: int
    chunks: int
    stored_bytes: int


@dataclasses.dataclass(frozen=True)
class RatioPoint:
    """The deduplication and compression ratios of the restore points up to one (``created``), cumulated."""

    created: str
    dedup: float
    compression: float


@dataclasses.dataclass(frozen=True)
class ReportData:
    """Everything a report shows. ``vms`` sorted by name (then key), ``as_of`` the newest time the repository records
    for them (None when empty), ``warnings`` what was left out (damaged manifests or notes)."""

    title: str
    vm: str
    repository: RepositoryFacts
    vms: tuple
    as_of: str
    warnings: tuple = ()

    @property
    def points(self):
        """Every restore point of the report, oldest first."""
        return tuple(sorted((p for vm in self.vms for p in vm.points), key=lambda p: (p.moment, p.id)))

    @property
    def consumers(self):
        """The VMs, largest stored bytes first."""
        return tuple(sorted(self.vms, key=lambda vm: (-vm.bytes_stored, vm.name, vm.key)))

    def ratio_series(self):
        """RatioPoint per restore point, oldest first, over the restore points that record their new bytes."""
        series, read, new, stored = [], 0, 0, 0
        for point in self.points:
            if point.bytes_new is None:
                continue
            read, new, stored = read + point.bytes_read, new + point.bytes_new, stored + sum(d.bytes_stored for d in point.disks)
            if new and stored:
                series.append(RatioPoint(point.created, round(read / new, 4), round(new / stored, 4)))
        return tuple(series)

    def summary(self):
        """The figures the module returns (and the report's header shows)."""
        points = self.points
        return {"vms": len(self.vms), "restore_points": len(points), "validated_restore_points": sum(vm.validated_count for vm in self.vms),
                "bytes_read": sum(p.bytes_read for p in points), "bytes_stored": sum(p.bytes_stored for p in points),
                "logical_bytes": sum(p.logical_bytes for p in points), "repository_bytes": self.repository.stored_bytes,
                "repository_chunks": self.repository.chunks, "as_of": self.as_of}


def _newest(times):
    """The newest of repository times (strings), as written; None when there is none that parses."""
    dated = [(parse_time(text), text) for text in times if parse_time(text) is not None]
    return max(dated)[1] if dated else None


def gather(repository, vm=None, title=None):
    """The ReportData of an open Repository: every restore point, or those of the VM named ``vm``.

    A damaged manifest is left out with a warning (select_summaries), so is a damaged note (the restore point is
    shown without it). ConfigurationError when ``vm`` is given and has no restore point.
    """
    selection = select_summaries(repository, vm or None)
    warnings = list(selection.warnings)
    if vm and not selection.summaries:
        raise ConfigurationError("No restore point of VM %s in the repository%s." % (
            vm, " (%d with a damaged manifest skipped)" % len(warnings) if warnings else ""))
    pinned, noted, validations = repository.pinned_ids(), repository.noted_ids(), repository.validation_records()
    by_key = {}
    for summary in selection.summaries:
        note = ""
        if summary.id in noted:
            try:
                note = repository.note(summary.id)
            except CorruptionError as exc:
                warnings.append("restore point %s: its note is damaged (%s); shown without it" % (summary.id, exc.message))
        row = PointRow.of(summary, validations.get(summary.id), summary.id in pinned, note)
        by_key.setdefault(summary.vm.key, []).append(row)
    vms = []
    for key, rows in by_key.items():
        rows.sort(key=lambda p: (p.moment, p.id))
        vms.append(VmReport(key=key, name=rows[-1].vm_name, points=tuple(rows)))
    vms.sort(key=lambda v: (v.name, v.key))
    stats = repository.stats()
    facts = RepositoryFacts(location=str(stats["location"]), id=stats["id"], chunk_size=stats["chunk_size"],
                            encrypted=bool(stats["encrypted"]), compression_level=stats["compression_level"],
                            chunks=stats["chunks"], stored_bytes=stats["stored_bytes"])
    times = [p.finished for v in vms for p in v.points]
    times += [p.validated.validated for v in vms for p in v.points if p.validated is not None]
    return ReportData(title=title or DEFAULT_TITLE, vm=vm or None, repository=facts, vms=tuple(vms), as_of=_newest(times),
                      warnings=tuple(warnings))


def render_files(data):
    """{file name: content bytes} of the report of ReportData ``data`` (FILE_NAMES)."""
    return {FILE_NAMES["html"]: report_render.render_html(data, FILE_NAMES).encode("utf-8"),
            FILE_NAMES["json"]: report_render.render_json(data).encode("utf-8"),
            FILE_NAMES["restore_points_csv"]: report_render.render_points_csv(data).encode("utf-8"),
            FILE_NAMES["disks_csv"]: report_render.render_disks_csv(data).encode("utf-8")}


def _current(path):
    """The bytes of the file at ``path``, None when there is none; ConfigurationError when it is not a file."""
    if not os.path.lexists(path):
        return None
    if not os.path.isfile(path) or os.path.islink(path):
        raise ConfigurationError("%s exists and is not a regular file: the report does not replace it." % path)
    try:
        with open(path, "rb") as current:
            return current.read()
    except OSError as exc:
        raise ConfigurationError("%s cannot be read (%s)." % (path, exc.strerror)) from exc


def _ensure_directory(dest):
    if os.path.isdir(dest):
        return
    if os.path.lexists(dest):
        raise ConfigurationError("dest %s exists and is not a directory." % dest)
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError("dest %s: cannot create the directory (%s)." % (dest, exc.strerror)) from exc


def write_report(request, repo, check=False):
    """Write the report ReportRequest ``request`` asks for, of the repository of RepositorySettings ``repo``.

    Returns {changed, dest, files: {html, json, restore_points_csv, disks_csv: path}, updated: [paths written, or
    that would be in check mode], summary, warnings, msg}. Only the files whose content differs are written; in check
    mode none is (nor is ``dest`` created).
    """
    with contextlib.closing(open_repository(repo)) as repository:
        data = gather(repository, vm=request.vm, title=request.title)
    contents = render_files(data)
    dest = os.path.abspath(request.dest)
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise ConfigurationError("dest %s exists and is not a directory." % dest)
    paths = {what: os.path.join(dest, name) for what, name in FILE_NAMES.items()}
    updated = [paths[what] for what, name in FILE_NAMES.items() if _current(paths[what]) != contents[name]]
    if updated and not check:
        _ensure_directory(dest)
        for what, name in FILE_NAMES.items():
            if paths[what] in updated:
                replace_file(paths[what], contents[name], new_mode=NEW_FILE_MODE)
    summary = data.summary()
    verb = "would write" if check else "wrote"
    msg = ("report of %d restore points of %d VMs: %s %s" % (summary["restore_points"], summary["vms"], verb,
                                                             ", ".join(os.path.basename(p) for p in updated))
           if updated else "report of %d restore points of %d VMs: unchanged" % (summary["restore_points"], summary["vms"]))
    return {"changed": bool(updated), "dest": dest, "files": paths, "updated": updated, "summary": summary,
            "warnings": list(data.warnings), "msg": msg}
