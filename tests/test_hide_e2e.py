"""End to end, through real mitmdump: the usage chunk the proxy asked for never reaches a client
that did not ask, whatever the server does with the stream (compress it though the proxy asked
for identity, end it right after the usage event, send it with a Content-Length), and the
ledger still gets the usage."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from .proxy import Proxy, wait_until
from .standin import StandIn, without_usage_chunk

CHAT_CASE = "openai__openai-chat__stream__agno-include-usage"  # gpt-4o-mini-2024-07-18, 23 in / 8 out


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, standin):  # stopped before the stand-in it holds connections to
    with Proxy(tmp_path_factory.mktemp("hide")) as p:
        yield p


def shown_to_client(body: bytes, no_done: bool) -> bytes:
    """The stream the server sends when asked for usage, less its usage chunk."""
    if no_done:
        cut = body[:body.rindex(b"data: [DONE]")].rstrip(b"\r\n")
        return cut[:cut.rindex(b"data: {")]  # the usage event was the last
    return without_usage_chunk(body)


def row_of(proxy: Proxy, tag: str) -> dict:
    """The finished row of the one call tagged `t: tag`."""
    def finished() -> list[dict]:
        rows = [r for r in proxy.rows() if json.loads(r["tags"] or "{}").get("t") == tag]
        return rows if rows and all(r["outcome"] != "pending" for r in rows) else []

    (row,) = wait_until(finished, 30, f"the row of {tag}")
    return row


@pytest.mark.parametrize("encoding", ["", "gzip", "deflate", "br", "zstd"])
@pytest.mark.parametrize("shape", ["", "no-done", "content-length", "no-done,content-length"])
def test_the_client_gets_the_stream_less_the_usage_chunk_decoded(proxy, standin: StandIn, encoding, shape):
    tag = f"{encoding or 'identity'}/{shape or 'chunked'}"
    faults = ",".join(f for f in ("honor-include-usage", encoding, shape) if f)
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as http:
        r = http.post(f"{standin.url}/v1/chat/completions",
                      headers={"x-standin-case": CHAT_CASE, "x-standin-fault": faults, "X-Ledger-Tag-T": tag,
                               "accept-encoding": "gzip, br, zstd"},
                      json={"model": "gpt-4o-mini", "stream": True, "messages": []})
    assert r.status_code == 200
    assert "content-encoding" not in r.headers  # passed on decoded
    body = standin.cases[CHAT_CASE].body
    assert r.content == shown_to_client(body, "no-done" in shape)
    assert b'"choices":[]' not in r.content
    assert json.loads(standin.requests[-1]["body"])["stream_options"] == {"include_usage": True}
    row = row_of(proxy, tag)
    assert (row["outcome"], row["input_tokens"], row["output_tokens"], row["usage_injected"]) == ("ok", 23, 8, 1)


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_an_sdk_that_did_not_ask_never_sees_the_chunk_of_a_compressed_stream(proxy, standin, encoding):
    client = openai.OpenAI(
        base_url=f"{standin.url}/v1", api_key="sk-test", max_retries=0,
        default_headers={"x-standin-case": CHAT_CASE, "x-standin-fault": f"honor-include-usage,{encoding},no-done",
                         "X-Ledger-Tag-T": f"sdk/{encoding}"},
        http_client=httpx.Client(proxy=proxy.url, trust_env=False),
    )
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True))
    assert chunks and all(c.choices for c in chunks), "a chunk with empty choices reached the SDK"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "10 + 5 equals 15."
    row = row_of(proxy, f"sdk/{encoding}")
    assert (row["input_tokens"], row["output_tokens"]) == (23, 8)


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_a_plain_stream_labelled_compressed_reaches_the_client_plain_less_the_chunk(proxy, standin, encoding):
    tag = f"false-{encoding}"
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as http:
        r = http.post(f"{standin.url}/v1/chat/completions",
                      headers={"x-standin-case": CHAT_CASE, "X-Ledger-Tag-T": tag,
                               "x-standin-fault": f"honor-include-usage,false-{encoding}"},
                      json={"model": "gpt-4o-mini", "stream": True, "messages": []})
    assert "content-encoding" not in r.headers
    assert r.content == shown_to_client(standin.cases[CHAT_CASE].body, no_done=False)
    row = row_of(proxy, tag)
    assert (row["outcome"], row["input_tokens"], row["output_tokens"]) == ("ok", 23, 8)


def test_a_client_that_asked_still_gets_the_compressed_stream_as_sent(proxy, standin):
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as http:
        r = http.post(f"{standin.url}/v1/chat/completions",
                      headers={"x-standin-case": CHAT_CASE, "x-standin-fault": "honor-include-usage,gzip",
                               "X-Ledger-Tag-T": "asked"},
                      json={"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
                            "messages": []})
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == standin.cases[CHAT_CASE].body  # httpx decodes it
    assert row_of(proxy, "asked")["input_tokens"] == 23
