# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The S3 backend (boto3): one PUT per object, paginated listings, optional Object Lock retention."""

from __future__ import annotations

import datetime
import threading

from ..errors import BackendError, ConfigurationError, MissingDependencyError, NotFoundInBackendError
from .backend import Backend, ObjectInfo, check_name
from .settings import S3Settings, check_storage_class

# boto3 and botocore, imported by the first S3Backend: they take 0.2 s to import, which every operation on a
# local repository (most of them, and every small incremental) would otherwise pay.
boto3 = botocore = None


def _import_boto3():
    global boto3, botocore
    if boto3 is not None:
        return
    try:
        import botocore.config
        import botocore.exceptions
        import boto3        # last: boto3 set means everything imported
    except ImportError as exc:
        raise MissingDependencyError("The S3 repository backend needs the boto3 Python library; install it on the "
                                     "host that runs the backup (pip install boto3).", library="boto3") from exc


_NOT_FOUND = ("NoSuchKey", "404", "NotFound")
_TRANSIENT = ("RequestTimeout", "RequestTimeoutException", "SlowDown", "Throttling", "ThrottlingException",
              "InternalError", "ServiceUnavailable", "503", "500", "502", "504")
# Prefixes written with retention when Object Lock is on: the backup data. Locks, keys and config stay mutable.
_RETAINED_PREFIXES = ("chunks/", "indexes/", "manifests/")


