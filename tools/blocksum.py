#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recompute a disk's blocksum from a raw image, independently of blockvault.

    tools/blocksum.py IMAGE BLOCK_SIZE_BYTES

The value equals the ``sha256`` that blockvault records for the disk (``sha256_block_size`` is the
block size): SHA-256 over the SHA-256 digests of the image's consecutive blocks, the last block
possibly shorter. Standard library only, serial and simple on purpose: this is the reference.
"""

import hashlib
import sys


def blocksum(path, block_size):
    digests = hashlib.sha256()
    with open(path, "rb") as image:
        while True:
            block = image.read(block_size)
            if not block:
                break
            digests.update(hashlib.sha256(block).digest())
    return digests.hexdigest()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    print(blocksum(sys.argv[1], int(sys.argv[2])))
