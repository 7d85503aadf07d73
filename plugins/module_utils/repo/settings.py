# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the repository is and how to open it: the repository layer's own settings.

``RepositorySettings`` is what a user says (location, key, S3 credentials), validated once where it is built;
``S3Settings`` is the part of it an S3Backend needs (``RepositorySettings.s3``). ``ops.settings`` re-exports
``RepositorySettings`` under the same name for the modules and the operations.
"""

from __future__ import annotations

import dataclasses
import os

from ..errors import ConfigurationError

__all__ = ["RepositorySettings", "S3Settings", "CHUNK_STORAGE_CLASSES", "check_storage_class"]

#: S3 storage classes chunk objects may be written in: those read at once. The archive tiers (GLACIER, DEEP_ARCHIVE)
#: need a restore request before each read, which no restore or validation could wait for, so they are not offered.
CHUNK_STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR")


def check_storage_class(storage_class):
    """``storage_class`` if it is None or one of CHUNK_STORAGE_CLASSES, else ConfigurationError naming it."""
    if storage_class is not None and storage_class not in CHUNK_STORAGE_CLASSES:
        raise ConfigurationError("storage_class %r: use one of %s (archive tiers that need a restore request before a "
                                 "read cannot hold chunks)." % (storage_class, ", ".join(CHUNK_STORAGE_CLASSES)))
    return storage_class


@dataclasses.dataclass(frozen=True)
class S3Settings:
    """How to reach an S3 bucket: endpoint (None: AWS), region, credentials (None: boto3's usual chain of environment,
    profile and instance role), TLS verification, Object Lock retention for the backup data (``object_lock_days``
    in ``object_lock_mode``; None: no retention), and the S3 storage class of chunk objects (``storage_class``, one
    of CHUNK_STORAGE_CLASSES; None: the bucket's default). Immutable and thread-safe; ``repr`` never shows a secret.
    S3Backend checks the Object Lock values when it is built.
    """

    endpoint_url: str = None
    region: str = None
    access_key: str = None
    secret_key: str = dataclasses.field(default=None, repr=False)
    session_token: str = dataclasses.field(default=None, repr=False)
    object_lock_days: int = None
    object_lock_mode: str = "GOVERNANCE"
    verify_tls: bool = True
    storage_class: str = None


@dataclasses.dataclass(frozen=True)
class RepositorySettings:
    """Where the repository is and how to open it.

    ``location`` is a local directory (NFS mounts included) or ``s3://bucket/prefix``. Exactly one
    of ``passphrase`` and ``key_file`` opens an encrypted repository; neither opens an unencrypted one.
    Immutable and thread-safe; ``repr`` never shows a secret.
    """

    location: str
    passphrase: str = dataclasses.field(default=None, repr=False)
    key_file: str = None
    s3_endpoint_url: str = None
    region: str = None
    access_key: str = None
    secret_key: str = dataclasses.field(default=None, repr=False)
    session_token: str = dataclasses.field(default=None, repr=False)
    object_lock_days: int = None
    validate_certs: bool = True
    object_lock_mode: str = "GOVERNANCE"
    key_agent: str = None
    storage_class: str = None

    def __post_init__(self):
        if not self.location:
            raise ConfigurationError("repository is empty: give a directory or s3://bucket/prefix.")
        if self.passphrase and self.key_file:
            raise ConfigurationError("passphrase and key_file are both given: open the repository with one of them.")
        if self.key_file and not os.path.isfile(self.key_file):
            raise ConfigurationError("key_file %s does not exist: give the path of the repository key file." % self.key_file)
        if self.object_lock_days is not None and int(self.object_lock_days) < 1:
            raise ConfigurationError("object_lock_days must be 1 or more (or unset for no Object Lock).")
        if not self.is_s3 and self.s3_endpoint_url:
            raise ConfigurationError("s3_endpoint_url and object_lock_days apply to s3:// repositories only, not %s." % self.location)
        if not self.is_s3 and self.object_lock_days:
            raise ConfigurationError("object_lock_days applies to S3 repositories only, not to %s." % self.location)
        if self.storage_class is not None and not self.is_s3:
            raise ConfigurationError("storage_class applies to S3 repositories only, not to %s." % self.location)
        check_storage_class(self.storage_class)

    @property
    def is_s3(self):
        return self.location.startswith("s3://")

    @property
    def s3(self):
        """The S3Settings of this repository (meaningful when ``is_s3``)."""
        return S3Settings(endpoint_url=self.s3_endpoint_url, region=self.region, access_key=self.access_key,
                          secret_key=self.secret_key, session_token=self.session_token,
                          object_lock_days=self.object_lock_days, object_lock_mode=self.object_lock_mode,
                          verify_tls=self.validate_certs, storage_class=self.storage_class)
