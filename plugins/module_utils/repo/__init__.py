# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup repository: deduplicated, compressed, encrypted, crash-safe, on local disk or S3.

The on-disk format is specified in docs/repository-format.md. This package is plain Python (no ansible
import); boto3, zstandard, cryptography and jsonschema are imported guarded and raise
MissingDependencyError when needed and missing.

API used by the transfer and ops layers::

    from .repo import Repository, DiskIndex, RepositorySettings, open_backend
    from .repo.model import DiskRecord, ManifestDraft, VmRecord

    backend = open_backend("/backups/repo")                      # a bare location, or RepositorySettings("s3://bucket/prefix",
                                                                 # s3_endpoint_url=, region=, access_key=, secret_key=, ...)
    repo = Repository.create(backend, chunk_size=4 << 20, compression_level=1, encryption=True, passphrase="...")
    repo = Repository.open(backend, passphrase="...")            # or key_file="/path"; WrongKeyError if wrong
    repo.chunk_size

    with repo.begin_backup(vm_key=instance_uuid, run_id=run_id) as session:   # shared lock; aborts on exception
        session.has_chunk(digest)                 # thread-safe; at most one HEAD per chunk and session (gc/present)
        session.stored_chunks(digests)            # the set of those stored, each confirmed (a resume's, a copy's check)
        session.chunk_presence                    # "filter" or "listing (<why>)": how it knows what is stored
        session.put_chunk(digest, data)           # thread-safe, parallel; returns stored bytes (0 if deduplicated)
        index = session.previous_index(rp_id, disk_key)   # a copy of an earlier DiskIndex, to carry chunks over
        index = DiskIndex(capacity, repo.chunk_size); index.set(i, digest); index.set_zero(i); index.blocksum()
        session.add_disk_index(disk_key, index)   # checks every chunk it names is stored, writes it atomically
        manifest = session.commit(ManifestDraft.build(run_id, VmRecord(...), [DiskRecord(...), ...], stats))
                                                  # fills ids/checksums, validates the schema, writes the manifest

    repo.list_restore_points(vm=None) -> [RestorePoint(id, created, vm_tag)]  (oldest first; from one listing)
    repo.find_restore_point(vm, run_id); repo.load_manifest(rp_id) -> Manifest (repo.model); repo.load_disk_index(rp_id, disk_key)
    repo.fetch_chunk(digest) -> the verified plaintext of a chunk (a restore's chunk fetcher)
    repo.read_manifests(vm=None, newest_first=False) -> ManifestRead(point, manifest | error | gone) per listed restore point
    repo.read_summaries(vm=None, vm_name=None) -> catalog.SummaryRead(point, summary | error | gone): what listings show,
                                                  from the per-VM catalog where it matches the listed manifests (catalog.py)
    repo.open_disk_reader(rp_id, disk_key).read(offset, length) / .readinto(offset, buffer)
    repo.delete_restore_point(rp_id); repo.gc(dry_run=False, forget_orphans=False)   # orphan indexes: spec section 9.2
    repo.prune({"keep_last": n, "keep_hourly"|"keep_daily"|"keep_weekly"|"keep_monthly"|"keep_yearly": n,
                "timezone": "Europe/Paris"}, vm=None, dry_run=True) -> {"dry_run", "keep": [{id, vm_tag, created, reasons}], "remove": [ids]}
    repo.validate(level="quick"|"full", restore_point=None)
    repo.list_keys(); repo.add_passphrase(p); repo.change_passphrase(new, key_id=None); repo.add_key_file(path)
    repo.remove_key(key_id); generate_key_file(path); repo.list_locks(); repo.break_lock(lock_id); repo.stats()

A digest is the plain SHA-256 of a chunk's plaintext (32 bytes); the all-zero value is the zero-chunk sentinel.
"""

from __future__ import annotations

from .backend import ConcurrencyLimitedBackend, LocalBackend, RetryingBackend
from .factory import open_backend
from .crypto import generate_key_file
from .format import DEFAULT_CHUNK_SIZE, DEFAULT_COMPRESSION_LEVEL, ZERO_SENTINEL, DiskIndex
from .locks import LockSettings
from .repository import Repository, RestorePoint
from .session import BackupSession
from .settings import RepositorySettings, S3Settings

__all__ = ["Repository", "RestorePoint", "BackupSession", "DiskIndex", "LockSettings", "ZERO_SENTINEL", "DEFAULT_CHUNK_SIZE",
           "DEFAULT_COMPRESSION_LEVEL",
           "open_backend", "RepositorySettings", "S3Settings", "LocalBackend", "RetryingBackend", "ConcurrencyLimitedBackend", "generate_key_file"]
