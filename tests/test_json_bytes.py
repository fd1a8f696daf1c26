"""json_bytes.loads must be json.loads: the same values and the same errors, for any bytes."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger import json_bytes

_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**200, max_value=2**200)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text())
_documents = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=30)
_encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])


def _no_constant(name: str) -> None:
    raise ValueError(f"not JSON: {name}")


def _outcome(parse, data: bytes) -> tuple:
    """What a parser makes of `data`: ("value", a comparable form) or ("error", its type)."""
    try:
        value = parse(data)
    except (ValueError, RecursionError) as e:
        return ("error", type(e))
    return ("value", _comparable(value))


def _comparable(value):
    """Key order, NaN and -0.0 made visible to ==."""
    if isinstance(value, dict):
        return ("dict", [(k, _comparable(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_comparable(v) for v in value])
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    return (type(value).__name__, value)


def _same(data: bytes) -> None:
    assert _outcome(json_bytes.loads, data) == _outcome(json.loads, data)
    assert (_outcome(lambda d: json_bytes.loads(d, _no_constant), data)
            == _outcome(lambda d: json.loads(d, parse_constant=_no_constant), data))


@settings(max_examples=400)
@given(_documents, _encodings, st.booleans())
def test_any_document_in_any_encoding_json_accepts(doc, encoding, ascii_only):
    _same(json.dumps(doc, ensure_ascii=ascii_only).encode(encoding, "surrogatepass"))


@settings(max_examples=400)
@given(_documents, st.data())
def test_mangled_documents(doc, data):
    raw = bytearray(json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    for _ in range(data.draw(st.integers(1, 3))):
        if not raw:
            break
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at:at + data.draw(st.integers(0, 2))] = data.draw(st.binary(max_size=3))
    _same(bytes(raw))


@given(st.binary(max_size=64))
def test_arbitrary_bytes(raw):
    _same(raw)


@pytest.mark.parametrize("raw", [
    b'{"a": 1, "b": 2, "a": 3}',          # duplicate key: last value, first place
    b'"\\ud800"', b'["\\udc00x"]',        # lone surrogate escapes
    b'\xef\xbb\xbf{"model": "m"}',        # UTF-8 with a BOM
    b'[NaN, Infinity, -Infinity]',
    b'1e400', b'-1e400', b'-0', b'-0.0', b'123456789012345678901234567890123',
    b'[' * 5000 + b']' * 5000,            # deeper than either parser goes
    b'{"a": 1} trailing', b'', b' ', b'{"a": "\xff"}',
])
def test_edges(raw):
    _same(raw)


def test_a_request_body_reads_as_json_loads_reads_it():
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": [
        {"role": "user", "content": "é" * 3 + "\U0001f600"}]}).encode()
    assert json_bytes.loads(body) == {"model": "gpt-4o", "stream": True,
                                      "messages": [{"role": "user", "content": "ééé\U0001f600"}]}
