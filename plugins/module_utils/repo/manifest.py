# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifest validation and encoding (format section 7)."""

from __future__ import annotations

import hashlib
import json

from ..errors import CorruptionError, MissingDependencyError, RepositoryFormatError
from .format import FORMAT_VERSION, canonical_json
from .manifest_schema import MANIFEST_SCHEMA

_VALIDATOR = []


def _validator():
    """The compiled manifest schema. jsonschema is imported here, not with the module: its 50 ms of imports
    would otherwise delay every run's key derivation, which cannot start before the imports end."""
    if not _VALIDATOR:
        try:
            import jsonschema
        except ImportError as exc:
            raise MissingDependencyError("Checking restore point manifests needs the jsonschema Python library "
                                         "(pip install jsonschema).", library="jsonschema") from exc
        cls = jsonschema.validators.validator_for(MANIFEST_SCHEMA)
        _VALIDATOR.append(cls(MANIFEST_SCHEMA))
    return _VALIDATOR[0]


def prepare_validation():
    """Import jsonschema and compile the schema now (idempotent): for a thread that would otherwise wait idle,
    such as the caller of a repository open whose key derivation runs outside the GIL."""
    _validator()


def validate_manifest(manifest, what, error_class=CorruptionError):
    """Raise ``error_class`` naming ``what`` and the first schema violations when ``manifest`` is invalid.

    CorruptionError for a stored manifest; the write session passes ConfigurationError (the caller's input).
    """
    errors = sorted(_validator().iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join("%s: %s" % ("/".join(str(p) for p in err.absolute_path) or "(top)", err.message[:200]) for err in errors[:5])
        message = "%s does not match the manifest schema: %s." % (what[:1].upper() + what[1:], details)
        if error_class is CorruptionError:
            raise CorruptionError(message, object_name=what)
        raise error_class(message)


def encode_manifest(name, manifest, keys):
    body = canonical_json(manifest)
    if keys is not None:
        return keys.seal(name, body)
    wrapper = {"format": "blockvault-manifest", "version": FORMAT_VERSION, "sha256": hashlib.sha256(body).hexdigest(),
               "manifest": manifest}
    return json.dumps(wrapper, sort_keys=True, indent=1, ensure_ascii=False).encode("utf-8")


def decode_manifest(name, blob, keys):
    """The verified, schema-checked manifest dict of object ``name``; CorruptionError naming it when it is damaged,
    RepositoryFormatError only for a higher format version (a damaged version field is damage)."""
    try:
        if keys is not None:
            manifest = json.loads(keys.unseal(name, blob))
        else:
            wrapper = json.loads(blob)
            if not isinstance(wrapper, dict) or wrapper.get("format") != "blockvault-manifest":
                raise CorruptionError("Manifest %s is not a blockvault manifest." % name, object_name=name)
            _check_version(name, wrapper.get("version"))
            manifest = wrapper.get("manifest")
            if hashlib.sha256(canonical_json(manifest)).hexdigest() != wrapper.get("sha256"):
                raise CorruptionError("Manifest %s fails its checksum: it is damaged." % name, object_name=name)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: JSON nested too deep
        raise CorruptionError("Manifest %s is not valid JSON: it is damaged." % name, object_name=name) from None
    if isinstance(manifest, dict) and "format_version" in manifest:
        _check_version(name, manifest["format_version"])
    try:
        validate_manifest(manifest, "manifest %s" % name)
    except RecursionError:  # a value nested deeper than the checker recurses, where the schema allows any value
        raise CorruptionError("Manifest %s is nested too deep: it is damaged." % name, object_name=name) from None
    if name.rpartition("/")[2] != manifest["id"]:
        raise CorruptionError("Manifest %s holds restore point %s: it was moved or swapped." % (name, manifest["id"]), object_name=name)
    return manifest


def _check_version(name, version):
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise RepositoryFormatError("Manifest %s has format version %d; this blockvault reads version %d: upgrade blockvault." % (
            name, version, FORMAT_VERSION))
    if not isinstance(version, int) or isinstance(version, bool) or version != FORMAT_VERSION:
        raise CorruptionError("Manifest %s has a damaged format version %r." % (name, version), object_name=name)
