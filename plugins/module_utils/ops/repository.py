# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository lifecycle: create it idempotently, manage its keys, show its settings.

Chunk size, encryption and the repository id are fixed at creation: asking for other values on an existing
repository is an error that says so (nothing is changed). Keys (passphrases, key files) can be added and removed at
any time without rewriting data: adding one that already opens the repository changes nothing, removing one that is
not there changes nothing, the last key is never removed. A rotation is an add and a remove in one task: once it has
run, the old passphrase no longer opens the repository, so a rerun opens it with the new one and changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses

from ..errors import ConfigurationError, RepositoryNotFoundError, WrongKeyError
from ..repo import DEFAULT_CHUNK_SIZE, DEFAULT_COMPRESSION_LEVEL, Repository, open_backend
from ._engine import open_repository

__all__ = ["RepositoryRequest", "ensure_repository", "show_repository", "describe"]


@dataclasses.dataclass(frozen=True)
class RepositoryRequest:
    """What the repository should be: ``chunk_size``, ``encryption`` and ``compression_level`` (None: the default
    when creating, not compared otherwise); keys to add (``new_passphrase``, ``new_key_file``, labelled
    ``key_label``) and to remove (``remove_keys``: ids or labels)."""

    chunk_size: int = None
    encryption: bool = True
    compression_level: int = None
    new_passphrase: str = dataclasses.field(default=None, repr=False)
    new_key_file: str = None
    key_label: str = None
    remove_keys: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "remove_keys", tuple(str(key) for key in self.remove_keys or ()))
        if self.new_passphrase is not None and not self.new_passphrase:
            raise ConfigurationError("new_passphrase is empty: give a passphrase to add, or leave the option out.")


def _or_default(value, default):
    """``value`` unless it is unset: a 0 is the user's (and refused by the repository with its range), not a default."""
    return default if value is None else value


def describe(repository):
    """The settings of an open repository as a result dict (no secret)."""
    config = repository.config
    keys = repository.list_keys() if repository.encrypted else []
    return {"location": repository.location, "id": repository.id, "format_version": config.get("version"),
            "chunk_size": repository.chunk_size, "encryption": bool(repository.encrypted),
            "compression_level": config["compression"]["level"], "created": config.get("created"),
            "key_slots": [{"id": k["id"], "type": k["type"], "label": k.get("label", ""), "created": k.get("created")} for k in keys]}


def _opens_with(settings, passphrase=None, key_file=None):
    try:
        Repository.open(open_backend(settings), passphrase=passphrase, key_file=key_file).close()
        return True
    except WrongKeyError:
        return False


def _open_or_create(request, repo, check):
    """(open repository or None in check mode, created, rotated): opens with the task's key, else — after a rotation
    that already ran — with the new passphrase or key file (rotated); creates the repository when there is none."""
    try:
        return open_repository(repo), False, False
    except RepositoryNotFoundError:
        if check:
            return None, True, False
        repository = Repository.create(open_backend(repo), chunk_size=_or_default(request.chunk_size, DEFAULT_CHUNK_SIZE),
                                       compression_level=_or_default(request.compression_level, DEFAULT_COMPRESSION_LEVEL),
                                       encryption=request.encryption, passphrase=repo.passphrase, key_file=repo.key_file)
        return repository, True, False
    except WrongKeyError:
        if not (request.new_passphrase or request.new_key_file) or not request.remove_keys:
            raise
        # the rotation ran before: the old key is gone, the new one opens
        rotated = dataclasses.replace(repo, passphrase=request.new_passphrase, key_file=None) if request.new_passphrase \
            else dataclasses.replace(repo, passphrase=None, key_file=request.new_key_file)
        return open_repository(rotated), False, True


def _check_fixed_settings(repository, request, location):
    wanted = {"chunk_size": request.chunk_size, "encryption": bool(request.encryption),
              "compression_level": request.compression_level}
    actual = describe(repository)
    different = ["%s is %r (asked: %r)" % (name, actual[name], value) for name, value in wanted.items()
                 if value is not None and actual[name] != value]
    if different:
        raise ConfigurationError("The repository at %s exists with other settings: %s. These are fixed at creation: "
                                 "change the task to match, or use another location." % (location, "; ".join(different)))


def _add_keys(repository, request, repo, check):
    added = []
    for kind, value in (("passphrase", request.new_passphrase), ("key_file", request.new_key_file)):
        if not value:
            continue
        if not repository.encrypted:
            raise ConfigurationError("new_%s: the repository at %s is not encrypted, so it has no keys." % (kind, repo.location))
        if _opens_with(repo, **{kind: value}):
            continue
        if not check:
            if kind == "passphrase":
                repository.add_passphrase(value, label=request.key_label)
            else:
                repository.add_key_file(value, label=request.key_label)
        added.append(kind)
    return added


def _remove_keys(repository, request, check, kept_ids, pending=0):
    """Remove the keys named by id or label in ``request.remove_keys`` (none of ``kept_ids``: the keys this task just
    added; ``pending``: keys check mode would have added); the removed slots, as listed."""
    if not request.remove_keys:
        return []
    if not repository.encrypted:
        raise ConfigurationError("remove_keys: the repository at %s is not encrypted, so it has no keys." % repository.location)
    slots = repository.list_keys()
    doomed = [slot for slot in slots if (slot["id"] in request.remove_keys or slot.get("label") in request.remove_keys)
              and slot["id"] not in kept_ids]
    if doomed and len(doomed) >= len(slots) + pending:
        raise ConfigurationError("remove_keys would remove every key of the repository at %s (%s): add the new key in the same "
                                 "task (new_passphrase or new_key_file) or keep one." % (
                                     repository.location, ", ".join(slot["id"] for slot in doomed)))
    if not check:
        for slot in doomed:
            repository.remove_key(slot["id"])
    return [{"id": slot["id"], "type": slot["type"], "label": slot.get("label", "")} for slot in doomed]


def ensure_repository(request, repo, check=False):
    """Make the repository of RepositorySettings ``repo`` what ``request`` (a RepositoryRequest) says.

    Returns {changed, created, keys_added, keys_removed, repository}.
    """
    repository, created, rotated = _open_or_create(request, repo, check)
    if repository is None:      # check mode, nothing to open yet
        return {"changed": True, "created": True, "keys_added": [], "keys_removed": [],
                "repository": {"location": repo.location, "chunk_size": _or_default(request.chunk_size, DEFAULT_CHUNK_SIZE),
                               "encryption": request.encryption,
                               "compression_level": _or_default(request.compression_level, DEFAULT_COMPRESSION_LEVEL)}}
    with contextlib.closing(repository):
        if not created:
            _check_fixed_settings(repository, request, repo.location)
        before = {slot["id"] for slot in repository.list_keys()} if repository.encrypted else set()
        added = _add_keys(repository, request, repo, check)
        now = {slot["id"] for slot in repository.list_keys()} if repository.encrypted else set()
        # never remove what this task added, nor the new key of a rotation that already ran (a label may name both
        # the old key and its replacement)
        kept = (now - before) | ({repository.opened_key_id} if rotated else set())
        removed = _remove_keys(repository, request, check, kept, pending=len(added) if check else 0)
        result = describe(repository)
    return {"changed": created or bool(added) or bool(removed), "created": created, "keys_added": added,
            "keys_removed": removed, "repository": result}


def show_repository(repo):
    with contextlib.closing(open_repository(repo)) as repository:
        return {"changed": False, "repository": describe(repository)}
