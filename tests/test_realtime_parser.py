"""The OpenAI Realtime message parser (apis/openai_realtime.py) and its pricing, on their own."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger.apis.openai_realtime import RealtimeSocket, is_realtime_websocket, requested_model, subprotocol_key
from usage_ledger.pricing import Pricer, genai_usage_values

TEXT = st.lists(st.sampled_from(list('ab "{}:\\\n') + [
    '"type":"response.done"', '"type": "error"', '{"type":"response.created"}', '"session.created"']),
    max_size=6).map("".join)
SESSION = json.dumps({"type": "session.created", "event_id": "e0",
                      "session": {"type": "realtime", "model": "gpt-realtime-2025-08-28"}}).encode()


def usage(n: int) -> dict:
    return {"input_tokens": 100 * n, "output_tokens": 10 * n, "total_tokens": 110 * n,
            "input_token_details": {"cached_tokens": n, "text_tokens": 40 * n, "audio_tokens": 60 * n,
                                    "cached_tokens_details": {"text_tokens": n, "audio_tokens": 0}},
            "output_token_details": {"text_tokens": 2 * n, "audio_tokens": 8 * n}}


def server(kind: str, rid: str | None = None, status: str = "in_progress", use: dict | None = None, **fields) -> bytes:
    body: dict = {"type": kind, "event_id": "evt", **fields}
    if rid is not None:
        body["response"] = {"object": "realtime.response", "id": rid, "status": status, "usage": use}
    return json.dumps(body).encode()


def create(**fields) -> bytes:
    return json.dumps({"type": "response.create", "response": {"conversation": "none"}, **fields}).encode()


@given(order=st.permutations(range(4)), deltas=st.lists(TEXT, max_size=3))
@settings(max_examples=100, deadline=None)
def test_concurrent_responses_end_by_their_own_ids_whatever_the_order(order, deltas):
    """Four out-of-band response.create at once, created in order, done in any order, audio
    deltas naming them in between: each ends with its own usage, the session's model."""
    socket = RealtimeSocket("gpt-realtime")
    assert socket.server_message(SESSION, 0.0) is None
    started = [socket.client_message(create(), 1.0 + n) for n in range(4)]
    assert [r.number for r in started] == [1, 2, 3, 4] and all(r.by_client for r in started)
    for n in range(4):
        assert socket.server_message(server("response.created", f"resp_{n}"), 5.0) is None
    for n in order:
        for delta in deltas:
            message = json.dumps({"type": "response.output_audio.delta", "response_id": f"resp_{n}", "delta": delta})
            assert socket.server_message(message.encode(), 6.0) is None
        ended = socket.server_message(server("response.done", f"resp_{n}", "completed", usage(n + 1)), 7.0 + n)
        assert ended is started[n] and ended.ended and ended.tracker.ended
        assert ended.tracker.usage().input_tokens == 100 * (n + 1)
        assert ended.tracker.model == "gpt-realtime-2025-08-28" and ended.model_requested == "gpt-realtime"
    assert socket.open == []


@given(content=st.binary(max_size=200) | TEXT.map(str.encode))
def test_any_bytes_from_either_side_never_raise(content):
    socket = RealtimeSocket()
    socket.client_message(content, 0.0)
    socket.server_message(content, 0.0)


def test_a_response_the_server_starts_itself_is_returned_at_its_start_and_its_end():
    socket = RealtimeSocket("gpt-realtime")
    socket.server_message(SESSION, 0.0)
    # audio in, then voice activity detection: no response.create
    assert socket.client_message(json.dumps({"type": "input_audio_buffer.append", "audio": "AAAA"}).encode(), 1.0) is None
    begun = socket.server_message(server("response.created", "resp_vad"), 2.0)
    assert begun is not None and not begun.by_client and not begun.ended and begun.created_at == 2.0
    assert socket.server_message(server("response.done", "resp_vad", "cancelled", usage(2)), 3.0) is begun
    assert begun.ended and begun.tracker.error is None  # cut off by the user speaking: billed, not an error


def test_errors_end_only_the_response_create_they_refuse():
    socket = RealtimeSocket("gpt-realtime")
    mine = socket.client_message(create(event_id="evt_mine"), 1.0)
    # an error about another client event (a bad session.update) ends nothing
    other = {"type": "invalid_request_error", "message": "Unknown parameter", "event_id": "evt_other"}
    assert socket.server_message(server("error", error=other), 1.1) is None
    refusal = {"type": "invalid_request_error", "code": "conversation_already_has_active_response",
               "message": "Conversation already has an active response", "event_id": "evt_mine"}
    assert socket.server_message(server("error", error=refusal), 1.2) is mine
    assert mine.ended and mine.tracker.error == "Conversation already has an active response"
    assert mine.tracker.usage() is None and socket.open == []
    # once created, a response is ended by its response.done only
    running = socket.client_message(create(), 2.0)
    socket.server_message(server("response.created", "resp_2"), 2.1)
    assert socket.server_message(server("error", error={"message": "anything"}), 2.2) is None
    failed = {"type": "failed", "error": {"type": "server_error", "message": "The model failed"}}
    done = json.loads(server("response.done", "resp_2", "failed", usage(1)))
    done["response"]["status_details"] = failed
    assert socket.server_message(json.dumps(done).encode(), 2.3) is running
    assert running.tracker.error == "The model failed" and running.tracker.usage().output_tokens == 10


