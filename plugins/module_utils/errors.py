# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's exception tree.

Every error the engine raises on purpose derives from BlockvaultError and carries the
context an operator needs at 3 am: the phase it happened in, the VM, the disk and the run
id, plus a hint saying what to do. Layers raise the most specific class they can; callers
add context they know with ``with_context`` while the exception travels up. The Ansible
adapter turns ``to_dict()`` into fail_json keyword arguments.

Messages never contain secrets: code that builds an error from user input must not embed
passwords, passphrases, keys or session cookies. ``redact`` is a last line of defence.
"""

from __future__ import annotations

import re

__all__ = [
    "BlockvaultError", "ConfigurationError", "MissingDependencyError", "CancelledError", "GuestError",
    "RepositoryError", "RepositoryNotFoundError", "RepositoryExistsError", "RepositoryFormatError",
    "WrongKeyError", "CorruptionError", "LockError", "BackendError", "NotFoundInBackendError",
    "VSphereError", "AuthenticationError", "CertificateError", "VMNotFoundError", "ObjectNotFoundError",
    "AmbiguousObjectError", "TaskError", "TaskTimeoutError", "SnapshotError", "ChangeTrackingError", "CbtReasonError",
    "VddkError", "VddkLoadError", "VddkTransientError", "VddkAuthenticationError", "VddkNotFoundError", "VddkAccessError",
    "VddkOutOfRangeError", "VddkReadOnlyError",
    "TransferError", "RestoreRefusedError", "ValidationFailedError", "ExportError", "redact",
]

_SECRET_PATTERNS = (
    re.compile(r"(vmware_soap_session=)\"?[^\";\s]+\"?", re.IGNORECASE),
    re.compile(r"((?:password|passphrase|secret|token|cookie|key)\s*[=:]\s*)\S+", re.IGNORECASE),
)


def redact(text):
    """Mask values that look like secrets in free text (a defence in depth, not a licence to log secrets)."""
    text = str(text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "********", text)
    return text


class BlockvaultError(Exception):
    """Base of every error the engine raises on purpose.

    Contract: ``str(err)`` is a complete sentence for a human; the keyword fields are
    optional context. Immutable apart from ``with_context``, which only fills fields
    that are still unset, so the innermost (most precise) context wins.
    """

    #: default phase for this class when the raiser gives none
    default_phase = None

    def __init__(self, message, phase=None, vm=None, disk=None, run_id=None, hint=None):
        super().__init__(message)
        self.message = message
        self.phase = phase or self.default_phase
        self.vm = vm
        self.disk = disk
        self.run_id = run_id
        self.hint = hint

    def with_context(self, phase=None, vm=None, disk=None, run_id=None):
        """Fill unset context fields in place and return self (for ``raise err.with_context(...)``)."""
        for name, value in (("phase", phase), ("vm", vm), ("disk", disk), ("run_id", run_id)):
            if value is not None and getattr(self, name) is None:
                setattr(self, name, value)
        return self

    @property
    def error_class(self):
        return type(self).__name__

    def __str__(self):
        text = self.message
        if self.hint:
            text = "%s %s" % (text.rstrip(), self.hint)
        return redact(text)

    def to_dict(self):
        """The fields an Ansible failure result carries (no secrets, JSON-serialisable)."""
        return {
            "msg": str(self),
            "error_class": self.error_class,
            "phase": self.phase,
            "vm": self.vm,
            "disk": self.disk,
            "run_id": self.run_id,
        }


class ConfigurationError(BlockvaultError):
    """Bad input from the user: an option value, a path, a combination. The message names the input."""

    default_phase = "configuration"


class MissingDependencyError(ConfigurationError):
    """A Python library or the VDDK needed for this operation is not installed."""

    def __init__(self, message, library=None, **kwargs):
        super().__init__(message, **kwargs)
        self.library = library


class GuestError(BlockvaultError):
    """Inside a restore point's disks (guest filesystems, libguestfs): a path that is not there, a filesystem that
    cannot be read, the appliance that did not start. The message names the path or filesystem."""

    default_phase = "guest"


class CancelledError(BlockvaultError):
    """The operation was cancelled because another part of it failed first, or on request.

    ``cancelled_by`` says why a run was cancelled on request: a signal name (``SIGTERM``), ``controller gone`` or
    ``lease expired`` (ops.cancel); None when the cancel only stopped the other parts of a failing run.
    """

    def __init__(self, message, cancelled_by=None, **kwargs):
        super().__init__(message, **kwargs)
        self.cancelled_by = cancelled_by

    def to_dict(self):
        result = super().to_dict()
        if self.cancelled_by:
            result["cancelled_by"] = self.cancelled_by
        return result


# -- repository ------------------------------------------------------------------------------

class RepositoryError(BlockvaultError):
    default_phase = "repository"


class RepositoryNotFoundError(RepositoryError):
    """No repository at the given location."""


class RepositoryExistsError(RepositoryError):
    """A repository already exists where one was to be created with other settings."""


class RepositoryFormatError(RepositoryError):
    """The repository (or one of its objects) is of an unknown or unsupported format version."""


class WrongKeyError(RepositoryError):
    """The passphrase or key file does not open this repository."""


class CorruptionError(RepositoryError):
    """Stored data failed verification (authentication tag, hash, checksum or schema)."""

    def __init__(self, message, object_name=None, **kwargs):
        super().__init__(message, **kwargs)
        self.object_name = object_name


class LockError(RepositoryError):
    """A repository lock could not be taken (another exclusive operation holds it)."""


class LeaseLostError(LockError):
    """This run's repository lock was not renewed in time (or was removed as stale): it stopped before writing
    anything that depends on the lock. ``reason`` says why (see lease.OwnerLease)."""

    def __init__(self, message, reason=None, **kwargs):
        super().__init__(message, **kwargs)
        self.reason = reason


class BackendError(RepositoryError):
    """The storage backend failed (I/O error, S3 error). ``transient`` tells retry wrappers to try again."""

    def __init__(self, message, transient=False, **kwargs):
        super().__init__(message, **kwargs)
        self.transient = transient


class NotFoundInBackendError(BackendError):
    """The object asked for does not exist in the backend."""


# -- vSphere ---------------------------------------------------------------------------------

class VSphereError(BlockvaultError):
    default_phase = "vsphere"


class AuthenticationError(VSphereError):
    """vCenter rejected the user name or password."""

    default_phase = "connect"


class CertificateError(VSphereError):
    """The server certificate (or the VDDK thumbprint) could not be verified."""

    default_phase = "connect"


class VMNotFoundError(VSphereError):
    """No VM matches the name, path, UUID or moref given."""


class ObjectNotFoundError(VSphereError):
    """No inventory object (datacenter, folder, datastore, pool, network, host) matches the name given."""


class AmbiguousObjectError(VSphereError):
    """A name matches several inventory objects; ``matches`` lists "path (moref)" strings."""

    def __init__(self, message, matches=None, **kwargs):
        super().__init__(message, **kwargs)
        self.matches = list(matches or ())


class TaskError(VSphereError):
    """A vSphere task ended in error; ``fault`` names the vSphere fault type."""

    def __init__(self, message, fault=None, **kwargs):
        super().__init__(message, **kwargs)
        self.fault = fault


class TaskTimeoutError(TaskError):
    """A vSphere task did not finish within its timeout."""


class SnapshotError(VSphereError):
    default_phase = "snapshot"


class SnapshotLeaseLostError(SnapshotError):
    """The lease of this run's backup snapshot was not renewed in time: another run may have removed the snapshot,
    so what was read from it is not trusted and nothing is committed. ``reason`` says why."""

    def __init__(self, message, reason=None, **kwargs):
        super().__init__(message, **kwargs)
        self.reason = reason


class ChangeTrackingError(VSphereError):
    """CBT could not be enabled or queried; callers usually fall back to a full read."""

    default_phase = "cbt"


class CbtReasonError(ChangeTrackingError):
    """CBT cannot answer for one disk, which is then read (or compared) in full: ``reason`` is a user-readable
    sentence, ``fault`` the vSphere fault name."""

    def __init__(self, message, reason=None, fault=None, **kwargs):
        super().__init__(message, **kwargs)
        self.reason = reason or message
        self.fault = fault


# -- VDDK ------------------------------------------------------------------------------------

class VddkError(BlockvaultError):
    """A VDDK call failed; ``code`` is the VixError code (err & 0xFFFF), ``text`` VDDK's own message."""

    default_phase = "vddk"

    def __init__(self, message, code=None, text=None, function=None, **kwargs):
        super().__init__(message, **kwargs)
        self.code = code
        self.text = text
        self.function = function


