"""OpenAI Responses over WebSocket, as Codex speaks it, end to end: a real WebSocket client
(`websockets`, permessage-deflate on, like Codex) through real mitmdump with addon.py to
`wss://api.openai.com/v1/responses` and `wss://chatgpt.com/backend-api/codex/responses`,
redirected to the stand-in's TLS WebSocket server; rows read back from SQLite."""

from __future__ import annotations

import json
import signal
import ssl
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .proxy import Proxy, wait_until
from .standin import StandIn
from .standin_ws import usage_for

REDIRECT = Path(__file__).resolve().parent / "redirect_addon.py"
API_KEY = "sk-test-ws-0123456789abcdefSECRET"
MODEL = "gpt-5.1-codex"


@pytest.fixture(scope="module")
def tls_standin():
    with StandIn(tls=True) as s:
        yield s


@pytest.fixture
def proxy(tmp_path, tls_standin):
    with Proxy(tmp_path, "ssl_insecure=true", env={"STANDIN_PORT": str(tls_standin.port)},
               scripts=(REDIRECT,)) as p:
        yield p


def open_socket(proxy: Proxy, url: str = "wss://api.openai.com/v1/responses"):
    trust = ssl.create_default_context(cafile=str(proxy.tmp / "conf" / "mitmproxy-ca-cert.pem"))
    return connect(url, proxy=proxy.url, ssl=trust, open_timeout=30,
                   additional_headers={"Authorization": f"Bearer {API_KEY}",
                                       "OpenAI-Beta": "responses_websockets=2026-02-06"})


def create(ws, fault: str = "", **fields) -> None:
    message = {"type": "response.create", "model": MODEL, "instructions": "", "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ping"}]}],
        "tools": [], "stream": True, "store": False, **fields}
    if fault:
        message["metadata"] = {"standin_fault": fault}
    ws.send(json.dumps(message))


def until(ws, kind: str) -> list[dict]:
    """The server's events up to and including the first of type `kind`."""
    events = []
    while True:
        event = json.loads(ws.recv(timeout=30))
        events.append(event)
        if event["type"] == kind:
            return events


def tokens(row: dict) -> tuple:
    return (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"], row["reasoning_tokens"],
            row["total_tokens"])


def expected(number: int, warmup: bool = False) -> tuple:
    u = usage_for(number, warmup)
    return (u["input_tokens"], u["input_tokens_details"]["cached_tokens"], u["output_tokens"],
            u["output_tokens_details"]["reasoning_tokens"], u["total_tokens"])


def test_warm_up_then_responses_on_one_connection_one_row_each(proxy, tls_standin):
    with open_socket(proxy) as ws:
        create(ws, generate=False)
        warm = until(ws, "response.completed")
        answers = []
        for previous in ("resp_standin_1", "resp_standin_2", "resp_standin_3"):
            create(ws, previous_response_id=previous)
            answers.append(until(ws, "response.completed"))
            ws.send(json.dumps({"type": "response.processed", "response_id": previous}))
    assert [e["type"] for e in warm] == ["response.created", "response.completed"]
    assert "".join(e.get("delta", "") for e in answers[0]) == "pong!"  # the client got every event
    rows = proxy.wait_rows(4)
    assert len(rows) == 4
    assert [r["outcome"] for r in rows] == ["ok"] * 4
    assert [tokens(r) for r in rows] == [expected(1, warmup=True), expected(2), expected(3), expected(4)]
    for r in rows:
        assert (r["api"], r["provider"], r["host"], r["method"], r["path"]) == (
            "openai-responses", "openai", "api.openai.com", "GET", "/v1/responses")
        assert (r["model_requested"], r["model"], r["stream"], r["status_code"]) == (MODEL, MODEL, 1, 101)
        assert r["service_tier"] == "default" and r["error"] is None
        assert r["duration_ms"] is not None and r["ttfb_ms"] is not None and r["ttfb_ms"] <= r["duration_ms"]
        assert r["api_key_id"] and API_KEY not in json.dumps(r)
    assert rows[1]["cost_usd"] is not None and rows[1]["cost_usd"] > 0
    assert len({r["flow_id"] for r in rows}) == 4


def test_chatgpt_sign_in_path_on_chatgpt_com(proxy, tls_standin):
    with open_socket(proxy, "wss://chatgpt.com/backend-api/codex/responses") as ws:
        create(ws)
        until(ws, "response.completed")
    (row,) = proxy.wait_rows(1)
    assert (row["host"], row["path"], row["provider"], row["outcome"]) == (
        "chatgpt.com", "/backend-api/codex/responses", "openai", "ok")
    assert tokens(row) == expected(1)


def test_server_drops_the_connection_mid_response(proxy, tls_standin):
    with open_socket(proxy) as ws:
        create(ws)
        until(ws, "response.completed")
        create(ws, fault="close-midway")
        with pytest.raises(ConnectionClosed):
            until(ws, "response.completed")
    rows = proxy.wait_rows(2)
    assert [r["outcome"] for r in rows] == ["ok", "upstream_failed"]
    assert tokens(rows[0]) == expected(1) and rows[1]["input_tokens"] is None
    assert "before the response ended" in rows[1]["error"]


def test_client_closes_mid_response(proxy, tls_standin):
    with open_socket(proxy) as ws:
        create(ws, fault="stall")
        until(ws, "response.output_text.delta")
    (row,) = proxy.wait_rows(1)
    assert row["outcome"] == "client_aborted" and row["model"] == MODEL


def test_a_client_that_hangs_up_right_after_response_completed_is_ok(proxy, tls_standin):
    for _ in range(20):
        with open_socket(proxy) as ws:
            create(ws)
            until(ws, "response.completed")
            ws.socket.close()  # no close handshake: gone, as Codex drops a finished stream
    rows = proxy.wait_rows(20)
    assert [r["outcome"] for r in rows] == ["ok"] * 20
    assert all(tokens(r) == expected(1) for r in rows)


def test_an_error_event_with_a_status_is_an_http_error(proxy, tls_standin):
    with open_socket(proxy) as ws:
        create(ws, fault="error-429")
        until(ws, "error")
        create(ws)
        until(ws, "response.completed")
    rows = proxy.wait_rows(2)
    assert (rows[0]["outcome"], rows[0]["status_code"], rows[0]["error"]) == (
        "http_error", 429, "The usage limit has been reached")
    assert rows[1]["outcome"] == "ok" and tokens(rows[1]) == expected(2)


def test_a_stopping_proxy_waits_for_a_websocket_response_in_flight(tmp_path, tls_standin):
    """Ctrl-C while Codex's response streams: the proxy keeps serving it within
    ledger_shutdown_grace, as it does HTTP calls, and its row ends as it ended."""
    with Proxy(tmp_path, "ssl_insecure=true", "ledger_shutdown_grace=30",
               env={"STANDIN_PORT": str(tls_standin.port)}, scripts=(REDIRECT,)) as proxy:
        with open_socket(proxy) as ws:
            create(ws, fault="end-when-asked")
            until(ws, "response.output_item.added")
            proxy.proc.send_signal(signal.SIGINT)
            wait_until(lambda: "waiting up to" in proxy.log_path.read_text(), 30, "the shutdown wait")
            ws.send(json.dumps({"type": "standin.finish"}))
            events = until(ws, "response.completed")
        assert events[-1]["response"]["usage"]["total_tokens"] == expected(1)[-1]
        proxy.proc.wait(60)  # it ends by itself once nothing is in flight
        (row,) = proxy.wait_rows(1)
    assert (row["outcome"], row["error"]) == ("ok", None) and tokens(row) == expected(1)
