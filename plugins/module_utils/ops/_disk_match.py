# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a change id stored in a restore point still describes a disk of the live VM.

CBT answers "what changed since change id X" for the disk that stamped X. A backup's incremental read and an
in-place rollback's CBT method both ask it, so both must first know that the disk is still that disk.
"""

from __future__ import annotations

__all__ = ["change_id_unusable"]


def change_id_unusable(entry, disk):
    """Why the change id of ``entry`` (a restore point's DiskEntry) cannot describe ``disk`` (a live DiskInfo), or None."""
    if entry.uuid and disk.uuid and entry.uuid != disk.uuid:
        return "the disk's uuid changed since the restore point (a different disk)"
    if entry.capacity != disk.capacity:
        return "the disk's size changed from %d to %d bytes" % (entry.capacity, disk.capacity)
    if entry.file_name and entry.file_name != disk.file_name:
        return "the disk's file moved from %s to %s" % (entry.file_name, disk.file_name)
    if not entry.change_id:
        return "the restore point stored no change id for the disk"
    return None