class VddkAuthenticationError(VddkError):
    """VDDK could not log in (VIX_E_AUTHENTICATION_FAIL): wrong user/password or an expired session cookie."""

    default_phase = "connect"


class VddkNotFoundError(VddkError):
    """The VM, snapshot or disk VDDK was asked for does not exist (4, 4000, 13000-13024)."""


class VddkAccessError(VddkError):
    """VDDK was refused access to the disk (13), typically because no requested transport mode is usable."""


class VddkOutOfRangeError(VddkError):
    """A read or write past the disk's capacity (16007): a product bug or a disk that shrank."""


class VddkReadOnlyError(VddkError):
    """A write to a disk opened read-only (11)."""


class VddkLoadError(VddkError, ConfigurationError):
    """libvixDiskLib could not be found or loaded from the given directory."""


class VddkTransientError(VddkError):
    """A VDDK failure worth retrying after a reconnect (lost connection, busy object)."""


# -- transfer and operations -----------------------------------------------------------------

class TransferError(BlockvaultError):
    default_phase = "transfer"


class ExportError(BlockvaultError):
    """An export (nbdkit serving a restore point, or an image conversion reading one) failed to start, serve or stop."""

    default_phase = "export"


class RestoreRefusedError(ConfigurationError):
    """A restore would overwrite something (a powered-on VM, an existing name, a file) without force."""

    default_phase = "restore"


class ValidationFailedError(BlockvaultError):
    """Validation found damage; ``report`` holds the details (affected restore points, disks, ranges)."""

    default_phase = "validate"

    def __init__(self, message, report=None, **kwargs):
        super().__init__(message, **kwargs)
        self.report = report
