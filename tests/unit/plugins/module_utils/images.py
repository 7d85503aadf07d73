"""Disk images for the block checksum tests, and the checksum's definition spelled out (what the engine must equal)."""
import hashlib
import os

BLOCK = 64 * 1024


def reference_blocksum(data, block_size):
    """The definition, spelled out serially: SHA-256 over the SHA-256 of each block in order."""
    digests = b"".join(hashlib.sha256(data[i:i + block_size]).digest() for i in range(0, len(data), block_size))
    return hashlib.sha256(digests).hexdigest()


def make_image(blocks, tail=0):
    """An image of BLOCK-sized blocks: "r" random (the same random block each time), "z" zeros, anything else text."""
    rnd = os.urandom(BLOCK)
    parts = []
    for kind in blocks:
        parts.append(rnd if kind == "r" else bytes(BLOCK) if kind == "z" else b"text " * (BLOCK // 5) + b"x" * (BLOCK % 5))
    return b"".join(parts) + os.urandom(tail)
