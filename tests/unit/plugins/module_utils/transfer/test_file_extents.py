"""Raw image files: the blocksum recomputed from a sparse file, reading only its data, equals the definition and
the standalone tool."""
import os
import pathlib
import subprocess
import sys

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.transfer.file_extents import (
    file_blocksum, file_data_extents)
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.images import BLOCK, make_image, reference_blocksum


def test_file_blocksum_skips_holes_and_equals_definition(tmp_path):
    path = tmp_path / "disk.raw"
    data = bytearray(16 * BLOCK + 4096)
    data[BLOCK:2 * BLOCK] = os.urandom(BLOCK)
    data[9 * BLOCK + 17:9 * BLOCK + 4000] = os.urandom(4000 - 17)
    data[-10:] = b"0123456789"
    with open(path, "wb") as image:
        image.truncate(len(data))
        for start in (BLOCK, 9 * BLOCK, len(data) - 4096):
            image.seek(start)
            image.write(data[start:start + 4096 if start != BLOCK else 2 * BLOCK])
    assert path.read_bytes() == bytes(data)
    assert file_blocksum(str(path), BLOCK, workers=2) == reference_blocksum(bytes(data), BLOCK)


def test_standalone_reference_tool_agrees(tmp_path):
    data = make_image("rztr", tail=777)
    path = tmp_path / "image.raw"
    path.write_bytes(data)
    tool = pathlib.Path(__file__).resolve().parents[5] / "tools" / "blocksum.py"
    printed = subprocess.run([sys.executable, str(tool), str(path), str(BLOCK)], check=True, capture_output=True, text=True).stdout
    assert printed.strip() == file_blocksum(str(path), BLOCK) == reference_blocksum(data, BLOCK)


def test_data_extents_of_a_sparse_file_and_of_a_range(tmp_path, fakes):
    path = tmp_path / "sparse.raw"
    data = bytearray(8 * BLOCK)
    data[2 * BLOCK:3 * BLOCK] = os.urandom(BLOCK)
    data[6 * BLOCK:6 * BLOCK + 4096] = os.urandom(4096)
    fakes.write_sparse(path, bytes(data), BLOCK)
    with open(path, "rb") as image:
        extents = file_data_extents(image.fileno(), 0, len(data))
        if extents is None:
            pytest.skip("this file system cannot tell data from holes (no SEEK_DATA)")
        covered = bytearray(len(data))
        for offset, length in extents:
            covered[offset:offset + length] = b"\x01" * length
        # every data byte is inside an extent, and the untouched first two blocks are a hole
        assert all(covered[i] for i in range(len(data)) if data[i])
        assert not any(covered[:2 * BLOCK])
        assert file_data_extents(image.fileno(), 3 * BLOCK, 6 * BLOCK) == []
