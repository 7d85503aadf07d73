# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""scrypt (RFC 7914), the passphrase KDF of key objects, computed by the fastest implementation present.

Why it matters: the key derivation (n=2^17, r=8, p=1: 128 MiB) sits on the critical path of every run that
opens a passphrase repository, and for a small incremental it is the largest single cost. The implementations
compute the same function (the RFC 7914 vectors are checked against each in the unit tests), so which one runs
changes nothing in the repository format; they differ in speed only, on this project's 2-core build machine:
libsodium's (PyNaCl, SIMD Salsa20/8) 0.25 s, OpenSSL 4 inside the cryptography wheel 0.32 s, the system OpenSSL
3.0 behind ``hashlib.scrypt`` 0.39 s. All three run without the GIL, so a helper thread can derive the key
while the caller logs in to vCenter.

Thread-safety: stateless; ``scrypt`` may be called from any thread.
"""

from __future__ import annotations

import hashlib

try:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    HAS_CRYPTOGRAPHY_SCRYPT = True
except ImportError:  # pragma: no cover
    HAS_CRYPTOGRAPHY_SCRYPT = False

__all__ = ["scrypt", "implementations"]

_sodium = {}


def _sodium_function():
    """libsodium's scrypt from PyNaCl, or None; imported at first use (13 ms not every run should pay)."""
    if "function" not in _sodium:
        try:
            from nacl import bindings
        except ImportError:
            bindings = None
        available = bindings is not None and getattr(bindings, "has_crypto_pwhash_scryptsalsa208sha256", False)
        _sodium["function"] = bindings.crypto_pwhash_scryptsalsa208sha256_ll if available else None
    return _sodium["function"]


def _memory_limit(n, r, p):
    """What scrypt(n, r, p) allocates (128 * r * (n + p + 2) bytes) plus slack; at most what hashlib accepts."""
    return min(128 * r * (n + p + 2) + (16 << 20), (1 << 31) - 1)


def _libsodium(password, salt, n, r, p, dklen):
    return _sodium_function()(password, salt, n, r, p, dklen=dklen, maxmem=_memory_limit(n, r, p))


def _cryptography(password, salt, n, r, p, dklen):
    return Scrypt(salt=salt, length=dklen, n=n, r=r, p=p).derive(password)


def _hashlib(password, salt, n, r, p, dklen):
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_memory_limit(n, r, p))


def implementations():
    """[(name, function)] of the scrypt implementations importable here, fastest first."""
    found = []
    if _sodium_function() is not None:
        found.append(("libsodium", _libsodium))
    if HAS_CRYPTOGRAPHY_SCRYPT:
        found.append(("cryptography", _cryptography))
    found.append(("hashlib", _hashlib))
    return found


def scrypt(password, salt, n, r, p, dklen=32):
    """scrypt(password, salt, n, r, p) as ``dklen`` bytes. The caller bounds n, r, p (memory is 128 * n * r * p)."""
    return implementations()[0][1](password, salt, n, r, p, dklen)
