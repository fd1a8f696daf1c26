"""Merging `stream_options.include_usage: true` into streamed chat requests: only where it is
missing, never over what the client chose, always valid JSON equal to the original plus the
one field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger.inject import include_usage_body

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
