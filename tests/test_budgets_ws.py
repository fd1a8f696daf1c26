"""Budgets over WebSocket, end to end: a Codex-style client (`websockets`) through real mitmdump
with addon.py and a budget file, to the stand-in's WebSocket Responses server."""

from __future__ import annotations

import json

import pytest

from .proxy import Proxy, wait_until
from .test_websocket import REDIRECT, create, open_socket, tls_standin, until  # noqa: F401 (a fixture)


@pytest.fixture
def proxy(tmp_path, tls_standin):
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('timezone = "UTC"\n[[budget]]\nname = "codex-daily"\nlimit_usd = 0.000001\nperiod = "day"\n')
    with Proxy(tmp_path, "ssl_insecure=true", f"ledger_budgets={budgets}",
               env={"STANDIN_PORT": str(tls_standin.port)}, scripts=(REDIRECT,)) as p:
        yield p


def row(proxy: Proxy, suffix: str, priced: bool = False) -> dict:
    def found():
        for r in proxy.rows():
            if r["flow_id"].endswith(suffix) and r["outcome"] != "pending" and (r["cost_usd"] is not None or not priced):
                return r
        return None

    return wait_until(found, 30, f"the row of {suffix}")


def test_a_used_up_budget_refuses_the_next_response_create_with_an_error_event(proxy, tls_standin):
    with open_socket(proxy) as ws:
        create(ws)
        until(ws, "response.completed")
        first = row(proxy, "/ws-1", priced=True)
        assert first["outcome"] == "ok" and first["cost_usd"] > 0.000001
        sent_before = len(tls_standin.ws_messages)
        create(ws, previous_response_id="resp_standin_1")
        event = json.loads(ws.recv(timeout=30))
        assert event["type"] == "error" and event["status"] == 429
        assert event["error"]["code"] == "budget_exceeded"
        assert "usage-ledger budget 'codex-daily' is used up" in event["error"]["message"]
        blocked = row(proxy, "/ws-2")
        assert (blocked["outcome"], blocked["status_code"], blocked["input_tokens"], blocked["cost_usd"]) == \
            ("blocked", None, None, None)
        assert blocked["error"] == event["error"]["message"]
        # A warm-up generates nothing: it goes through, on the same connection.
        create(ws, generate=False)
        until(ws, "response.completed")
    assert len(tls_standin.ws_messages) == sent_before + 1, "the refused response.create reached the server"
    assert tls_standin.ws_messages[-1].get("generate") is False
