"""The stream callable's short path (Call.direct_feed): a chunk that is only scanned goes straight
to the framer. Whatever the split, the call reads what one whole-body scan reads, the client gets
every byte as it came, and the stream's end is noticed at the chunk that carries it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.test import tflow

from usage_ledger.call import Call

from .corpus import load_cases, pieces_at, scan

STREAMED = [c for c in load_cases() if c.streamed and c.ok and "amazon" not in c.content_type]


def started(case) -> tuple[Call, http.Response]:
    request = http.Request.make("POST", "https://api.example.com/v1/x", json.dumps(case.data["request"]["body"]))
    flow = tflow.tflow(req=request)
    call = Call.start(flow, case.recognised, case.tracker_class)
    response = http.Response.make(case.status, b"", {"content-type": case.content_type})
    assert call.begin_response(response)
    return call, response


def observed(tracker) -> dict:
    return {"usage": tracker.raw_usage, "model": tracker.model, "error": tracker.error, "ended": tracker.ended}


@pytest.mark.skipif(not STREAMED, reason="no corpus")
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STREAMED or [None]), st.lists(st.integers(min_value=1, max_value=20_000), max_size=40))
def test_any_split_reads_what_one_scan_reads(case, offsets) -> None:
    call, _ = started(case)
    ends, sent = [], b""
    call.on_stream_end = lambda: ends.append(len(sent))
    for piece in pieces_at(case.body, offsets):
        sent += b"".join(call.on_chunk(piece))
    ended_in_stream, ends_in_stream = call.tracker.ended, list(ends)
    sent += b"".join(call.on_chunk(b""))
    whole, _ = scan(case, [case.body])
    assert sent == case.body
    assert observed(call.tracker) == observed(whole)
    assert not call.hook_failed
    if ended_in_stream:  # noticed in the stream, once, at the chunk that ended it
        assert len(ends_in_stream) == 1 and ends == ends_in_stream


def test_the_short_path_is_taken_after_the_first_chunk() -> None:
    case = next(c for c in STREAMED if c.name == "openai__openai-chat__stream__agno-include-usage")
    call, _ = started(case)
    first, rest = case.body[:40], case.body[40:]
    call.on_chunk(first)
    assert call.direct_feed is not None
    call.on_chunk(rest)
    call.on_chunk(b"")
    assert call.direct_feed is None  # closed: the end went the long way
    assert call.tracker.raw_usage["completion_tokens"] == observed(scan(case, [case.body])[0])["usage"]["completion_tokens"]


def test_a_failing_framer_stops_the_scan_not_the_stream(caplog) -> None:
    case = next(c for c in STREAMED if c.name == "openai__openai-chat__stream__agno-include-usage")
    call, _ = started(case)
    call.on_chunk(case.body[:40])

    def broken(data: bytes):
        raise RuntimeError("framer bug")

    call.direct_feed = broken
    assert call.on_chunk(case.body[40:]) == [case.body[40:]]
    assert call.hook_failed and call.direct_feed is None
    assert call.on_chunk(b"") == []
    assert "stopped reading usage" in caplog.text
