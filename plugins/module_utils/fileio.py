# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File-system durability helpers shared by the layers (a bottom module, like errors.py: it imports nothing of ours)."""

from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["fsync_directory", "replace_file"]


def fsync_directory(directory):
    """Make the entries of ``directory`` durable: a file created or renamed there survives a crash only once its
    directory is synced, not only its data (POSIX: fsync of the file does not cover the name)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path, content, new_mode=0o600):
    """Replace the file ``path`` with the bytes ``content``, atomically and durably: a temporary file beside it,
    synced, given the old file's mode (``new_mode`` when there was none), renamed over it, then the directory synced.
    Readers see the old file or the new one, never a mix; a failure leaves the old file and no temporary one."""
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else new_mode
    fd, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fsync_directory(directory)
