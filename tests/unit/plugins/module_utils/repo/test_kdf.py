"""scrypt: every implementation present computes RFC 7914's function, and the fastest one is chosen."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import crypto, kdf

# RFC 7914 section 12 (scrypt test vectors), 64-byte outputs.
RFC7914_VECTORS = [
    (b"password", b"NaCl", 1024, 8, 16,
     "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"),
    (b"pleaseletmein", b"SodiumChloride", 16384, 8, 1,
     "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"),
]
IMPLEMENTATIONS = kdf.implementations()


@pytest.mark.parametrize("name,function", IMPLEMENTATIONS, ids=[entry[0] for entry in IMPLEMENTATIONS])
@pytest.mark.parametrize("password,salt,n,r,p,expected", RFC7914_VECTORS, ids=["rfc7914-2", "rfc7914-3"])
def test_each_implementation_computes_rfc7914_scrypt(name, function, password, salt, n, r, p, expected):
    assert function(password, salt, n, r, p, 64).hex() == expected
    # a key object's KEK is the first 32 bytes (PBKDF2 blocks are independent, so a shorter output is a prefix)
    assert function(password, salt, n, r, p, 32).hex() == expected[:64]


def test_implementations_agree_on_a_16_byte_salt_as_key_objects_use():
    salt = bytes(range(16))
    outputs = {name: function("pässwörd".encode("utf-8"), salt, 1 << 10, 8, 1, 32) for name, function in IMPLEMENTATIONS}
    assert len(set(outputs.values())) == 1, outputs


def test_the_fastest_present_implementation_is_used(monkeypatch):
    names = [entry[0] for entry in IMPLEMENTATIONS]
    assert names[-1] == "hashlib"
    assert names == [name for name in ("libsodium", "cryptography", "hashlib") if name in names]
    calls = []
    first_name, first = IMPLEMENTATIONS[0]
    monkeypatch.setattr(kdf, "implementations", lambda: [(first_name, lambda *a: calls.append(a) or first(*a))])
    assert kdf.scrypt(b"pw", b"s" * 16, 1 << 10, 8, 1) == kdf._hashlib(b"pw", b"s" * 16, 1 << 10, 8, 1, 32)
    assert calls == [(b"pw", b"s" * 16, 1 << 10, 8, 1, 32)]


def test_without_pynacl_the_cryptography_scrypt_is_used(monkeypatch):
    monkeypatch.setitem(kdf._sodium, "function", None)
    assert kdf.implementations()[0][0] == "cryptography"


def test_key_objects_open_whichever_implementation_wrapped_them(monkeypatch):
    """A key wrapped on a host with PyNaCl opens on a host without it, and the other way round."""
    master = bytes(range(32))
    wrapped = crypto.make_key_object(master, "repo-id", passphrase="correct horse")
    with monkeypatch.context() as without_pynacl:
        without_pynacl.setitem(kdf._sodium, "function", None)
        assert crypto.unwrap_key_object(wrapped, "repo-id", passphrase="correct horse") == master
        rewrapped = crypto.make_key_object(master, "repo-id", passphrase="correct horse")
    assert crypto.unwrap_key_object(rewrapped, "repo-id", passphrase="correct horse") == master
    assert crypto.unwrap_key_object(rewrapped, "repo-id", passphrase="wrong") is None


def test_the_largest_parameters_a_key_object_may_ask_for_fit_every_implementations_memory_limit(monkeypatch):
    n, r, p = 1 << 20, 8, 1          # 128 * n * r * p = 1 GiB, the most crypto._scrypt lets a key object ask for
    limit = kdf._memory_limit(n, r, p)
    assert 128 * r * (n + p + 2) <= limit <= (1 << 31) - 1
    # each implementation accepts that limit (run with a cheap n, the limit being what is checked)
    monkeypatch.setattr(kdf, "_memory_limit", lambda *args: limit)
    outputs = {name: function(b"pw", b"s" * 16, 1 << 4, 1, 1, 32) for name, function in IMPLEMENTATIONS}
    assert len(set(outputs.values())) == 1, outputs
