"""Billable calls beyond chat: Responses background mode matched to its later poll, tags stripped
from every request, regional Vertex hosts, and failures inside mitmproxy itself."""

from __future__ import annotations

import json
import logging

from mitmproxy import flow as flow_module
from mitmproxy import http
from mitmproxy.test import tflow

from usage_ledger.ledger import UsageLedger
from usage_ledger.providers import provider_for

from .hooks import forwarded, rows, with_ledger

RESP_ID = "resp_68b1c0ffee"
QUEUED = {"id": RESP_ID, "object": "response", "status": "queued", "background": True, "model": "o3-2025-04-16",
          "output": [], "usage": None}
DONE = {**QUEUED, "status": "completed", "output": [{"type": "message", "content": [{"type": "output_text", "text": "303"}]}],
        "usage": {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 900,
                  "output_tokens_details": {"reasoning_tokens": 768}, "total_tokens": 1020}}
JSON = {"content-type": "application/json"}


def exchange(method: str, url: str, body: bytes, status: int, answer: bytes, ctype: str = "application/json",
             headers: dict | None = None) -> tuple[http.HTTPFlow, http.Response]:
    request = http.Request.make(method, url, body, {**JSON, **(headers or {})})
    flow = tflow.tflow(req=request)
    return flow, http.Response.make(status, answer, {"content-type": ctype})


async def send(ledger: UsageLedger, flow: http.HTTPFlow, response: http.Response, pieces: int = 3) -> bytes:
    ledger.requestheaders(flow)
    ledger.request(flow)
    flow.response = response
    ledger.responseheaders(flow)
    sent = b""
    if callable(response.stream):
        body = response.raw_content or b""
        step = max(1, len(body) // pieces)
        for i in range(0, len(body), step):
            sent += forwarded(response.stream(body[i:i + step]))
        sent += forwarded(response.stream(b""))
    await ledger.response(flow)
    return sent


def run(tmp_path, steps) -> list[dict]:
    return rows(with_ledger(tmp_path / "ledger.db", steps))


POST = json.dumps({"model": "o3", "input": "What is 101 * 3?", "background": True}).encode()
BASE = "https://api.openai.com/v1/responses"


def test_background_response_gets_its_usage_from_the_poll_that_shows_it_done(tmp_path):
    async def steps(ledger):
        await send(ledger, *exchange("POST", BASE, POST, 200, json.dumps(QUEUED).encode()))
        still = {**QUEUED, "status": "in_progress"}
        await send(ledger, *exchange("GET", f"{BASE}/{RESP_ID}", b"", 200, json.dumps(still).encode()))
        await send(ledger, *exchange("GET", f"{BASE}/resp_other", b"", 200, json.dumps(DONE).encode()))
        await send(ledger, *exchange("GET", f"{BASE}/{RESP_ID}", b"", 200, json.dumps(DONE).encode()))
        await send(ledger, *exchange("GET", f"{BASE}/{RESP_ID}", b"", 200, json.dumps(DONE).encode()))

    (row,) = run(tmp_path, steps)  # the polls are not calls
    assert (row["method"], row["api"], row["outcome"], row["model"]) == ("POST", "openai-responses", "ok",
                                                                          "o3-2025-04-16")
    assert (row["input_tokens"], row["output_tokens"], row["reasoning_tokens"], row["total_tokens"]) == (
        120, 900, 768, 1020)
    assert row["cost_usd"] is not None and row["cost_usd"] > 0 and row["price_source"].startswith("genai-prices")


def test_background_stream_replayed_by_get_stream_true(tmp_path):
    created = {"type": "response.created", "sequence_number": 0, "response": {**QUEUED, "status": "in_progress"}}
    completed = {"type": "response.completed", "sequence_number": 9, "response": DONE}

    def events(*objs):
        return b"".join(b"event: %s\ndata: %s\n\n" % (o["type"].encode(), json.dumps(o).encode()) for o in objs)

    async def steps(ledger):
        body = json.dumps({"model": "o3", "input": "x", "background": True, "stream": True}).encode()
        await send(ledger, *exchange("POST", BASE, body, 200, events(created), "text/event-stream"))
        replay = events(created, completed)
        sent = await send(ledger, *exchange("GET", f"{BASE}/{RESP_ID}?stream=true&starting_after=0", b"", 200,
                                            replay, "text/event-stream"))
        assert sent == replay  # the poll's bytes pass on unchanged

    (row,) = run(tmp_path, steps)
    assert (row["stream"], row["outcome"], row["input_tokens"], row["output_tokens"]) == (1, "ok", 120, 900)


def test_cancelled_background_response_keeps_its_partial_usage(tmp_path):
    cancelled = {**DONE, "status": "cancelled", "usage": {"input_tokens": 120, "output_tokens": 40, "total_tokens": 160}}

    async def steps(ledger):
        await send(ledger, *exchange("POST", BASE, POST, 200, json.dumps(QUEUED).encode()))
        await send(ledger, *exchange("POST", f"{BASE}/{RESP_ID}/cancel", b"", 200, json.dumps(cancelled).encode()))

    (row,) = run(tmp_path, steps)
    assert (row["input_tokens"], row["output_tokens"], row["outcome"]) == (120, 40, "ok")


def test_tags_are_stripped_from_requests_that_are_not_calls(tmp_path):
    flow, response = exchange("GET", "https://api.openai.com/v1/models", b"", 200, b"{}",
                              headers={"X-Ledger-Tag-Project": "x", "x-ledger-tag-team": "y", "x-other": "kept"})

    async def steps(ledger):
        await send(ledger, flow, response)

    assert run(tmp_path, steps) == []
    assert not [k for k in flow.request.headers if k.lower().startswith("x-ledger-tag")]
    assert flow.request.headers["x-other"] == "kept"


def test_regional_vertex_hosts():
    for host in ("us-east5-aiplatform.googleapis.com", "us-central1-aiplatform.googleapis.com",
                 "europe-west4-aiplatform.googleapis.com", "aiplatform.googleapis.com"):
        assert provider_for(host, 443, "anthropic-messages") == "vertex", host
    assert provider_for("notaiplatform.googleapis.com.evil.example", 443) != "vertex"


def test_a_crash_inside_mitmproxy_is_a_proxy_error_with_its_message(tmp_path):
    body = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": []}).encode()

    async def steps(ledger):
        ledger.running()
        flow, response = exchange("POST", "https://api.openai.com/v1/chat/completions", body, 200,
                                  b'data: {"model":"gpt-4o-mini","choices":[]}\n\n', "text/event-stream")
        ledger.request(flow)
        flow.response = response
        ledger.responseheaders(flow)
        response.stream(response.raw_content)
        try:
            raise NotImplementedError("HTTP trailers are not implemented yet.")
        except NotImplementedError:
            logging.getLogger("mitmproxy.proxy.server").error(
                "mitmproxy has crashed!", exc_info=True, extra={"client": flow.client_conn.peername})
        flow.error = flow_module.Error("Client disconnected.")  # what mitmproxy reports afterwards
        ledger.error(flow)

    (row,) = run(tmp_path, steps)
    assert row["outcome"] == "proxy_error"
    assert row["error"] == "mitmproxy: NotImplementedError: HTTP trailers are not implemented yet."
    assert row["model"] == "gpt-4o-mini" and row["stream"] == 1
