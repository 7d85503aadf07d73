# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore point catalog (format section 7.3): per VM, ``catalog/<vm tag>`` holds the summaries of its restore
points that listings show (model.PointSummary), so that listing 30,000 restore points reads one object per VM instead
of reading, verifying and schema-checking 30,000 manifests. A reader that ignores it loses nothing.

Contract: the catalog is never trusted over the manifests.

* The listing of ``manifests/`` is the truth: a listing shows the restore points listed there and no other. An entry
  whose manifest is not listed is ignored (and dropped when the catalog is next rewritten).
* An entry records the *stamp* of the manifest object it was made from, as a listing shows it: size, modification time
  and version (S3: the ETag; local: the inode, new at every atomic write). It stands in for the manifest only while the
  listing shows that same stamp: a manifest written again (a copy re-creating a removed restore point, damage written
  over it) has a new stamp, so it is read, verified and schema-checked as before, and its entry replaced.
* A listed manifest without a matching entry is read as before (a damaged one gives the same error); the entry of one
  that reads is added: the listing repairs the catalog.
* The object is sealed (bound to its name) in an encrypted repository, checksummed otherwise. One that does not verify
  or decode (damaged, forged, another VM's, an entry no manifest could give) is ignored with a warning and rebuilt from
  the manifests; one of a higher version is neither used nor overwritten.
* One VM's listing (by key or name) lists ``manifests/`` by name only (``Backend.list_names``: no stat per file on a
  local directory) and stats the manifests of the VM it shows. By name it passes over a VM whose catalog has an entry
  for each listed id and none of the name, stamps not compared: a restore point's VM is fixed when its manifest is
  first written (format section 7.3, "One VM"). 30,000 restore points: 0.14 s of CPU instead of 0.27 s (local).
* Nothing here fails a backup or a listing: a commit or listing that cannot write a catalog logs a warning. Two writers
  of one VM's catalog at once may lose an entry: the next listing reads that manifest and adds it again.

A stamp cannot tell a manifest damaged in place without a write (bit rot): validation, which reads every manifest, does.
In an unencrypted repository whoever can write it can forge a catalog as well as a manifest: neither is authenticated.

Thread-safety: stateless functions, objects read and written whole (atomic puts), one object per VM; a listing pauses
the process's cyclic garbage collector while it runs (cycle_collection_paused).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor

from ..errors import BackendError, ConfigurationError, CorruptionError, NotFoundInBackendError, RepositoryError, RepositoryFormatError
from .format import MANIFESTS_PREFIX, canonical_json, manifest_name, parse_restore_point_id, restore_point_tag
from .manifest import decode_manifest
from .model import PointSummary, RestorePoint, manifest_from_document

__all__ = ["CATALOG_PREFIX", "CatalogObject", "SummaryRead", "read_summaries", "record_commit", "encode_catalog", "decode_catalog",
           "summary_of_entry", "cycle_collection_paused"]

log = logging.getLogger("blockvault.catalog")

CATALOG_PREFIX = "catalog/"
CATALOG_FORMAT = "blockvault-catalog"
CATALOG_VERSION = 1
# a listing rewrites a catalog holding at least this many ignored entries (and as many as it uses): prune and delete
# leave the entries of what they remove, and a catalog must not grow with every backup of a VM's life
STALE_ENTRIES_REWRITE = 16
# catalogs and manifests read at once from a remote store (a listing of 1,000 VMs reads 1,000 catalogs)
PARALLEL_READS = 16


def catalog_name(vm_tag):
    return CATALOG_PREFIX + vm_tag


def _stamp(info):
    """The stamp of a listed manifest (a backend ObjectInfo), as catalogs record it: [size, mtime, version]."""
    return [info.size, info.mtime, info.version]


