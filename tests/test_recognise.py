"""Which requests are LLM calls: decided on the method and path, whatever bytes the body holds.

A client bug (a body cut off, empty, an array, not UTF-8) still sends a call the provider answers,
and may bill; the ledger records it rather than let it pass unseen."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import http

from usage_ledger.request_info import recognise_request

CHAT = "https://api.openai.com/v1/chat/completions"


def recognised(method: str, url: str, body: bytes, headers: dict | None = None):
    request = http.Request.make(method, url, body, headers or {"content-type": "application/json"})
    return recognise_request(request)


@given(st.binary(max_size=300))
def test_any_body_posted_to_a_chat_path_is_a_chat_call(body: bytes):
    found = recognised("POST", CHAT, body)
    assert found is not None
    assert found[0].api == "openai-chat"


json_objects = st.dictionaries(st.text(max_size=8), st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                               max_size=4)


@given(json_objects, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]))
def test_a_json_object_in_any_rfc_8259_encoding_gives_its_model_and_stream(body: dict, encoding: str):
    found = recognised("POST", CHAT, json.dumps(body).encode(encoding))
    assert found is not None
    model = body.get("model")
    assert found[0].model_requested == (model if isinstance(model, str) and model else None)
    assert found[0].stream_requested is (body.get("stream") is True)


def test_a_malformed_body_is_recognised_with_no_model_and_no_stream():
    (rec, _) = recognised("POST", CHAT, b'{"model": "gpt-4o", "stream": true, "messages": [')
    assert (rec.api, rec.model_requested, rec.stream_requested, rec.body) == ("openai-chat", None, False, {})


def test_a_deeply_nested_body_does_not_raise():
    (rec, _) = recognised("POST", CHAT, b"[" * 100_000)
    assert rec.model_requested is None


def test_other_methods_and_paths_are_not_calls():
    assert recognised("GET", CHAT, b"") is None
    assert recognised("HEAD", CHAT, b"") is None
    assert recognised("OPTIONS", CHAT, b"") is None
    assert recognised("POST", "https://api.openai.com/v1/models", b"{}") is None
    # Ollama's paths are generic words: only a body naming a model makes them a call
    assert recognised("POST", "http://localhost:11434/api/chat", b"{not json") is None
