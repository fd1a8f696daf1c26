"""Merging `stream_options.include_usage: true` into streamed chat requests: only where it is
missing, never over what the client chose, always valid JSON equal to the original plus the
one field."""

from __future__ import annotations

import codecs
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger.inject import include_usage_body, names_stream_options

ADDED = {"include_usage": True}


def rewrite(body: dict[str, Any], **dumps: Any) -> tuple[bytes, bytes | None]:
    raw = json.dumps(body, **dumps).encode()
    return raw, include_usage_body(raw, json.loads(raw))


# --- the merge table --------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "merged"), [
    ({}, {"include_usage": True}),
    ({"include_obfuscation": False}, {"include_obfuscation": False, "include_usage": True}),
    ({"include_usage": None}, {"include_usage": True}),
    ({"include_usage": None, "include_obfuscation": True}, {"include_usage": True, "include_obfuscation": True}),
    (None, {"include_usage": True}),
])
def test_stream_options_merged(options: Any, merged: dict) -> None:
    body = {"model": "gpt-4o-mini", "stream": True, "stream_options": options,
            "messages": [{"role": "user", "content": "hi"}]}
    _, out = rewrite(body)
    assert out is not None
    result = json.loads(out)
    assert result == {**body, "stream_options": merged}
    assert list(result) == list(body)  # key order of the body kept
    assert list(result["stream_options"]) == list(merged)


@pytest.mark.parametrize("options", [
    {"include_usage": False},  # the client said no
    {"include_usage": True},  # already there
    {"include_usage": False, "include_obfuscation": False},
    "include_usage", ["include_usage"], 0, False, True,  # not an object: leave the client's mistake alone
])
def test_client_choice_left_untouched(options: Any) -> None:
    _, out = rewrite({"model": "gpt-4o-mini", "stream": True, "stream_options": options})
    assert out is None


@pytest.mark.parametrize("stream", [False, None, "true", 1, "missing"])
def test_not_streamed_left_untouched(stream: Any) -> None:
    """OpenAI answers 400 to stream_options without stream: true."""
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": []}
    if stream != "missing":
        body["stream"] = stream
    assert rewrite(body)[1] is None
    assert rewrite({**body, "stream_options": {}})[1] is None


def test_missing_stream_options_appended_textually() -> None:
    raw = (b'{\n  "model" : "gpt-4o-mini",\n'
           b'  "messages": [{"role": "user", "content": "caf\\u00e9 \xe6\x9d\xb1"}],\n'
           b'  "stream": true\n}\n')
    out = include_usage_body(raw, json.loads(raw))
    assert out is not None
    end = raw.rstrip().rfind(b"}")
    assert out.startswith(raw[:end]) and out.endswith(raw[end:])  # every client byte kept
    assert out[end:len(out) - len(raw) + end] == b',"stream_options":{"include_usage":true}'
    assert json.loads(out) == {**json.loads(raw), "stream_options": ADDED}


# --- the whole table as a property ------------------------------------------------------------

KEYS = st.text(min_size=1, max_size=8).filter(lambda k: k not in ("stream", "stream_options"))
SCALARS = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.text(max_size=12) \
    | st.floats(allow_nan=False, allow_infinity=False)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)
MISSING = object()
STREAM = st.sampled_from([True, True, True, False, None, "true", MISSING])
OPTIONS = st.one_of(
    st.just(MISSING), st.none(), st.text(max_size=5), st.lists(st.booleans(), max_size=2),
    st.fixed_dictionaries({}, optional={"include_usage": st.sampled_from([None, True, False]),
                                        "include_obfuscation": st.booleans(),
                                        "future_option": VALUES}),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=5), STREAM, OPTIONS, st.data(),
       st.sampled_from([{}, {"indent": 2}, {"separators": (",", ":")}, {"ensure_ascii": False}]))
def test_merge_property(other: dict, stream: Any, options: Any, data: st.DataObject, dumps: dict) -> None:
    items = list(other.items())
    for key, value in (("stream", stream), ("stream_options", options)):
        if value is not MISSING:
            items.insert(data.draw(st.integers(0, len(items))), (key, value))
    body = dict(items)
    raw, out = rewrite(body, **dumps)

    wanted = stream is True and (options is MISSING or options is None
                                 or (isinstance(options, dict) and options.get("include_usage") is None))
    if not wanted:
        assert out is None
        return
    assert out is not None
    result = json.loads(out)
    merged = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    assert result == {**body, "stream_options": merged}
    assert list(result) == list(body) + (["stream_options"] if options is MISSING else [])
    if options is MISSING:
        end = raw.rstrip().rfind(b"}")
        assert out.startswith(raw[:end]) and out.endswith(raw[end:])


