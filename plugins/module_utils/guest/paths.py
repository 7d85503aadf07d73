# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths inside a guest, as users write them, turned into the one form the appliance reads.

A guest path is absolute: ``/etc/app.conf``, or a Windows path ``C:\\Users\\alice\\file.txt`` (or with ``/``),
whose drive letter is returned apart so the caller can pick the filesystem of that letter. ``..`` is refused, not
resolved: a restore names what it takes out of the restore point, and a path that climbs is either a mistake or an
attempt to reach outside what was asked. Pure functions, no libguestfs: unit-tested alone.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re

from ..errors import ConfigurationError

__all__ = ["GuestPath", "parse_guest_path", "local_name"]

_DRIVE = re.compile(r"^([A-Za-z]):(?:[\\/]|$)")


@dataclasses.dataclass(frozen=True)
class GuestPath:
    """``path`` (absolute, normalised, ``/`` separators) on the drive ``letter`` (upper case; None: no letter given).
    ``windows``: written the Windows way (a drive letter or backslashes), so looked up without regard to case."""

    text: str
    path: str
    letter: str = None
    windows: bool = False


def parse_guest_path(text):
    """The GuestPath of ``text``; ConfigurationError naming it when it is empty, relative or climbs with ``..``."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError("A guest path is empty: give an absolute path such as /etc/hosts or C:\\Users.")
    if "\x00" in text:
        raise ConfigurationError("The guest path %r holds a NUL byte." % text)
    raw = text.strip()
    letter = None
    match = _DRIVE.match(raw)
    if match:
        letter = match.group(1).upper()
        raw = raw[2:] or "/"
    windows = bool(match) or "\\" in raw
    if windows:
        raw = raw.replace("\\", "/")
    if not raw.startswith("/"):
        raise ConfigurationError("The guest path %r is relative: give an absolute path such as /etc/hosts or "
                                 "C:\\Users\\alice." % text)
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ConfigurationError("The guest path %r contains '..': refused (name the path itself, without climbing)."
                                 % text)
    return GuestPath(text=text, path=posixpath.join("/", *parts), letter=letter, windows=windows)


def local_name(guest_path):
    """The name a restored path gets under the destination: its last component (``/`` itself is refused)."""
    name = posixpath.basename(guest_path.path)
    if not name:
        raise ConfigurationError("The guest path %r is the root of a filesystem: a whole filesystem is a disk "
                                 "restore (vm_restore), or name the directories to take out." % guest_path.text)
    return name
