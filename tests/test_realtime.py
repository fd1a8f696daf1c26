"""OpenAI Realtime over WebSocket, end to end: a real WebSocket client (`websockets`) through
real mitmdump with addon.py to `wss://api.openai.com/v1/realtime?model=gpt-realtime`,
redirected to the stand-in's TLS Realtime session (tests/standin_realtime.py); rows read back
from SQLite."""

from __future__ import annotations

import json
import ssl
from contextlib import contextmanager
from decimal import Decimal

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .proxy import Proxy
from .standin_realtime import AUDIO_DELTA, usage_for
from .test_websocket import proxy, tls_standin, until  # noqa: F401 (fixtures)

API_KEY = "sk-test-realtime-0123456789SECRET"
URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime"


@contextmanager
def open_session(proxy: Proxy, url: str = URL, headers: dict | None = None, subprotocols: list | None = None):
    """A Realtime session through the proxy, once the server has greeted it."""
    trust = ssl.create_default_context(cafile=str(proxy.tmp / "conf" / "mitmproxy-ca-cert.pem"))
    headers = {"Authorization": f"Bearer {API_KEY}"} if headers is None else headers
    with connect(url, proxy=proxy.url, ssl=trust, open_timeout=30, additional_headers=headers,
                 subprotocols=subprotocols) as ws:
        assert until(ws, "session.created")[-1]["session"]["model"] == "gpt-realtime-2025-08-28"
        yield ws


def create(ws, fault: str = "", event_id: str | None = None, **response) -> None:
    if fault:
        response["metadata"] = {"standin_fault": fault}
    message = {"type": "response.create", "response": {"output_modalities": ["audio"], **response}}
    if event_id:
        message["event_id"] = event_id
    ws.send(json.dumps(message))


def tokens(row: dict) -> tuple:
    return row["input_tokens"], row["cached_input_tokens"], row["output_tokens"], row["total_tokens"]


def expected(number: int, failed: bool = False) -> tuple:
    u = usage_for(number, failed)
    return u["input_tokens"], u["input_token_details"]["cached_tokens"], u["output_tokens"], u["total_tokens"]


def gpt_realtime_usd(number: int) -> float:
    """gpt-realtime's list prices per million tokens: text in 4, audio in 32, cached text and
    audio 0.40, text out 16, audio out 64 (developers.openai.com/api/docs/models/gpt-realtime)."""
    u = usage_for(number)
    i, cached, o = u["input_token_details"], u["input_token_details"]["cached_tokens_details"], u["output_token_details"]
    usd = ((i["text_tokens"] - cached["text_tokens"]) * Decimal(4) + (i["audio_tokens"] - cached["audio_tokens"]) * 32
           + (cached["text_tokens"] + cached["audio_tokens"]) * Decimal("0.4")
           + o["text_tokens"] * 16 + o["audio_tokens"] * 64) / 1_000_000
    return float(usd)


def test_each_response_of_a_session_is_a_row_asked_for_or_not(proxy, tls_standin):
    """Two response.create (one out of band) and one response the server starts on its own
    after the audio buffer is committed (voice activity detection): three rows, in order."""
    with open_session(proxy) as ws:
        ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}}))
        until(ws, "session.updated")
        create(ws)
        first = until(ws, "response.done")
        create(ws, conversation="none")
        until(ws, "response.done")
        ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": AUDIO_DELTA}))
        ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        until(ws, "response.done")
    # the client got every event as the server sent it
    assert [e["delta"] for e in first if e["type"] == "response.output_audio.delta"] == [AUDIO_DELTA] * 3
    rows = proxy.wait_rows(3)
    assert [tokens(r) for r in rows] == [expected(1), expected(2), expected(3)]
    for r in rows:
        assert (r["api"], r["provider"], r["host"], r["method"], r["path"]) == (
            "openai-realtime", "openai", "api.openai.com", "GET", "/v1/realtime?model=gpt-realtime")
        assert (r["model_requested"], r["model"], r["stream"], r["status_code"], r["outcome"]) == (
            "gpt-realtime", "gpt-realtime-2025-08-28", 1, 101, "ok")
        assert r["error"] is None and r["reasoning_tokens"] is None
        assert r["duration_ms"] is not None and r["ttfb_ms"] is not None and r["ttfb_ms"] <= r["duration_ms"]
        assert r["api_key_id"] and API_KEY not in json.dumps(r)
        assert json.loads(r["usage_json"])["output_token_details"]["audio_tokens"] > 0
    assert [r["cost_usd"] for r in rows] == pytest.approx([gpt_realtime_usd(n) for n in (1, 2, 3)], rel=1e-9)
    assert [r["flow_id"].rsplit("/", 1)[1] for r in rows] == ["ws-1", "ws-2", "ws-3"]


