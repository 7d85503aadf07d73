# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Raw image files: where their data is (SEEK_DATA/SEEK_HOLE) and their blocksum, reading only that data.

File I/O on top of ``blockhash`` (the checksum's definition, which does no I/O). Used by RawFileSource and by
the checks that compare a restored image with its restore point.
"""

from __future__ import annotations

import errno
import os

from ..blockhash import DiskDigest, block_count, block_length

__all__ = ["file_blocksum", "file_data_extents"]


def file_data_extents(fd, start, end):
    """Ranges of an open file in [start, end) that may hold data, from SEEK_DATA/SEEK_HOLE: [(offset, length)].

    None when the file system cannot tell (SEEK_DATA unsupported): the caller treats everything as data.
    """
    extents = []
    offset = start
    while offset < end:
        try:
            data = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:       # no data after offset
                break
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                return None
            raise
        if data >= end:
            break
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        extents.append((data, hole - data))
        offset = hole
    return extents


def file_blocksum(path, block_size, capacity=None, workers=2):
    """The blocksum of a raw image file, reading only its allocated ranges, with ``workers`` threads.

    ``capacity`` defaults to the file size (a restored image is exactly the disk's size).
    """
    from concurrent.futures import ThreadPoolExecutor

    with open(path, "rb") as image:
        fd = image.fileno()
        size = os.fstat(fd).st_size if capacity is None else capacity
        digest = DiskDigest(size, block_size)
        has_data = bytearray(digest.count)
        extents = file_data_extents(fd, 0, size)
        for start, length in extents if extents is not None else [(0, size)]:
            for index in range(start // block_size, block_count(start + length, block_size)):
                has_data[index] = 1

        def hash_block(index):
            length = block_length(index, size, block_size)
            digest.set_data(index, os.pread(fd, length, index * block_size).ljust(length, b"\0"))

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(hash_block, (i for i in range(digest.count) if has_data[i])))
        for index in range(digest.count):
            if not has_data[index]:
                digest.set_zero(index)
        return digest.hexdigest()
