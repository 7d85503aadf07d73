# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File-system durability helpers shared by the layers (a bottom module, like errors.py: it imports nothing of ours)."""

from __future__ import annotations

import os

__all__ = ["fsync_directory"]


def fsync_directory(directory):
    """Make the entries of ``directory`` durable: a file created or renamed there survives a crash only once its
    directory is synced, not only its data (POSIX: fsync of the file does not cover the name)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