def test_a_message_that_only_mentions_an_event_is_not_one():
    socket = RealtimeSocket()
    assert socket.client_message(json.dumps({"type": "conversation.item.create",
                                             "text": '"type":"response.create"'}).encode(), 0.0) is None
    note = json.dumps({"type": "response.output_audio_transcript.delta", "delta": '"type":"response.done"'})
    assert socket.server_message(note.encode(), 0.0) is None


def test_paths_and_the_model_in_the_query():
    assert is_realtime_websocket("GET", "/v1/realtime")
    assert is_realtime_websocket("GET", "/openai/realtime")
    assert not is_realtime_websocket("POST", "/v1/realtime/calls")
    assert not is_realtime_websocket("POST", "/v1/realtime/client_secrets")
    assert requested_model("model=gpt-realtime") == "gpt-realtime"
    assert requested_model("api-version=2024-10-01-preview&deployment=my-rt") == "my-rt"
    assert requested_model("") is None
    assert subprotocol_key("realtime, openai-insecure-api-key.sk-abc, openai-beta.realtime-v1") == "sk-abc"
    assert subprotocol_key("realtime") is None and subprotocol_key("openai-insecure-api-key.") is None


def test_audio_and_cached_audio_are_priced_at_their_own_rates():
    """gpt-realtime per million: text in 4, audio in 32, cached 0.40, text out 16, audio out 64."""
    raw = {"input_tokens": 1000, "output_tokens": 300, "total_tokens": 1300,
           "input_token_details": {"cached_tokens": 200, "text_tokens": 400, "audio_tokens": 600, "image_tokens": 0,
                                   "cached_tokens_details": {"text_tokens": 100, "audio_tokens": 100}},
           "output_token_details": {"text_tokens": 50, "audio_tokens": 250}}
    socket = RealtimeSocket("gpt-realtime")
    socket.client_message(create(), 0.0)
    ended = socket.server_message(server("response.done", "r", "completed", raw), 1.0)
    found = ended.tracker.usage()
    assert (found.input_tokens, found.cached_input_tokens, found.output_tokens, found.total_tokens) == (1000, 200, 300, 1300)
    assert genai_usage_values("openai-realtime", found) == {
        "input_tokens": 1000, "cache_read_tokens": 200, "output_tokens": 300,
        "input_audio_tokens": 600, "cache_audio_read_tokens": 100, "output_audio_tokens": 250}
    price = Pricer().price(provider="openai", api="openai-realtime", model="gpt-realtime-2025-08-28", usage=found,
                           when=datetime(2026, 12, 1, tzinfo=UTC))
    # 300·4 + 100·0.4 + 500·32 + 100·0.4 + 50·16 + 250·64 = 34080 per million
    assert price.cost_usd == 0.03408


def test_a_repeated_response_done_is_not_a_second_response():
    socket = RealtimeSocket("gpt-realtime")
    socket.client_message(json.dumps({"type": "response.create", "response": {}}).encode(), 1)
    socket.server_message(json.dumps({"type": "response.created", "response": {"id": "r1"}}).encode(), 2)
    done = json.dumps({"type": "response.done", "response": {"id": "r1", "status": "completed", "usage": {
        "input_tokens": 100, "output_tokens": 1, "total_tokens": 101}}}).encode()
    assert socket.server_message(done, 3).number == 1
    assert socket.server_message(done, 4) is None and socket.created == 1


def test_an_error_about_another_client_event_leaves_the_unanswered_create_alone():
    socket = RealtimeSocket("gpt-realtime")
    socket.client_message(json.dumps({"type": "input_audio_buffer.commit"}).encode(), 1)
    socket.client_message(json.dumps({"type": "response.create", "response": {}}).encode(), 1.1)
    error = {"type": "error", "error": {"type": "invalid_request_error", "code": "input_audio_buffer_commit_empty",
                                        "message": "buffer too small", "event_id": None}}
    assert socket.server_message(json.dumps(error).encode(), 2) is None
    socket.server_message(json.dumps({"type": "response.created", "response": {"id": "r1"}}).encode(), 3)
    end = socket.server_message(json.dumps({"type": "response.done", "response": {
        "id": "r1", "status": "completed", "usage": {"input_tokens": 100}}}).encode(), 4)
    assert end.number == 1 and socket.created == 1 and not end.tracker.error
    busy = {"type": "error", "error": {"code": "conversation_already_has_active_response", "message": "busy"}}
    socket.client_message(json.dumps({"type": "response.create", "response": {}}).encode(), 5)
    assert socket.server_message(json.dumps(busy).encode(), 6).number == 2  # a refusal, by its code