def test_a_refused_response_create_and_a_failed_response(proxy, tls_standin):
    with open_session(proxy) as ws:
        create(ws, fault="busy", event_id="evt_client_7")
        until(ws, "error")
        create(ws, fault="failed")
        until(ws, "response.done")
        create(ws)
        until(ws, "response.done")
    refused, failed, ok = proxy.wait_rows(3)
    assert (refused["outcome"], refused["input_tokens"], refused["cost_usd"]) == ("stream_error", None, None)
    assert refused["error"].startswith("Conversation already has an active response")
    assert (failed["outcome"], failed["error"]) == ("stream_error", "The model failed midway")
    assert tokens(failed) == expected(1, failed=True)
    assert ok["outcome"] == "ok" and tokens(ok) == expected(2)


def test_server_drops_the_connection_mid_response(proxy, tls_standin):
    with open_session(proxy) as ws:
        create(ws)
        until(ws, "response.done")
        create(ws, fault="close-midway")
        with pytest.raises(ConnectionClosed):
            until(ws, "response.done")
    ok, dropped = proxy.wait_rows(2)
    assert ok["outcome"] == "ok" and tokens(ok) == expected(1)
    assert (dropped["outcome"], dropped["input_tokens"]) == ("upstream_failed", None)
    assert "before the response ended" in dropped["error"]


def test_client_hangs_up_mid_response_then_right_after_response_done(proxy, tls_standin):
    with open_session(proxy) as ws:
        create(ws, fault="stall")
        until(ws, "response.output_audio.delta")
    for _ in range(5):
        with open_session(proxy) as ws:
            create(ws)
            until(ws, "response.done")
            ws.socket.close()  # no close handshake: gone
    rows = proxy.wait_rows(6)
    assert [r["outcome"] for r in rows] == ["client_aborted"] + ["ok"] * 5
    assert rows[0]["model"] == "gpt-realtime-2025-08-28"
    assert all(tokens(r) == expected(1) for r in rows[1:])


def test_azure_deployment_in_the_query_and_a_browser_key_in_the_subprotocol(proxy, tls_standin):
    url = "wss://myres.openai.azure.com/openai/realtime?api-version=2024-10-01-preview&deployment=gpt-realtime"
    with open_session(proxy, url, headers={"api-key": API_KEY}) as ws:
        create(ws)
        until(ws, "response.done")
    # a browser cannot set headers: its key rides in Sec-WebSocket-Protocol
    with open_session(proxy, headers={}, subprotocols=["realtime", f"openai-insecure-api-key.{API_KEY}"]) as ws:
        create(ws)
        until(ws, "response.done")
    azure, browser = proxy.wait_rows(2)
    assert (azure["provider"], azure["api"], azure["model_requested"], azure["outcome"]) == (
        "azure-openai", "openai-realtime", "gpt-realtime", "ok")
    assert (browser["provider"], browser["outcome"]) == ("openai", "ok")
    assert azure["api_key_id"] == browser["api_key_id"] is not None  # the same key, either way