@dataclasses.dataclass(frozen=True, slots=True)
class SummaryRead:
    """One listed restore point as a listing sees it: ``summary`` (a model.PointSummary, from the catalog or from its
    manifest), ``error`` (its manifest is damaged: the error Repository.read_manifest gives), or neither (``gone``:
    removed since the listing). Immutable."""

    point: RestorePoint
    summary: PointSummary = None
    error: RepositoryError = None

    @property
    def gone(self):
        return self.summary is None and self.error is None


def summary_of_entry(rp_id, entry, vm_tag):
    """The PointSummary of the catalog entry of restore point ``rp_id`` (an entry of CatalogObject.entries(), whose id
    it holds); CorruptionError when a value is not what a manifest holds."""
    try:
        return PointSummary.from_json(rp_id, entry)
    except (ValueError, TypeError, AttributeError, ConfigurationError) as exc:
        raise CorruptionError("The catalog entry of restore point %s is damaged (%s)." % (rp_id, exc.message if isinstance(exc, ConfigurationError) else exc),
                              object_name=catalog_name(vm_tag)) from None


def _named(entry):
    """The VM name an entry holds, None when it holds none (it is not checked yet)."""
    vm = entry.get("vm")
    name = vm.get("name") if isinstance(vm, dict) else None
    return name if isinstance(name, str) else None


# -- objects ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CatalogObject:
    """A decoded catalog object: its header, ``stamps`` ({restore point id: [size, mtime, version]} of the manifest
    objects its entries were made from) and ``names`` (the VM names its entries hold), and its entries as text, parsed
    by ``entries()`` when needed: a listing by another VM's name needs only the header. Immutable."""

    vm_tag: str
    stamps: dict
    names: frozenset
    points: bytes

    def entries(self):
        """{restore point id: entry dict} (each checked when used: summary_of_entry); CorruptionError when they do not
        decode or disagree with the header (other ids than its stamps, a VM name it does not have)."""
        name = catalog_name(self.vm_tag)
        try:
            points = json.loads(self.points)
            entries = {entry["id"]: entry for entry in points if isinstance(entry["id"], str) and _named(entry) in self.names}
        except (ValueError, RecursionError, TypeError, KeyError):   # TypeError, KeyError: not a list of entries
            entries = None
        if entries is None or len(entries) != len(points) or entries.keys() != self.stamps.keys():
            raise CorruptionError("Catalog %s holds entries that are not those of its header: it is damaged." % name, object_name=name)
        return entries


def encode_catalog(vm_tag, records, keys):
    """The catalog object of VM ``vm_tag`` holding ``records`` ({restore point id: (stamp, entry)}): a header line and
    an entries line of canonical JSON, sealed with ``keys`` (crypto.RepositoryKeys) when given, else after their SHA-256."""
    header = {"format": CATALOG_FORMAT, "version": CATALOG_VERSION, "vm_tag": vm_tag,
              "names": sorted({_named(entry) for _stamp, entry in records.values()}),
              "stamps": {rp_id: stamp for rp_id, (stamp, _entry) in records.items()}}
    plain = canonical_json(header) + b"\n" + canonical_json([records[rp_id][1] for rp_id in sorted(records)])
    if keys is not None:
        return keys.seal(catalog_name(vm_tag), plain)
    return hashlib.sha256(plain).hexdigest().encode("ascii") + b"\n" + plain


