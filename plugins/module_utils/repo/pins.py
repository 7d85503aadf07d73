# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is said about a restore point after the fact: a pin (protection from prune), a note, and the record that it
passed a full validation (format section 7.2).

A manifest is immutable (and may be under Object Lock), so these live in objects of their own beside it:
``pins/<restore point id>`` (its existence is the pin; the body records when), ``notes/<restore point id>`` (the
note's text, sealed with the repository key like an index when the repository is encrypted: a note may name
systems) and ``validated/<restore point id>`` (written by a full validation or a test restore that found it intact).
Listing a prefix once tells which restore points have one, so a prune, a copy or a listing of thousands of restore
points costs a listing, not a read per restore point.

Thread-safety: stateless functions over the backend (atomic puts and deletes).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re

from ..errors import ConfigurationError, CorruptionError, NotFoundInBackendError
from .format import is_restore_point_id, isotime, parse_restore_point_id

__all__ = ["PINS_PREFIX", "NOTES_PREFIX", "VALIDATED_PREFIX", "MAX_NOTE", "ValidationRecord", "pinned_ids", "noted_ids",
           "validated_ids", "validation_records", "set_pinned", "read_note", "write_note", "record_validated", "forget"]

PINS_PREFIX = "pins/"
NOTES_PREFIX = "notes/"
# a restore point that passed a full validation (every chunk read and hashed) or a test restore: backup_copy's
# validated_only copies only those
VALIDATED_PREFIX = "validated/"
#: characters of a note (a sentence or two: "before the 2026-12 upgrade"), not a document store
MAX_NOTE = 1000
# the levels a validation record may name (ops.validate's RECORDED_LEVELS)
_RECORDED_LEVELS = ("full", "restore")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


@dataclasses.dataclass(frozen=True)
class ValidationRecord:
    """When a restore point last passed a validation that read every chunk (``validated``, UTC ISO-8601) and at which
    level (``full`` or ``restore``; None when its record does not say). Immutable."""

    validated: str
    level: str = None


def _ids(backend, prefix):
    return {info.name[len(prefix):] for info in backend.list(prefix)}


def pinned_ids(backend):
    """The ids of the pinned restore points (one listing)."""
    return _ids(backend, PINS_PREFIX)


def noted_ids(backend):
    """The ids of the restore points that have a note (one listing)."""
    return _ids(backend, NOTES_PREFIX)


def validated_ids(backend):
    """The ids of the restore points that passed a full validation or a test restore (one listing)."""
    return _ids(backend, VALIDATED_PREFIX)


def validation_records(backend):
    """{restore point id: ValidationRecord} of every validation record (one listing, then one read per record).

    The body is informative (format section 7.2: the listing is the set), so a body that does not read as one gives
    the object's modification time from the listing and no level rather than an error; a record removed since the
    listing (its restore point deleted meanwhile) is left out.
    """
    records = {}
    for info in backend.list(VALIDATED_PREFIX):
        rp_id = info.name[len(VALIDATED_PREFIX):]
        if not is_restore_point_id(rp_id):
            continue
        try:
            blob = backend.get(info.name)
        except NotFoundInBackendError:
            continue
        try:
            document = json.loads(blob)
        except (ValueError, UnicodeDecodeError, RecursionError):
            document = None
        if not isinstance(document, dict):
            document = {}
        when, level = document.get("validated"), document.get("level")
        if not (isinstance(when, str) and _TIME.match(when)):
            when = isotime(datetime.datetime.fromtimestamp(info.mtime, datetime.timezone.utc))
        records[rp_id] = ValidationRecord(when, level if level in _RECORDED_LEVELS else None)
    return records


def record_validated(backend, rp_id, level):
    """Record that ``rp_id`` passed a validation of ``level`` (full or restore), now."""
    parse_restore_point_id(rp_id)
    backend.put(VALIDATED_PREFIX + rp_id, json.dumps({"validated": isotime(), "level": level}).encode("utf-8"))


def set_pinned(backend, rp_id, pinned):
    """Pin or unpin ``rp_id``; True when that changed something."""
    parse_restore_point_id(rp_id)
    name = PINS_PREFIX + rp_id
    present = backend.exists(name)
    if pinned and not present:
        backend.put(name, json.dumps({"pinned": isotime()}).encode("utf-8"))
        return True
    if not pinned and present:
        backend.delete(name)
        return True
    return False


def read_note(backend, keys, rp_id):
    """The note of ``rp_id`` ("" when it has none); CorruptionError naming the object when it is damaged."""
    name = NOTES_PREFIX + rp_id
    try:
        blob = backend.get(name)
    except NotFoundInBackendError:
        return ""
    try:
        plain = keys.unseal(name, blob) if keys is not None else blob
        document = json.loads(plain)
        note = document["note"]
        if not isinstance(note, str):
            raise TypeError("note is %s" % type(note).__name__)
        return note
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CorruptionError("The note %s is damaged (%s): remove it by setting another note." % (name, type(exc).__name__),
                              object_name=name) from None


def write_note(backend, keys, rp_id, note):
    """Set the note of ``rp_id`` ("" removes it); True when that changed something."""
    parse_restore_point_id(rp_id)
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise ConfigurationError("note must be text of at most %d characters." % MAX_NOTE)
    name = NOTES_PREFIX + rp_id
    try:
        current = read_note(backend, keys, rp_id)
    except CorruptionError:
        current = None      # replaced below: a damaged note is what a new one repairs
    if current == note:
        return False
    if not note:
        backend.delete(name)
        return True
    plain = json.dumps({"note": note, "updated": isotime()}).encode("utf-8")
    backend.put(name, keys.seal(name, plain) if keys is not None else plain)
    return True


def forget(backend, rp_id):
    """Remove the pin, the note and the validation record of a deleted restore point (best effort is not enough: each
    is removed or raises)."""
    for name in (PINS_PREFIX + rp_id, NOTES_PREFIX + rp_id, VALIDATED_PREFIX + rp_id):
        if backend.exists(name):
            backend.delete(name)
