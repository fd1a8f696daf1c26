"""The Responses-over-WebSocket message parser (apis/openai_responses_ws.py), on its own."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy.test import taddons, tflow
from mitmproxy.websocket import WebSocketMessage

from usage_ledger.apis.openai_responses_ws import ResponsesSocket, is_responses_websocket
from usage_ledger.ledger import UsageLedger

TEXT = st.lists(st.sampled_from(list('ab "{}:\\\n') + [
    '"type":"response.completed"', '"type": "error"', '{"type":"response.created"}']), max_size=6).map("".join)


def create(model: str = "gpt-5.1-codex", **fields) -> bytes:
    return json.dumps({"type": "response.create", "model": model, "input": [], **fields}).encode()


def event(kind: str, number: int | None = None, usage: dict | None = None, **fields) -> bytes:
    body: dict = {"type": kind, **fields}
    if number is not None:
        body["response"] = {"id": f"resp_{number}", "model": "gpt-5.1-codex-2026", "usage": usage,
                            "status": "completed" if usage else "in_progress"}
    return json.dumps(body).encode()


@given(responses=st.lists(st.tuples(st.lists(TEXT, max_size=4), st.integers(0, 10**6)), max_size=6),
       spaced=st.booleans())
@settings(max_examples=200, deadline=None)
def test_one_response_per_create_each_with_its_own_usage_whatever_the_deltas_say(responses, spaced):
    socket, ended, t = ResponsesSocket(), [], 0.0
    for n, (deltas, tokens) in enumerate(responses, start=1):
        t += 1
        assert socket.client_message(create(), t) is not None
        # a client message that merely mentions response.create inside a string is no call
        assert socket.client_message(json.dumps({"type": "response.processed",
                                                 "note": '"type":"response.create"'}).encode(), t) is None
        assert socket.server_message(event("response.created", n), t) is None
        for delta in deltas:
            message = json.dumps({"type": "response.output_text.delta", "delta": delta},
                                 separators=(", ", ": ") if spaced else (",", ":")).encode()
            assert socket.server_message(message, t) is None
        done = socket.server_message(event("response.completed", n, {"input_tokens": tokens, "output_tokens": n}), t + 0.5)
        assert done is not None
        ended.append(done)
    assert [r.number for r in ended] == list(range(1, len(responses) + 1))
    assert [r.tracker.usage().input_tokens for r in ended] == [tokens for _, tokens in responses]
    assert all(r.tracker.model == "gpt-5.1-codex-2026" and r.ended and not r.tracker.error for r in ended)
    assert socket.open == []


@given(content=st.binary(max_size=200) | TEXT.map(str.encode))
def test_any_bytes_from_either_side_never_raise(content):
    socket = ResponsesSocket()
    socket.client_message(content, 0.0)
    socket.server_message(content, 0.0)


def test_warm_up_and_an_error_before_the_response_is_created():
    socket = ResponsesSocket()
    warm = socket.client_message(create(generate=False), 1.0)
    assert warm.warmup and warm.model_requested == "gpt-5.1-codex"
    refused = socket.client_message(create(), 2.0)
    socket.server_message(event("response.created", 1), 1.1)
    assert socket.server_message(event("response.completed", 1, {"input_tokens": 5, "output_tokens": 0}), 1.2) is warm
    ended = socket.server_message(json.dumps({"type": "error", "status": 429,
                                              "error": {"message": "limit reached"}}).encode(), 2.1)
    assert ended is refused and ended.status_code == 429 and ended.tracker.error == "limit reached"
    assert ended.first_event_at == 2.1 and socket.open == []


def test_paths():
    assert is_responses_websocket("GET", "/v1/responses")
    assert is_responses_websocket("GET", "/backend-api/codex/responses")
    assert not is_responses_websocket("POST", "/v1/responses")
    assert not is_responses_websocket("GET", "/v1/responses/resp_123")


def test_the_addon_keeps_only_the_latest_message_unless_asked():
    def run(keep: bool) -> tuple[int, list]:
        ledger = UsageLedger()
        flow = tflow.twebsocketflow()
        flow.request.path = "/v1/responses"
        flow.websocket.messages.clear()
        records = []
        ledger.websockets.submit = records.append
        with taddons.context(ledger) as tctx:
            tctx.configure(ledger.websockets, ledger_keep_websocket_messages=keep)
            ledger.websockets.websocket_start(flow)
            for n in range(1, 4):
                for from_client, content in ((True, create()), (False, event("response.created", n)),
                                             (False, event("response.completed", n, {"input_tokens": n}))):
                    flow.websocket.messages.append(WebSocketMessage(1, from_client, content))
                    ledger.websockets.websocket_message(flow)
        return len(flow.websocket.messages), records

    kept, records = run(keep=False)
    assert kept == 1
    assert [type(r).__name__ for r in records] == ["CallStarted", "CallEnded"] * 3
    assert [r.row.input_tokens for r in records[1::2]] == [1, 2, 3]
    assert run(keep=True)[0] == 9


def test_a_response_in_flight_when_ledger_db_changes_is_whole_in_the_new_ledger(tmp_path):
    import asyncio
    import sqlite3

    old, new = tmp_path / "a.db", tmp_path / "b.db"
    ledger, flow = UsageLedger(), tflow.twebsocketflow()
    flow.request.path = "/v1/responses"
    flow.websocket.messages.clear()

    def push(from_client: bool, content: bytes) -> None:
        flow.websocket.messages.append(WebSocketMessage(1, from_client, content))
        ledger.websockets.websocket_message(flow)

    async def run() -> None:
        with taddons.context(ledger) as tctx:
            tctx.configure(ledger, ledger_db=str(old))
            ledger.websockets.websocket_start(flow)
            push(True, create())
            push(False, event("response.created", 1))
            tctx.configure(ledger, ledger_db=str(new))
            push(False, event("response.completed", 1, {"input_tokens": 8, "output_tokens": 1, "total_tokens": 9}))
            ledger.websockets.websocket_end(flow)
            ledger.done()

    asyncio.run(run())

    def rows(db) -> list[tuple]:
        con = sqlite3.connect(db)
        try:
            return con.execute("SELECT outcome, api, host, input_tokens FROM requests").fetchall()
        finally:
            con.close()

    host = flow.request.pretty_host
    assert rows(new) == [("ok", "openai-responses", host, 8)]
    assert rows(old) == [("proxy_stopped", "openai-responses", host, None)]


def usage_of(n: int) -> dict:
    return {"input_tokens": n, "output_tokens": 1, "total_tokens": n + 1}


def test_a_terminal_event_repeated_for_an_ended_response_ends_no_other():
    socket = ResponsesSocket()
    socket.client_message(create(), 1)
    socket.server_message(event("response.created", 1), 2)
    assert socket.server_message(event("response.completed", 1, usage_of(100)), 3).number == 1
    socket.client_message(create(), 4)
    assert socket.server_message(event("response.done", 1, usage_of(100)), 5) is None  # resp_1's, again
    socket.server_message(event("response.created", 2), 6)
    end = socket.server_message(event("response.completed", 2, usage_of(200)), 7)
    assert end.number == 2 and end.tracker.usage().input_tokens == 200


def test_a_terminal_event_without_an_id_ends_the_oldest_response():
    """Two creates in flight, the first one named: an id-less response.completed is the first's
    (the server answers in order), not the second's because that one is still unnamed."""
    socket = ResponsesSocket()
    socket.client_message(create(), 1)
    socket.client_message(create("gpt-5-mini"), 1.5)
    socket.server_message(event("response.created", 1), 2)
    end = socket.server_message(json.dumps({"type": "response.completed", "response": {
        "usage": usage_of(100), "status": "completed"}}).encode(), 3)
    assert end.number == 1 and end.model_requested == "gpt-5.1-codex"
