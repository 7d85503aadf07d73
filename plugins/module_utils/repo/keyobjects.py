# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the configuration and the key objects of a repository being opened (format sections 3 and 4), and saying
why no key opened it: a damaged or missing key object is named as such, never reported as a wrong passphrase.

Thread-safety: stateless functions over the backend.
"""

from __future__ import annotations

from ..errors import CorruptionError, NotFoundInBackendError, RepositoryFormatError, WrongKeyError
from . import crypto, validation
from .format import CONFIG_NAME, KEYS_PREFIX

__all__ = ["check_config", "load_key_objects", "no_key_error"]


def check_config(backend, raw):
    """The config dict of ``raw``, every field checked (format section 3); CorruptionError naming it otherwise."""
    try:
        config = validation.load_json_object(raw)
        if config.get("format") != "blockvault-repository":
            raise validation.Damaged("it is not a blockvault repository configuration (format %r)" % (config.get("format"),))
        return validation.check_config(config, "the repository configuration at %s" % backend.location)
    except validation.Damaged as exc:
        raise CorruptionError("The config object at %s is damaged: %s." % (backend.location, exc), object_name=CONFIG_NAME,
                              hint="Put back a copy of the config object (it never changes after creation).") from None


def no_key_error(backend, passphrase, key_file, wanted, tried, key_objects, damaged):
    """Why no key object opened: a damaged or missing key object is said to be that, not a wrong passphrase."""
    what = "passphrase" if wanted == "passphrase" else "key file"
    # a damaged object of unknown type may be the one for this secret; one of the other type cannot
    relevant = [(name, reason) for name, reason, key_type, _newer in damaged if key_type in (None, wanted)]
    newer = [error for _name, _reason, key_type, error in damaged if error is not None and key_type in (None, wanted)]
    if newer:
        return newer[0]
    if relevant:
        names = "; ".join("key object %s is damaged (%s)" % pair for pair in relevant)
        if tried:
            message = "The %s opens none of the %d intact %s key(s) of the repository at %s, and %s: it may be the one " \
                      "for this %s." % (what, tried, what, backend.location, names, what)
        else:
            message = "The %s cannot be tried on the repository at %s: %s." % (what, backend.location, names)
        return CorruptionError(message, object_name=relevant[0][0],
                               hint="Open the repository with another of its keys and remove the damaged one (remove_key), "
                                    "or put back a copy of the key object.")
    if not key_objects and not damaged:
        return CorruptionError("The encrypted repository at %s has no key objects (keys/ is empty): they were deleted or "
                               "lost, and no passphrase or key file can open it without one." % backend.location,
                               object_name=KEYS_PREFIX, hint="Put back a copy of its keys/ objects.")
    if not tried:
        others = len(key_objects)
        return WrongKeyError("The repository at %s has no %s key (it has %d %s key(s) only)." % (
            backend.location, what, others, "key-file" if wanted == "passphrase" else "passphrase"),
            hint="Give %s instead." % ("key_file" if wanted == "passphrase" else "the passphrase"))
    return crypto.wrong_key_error(backend.location, passphrase, key_file, tried)


def load_key_objects(backend):
    """([intact key object dicts], [(name, reason, type or None, RepositoryFormatError or None) of unusable ones]),
    in name order; the error is set for a key object of a newer format (not damaged, but unusable here)."""
    objects, damaged = [], []
    for info in sorted(backend.list(KEYS_PREFIX)):
        key_id = info.name[len(KEYS_PREFIX):]
        key_type = None
        try:
            key_object = validation.load_json_object(backend.get(info.name))
            key_type = key_object.get("type") if key_object.get("type") in ("passphrase", "keyfile") else None
            validation.check_key_object(key_object, key_id)
        except NotFoundInBackendError:
            continue  # removed meanwhile
        except validation.Damaged as exc:
            damaged.append((info.name, str(exc), key_type, None))
            continue
        except RepositoryFormatError as exc:
            damaged.append((info.name, "of a newer format", key_type, exc))
            continue
        objects.append(key_object)
    return objects, damaged
