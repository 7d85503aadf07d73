# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a backend from a location string, with the retry and concurrency-limit wrappers applied."""

from __future__ import annotations

from ..errors import ConfigurationError
from .backend import ConcurrencyLimitedBackend, LocalBackend, RetryingBackend
from .s3 import S3Backend


def open_backend(spec, endpoint_url=None, region=None, access_key=None, secret_key=None, session_token=None,
                 object_lock_days=None, object_lock_mode="GOVERNANCE", max_concurrency=8, retries=5, verify_tls=True,
                 fsync=True):
    """Build a backend from ``"/path"`` / ``"file:///path"`` or ``"s3://bucket/prefix"``, wrapped in retry and limit.

    S3 credentials default to boto3's usual chain (environment, profile, instance role) when not given.
    """
    if not isinstance(spec, str) or not spec:
        raise ConfigurationError("The repository location must be a path or an s3://bucket/prefix URL, got %r." % (spec,))
    if spec.startswith("s3://"):
        bucket, prefix = spec[5:].partition("/")[::2]
        inner = S3Backend(bucket, prefix=prefix, endpoint_url=endpoint_url, region=region, access_key=access_key,
                          secret_key=secret_key, session_token=session_token, object_lock_days=object_lock_days,
                          object_lock_mode=object_lock_mode, max_pool_connections=max_concurrency + 2, verify_tls=verify_tls)
    elif "://" in spec and not spec.startswith("file://"):
        raise ConfigurationError("Unsupported repository URL scheme in %r: use a path or s3://bucket/prefix." % spec.split("://")[0])
    else:
        if object_lock_days:
            raise ConfigurationError("object_lock_days applies to S3 repositories only, not to %s." % spec)
        inner = LocalBackend(spec[7:] if spec.startswith("file://") else spec, fsync=fsync)
    # the limit sits inside the retry so a call sleeping before its next attempt does not hold a slot
    return RetryingBackend(ConcurrencyLimitedBackend(inner, max_concurrency=max_concurrency), attempts=retries)
