# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Repository: create, open, keys, restore points, readers; maintenance delegates to maintenance.py."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import secrets
import threading

from ..errors import (BackendError, ConfigurationError, CorruptionError, NotFoundInBackendError, RepositoryError,
                      RepositoryExistsError, RepositoryFormatError, RepositoryNotFoundError)
from . import catalog, crypto, keyobjects, maintenance, pins, removals, validation
from .format import (CONFIG_NAME, DEFAULT_CHUNK_SIZE, DEFAULT_COMPRESSION_LEVEL, FORMAT_VERSION, KEYS_PREFIX, MANIFESTS_PREFIX, DiskIndex, check_chunk_size,
                     check_disk_key, chunk_name, index_name, isotime, manifest_name, parse_restore_point_id)
from .locks import SHARED, LockManager, LockSettings
from .manifest import decode_manifest, encode_manifest
from .model import Manifest, RestorePoint, manifest_from_document
from .orphans import COPY_LOCK_MARK
from .reader import DiskReader
from .orphans import MaintenanceSettings
from .generations import Rescuer
from .presence import PresenceSettings, open_presence
from .session import BackupSession, list_chunk_infos

log = logging.getLogger("blockvault.repository")


@dataclasses.dataclass(frozen=True)
class ManifestRead:
    """One listed restore point as read back (``Repository.read_manifests``).

    Exactly one of three states: ``manifest`` (it loaded and verified), ``error`` (its manifest exists but is damaged
    or unreadable: a CorruptionError or RepositoryFormatError), or ``gone`` (removed since the listing, by a prune or
    a delete: not damage). Immutable; safe to share between threads.
    """

    point: RestorePoint
    manifest: Manifest = None
    error: RepositoryError = None

    @property
    def gone(self):
        return self.manifest is None and self.error is None


def check_compression_level(level):
    """The zstd level of new chunks: 1 (fastest) to 22. 0 is refused rather than taken for "no compression" or for zstd's
    own meaning (its default level 3): a chunk that does not compress is stored raw anyway (format section 5)."""
    if not validation.is_int(level) or not validation.MIN_COMPRESSION_LEVEL <= level <= validation.MAX_COMPRESSION_LEVEL:
        raise ConfigurationError("compression_level must be an integer from %d to %d (zstd levels: 1 is the fastest), got %r." % (
            validation.MIN_COMPRESSION_LEVEL, validation.MAX_COMPRESSION_LEVEL, level))
    return level


