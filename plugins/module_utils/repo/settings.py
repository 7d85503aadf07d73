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

__all__ = ["RepositorySettings", "S3Settings"]


@dataclasses.dataclass(frozen=True)
class S3Settings:
    """How to reach an S3 bucket: endpoint (None: AWS), region, credentials (None: boto3's usual chain of environment,
    profile and instance role), TLS verification, and Object Lock retention for the backup data (``object_lock_days``
    in ``object_lock_mode``; None: no retention). Immutable and thread-safe; ``repr`` never shows a secret.
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

    @property
    def is_s3(self):
        return self.location.startswith("s3://")

    @property
    def s3(self):
        """The S3Settings of this repository (meaningful when ``is_s3``)."""
        return S3Settings(endpoint_url=self.s3_endpoint_url, region=self.region, access_key=self.access_key,
                          secret_key=self.secret_key, session_token=self.session_token,
                          object_lock_days=self.object_lock_days, object_lock_mode=self.object_lock_mode,
                          verify_tls=self.validate_certs)