class S3Backend(Backend):
    """Objects as ``<prefix>/<name>`` in an S3 bucket (AWS or any S3-compatible store).

    ``settings`` (an S3Settings, see repo.settings) says how to reach the bucket. Thread-safe: one boto3 client
    shared by all threads (boto3 clients are thread-safe), the one-time bucket check under a lock; the connection
    pool holds ``max_pool_connections``. Listing is strongly consistent on AWS S3 and on compatible stores that
    promise it (the lock protocol relies on it). With ``settings.object_lock_days`` the bucket must have Object Lock
    enabled; chunks, indexes and manifests get a retention of that many days in ``settings.object_lock_mode``.

    Before its first write the backend checks the bucket once (HeadBucket, and its Object Lock configuration when
    ``object_lock_days`` is set): AWS refuses a PutObject to a missing bucket, but some S3 servers (SeaweedFS)
    create the bucket instead, which would hide a mistyped bucket name and give a bucket without Object Lock.
    A read in a missing bucket raises NotFoundInBackendError, as for a missing object (AWS's HeadObject cannot
    tell them apart), so opening a repository there says that no repository exists.
    """

    parallel_listing = True
    max_delete_batch = 1000     # DeleteObjects takes at most 1,000 keys

    def __init__(self, bucket, prefix="", settings=S3Settings(), max_pool_connections=10):
        _import_boto3()
        object_lock_days, object_lock_mode = settings.object_lock_days, settings.object_lock_mode
        if not bucket:
            raise ConfigurationError("The S3 repository URL needs a bucket: s3://BUCKET/PREFIX.")
        if object_lock_mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise ConfigurationError("object_lock_mode must be GOVERNANCE or COMPLIANCE, got %r." % (object_lock_mode,))
        if object_lock_days is not None and int(object_lock_days) < 1:
            raise ConfigurationError("object_lock_days must be a positive number of days, got %r." % (object_lock_days,))
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.location = "s3://%s/%s" % (bucket, self.prefix)
        self.object_lock_days = int(object_lock_days) if object_lock_days else None
        self.object_lock_mode = object_lock_mode
        # chunks only: manifests, indexes, keys and locks stay in STANDARD, so listing and restore planning never
        # pay an infrequent-access tier's retrieval fee or minimum object size
        self.storage_class = check_storage_class(settings.storage_class)
        config = botocore.config.Config(max_pool_connections=max_pool_connections, retries={"max_attempts": 2, "mode": "standard"},
                                        connect_timeout=20, read_timeout=120)
        session = boto3.session.Session(aws_access_key_id=settings.access_key, aws_secret_access_key=settings.secret_key,
                                        aws_session_token=settings.session_token, region_name=settings.region)
        self.client = session.client("s3", endpoint_url=settings.endpoint_url, config=config, verify=settings.verify_tls)
        self._bucket_checked = False
        self._bucket_check_lock = threading.Lock()

    def _key(self, name):
        return self.prefix + check_name(name)

    def _error(self, action, name, exc):
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, botocore.exceptions.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _NOT_FOUND or status == 404 and code != "NoSuchBucket":
                return NotFoundInBackendError("Object %s does not exist in %s." % (name, self.location))
            hint = ""
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                hint = " Check the S3 credentials and the bucket policy."
            elif code == "NoSuchBucket":
                hint = " Create the bucket first or fix its name."
            transient = code in _TRANSIENT or (status is not None and status >= 500)
            return BackendError("S3 could not %s %s in %s: %s (%s).%s" % (action, name, self.location, code, status, hint),
                                transient=transient)
        if isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionError,
                            botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError)):
            return BackendError("S3 could not %s %s in %s: connection failed (%s)." % (action, name, self.location, type(exc).__name__),
                                transient=True)
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return BackendError("No S3 credentials found for %s: give access_key/secret_key or configure the AWS chain." % self.location)
        return BackendError("S3 could not %s %s in %s: %s." % (action, name, self.location, type(exc).__name__))

    def _check_bucket(self, name):
        """Once per backend, before the first write: the bucket exists (and has Object Lock when retention is asked).

        An answer that is not "missing" (access denied to these calls by a narrow policy, a store without them)
        lets the write go on: the write itself then reports what is wrong.
        """
        with self._bucket_check_lock:
            if self._bucket_checked:
                return
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except botocore.exceptions.ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404 or exc.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
                    raise BackendError("S3 could not write %s in %s: NoSuchBucket (404): bucket %s does not exist. "
                                       "Create the bucket first or fix its name." % (name, self.location, self.bucket)) from None
            except Exception as exc:
                raise self._error("write", name, exc) from None
            if self.object_lock_days:
                self._check_object_lock()
            self._bucket_checked = True

    def _check_object_lock(self):
        try:
            answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
            enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ObjectLockConfigurationNotFoundError":
                return
            enabled = False
        except Exception as exc:
            raise self._error("check Object Lock of", "the bucket", exc) from None
        if not enabled:
            raise ConfigurationError("object_lock_days is set but bucket %s has no Object Lock: create the bucket with "
                                     "Object Lock enabled, or leave object_lock_days unset." % self.bucket)

    def put(self, name, data, exclusive=False):
        if not self._bucket_checked:
            self._check_bucket(name)
        if isinstance(data, (list, tuple)):
            data = b"".join(data)
        kwargs = {"Bucket": self.bucket, "Key": self._key(name), "Body": bytes(data) if not isinstance(data, bytes) else data}
        if exclusive:
            kwargs["IfNoneMatch"] = "*"
        if self.storage_class and name.startswith("chunks/"):
            kwargs["StorageClass"] = self.storage_class
        if self.object_lock_days and name.startswith(_RETAINED_PREFIXES):
            kwargs["ObjectLockMode"] = self.object_lock_mode
            kwargs["ObjectLockRetainUntilDate"] = (datetime.datetime.now(datetime.timezone.utc)
                                                   + datetime.timedelta(days=self.object_lock_days))
        try:
            self.client.put_object(**kwargs)
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if exclusive and code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise BackendError("Object %s already exists in %s." % (name, self.location)) from None
            if exclusive and code in ("NotImplemented", "501"):
                # a store without conditional writes: check, then write (only the config is written this way)
                if self.exists(name):
                    raise BackendError("Object %s already exists in %s." % (name, self.location)) from None
                self.put(name, data)
                return
            raise self._error("write", name, exc) from None
        except Exception as exc:  # botocore raises many unrelated classes for transport failures
            raise self._error("write", name, exc) from None

    def get(self, name):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) == "NoSuchBucket":
                raise NotFoundInBackendError("Object %s does not exist in %s: bucket %s does not exist." % (
                    name, self.location, self.bucket)) from None
            raise self._error("read", name, exc) from None
        except Exception as exc:
            raise self._error("read", name, exc) from None

    def retained_until(self, name):
        """The retain-until date (epoch) of the object's current version, None without a retention (or when the
        credentials may not read it: a delete then adds a delete marker, as without the check)."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:
            raise self._error("check", name, exc) from None
        until = head.get("ObjectLockRetainUntilDate")
        return until.timestamp() if until is not None else None

    def exists(self, name):
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
            return True
        except Exception as exc:
            error = self._error("check", name, exc)
            if isinstance(error, NotFoundInBackendError):
                return False
            raise error from None

    def delete(self, name):
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as exc:
            error = self._error("delete", name, exc)
            if not isinstance(error, NotFoundInBackendError):
                raise error from None

    def delete_many(self, names):
        """DeleteObjects, 1,000 keys a request (quiet: only the failures are answered). A key S3 reports an error for
        is not deleted, except NoSuchKey (absent: as ``delete``); the failures of every request are collected and
        raised at the end as one BackendError naming them."""
        names = list(names)
        failed = []
        for start in range(0, len(names), self.max_delete_batch):
            part = names[start:start + self.max_delete_batch]
            objects = [{"Key": self._key(name)} for name in part]
            try:
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
            except Exception as exc:
                raise self._error("delete", "%d objects (%s...)" % (len(part), part[0]), exc) from None
            for error in answer.get("Errors") or ():
                code = str(error.get("Code", ""))
                if code not in _NOT_FOUND:
                    failed.append((str(error.get("Key", ""))[len(self.prefix):], code, error.get("Message") or ""))
        if failed:
            raise self._delete_failures(failed, len(names))
        return None

    def _delete_failures(self, failed, asked):
        named = "; ".join("%s: %s %s" % (name, code, message) for name, code, message in failed[:5])
        codes = {code for _name, code, _message in failed}
        hint = ("Check the S3 credentials and the bucket policy (s3:DeleteObject)." if codes & {"AccessDenied", "403"} else
                "Run the operation again: deleting is idempotent.")
        return BackendError("S3 could not delete %d of %d objects in %s (%s%s); the others were deleted." % (
            len(failed), asked, self.location, named, "; ..." if len(failed) > 5 else ""),
            transient=all(code in _TRANSIENT for code in codes), hint=hint)

    def list(self, prefix="", limit=None):
        result = []
        full_prefix = self.prefix + prefix
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            pagination = {"MaxItems": limit} if limit else {}
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix, PaginationConfig=pagination):
                for item in page.get("Contents", ()):
                    name = item["Key"][len(self.prefix):]
                    result.append(ObjectInfo(name, item["Size"], item["LastModified"].timestamp(), item.get("ETag")))
        except Exception as exc:
            raise self._error("list", prefix or "/", exc) from None
        return result

    def stat(self, name):
        # a one-key listing rather than HeadObject: the same time precision and ETag as list() gives (a HEAD's
        # Last-Modified has whole seconds where some stores list milliseconds)
        key = self._key(name)
        try:
            found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1).get("Contents", ())
        except Exception as exc:
            raise self._error("stat", name, exc) from None
        if not found or found[0]["Key"] != key:
            raise NotFoundInBackendError("Object %s does not exist in %s." % (name, self.location))
        return ObjectInfo(name, found[0]["Size"], found[0]["LastModified"].timestamp(), found[0].get("ETag"))

    def close(self):
        try:
            self.client.close()
        except Exception:  # closing is best effort
            pass
