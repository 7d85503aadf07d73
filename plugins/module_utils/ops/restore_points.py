# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One restore point under the user's control: pin it (prune keeps it), annotate it, or delete it."""

from __future__ import annotations

import contextlib
import dataclasses

from ..errors import ConfigurationError, RepositoryError
from ..repo.pins import MAX_NOTE
from ._engine import open_repository

__all__ = ["RestorePointChange", "manage_restore_point"]

STATES = ("present", "absent")


@dataclasses.dataclass(frozen=True)
class RestorePointChange:
    """What to make of restore point ``restore_point``: ``state`` absent deletes it (refused while pinned); present
    sets ``pinned`` and ``note`` where given (None leaves them as they are; a note "" removes it)."""

    restore_point: str
    state: str = "present"
    pinned: bool = None
    note: str = None

    def __post_init__(self):
        if not self.restore_point:
            raise ConfigurationError("restore_point is empty: give the id of a restore point (backup_info lists them).")
        if self.state not in STATES:
            raise ConfigurationError("state %r: use present or absent." % (self.state,))
        if self.note is not None and len(self.note) > MAX_NOTE:
            raise ConfigurationError("note has %d characters: keep it to %d." % (len(self.note), MAX_NOTE))
        if self.state == "absent" and (self.pinned or self.note):
            raise ConfigurationError("state absent deletes restore point %s: pinned and note do not apply." % self.restore_point)


def _view(manifest, pinned, note):
    return {"id": manifest.id, "vm": manifest.vm.name, "created": manifest.created, "pinned": pinned, "note": note}


def manage_restore_point(change, repo, check=False):
    """Apply ``change`` (a RestorePointChange) in the repository of RepositorySettings ``repo``.

    Returns {changed, restore_point: {id, vm, created, pinned, note} or None once deleted, diff}.
    """
    with contextlib.closing(open_repository(repo)) as repository:
        rp_id = change.restore_point
        try:
            manifest = repository.load_manifest(rp_id)
        except RepositoryError:
            if change.state == "absent" and rp_id not in repository.pinned_ids():
                return {"changed": False, "restore_point": None, "diff": {"before": {}, "after": {}}}
            raise
        pinned = rp_id in repository.pinned_ids()
        before = _view(manifest, pinned, repository.note(rp_id))
        if change.state == "absent":
            if pinned:
                raise ConfigurationError("Restore point %s is pinned: unpin it (pinned: false) before deleting it." % rp_id)
            if not check:
                repository.delete_restore_point(rp_id)
            return {"changed": True, "restore_point": None, "diff": {"before": before, "after": {}}}
        after = dict(before)
        if change.pinned is not None:
            after["pinned"] = bool(change.pinned)
        if change.note is not None:
            after["note"] = change.note
        if not check:
            if after["pinned"] != before["pinned"]:
                repository.set_pinned(rp_id, after["pinned"])
            if after["note"] != before["note"]:
                repository.set_note(rp_id, after["note"])
        return {"changed": after != before, "restore_point": after, "diff": {"before": before, "after": after}}