def decode_catalog(vm_tag, blob, keys):
    """The CatalogObject of the catalog object of VM ``vm_tag``; CorruptionError when it does not verify or is not a
    catalog of that VM, RepositoryFormatError when it has a higher version."""
    name = catalog_name(vm_tag)
    try:
        if keys is not None:
            plain = keys.unseal(name, blob)
        else:
            checksum, _newline, plain = bytes(blob).partition(b"\n")
            if hashlib.sha256(plain).hexdigest().encode("ascii") != checksum:
                raise CorruptionError("Catalog %s fails its checksum: it is damaged." % name, object_name=name)
        head, _newline, points = plain.partition(b"\n")
        header = json.loads(head)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: JSON nested too deep
        raise CorruptionError("Catalog %s is not valid JSON: it is damaged." % name, object_name=name) from None
    if not isinstance(header, dict) or header.get("format") != CATALOG_FORMAT:
        raise CorruptionError("Catalog %s is not a blockvault catalog." % name, object_name=name)
    version, names, stamps = header.get("version"), header.get("names"), header.get("stamps")
    if isinstance(version, int) and not isinstance(version, bool) and version > CATALOG_VERSION:
        raise RepositoryFormatError("Catalog %s has version %d; this blockvault reads version %d." % (name, version, CATALOG_VERSION))
    if (version != CATALOG_VERSION or isinstance(version, bool) or header.get("vm_tag") != vm_tag or not isinstance(names, list)
            or not all(isinstance(one, str) for one in names) or not isinstance(stamps, dict)):
        raise CorruptionError("Catalog %s is damaged or is not the catalog of VM %s." % (name, vm_tag), object_name=name)
    return CatalogObject(vm_tag, stamps, frozenset(names), points)


# -- one VM's catalog during a listing or a commit -------------------------------------------

@dataclasses.dataclass
class _Catalog:
    """One VM's catalog while one listing or commit uses it (owned by the calling thread): what was ``stored`` (None:
    none, damaged or unreadable), whether it may be written, and the ``records`` ({id: (stamp, entry)}) a rewrite keeps."""

    vm_tag: str
    stored: CatalogObject = None
    writable: bool = True
    damaged: bool = False
    added: bool = False
    records: dict = dataclasses.field(default_factory=dict)
    _entries: dict = None

    def entries(self):
        if self._entries is None:
            try:
                self._entries = self.stored.entries() if self.stored is not None else {}
            except CorruptionError as exc:
                self.ignore(exc)
        return self._entries

    def ignore(self, exc):
        """Stop using what was stored (damaged: ``exc`` says how); it is rebuilt from the manifests."""
        if not self.damaged:
            log.warning("%s It is ignored and rebuilt from the manifests.", exc.message)
        self.stored, self._entries, self.damaged = None, {}, True

    def excludes(self, vm_name, listed):
        """True when none of the listed restore points ([(id, info)]) can be of a VM named ``vm_name``: each has an
        entry, and no entry names it. Stamps are not compared (format section 7.3: a restore point's VM name is fixed
        when its manifest is first written; one rewritten since is a copy of it or damaged, which a listing of that VM,
        of every VM, and validation report)."""
        return self.stored is not None and vm_name not in self.stored.names and all(rp_id in self.stored.stamps for rp_id, _info in listed)

    def needs_rewrite(self):
        stale = len(self.stored.stamps) - sum(1 for rp_id in self.records if rp_id in self.stored.stamps) if self.stored else 0
        return self.writable and (self.added or self.damaged or stale >= max(STALE_ENTRIES_REWRITE, len(self.records)))

    def write(self, repository, records):
        repository.backend.put(catalog_name(self.vm_tag), encode_catalog(self.vm_tag, records, repository.keys))


def _load(repository, vm_tag):
    """The _Catalog of VM ``vm_tag``: nothing stored when there is none, when it is damaged (logged: it is rebuilt),
    or when it cannot be read (logged: it is left alone; a listing does not need it)."""
    catalog = _Catalog(vm_tag)
    try:
        catalog.stored = decode_catalog(vm_tag, repository.backend.get(catalog_name(vm_tag)), repository.keys)
    except NotFoundInBackendError:
        pass
    except CorruptionError as exc:
        catalog.ignore(exc)
    except (BackendError, RepositoryFormatError) as exc:    # unreadable, or of a newer version: not ours to rewrite
        log.log(logging.WARNING if isinstance(exc, BackendError) else logging.INFO,
                "The catalog %s is not used (%s): its VM's restore points are listed from their manifests.", catalog_name(vm_tag), exc.message)
        catalog.writable = False
    return catalog