def test_a_lone_surrogate_escape_survives_the_rewrite() -> None:
    raw = b'{"stream":true,"stream_options":{},"messages":[{"content":"\\ud83d"}]}'
    out = include_usage_body(raw, json.loads(raw))
    assert json.loads(out) == {**json.loads(raw), "stream_options": {"include_usage": True}}


ENCODINGS = {  # how a body is written: its BOM (if any) and the codec of the rest
    "utf-8": (b"", "utf-8"), "utf-8 with BOM": (codecs.BOM_UTF8, "utf-8"),
    "utf-16-le": (b"", "utf-16-le"), "utf-16-be": (b"", "utf-16-be"),
    "utf-16, LE BOM": (codecs.BOM_UTF16_LE, "utf-16-le"), "utf-16, BE BOM": (codecs.BOM_UTF16_BE, "utf-16-be"),
    "utf-32-le": (b"", "utf-32-le"), "utf-32-be": (b"", "utf-32-be"),
    "utf-32, LE BOM": (codecs.BOM_UTF32_LE, "utf-32-le"), "utf-32, BE BOM": (codecs.BOM_UTF32_BE, "utf-32-be"),
}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(ENCODINGS)), st.sampled_from([MISSING, None, {}, {"include_obfuscation": True}]),
       st.text(max_size=20), st.booleans())
def test_the_body_keeps_its_encoding(encoding: str, options: Any, content: str, compact: bool) -> None:
    """RFC 8259 JSON may come as UTF-16 or UTF-32 (json.loads reads them): the rewritten body is
    in the client's encoding, BOM and byte order included, as its Content-Type may say."""
    bom, codec = ENCODINGS[encoding]
    body: dict[str, Any] = {"model": "gpt-4o-mini", "stream": True, "messages": [{"content": content}]}
    if options is not MISSING:
        body["stream_options"] = options
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":") if compact else None)
    raw = bom + text.encode(codec)
    out = include_usage_body(raw, json.loads(raw))
    assert out is not None and out.startswith(bom)
    result = out[len(bom):].decode(codec)
    merged = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    assert json.loads(result) == {**body, "stream_options": merged}
    if options is MISSING:
        end = text.rfind("}")
        assert result == text[:end] + ',"stream_options":{"include_usage":true}' + text[end:]


@pytest.mark.parametrize("raw", [
    b'{"model":"m","stream":true,"stream_options":{},"temperature":1e400}',  # valid JSON, read as inf
    b'{"model":"m","stream":true,"stream_options":null,"top_p":NaN}',  # json.loads reads it; no JSON
])
def test_a_number_that_cannot_be_written_back_leaves_the_body_alone(raw: bytes) -> None:
    """Re-serialised, 1e400 would become `Infinity`, which is not JSON: a strict server (or
    Node's JSON.parse) would refuse a request the client wrote correctly."""
    assert include_usage_body(raw, json.loads(raw)) is None


@pytest.mark.parametrize(("answer", "named"), [
    # Mistral: pydantic's extra_forbidden names the field in `loc`
    (b'{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","stream_options"],'
     b'"msg":"Extra inputs are not permitted","input":{"include_usage":true}}]}}', True),
    (b'{"error":{"message":"Unrecognized request argument supplied: stream_options","param":null}}', True),
    (b'{"error":{"code":"invalid_request","param":"stream_options"}}', True),
    (b"unknown field `stream_options`, expected one of `model`, `messages`", True),  # not JSON
    # FastAPI: an unrelated mistake, the whole request echoed with the field the proxy added
    (b'{"detail":[{"type":"missing","loc":["body","messages"],"msg":"Field required",'
     b'"input":{"model":"m","stream":true,"stream_options":{"include_usage":true}}}]}', False),
    (b'{"error":{"message":"model not found"}}', False),
    (b"[" * 5000 + b'"stream_options"' + b"]" * 5000, True),  # deeper than recursion would go
])
def test_an_error_names_stream_options_only_as_its_cause(answer: bytes, named: bool) -> None:
    assert names_stream_options(answer) is named
