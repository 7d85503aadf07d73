"""The block-based disk checksum: definition, zero blocks, tail blocks (file recomputation: transfer/test_file_extents)."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import blockhash
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.images import BLOCK, make_image, reference_blocksum


def test_disk_digest_matches_definition_in_any_order():
    data = make_image("rzzrtzr", tail=1000)
    digest = blockhash.DiskDigest(len(data), BLOCK)
    assert digest.count == 8
    for index in reversed(range(digest.count)):
        digest.set_data(index, data[index * BLOCK:(index + 1) * BLOCK])
    assert digest.hexdigest() == reference_blocksum(data, BLOCK)


def test_zero_blocks_use_precomputed_digest_including_a_short_tail():
    capacity = 3 * BLOCK + 512
    digest = blockhash.DiskDigest(capacity, BLOCK)
    for index in range(digest.count):
        digest.set_zero(index)
    assert digest.hexdigest() == reference_blocksum(bytes(capacity), BLOCK)


def test_missing_block_is_refused():
    digest = blockhash.DiskDigest(2 * BLOCK, BLOCK)
    digest.set_zero(0)
    with pytest.raises(ValueError, match=r"blocks \[1\] have no digest"):
        digest.hexdigest()


def test_is_zero():
    assert blockhash.is_zero(bytes(4096))
    assert not blockhash.is_zero(bytes(4095) + b"\1")
    assert blockhash.is_zero(memoryview(bytearray(10)))
