# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository lifecycle: create it idempotently, add keys, show its settings.

Chunk size, encryption and the repository id are fixed at creation: asking for other values on an existing
repository is an error that says so (nothing is changed). Keys (passphrases, key files) can be added at any time
without rewriting data; adding one that already opens the repository changes nothing.
"""

from __future__ import annotations

import contextlib

from ..errors import RepositoryNotFoundError, WrongKeyError, ConfigurationError
from ..repo import DEFAULT_CHUNK_SIZE, DEFAULT_COMPRESSION_LEVEL, Repository, open_backend
from ._engine import open_repository

__all__ = ["ensure_repository", "show_repository", "describe"]


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


def ensure_repository(repo, chunk_size=None, encryption=True, compression_level=None,
                      new_passphrase=None, new_key_file=None, check=False):
    """Create the repository when absent (idempotent), then add ``new_passphrase`` / ``new_key_file`` when they do not
    open it yet. Returns {changed, created, keys_added, repository}.

    ``chunk_size`` and ``compression_level`` None mean: the defaults (4 MiB, zstd level 1) when creating, and whatever the
    existing repository has otherwise; given values must match an existing repository.
    """
    try:
        repository = open_repository(repo)
    except RepositoryNotFoundError:
        if check:
            return {"changed": True, "created": True, "keys_added": [],
                    "repository": {"location": repo.location, "chunk_size": _or_default(chunk_size, DEFAULT_CHUNK_SIZE),
                                   "encryption": encryption, "compression_level": _or_default(compression_level, DEFAULT_COMPRESSION_LEVEL)}}
        repository = Repository.create(open_backend(repo), chunk_size=_or_default(chunk_size, DEFAULT_CHUNK_SIZE),
                                       compression_level=_or_default(compression_level, DEFAULT_COMPRESSION_LEVEL),
                                       encryption=encryption, passphrase=repo.passphrase, key_file=repo.key_file)
        created = True
    else:
        created = False
    with contextlib.closing(repository):
        if not created:
            wanted = {"chunk_size": chunk_size, "encryption": bool(encryption), "compression_level": compression_level}
            actual = describe(repository)
            different = ["%s is %r (asked: %r)" % (name, actual[name], value) for name, value in wanted.items()
                         if value is not None and actual[name] != value]
            if different:
                raise ConfigurationError("The repository at %s exists with other settings: %s. These are fixed at creation: "
                                         "change the task to match, or use another location." % (repo.location, "; ".join(different)))
        added = []
        for kind, value in (("passphrase", new_passphrase), ("key_file", new_key_file)):
            if not value:
                continue
            if not repository.encrypted:
                raise ConfigurationError("new_%s: the repository at %s is not encrypted, so it has no keys." % (kind, repo.location))
            if _opens_with(repo, **{kind: value}):
                continue
            if not check:
                if kind == "passphrase":
                    repository.add_passphrase(value)
                else:
                    repository.add_key_file(value)
            added.append(kind)
        result = describe(repository)
    return {"changed": created or bool(added), "created": created, "keys_added": added, "repository": result}


def show_repository(repo):
    with contextlib.closing(open_repository(repo)) as repository:
        return {"changed": False, "repository": describe(repository)}
