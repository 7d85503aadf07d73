# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a backend from RepositorySettings (or a bare location), with the retry and concurrency-limit wrappers applied."""

from __future__ import annotations

from ..errors import ConfigurationError
from .backend import ConcurrencyLimitedBackend, LocalBackend, RetryingBackend
from .s3 import S3Backend
from .settings import RepositorySettings, S3Settings


def open_backend(settings, max_concurrency=8, retries=5, fsync=True):
    """Build the backend of ``settings``, wrapped in retry and limit.

    ``settings`` is a RepositorySettings, or a bare location (``"/path"``, ``"file:///path"``, ``"s3://bucket/prefix"``)
    for a repository with no S3 options. S3 credentials default to boto3's usual chain (environment, profile,
    instance role) when not given. ``max_concurrency`` bounds the backend calls in flight, ``retries`` the attempts
    of each; ``fsync=False`` is for benchmarks of the CPU pipeline only.
    """
    if isinstance(settings, RepositorySettings):
        spec, s3 = settings.location, settings.s3
    else:
        spec, s3 = settings, S3Settings()
    if not isinstance(spec, str) or not spec:
        raise ConfigurationError("The repository location must be a path or an s3://bucket/prefix URL, got %r." % (spec,))
    if spec.startswith("s3://"):
        bucket, prefix = spec[5:].partition("/")[::2]
        inner = S3Backend(bucket, prefix=prefix, settings=s3, max_pool_connections=max_concurrency + 2)
    elif "://" in spec and not spec.startswith("file://"):
        raise ConfigurationError("Unsupported repository URL scheme in %r: use a path or s3://bucket/prefix." % spec.split("://")[0])
    else:
        inner = LocalBackend(spec[7:] if spec.startswith("file://") else spec, fsync=fsync)
    # the limit sits inside the retry so a call sleeping before its next attempt does not hold a slot
    return RetryingBackend(ConcurrencyLimitedBackend(inner, max_concurrency=max_concurrency), attempts=retries)
