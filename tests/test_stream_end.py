"""A stream that ended is not aborted: clients hang up as soon as they have the API's terminal
event (openai-python after `[DONE]`, Codex after `response.completed`), often before the
provider's end of body reaches the proxy. Through real mitmdump, a client that stops reading at
the terminal event, against a stand-in that sends the body's end only once the client has gone
(so the hang-up always comes first), gets `ok` every time, with the usage."""

from __future__ import annotations

import json
import sqlite3

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from usage_ledger.apis import anthropic_messages, gemini, ollama, openai_chat, openai_responses
from usage_ledger.scanner import StreamScanner

from .proxy import Proxy
from .standin import load_cases

RUNS = 20


def _data(line: str) -> dict:
    if line.startswith("data:"):
        line = line[5:].strip()
    try:
        obj = json.loads(line)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


# shape: (case, path, request body, is the line the terminal event?, (api, model, input, output))
SHAPES = {
    "chat [DONE]": (
        "openai__openai-chat__stream__agno-include-usage", "/v1/chat/completions",
        {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True}, "messages": []},
        lambda line: line.strip() == "data: [DONE]",
        ("openai-chat", "gpt-4o-mini-2024-07-18", 23, 8)),
    "responses response.completed": (
        "openai__openai-responses__stream__llm-basic", "/v1/responses",
        {"model": "gpt-5.5", "stream": True, "input": "Reply with exactly: pong"},
        lambda line: _data(line).get("type") == "response.completed",
        ("openai-responses", "gpt-5.5-2026-04-23", 11, 5)),
    "anthropic message_stop": (
        "anthropic__anthropic-messages__stream__llm-anthropic-basic", "/v1/messages",
        {"model": "claude-3-5-haiku-latest", "stream": True, "max_tokens": 10, "messages": []},
        lambda line: _data(line).get("type") == "message_stop",
        ("anthropic-messages", "claude-sonnet-4-5-20250929", 17, 10)),
    "gemini finishReason": (
        "gemini__gemini__stream__crewai-sse", "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        {"contents": []},
        lambda line: any(c.get("finishReason") for c in _data(line).get("candidates") or []),
        ("gemini", "gemini-2.0-flash-exp", 163, 13)),
    "ollama done": (
        "ollama__other__stream__native-api-chat-ndjson", "/api/chat",
        {"model": "llama3.2", "messages": []},
        lambda line: _data(line).get("done") is True,
        ("ollama", "llama3", 17, 50)),
}


def rows_so_far(proxy: Proxy) -> int:
    try:
        return len(proxy.rows())
    except sqlite3.Error:  # the ledger's table is not there yet
        return 0


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    with Proxy(tmp_path_factory.mktemp("stream-end")) as p:
        yield p


def read_to_terminal_event_and_hang_up(proxy: Proxy, url: str, case: str, body: dict, terminal,
                                       fault: str = "hold-end") -> None:
    headers = {"x-standin-case": case, "x-standin-fault": fault}
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as http:
        with http.stream("POST", url, headers=headers, json=body) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if terminal(line):
                    break
            else:
                raise AssertionError("the stream ended before its terminal event")


@pytest.mark.parametrize("shape", SHAPES)
def test_a_hang_up_after_the_terminal_event_is_ok(proxy, standin, shape):
    case, path, body, terminal, expected = SHAPES[shape]
    before = rows_so_far(proxy)
    for _ in range(RUNS):
        read_to_terminal_event_and_hang_up(proxy, standin.url + path, case, body, terminal)
    rows = proxy.wait_rows(before + RUNS)[before:]
    assert len(rows) == RUNS
    assert [r["outcome"] for r in rows] == ["ok"] * RUNS, {r["outcome"]: r["error"] for r in rows}
    api, model, tokens_in, tokens_out = expected
    for row in rows:
        assert row["api"] == api and row["error"] is None and row["status_code"] == 200
        assert (row["model"], row["input_tokens"], row["output_tokens"]) == (model, tokens_in, tokens_out)


def test_a_hang_up_before_the_terminal_event_is_still_client_aborted(proxy, standin):
    case, path, body, _, _ = SHAPES["responses response.completed"]
    before = rows_so_far(proxy)
    read_to_terminal_event_and_hang_up(proxy, standin.url + path, case, body,
                                       lambda line: _data(line).get("type") == "response.created",
                                       fault="stall-midway")
    (row,) = proxy.wait_rows(before + 1)[before:]
    assert row["outcome"] == "client_aborted" and row["input_tokens"] is None


def _ended_after(case: str, tracker_type, pieces: list[int], end: str) -> bool:
    canned = load_cases()[case]
    scanner = StreamScanner(tracker_type(), canned.content_type)
    body, i = canned.body, 0
    for n in pieces * (len(body) // max(1, sum(pieces)) + 1):
        scanner.feed(body[i:i + n])
        i += n
    scanner.feed(body[i:])
    scanner.close() if end == "close" else scanner.abandon()
    return scanner.tracker.ended


@given(pieces=st.lists(st.integers(1, 3000), min_size=1, max_size=8), end=st.sampled_from(["close", "abandon"]))
@settings(max_examples=30, deadline=None)
def test_the_terminal_event_is_seen_at_any_split_whether_the_stream_ends_or_breaks_off(pieces, end):
    trackers = {"chat [DONE]": openai_chat.TRACKER, "responses response.completed": openai_responses.TRACKER,
                "anthropic message_stop": anthropic_messages.TRACKER, "gemini finishReason": gemini.TRACKER,
                "ollama done": ollama.TRACKER}
    for shape, tracker_type in trackers.items():
        assert _ended_after(SHAPES[shape][0], tracker_type, pieces, end), shape


def test_a_body_cut_before_its_terminal_event_has_not_ended():
    from usage_ledger.apis import openai_chat
    canned = load_cases()[SHAPES["chat [DONE]"][0]]
    scanner = StreamScanner(openai_chat.TRACKER(), canned.content_type)
    scanner.feed(canned.body[:canned.body.rindex(b"data: [DONE]")])
    scanner.abandon()
    assert not scanner.tracker.ended and scanner.tracker.usage().input_tokens == 23
