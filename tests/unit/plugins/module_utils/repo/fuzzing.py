"""Hypothesis strategies and settings of the parser fuzz tests (test_fuzz_parsers.py).

Valid objects are built by the real code; these strategies damage them the ways storage, a bad copy or a hostile
writer would: bit flips, truncation, inserted and overwritten bytes, a JSON field deleted or replaced by a value of
another type (huge and negative numbers, NaN, non-ASCII and lone-surrogate text, nested containers), fields added,
and values nested up to 200,000 deep. Counts: ``BLOCKVAULT_FUZZ_EXAMPLES`` is the total number of cases of the whole
module (default DEFAULT_TOTAL, what ``make test`` runs), shared between the tests by their weights. Without it the
run is derandomized (the same cases every time, no example database, no deadline: never flaky); with it the cases are
random, seeded by pytest's ``--hypothesis-seed`` (the Makefile's ``fuzz`` target prints the seed so a failure replays).
"""
import copy
import json
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DEFAULT_TOTAL = 4000
_TOTAL = int(os.environ.get("BLOCKVAULT_FUZZ_EXAMPLES") or 0)
CAMPAIGN = _TOTAL > 0
WEIGHTS = {"config": 6, "key_object": 6, "manifest": 8, "index": 5, "chunk": 8, "lock": 4, "status": 3}


def fuzz_settings(target):
    """The hypothesis settings of the fuzz test of ``target`` (a WEIGHTS key)."""
    total = _TOTAL or DEFAULT_TOTAL
    examples = max(1, total * WEIGHTS[target] // sum(WEIGHTS.values()))
    return settings(max_examples=examples, derandomize=not CAMPAIGN, database=None, deadline=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))


# -- values ----------------------------------------------------------------------------------------------------------

_AWKWARD_NUMBERS = [0, -1, 1, 2, 3, 255, 256, 4096, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64, -2 ** 63,
                    -2 ** 64, 10 ** 30, 1 << 20, 1 << 30, -(1 << 10), 0.5, -0.0, 1e308, -1e308, float("inf"), float("-inf"),
                    float("nan")]
_AWKWARD_TEXT = ["", " ", "0", "1", "null", "é" * 32, "\u00e9", "\ud800", "\udfff", "\x00", "ab" * 16, "ab" * 8, "0" * 64,
                 "AAAA", "AAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAA==", "=", "scrypt", "hkdf-sha256", "shared", "exclusive",
                 "passphrase", "keyfile", "zstd", "running", "2026-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z",
                 "../../etc/passwd", "x" * 300]

LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(_AWKWARD_NUMBERS),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.sampled_from(_AWKWARD_TEXT))


def _containers(children):
    return st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)


VALUES = st.recursive(LEAVES, _containers, max_leaves=8)

# Markers replaced after serialization by what json.dumps cannot write itself: deep nesting and over-long numbers.
_DEEP = "\u0000deep:%d\u0000"
_LONG_NUMBER = "\u0000digits:%d\u0000"
SPECIALS = st.one_of(st.sampled_from([40, 1000, 5000, 200000]).map(lambda depth: _DEEP % depth),
                     st.sampled_from([20, 400, 4301, 20000]).map(lambda digits: _LONG_NUMBER % digits))


def dump(document):
    """JSON bytes of ``document`` with the markers expanded (deep arrays, numbers of thousands of digits)."""
    text = json.dumps(document, ensure_ascii=False, allow_nan=True)
    for kind, build in (("deep", lambda n: "[" * n + "]" * n), ("digits", lambda n: "9" * n)):
        while '"\\u0000%s:' % kind in text:
            start = text.index('"\\u0000%s:' % kind)
            end = text.index('\\u0000"', start + 8)
            count = int(text[start + len('"\\u0000%s:' % kind):end])
            text = text[:start] + build(count) + text[end + len('\\u0000"'):]
    return text.encode("utf-8", "surrogatepass")


def _slots(value, out):
    """Every (container, key or index) inside ``value``, depth first."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        out.append((value, key))
        _slots(child, out)
    return out


@st.composite
def mutated_document(draw, document):
    """``document`` (a dict) with one to three fields deleted, replaced by other values, or added."""
    document = copy.deepcopy(document)
    for _round in range(draw(st.integers(1, 3))):
        slots = _slots(document, [])
        action = draw(st.sampled_from(["delete", "replace", "replace", "special", "add"]))
        if action == "add" or not slots:
            target = draw(st.sampled_from([document] + [c for c, _k in slots if isinstance(c, dict)]))
            target[draw(st.text(max_size=8))] = draw(VALUES)
            continue
        container, key = draw(st.sampled_from(slots))
        if action == "delete":
            del container[key]
        else:
            container[key] = draw(SPECIALS if action == "special" else VALUES)
    return document


@st.composite
def mutated_bytes(draw, blob):
    """``blob`` with bits flipped, truncated, bytes inserted or overwritten, or replaced by random bytes."""
    blob = bytearray(blob)
    action = draw(st.sampled_from(["flip", "flip", "truncate", "insert", "overwrite", "random", "empty"]))
    if action == "empty":
        return b""
    if action == "random":
        return draw(st.binary(max_size=200))
    if not blob:
        return bytes(draw(st.binary(max_size=20)))
    position = draw(st.integers(0, len(blob) - 1))
    if action == "flip":
        for _flip in range(draw(st.integers(1, 4))):
            blob[position] ^= 1 << draw(st.integers(0, 7))
            position = draw(st.integers(0, len(blob) - 1))
    elif action == "truncate":
        del blob[position:]
    elif action == "insert":
        blob[position:position] = draw(st.binary(min_size=1, max_size=16))
    else:
        chunk = draw(st.binary(min_size=1, max_size=16))
        blob[position:position + len(chunk)] = chunk
    return bytes(blob)


def damaged_json(document, raw):
    """Any damage to a JSON object ``document`` stored as ``raw``: to its fields, its bytes, or another JSON value."""
    return st.one_of(mutated_document(document).map(dump), mutated_bytes(raw), VALUES.map(dump), SPECIALS.map(dump))