def _parallel(backend, function, items):
    """``[function(item) for item in items]``, on PARALLEL_READS threads for a remote store (whose requests wait)."""
    if not backend.parallel_listing or len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:
        return list(pool.map(function, items))


# -- listing ---------------------------------------------------------------------------------

@contextlib.contextmanager
def cycle_collection_paused():
    """The cyclic garbage collector paused: a listing of 30,000 restore points builds some 500,000 small containers, none
    in a cycle, and the collector would walk them again and again as they pile up (half its CPU time, measured). A view
    that turns the summaries into results pauses it over both. Reference counting frees everything meanwhile; collection
    resumes (if it was on) when the outermost pause ends. Process-wide: another thread's cycles wait that long."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_manifest(repository, point):
    """The SummaryRead of ``point`` from its manifest, read now (not from the repository's cache: the summary is
    recorded with the stamp listed just before, so it must be of the object there now)."""
    name = manifest_name(point.id)
    try:
        manifest = manifest_from_document(name, decode_manifest(name, repository.backend.get(name), repository.keys))
    except NotFoundInBackendError:
        return SummaryRead(point)
    except (CorruptionError, RepositoryFormatError) as exc:
        return SummaryRead(point, error=exc)
    repository.remember_manifest(manifest)
    return SummaryRead(point, summary=PointSummary.of(manifest))


def read_summaries(repository, vm=None, vm_name=None):
    """A SummaryRead per restore point listed now (of the VM key ``vm`` if given), oldest first; with ``vm_name``,
    those whose summary names another VM are left out (damaged manifests are kept: their VM is unknown).

    Summaries come from the catalog where an entry matches the listed manifest (module notes), else from the manifest;
    catalogs that gained entries, were damaged or hold many ignored ones are rewritten, best effort. Backend and
    dependency errors are raised, as Repository.read_manifests does.
    """
    with cycle_collection_paused():
        return _read_summaries(repository, vm, vm_name)


def _list_manifests(backend, only, stamped):
    """{vm tag: [(restore point id, ObjectInfo, or None when not ``stamped``)]} of the manifests listed now, of VM tag
    ``only`` if given. Unstamped, a local listing costs a tenth (no stat per file: _stamp_used asks for what is used)."""
    listed = {}
    found = backend.list(MANIFESTS_PREFIX) if stamped else backend.list_names(MANIFESTS_PREFIX)
    for item in found:
        rp_id = (item.name if stamped else item)[len(MANIFESTS_PREFIX):]
        tag = restore_point_tag(rp_id)
        if tag is not None and only in (None, tag):
            listed.setdefault(tag, []).append((rp_id, item if stamped else None))
    return listed


def _stamp_used(backend, listed, catalogs):
    """Fill in the ObjectInfo of the listed manifests of ``catalogs`` (a stat each; one removed since is left out)."""
    wanted = [(catalog.vm_tag, rp_id) for catalog in catalogs for rp_id, info in listed[catalog.vm_tag] if info is None]
    if not wanted:
        return

    def stat(item):
        try:
            return backend.stat(manifest_name(item[1]))
        except NotFoundInBackendError:
            return None     # removed since the listing (a prune): not listed
    infos = dict(zip(wanted, _parallel(backend, stat, wanted)))
    for catalog in catalogs:
        stamped = []
        for rp_id, info in listed[catalog.vm_tag]:
            info = infos[catalog.vm_tag, rp_id] if info is None else info
            if info is not None:
                stamped.append((rp_id, info))
        listed[catalog.vm_tag] = stamped


def _read_summaries(repository, vm, vm_name):
    only = repository.vm_tag(vm) if vm is not None else None
    # the listing of every VM takes every stamp from the listing; one VM's (by key or name) stats the manifests it
    # shows where a listing by name is cheaper (local), and lists with the stamps where they come free (S3)
    one_vm_by_names = (vm is not None or vm_name is not None) and repository.backend.names_cheaper_than_listing
    listed = _list_manifests(repository.backend, only, stamped=not one_vm_by_names)
    tags = sorted(listed)
    catalogs = dict(zip(tags, _parallel(repository.backend, lambda tag: _load(repository, tag), tags)))
    used = [catalogs[tag] for tag in tags if vm_name is None or not catalogs[tag].excludes(vm_name, listed[tag])]
    _stamp_used(repository.backend, listed, used)
    reads, unread = [], []
    for catalog in used:
        tag = catalog.vm_tag
        entries, stamps = catalog.entries(), catalog.stored.stamps if catalog.stored else {}
        for rp_id, info in listed[tag]:
            try:
                point = RestorePoint(rp_id, parse_restore_point_id(rp_id)[0], tag)
            except ConfigurationError:
                continue    # a name of the right shape with an impossible time: not a restore point
            stamp, entry = _stamp(info), entries.get(rp_id)
            if entry is None or stamps.get(rp_id) != stamp:
                unread.append((catalog, point, stamp))
            elif vm_name is not None and _named(entry) != vm_name:
                catalog.records[rp_id] = (stamp, entry)     # another VM's restore point: not shown, not checked
            else:
                try:
                    reads.append(SummaryRead(point, summary=summary_of_entry(rp_id, entry, tag)))
                    catalog.records[rp_id] = (stamp, entry)
                except CorruptionError as exc:
                    catalog.ignore(exc)     # a damaged entry: none of this catalog's is used any more
                    entries = {}
                    unread.append((catalog, point, stamp))
    for (catalog, point, stamp), read in zip(unread, _parallel(repository.backend, lambda item: _read_manifest(repository, item[1]), unread)):
        if read.summary is not None:
            catalog.records[point.id] = (stamp, read.summary.to_json())
            catalog.added = True
        reads.append(read)
    _repair(repository, [catalog for catalog in used if catalog.needs_rewrite()])
    reads.sort(key=lambda read: read.point.id)
    return [read for read in reads if vm_name is None or read.summary is None or read.summary.vm.name == vm_name]


def _repair(repository, catalogs):
    """Rewrite ``catalogs`` with what they keep; a failure is one warning for them all (read-only credentials)."""
    failures = []

    def rewrite(catalog):
        try:
            catalog.write(repository, catalog.records)
        except (RepositoryError, ValueError, RecursionError) as exc:    # ValueError, RecursionError: text JSON cannot write
            failures.append(exc)
    _parallel(repository.backend, rewrite, catalogs)
    if failures:
        log.warning("The catalog of %d VM(s) could not be written (%s): their listings read the manifests it lacks.",
                    len(failures), getattr(failures[0], "message", None) or "%s: %s" % (type(failures[0]).__name__, failures[0]))


def record_commit(repository, manifest):
    """Add restore point ``manifest`` (a Manifest, just committed) to its VM's catalog. Best effort: a failure is
    logged and the backup goes on (the next listing reads its manifest and adds it)."""
    try:
        stamp = _stamp(repository.backend.stat(manifest_name(manifest.id)))
        catalog = _load(repository, parse_restore_point_id(manifest.id)[1])
        if catalog.writable:
            records = {rp_id: (catalog.stored.stamps[rp_id], entry) for rp_id, entry in catalog.entries().items()}
            records[manifest.id] = (stamp, PointSummary.of(manifest).to_json())
            catalog.write(repository, records)
    except Exception as exc:  # pylint: disable=broad-exception-caught  # the restore point exists: nothing here may fail its backup
        log.warning("restore point %s: the catalog of its VM could not be updated (%s); listings read its manifest instead",
                    manifest.id, getattr(exc, "message", None) or "%s: %s" % (type(exc).__name__, exc))