class Repository:
    """An opened repository. Build with ``Repository.create`` or ``Repository.open``.

    Thread-safety: every public method may be called from several threads; the manifest cache is guarded.
    Sessions, readers and maintenance operations take the locks the protocol requires themselves.
    ``lock_settings`` (LockSettings) may be adjusted before use.
    """

    def __init__(self, backend, config, keys=None, opened_key_id=None, compression_level=None):
        self.backend = backend
        self.config = config
        self.keys = keys
        self.opened_key_id = opened_key_id
        self.id = config["id"]
        self.chunk_size = config["chunk_size"]
        self.encrypted = keys is not None
        level = compression_level if compression_level is not None else config["compression"]["level"]
        self.codec = crypto.ChunkCodec(self.chunk_size, level=level, keys=keys)
        self.lock_settings = LockSettings()
        self.locks = LockManager(backend, self.id, self.lock_settings)
        self.maintenance_settings = MaintenanceSettings()
        self.presence_settings = PresenceSettings()     # how sessions use gc/present (presence.py)
        self._manifests = {}
        self._cache_lock = threading.Lock()

    @property
    def location(self):
        return self.backend.location

    # -- create and open ---------------------------------------------------------------------

    @classmethod
    def create(cls, backend, chunk_size=DEFAULT_CHUNK_SIZE, compression_level=DEFAULT_COMPRESSION_LEVEL, encryption=True, passphrase=None, key_file=None,
               _allow_small_chunks=False):
        """Initialise a new repository in ``backend``; RepositoryExistsError if one is there already."""
        check_chunk_size(chunk_size, allow_small=_allow_small_chunks)
        check_compression_level(compression_level)
        if encryption and passphrase is None and key_file is None:
            raise ConfigurationError("An encrypted repository needs a passphrase or a key_file (or encryption=False).")
        if not encryption and (passphrase is not None or key_file is not None):
            raise ConfigurationError("A passphrase or key_file was given but encryption=False; drop them or enable encryption.")
        if passphrase is not None and not passphrase:
            raise ConfigurationError("The passphrase must not be empty.")
        crypto.require_zstd()
        key_file_content = crypto.read_key_file(key_file) if key_file is not None else None
        if backend.exists(CONFIG_NAME):
            raise RepositoryExistsError("A repository already exists at %s." % backend.location,
                                        hint="Open it instead, or choose an empty location.")
        repository_id = secrets.token_hex(16)
        config = {"format": "blockvault-repository", "version": FORMAT_VERSION, "id": repository_id, "created": isotime(),
                  "chunk_size": chunk_size, "compression": {"algorithm": "zstd", "level": compression_level},
                  "encryption": None, "mac": None}
        keys = None
        key_objects = []
        if encryption:
            crypto.require_crypto()
            master = secrets.token_bytes(32)
            keys = crypto.RepositoryKeys(master, repository_id)
            config["encryption"] = {"algorithm": "aes-256-gcm", "chunk_id": "hmac-sha256", "key_derivation": "hkdf-sha256"}
            config["mac"] = keys.config_mac(config)
            if passphrase is not None:
                key_objects.append(crypto.make_key_object(master, repository_id, passphrase=passphrase))
            if key_file_content is not None:
                key_objects.append(crypto.make_key_object(master, repository_id, key_file_content=key_file_content))
        for key_object in key_objects:  # keys before config: a visible config always has a key
            backend.put(KEYS_PREFIX + key_object["id"], json.dumps(key_object, indent=1).encode("utf-8"))
        try:
            backend.put(CONFIG_NAME, json.dumps(config, indent=1).encode("utf-8"), exclusive=True)
        except BackendError as exc:
            if backend.exists(CONFIG_NAME):
                raise RepositoryExistsError("A repository was created at %s by someone else meanwhile." % backend.location) from exc
            raise
        return cls(backend, config, keys, key_objects[0]["id"] if key_objects else None)

    @classmethod
    def open(cls, backend, passphrase=None, key_file=None, compression_level=None, agent=None):
        """Open an existing repository; WrongKeyError when the passphrase/key file opens none of its keys.

        ``agent`` (a keyagent.KeyAgentClient): the key is asked there first and used when it authenticates the
        configuration; otherwise the passphrase or key file opens the repository and its key is given to the agent.
        """
        try:
            raw = backend.get(CONFIG_NAME)
        except NotFoundInBackendError:
            raise RepositoryNotFoundError("No blockvault repository at %s (no config object)." % backend.location,
                                          hint="Check the location, or create the repository first.") from None
        config = keyobjects.check_config(backend, raw)
        if compression_level is not None:
            check_compression_level(compression_level)
        if not config["encryption"]:
            return cls(backend, config, None, None, compression_level)
        if agent is not None:
            master = agent.get(config["id"])
            keys = crypto.RepositoryKeys(master, config["id"]) if master is not None else None
            if keys is not None and keys.config_mac(config) == config.get("mac"):
                return cls(backend, config, keys, None, compression_level)
        if passphrase is None and key_file is None:
            raise ConfigurationError("The repository at %s is encrypted: give its passphrase or key_file." % backend.location)
        key_file_content = crypto.read_key_file(key_file) if key_file is not None else None
        wanted = "passphrase" if passphrase is not None else "keyfile"
        key_objects, damaged = keyobjects.load_key_objects(backend)
        tried = 0
        for key_object in key_objects:
            if key_object["type"] != wanted:
                continue
            tried += 1
            master = crypto.unwrap_key_object(key_object, config["id"], passphrase=passphrase, key_file_content=key_file_content)
            if master is not None:
                keys = crypto.RepositoryKeys(master, config["id"])
                if keys.config_mac(config) != config.get("mac"):
                    raise CorruptionError("The config object at %s fails authentication: it was altered." % backend.location,
                                          object_name=CONFIG_NAME)
                if agent is not None:
                    agent.put(config["id"], master)
                return cls(backend, config, keys, key_object["id"], compression_level)
        raise keyobjects.no_key_error(backend, passphrase, key_file, wanted, tried, key_objects, damaged)

    # -- keys --------------------------------------------------------------------------------

    def _require_encrypted(self):
        if not self.encrypted:
            raise ConfigurationError("The repository at %s is not encrypted: it has no keys." % self.location)

    def list_keys(self):
        """[{id, type, created, label, current}] of the key objects (no secret material)."""
        self._require_encrypted()
        return [{"id": k["id"], "type": k.get("type"), "created": k.get("created"), "label": k.get("label", ""),
                 "current": k["id"] == self.opened_key_id} for k in keyobjects.load_key_objects(self.backend)[0]]

    def _add_key(self, passphrase=None, key_file_content=None, label=None):
        key_object = crypto.make_key_object(self.keys.master_key, self.id, passphrase=passphrase, key_file_content=key_file_content, label=label)
        self.backend.put(KEYS_PREFIX + key_object["id"], json.dumps(key_object, indent=1).encode("utf-8"))
        return key_object["id"]

    def add_passphrase(self, passphrase, label=None):
        """Add a passphrase key (data is not rewritten); returns the new key id."""
        self._require_encrypted()
        if not passphrase:
            raise ConfigurationError("The new passphrase must not be empty.")
        return self._add_key(passphrase=passphrase, label=label)

    def add_key_file(self, key_file, label=None):
        """Add a key-file key (any file of at least 32 bytes; see crypto.generate_key_file); returns the key id."""
        self._require_encrypted()
        return self._add_key(key_file_content=crypto.read_key_file(key_file), label=label)

    def change_passphrase(self, new_passphrase, key_id=None):
        """Replace passphrase key ``key_id`` (default: the one this repository was opened with) by a new passphrase."""
        self._require_encrypted()
        key_id = key_id or self.opened_key_id
        old = [k for k in keyobjects.load_key_objects(self.backend)[0] if k["id"] == key_id]
        if not old or old[0].get("type") != "passphrase":
            raise ConfigurationError("Key %s is not a passphrase key of this repository; give key_id of one (see list_keys)." % key_id)
        new_id = self.add_passphrase(new_passphrase, label=old[0].get("label"))
        self.backend.delete(KEYS_PREFIX + key_id)
        if key_id == self.opened_key_id:
            self.opened_key_id = new_id
        return new_id

    def remove_key(self, key_id):
        """Delete key ``key_id``; the last key cannot be removed."""
        self._require_encrypted()
        intact, damaged = keyobjects.load_key_objects(self.backend)
        ids = [k["id"] for k in intact]
        if KEYS_PREFIX + str(key_id) in [entry[0] for entry in damaged]:
            self.backend.delete(KEYS_PREFIX + key_id)  # a damaged key opens nothing: removing it never locks anyone out
            return
        if key_id not in ids:
            raise ConfigurationError("The repository has no key %r (see list_keys)." % (key_id,))
        if len(ids) == 1:
            raise ConfigurationError("Key %s is the last key of the repository; add another one before removing it." % key_id)
        self.backend.delete(KEYS_PREFIX + key_id)

    # -- objects -----------------------------------------------------------------------------

    def vm_tag(self, vm_key):
        if not vm_key or not isinstance(vm_key, str):
            raise ConfigurationError("A VM key (stable id such as the instance UUID) is required, got %r." % (vm_key,))
        return self.keys.vm_tag(vm_key) if self.keys is not None else crypto.plain_vm_tag(vm_key)

    def chunk_object_name(self, storage_id):
        return chunk_name(storage_id)

    def encode_index(self, name, index):
        plain = index.to_bytes()
        return self.keys.seal(name, plain) if self.keys is not None else plain

    def encode_manifest(self, name, manifest):
        return encode_manifest(name, manifest, self.keys)

    def remember_manifest(self, manifest):
        with self._cache_lock:
            self._manifests[manifest.id] = manifest

    def read_chunk(self, storage_id):
        """The verified plaintext of chunk ``storage_id`` (NotFoundInBackendError when missing)."""
        name = chunk_name(storage_id)
        return self.codec.decode(storage_id, self.backend.get(name), name)

    def fetch_chunk(self, digest):
        """The verified plaintext of the chunk whose SHA-256 is ``digest`` (a restore's chunk fetcher)."""
        return self.read_chunk(self.codec.storage_id(digest))

    # -- restore points ----------------------------------------------------------------------

    def begin_backup(self, vm_key, run_id, lock_wait=None):
        """A BackupSession under a shared lock (context manager; aborts on exception)."""
        return self._begin(vm_key, run_id, "backup of %s" % self.vm_tag(vm_key), lock_wait)

    def begin_copy(self, vm_key, run_id, restore_point_id, created, lock_wait=None):
        """A BackupSession (as begin_backup) that writes restore point ``restore_point_id`` with creation time
        ``created``: what a copy from another repository commits (ops.copy derives the id from the source's). Its
        lock names the restore point, whose id carries the source's time, not the lock's (section 9.2)."""
        purpose = "backup of %s: %s%s" % (self.vm_tag(vm_key), COPY_LOCK_MARK, restore_point_id)
        session = self._begin(vm_key, run_id, purpose, lock_wait)
        try:
            session.adopt_identity(restore_point_id, created)
        except BaseException:
            session.abort()
            raise
        return session

    def _begin(self, vm_key, run_id, purpose, lock_wait):
        if not run_id or not isinstance(run_id, str):
            raise ConfigurationError("begin_backup needs a run_id string, got %r." % (run_id,))
        lock = self.locks.acquire(SHARED, purpose, wait=lock_wait)
        try:
            # after the lock: GC deletes none of these while the lock lives, except condemned ones (section 9.1)
            rescuer = Rescuer(self.backend, self.locks, lock.lock_id, poll=self.lock_settings.retry_interval)
            condemned = rescuer.begin()
            # then which chunks are stored: gc/present, or a listing of chunks/ (section 9.1, the presence filter)
            presence = open_presence(self.backend, condemned, self.presence_settings)
            return BackupSession(self, vm_key, run_id, lock, presence.known, rescuer, presence)
        except BaseException:
            lock.release()
            raise

    def list_restore_points(self, vm=None):
        """RestorePoint tuples, oldest first, from one listing (no manifest read); ``vm`` = a VM key to filter on."""
        tag = self.vm_tag(vm) if vm is not None else None
        points = []
        for info in self.backend.list(MANIFESTS_PREFIX):
            rp_id = info.name[len(MANIFESTS_PREFIX):]
            if tag is not None and rp_id[24:40] != tag:     # where an id holds its tag: another VM's is not parsed
                continue
            try:
                created, rp_tag = parse_restore_point_id(rp_id)
            except ConfigurationError:
                continue    # not a restore point's name
            points.append(RestorePoint(rp_id, created, rp_tag))
        points.sort(key=lambda point: point.id)     # ids sort by time; comparing them, not the dataclasses, is much faster
        return points

    def read_summaries(self, vm=None, vm_name=None):
        """A catalog.SummaryRead (point, summary | error | gone) per restore point listed now, oldest first: what a
        listing shows of each, from the VM's catalog where it matches the listed manifest, else from the manifest
        (format section 7.3). ``vm``: a VM key to filter on; ``vm_name``: leave out the summaries of other names."""
        return catalog.read_summaries(self, vm, vm_name)

    def find_restore_point(self, vm, run_id):
        """The id of ``vm``'s restore point made by ``run_id``, or None.

        Restore points pruned since the listing are passed over, and so are damaged manifests (logged): neither can
        be the one asked for in a way that matters, and neither may fail the caller (a backup's idempotency check).
        """
        for read in self.read_manifests(vm, newest_first=True):
            if read.manifest is not None and read.manifest.run_id == run_id:
                return read.point.id
            if read.error is not None:
                log.warning("restore point %s: its manifest is damaged (%s); skipped while looking for run %s",
                            read.point.id, read.error.message, run_id)
        return None

    def read_manifests(self, vm=None, newest_first=False):
        """Yield a ManifestRead for each restore point listed now (of the VM key ``vm`` if given), reading each
        manifest only when the caller asks for the next one (so a caller looking for the newest reads one).

        Never raises for one restore point's sake: a manifest removed since the listing (a concurrent prune or
        delete) gives a ``gone`` read, a damaged one a read with its ``error``. Backend and dependency errors
        (an unreachable repository, jsonschema missing) are raised: they are not about one restore point.
        """
        points = self.list_restore_points(vm)
        for point in reversed(points) if newest_first else points:
            yield self.read_manifest(point)

    def read_manifest(self, point):
        """The ManifestRead of RestorePoint ``point`` (see read_manifests)."""
        try:
            return ManifestRead(point, manifest=self._load_manifest(point.id))
        except NotFoundInBackendError:
            return ManifestRead(point)
        except (CorruptionError, RepositoryFormatError) as exc:
            return ManifestRead(point, error=exc)

    def restore_point_exists(self, rp_id):
        """True while the manifest of ``rp_id`` exists (one request; not cached: a prune may remove it any time)."""
        return self.backend.exists(manifest_name(rp_id))

    def load_manifest(self, rp_id):
        """The verified Manifest of a restore point (cached: manifests are immutable); RepositoryError when it does
        not exist, CorruptionError when it is damaged."""
        try:
            return self._load_manifest(rp_id)
        except NotFoundInBackendError:
            raise RepositoryError("Restore point %s does not exist in %s." % (rp_id, self.location),
                                  hint="List the restore points to pick an existing one.") from None

    def _load_manifest(self, rp_id):
        """load_manifest, raising NotFoundInBackendError when the manifest does not exist."""
        parse_restore_point_id(rp_id)
        with self._cache_lock:
            cached = self._manifests.get(rp_id)
        if cached is not None:
            return cached
        name = manifest_name(rp_id)
        blob = self.backend.get(name)
        manifest = manifest_from_document(name, decode_manifest(name, blob, self.keys))
        self.remember_manifest(manifest)
        return manifest

    @staticmethod
    def _disk_entry(manifest, disk_key):
        for disk in manifest.disks:
            if disk.key.value == str(disk_key):
                return disk
        raise ConfigurationError("Restore point %s has no disk %r (it has %s)." % (
            manifest.id, disk_key, ", ".join(d.key.value for d in manifest.disks) or "none"))

    def load_disk_index(self, rp_id, disk_key):
        """The verified DiskIndex of a disk of a restore point (checked against the manifest)."""
        disk_key = check_disk_key(disk_key)
        manifest = self.load_manifest(rp_id)
        disk = self._disk_entry(manifest, disk_key)
        name = index_name(rp_id, disk_key)
        if disk.index != name:
            raise CorruptionError("Manifest %s names index %s for disk %s, expected %s." % (rp_id, disk.index, disk_key, name),
                                  object_name=manifest_name(rp_id))
        try:
            blob = self.backend.get(name)
        except NotFoundInBackendError:
            raise CorruptionError("Index %s of restore point %s is missing." % (name, rp_id), object_name=name, disk=disk_key) from None
        if hashlib.sha256(blob).hexdigest() != disk.index_sha256:
            raise CorruptionError("Index %s does not match the checksum its manifest records: it is damaged." % name,
                                  object_name=name, disk=disk_key)
        index = DiskIndex.from_bytes(self.keys.unseal(name, blob) if self.keys is not None else blob, name)
        if index.capacity != disk.capacity or index.chunk_size != manifest.chunk_size:
            raise CorruptionError("Index %s disagrees with its manifest on capacity or chunk size." % name, object_name=name)
        return index

    @contextlib.contextmanager
    def hold_chunks(self, lock, index, description):
        """For a reading session under ``lock`` (an export): announce the chunks of DiskIndex ``index`` that a GC
        running beside it has condemned, so that it keeps them until the session ends (format section 9.1, GC beside
        writers). CorruptionError when a sweep that was under way deleted one before it saw the announcement."""
        rescuer = Rescuer(self.backend, self.locks, lock.lock_id, poll=self.lock_settings.retry_interval)
        try:
            if rescuer.begin():
                held = rescuer.hold({self.codec.storage_id(digest) for digest in index.referenced()}, lock.check_valid)
                gone = [storage_id for storage_id in held if not self.backend.exists(self.chunk_object_name(storage_id))]
                if gone:
                    raise CorruptionError("%s: %d chunk(s) of its restore point were deleted by a GC while it started "
                                          "(the restore point was pruned meanwhile)." % (description, len(gone)),
                                          object_name=self.chunk_object_name(gone[0]),
                                          hint="Choose a restore point that is kept, and start again.")
            yield rescuer
        finally:
            rescuer.end()

    def open_disk_reader(self, rp_id, disk_key, cache_chunks=2):
        """A DiskReader for random access by byte offset to one disk of one restore point."""
        return DiskReader(self, self.load_disk_index(rp_id, disk_key), "%s disk %s" % (rp_id, disk_key), cache_chunks)

    def delete_restore_point(self, rp_id, lock_wait=None):
        """Remove a restore point (a removal marker, its manifest, then its indexes, pin and note, then the marker:
        format section 9.4) under a shared lock; chunks go at the next GC. A pinned restore point is refused: unpin it first."""
        parse_restore_point_id(rp_id)
        if rp_id in self.pinned_ids():
            raise ConfigurationError("Restore point %s is pinned: unpin it (pinned: false) before deleting it." % rp_id)
        until = removals.locked_until(self.backend, rp_id)
        if until:
            raise ConfigurationError("Restore point %s is under S3 Object Lock until %s: it cannot be deleted before then "
                                     "(a delete would only hide it; its data stays in the bucket)." % (rp_id, until))
        with self.locks.acquire(SHARED, "delete %s" % rp_id, wait=lock_wait):
            self._delete_restore_point_locked(rp_id)

    # -- pins and notes (pins.py) -------------------------------------------------------

    def pinned_ids(self):
        """Ids of the pinned restore points: prune keeps them whatever its policy."""
        return pins.pinned_ids(self.backend)

    def noted_ids(self):
        return pins.noted_ids(self.backend)

    def validated_ids(self):
        """Ids of the restore points a full validation or a test restore found intact (validated/)."""
        return pins.validated_ids(self.backend)

    def validation_records(self):
        """{restore point id: pins.ValidationRecord}: when each validated restore point last passed, at which level."""
        return pins.validation_records(self.backend)

    def record_validated(self, rp_id, level):
        pins.record_validated(self.backend, rp_id, level)

    def set_pinned(self, rp_id, pinned):
        """Pin or unpin an existing restore point; True when that changed something."""
        self.load_manifest(rp_id)
        return pins.set_pinned(self.backend, rp_id, pinned)

    def note(self, rp_id):
        return pins.read_note(self.backend, self.keys, rp_id)

    def set_note(self, rp_id, note):
        """Set the note of an existing restore point ("" removes it); True when that changed something."""
        self.load_manifest(rp_id)
        return pins.write_note(self.backend, self.keys, rp_id, note)

    def _delete_restore_point_locked(self, rp_id):
        removals.remove_restore_point(self.backend, rp_id, on_manifest_deleted=self._forget_cached_manifest)

    def _forget_cached_manifest(self, rp_id):
        with self._cache_lock:
            self._manifests.pop(rp_id, None)

    # -- maintenance (maintenance.py) --------------------------------------------------------

    def prune(self, policy, vm=None, dry_run=True, lock_wait=None):
        return maintenance.prune(self, policy, vm=vm, dry_run=dry_run, lock_wait=lock_wait)

    def gc(self, dry_run=False, lock_wait=None, forget_orphans=False, assume_removed=()):
        return maintenance.gc(self, dry_run=dry_run, lock_wait=lock_wait, forget_orphans=forget_orphans,
                              assume_removed=assume_removed)

    def validate(self, level="quick", restore_point=None, workers=2):
        return maintenance.validate(self, level=level, restore_point=restore_point, workers=workers)

    def stats(self):
        """Repository figures from listings (no object read): restore points, chunks and their stored bytes."""
        chunks = list_chunk_infos(self.backend)
        return {"id": self.id, "location": self.location, "format_version": FORMAT_VERSION, "chunk_size": self.chunk_size,
                "encrypted": self.encrypted, "compression_level": self.codec.level, "restore_points": len(self.list_restore_points()),
                "chunks": len(chunks), "stored_bytes": sum(info.size for info in chunks)}

    def list_locks(self):
        return [dict(lock) for lock in self.locks.list_locks()]

    def break_lock(self, lock_id):
        """Remove a lock left by a dead process on another host (as restic unlock); use with care."""
        self.backend.delete("locks/%s" % lock_id)

    def close(self):
        self.backend.close()

    def __repr__(self):
        return "<Repository %s at %s>" % (self.id, self.location)


__all__ = ["Repository", "RestorePoint", "ManifestRead"]
