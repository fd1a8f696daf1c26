"""AWS event-stream decoding: any split of any messages gives them back, any corrupted byte is
caught by a CRC, oversized messages are skipped in bounded memory."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger.apis.bedrock_invoke import BedrockMessagesTracker
from usage_ledger.eventstream import EventStreamDecoder, Message, parse_headers
from usage_ledger.scanner import StreamScanner

from .awsstream import chunk, event, exception, message

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda s: len(s.encode()) < 256)
values = st.one_of(st.booleans(), st.integers(-2**31, 2**31 - 1), st.binary(max_size=40), st.text(max_size=40))
messages = st.lists(st.tuples(st.dictionaries(names, values, max_size=5), st.binary(max_size=300)), max_size=8)


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def decode_all(decoder: EventStreamDecoder, pieces: list[bytes]) -> list[Message]:
    out: list[Message] = []
    for piece in pieces:
        out += decoder.feed(piece)
        assert len(decoder.buf) <= decoder.max_message
    return out


@given(messages, st.lists(st.integers(min_value=0), max_size=30))
def test_any_messages_at_any_split_come_back_whole(sent, points):
    data = b"".join(message(h, p) for h, p in sent)
    decoder = EventStreamDecoder()
    got = decode_all(decoder, cuts(data, points))
    assert [(m.headers, m.payload) for m in got] == [(h, p) for h, p in sent]
    assert decoder.problem is None


@given(messages.filter(bool), st.data())
def test_a_corrupted_byte_stops_decoding_at_its_message(sent, data):
    encoded = [message(h, p) for h, p in sent]
    stream = bytearray(b"".join(encoded))
    at = data.draw(st.integers(0, len(stream) - 1))
    stream[at] ^= data.draw(st.integers(1, 255))
    hit = next(i for i, n in enumerate(_ends(encoded)) if at < n)
    decoder = EventStreamDecoder()
    got = decode_all(decoder, cuts(bytes(stream), data.draw(st.lists(st.integers(min_value=0), max_size=10))))
    assert [(m.headers, m.payload) for m in got] == [(h, p) for h, p in sent[:hit]]
    assert decoder.problem is not None and "CRC" in decoder.problem


def _ends(encoded: list[bytes]) -> list[int]:
    ends, total = [], 0
    for m in encoded:
        total += len(m)
        ends.append(total)
    return ends


@settings(max_examples=50)
@given(st.integers(1, 5000), st.lists(st.integers(min_value=0), max_size=20))
def test_an_oversized_message_is_skipped_and_the_next_one_read(size, points):
    big = message({":event-type": "chunk"}, b"x" * (size + 64))  # longer than the message after it
    after = message({":event-type": "metadata"}, b"{}")
    decoder = EventStreamDecoder(max_message=len(big) - 1)
    got = decode_all(decoder, cuts(big + after, points))
    assert [m.payload for m in got] == [b"{}"]
    assert decoder.oversized == 1 and decoder.problem is None


def test_the_empty_message_of_the_spec():
    # total length 16, no headers, prelude CRC 0x05c248eb, message CRC 0x7d98c8ff (AWS SDKs' test vector)
    (m,) = EventStreamDecoder().feed(b"\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2H\xeb}\x98\xc8\xff")
    assert (m.headers, m.payload) == ({}, b"")


def test_every_header_type():
    raw = (b"\x01a\x00" b"\x01b\x01" b"\x01c\x02\xff" b"\x01d\x03\xff\xfe" b"\x01e\x04\x00\x00\x01\x00"
           b"\x01f\x05" + struct.pack("!q", -3) + b"\x01g\x06\x00\x02\x00\x01" b"\x01h\x07\x00\x03abc"
           b"\x01i\x08" + struct.pack("!q", 1764686400000) + b"\x01j\x09" + bytes(range(16)))
    assert parse_headers(raw) == {"a": True, "b": False, "c": -1, "d": -2, "e": 256, "f": -3, "g": b"\x00\x01",
                                  "h": "abc", "i": 1764686400000, "j": bytes(range(16))}
    (m,) = EventStreamDecoder().feed(message(raw, b"p"))
    assert m.headers["h"] == "abc"


def test_unparseable_headers_with_a_good_crc_are_a_problem_not_a_crash():
    decoder = EventStreamDecoder()
    assert decoder.feed(message(b"\x01a\x0b", b"")) == []
    assert "headers" in decoder.problem


START = {"type": "message_start", "message": {"model": "claude-sonnet-4-5-20250929", "usage": {"input_tokens": 9, "output_tokens": 1}}}
DELTA = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 77}}


def scan(body: bytes) -> tuple[BedrockMessagesTracker, StreamScanner]:
    tracker = BedrockMessagesTracker()
    scanner = StreamScanner(tracker, "application/vnd.amazon.eventstream")
    for i in range(0, len(body), 5):
        scanner.feed(body[i:i + 5])
    scanner.close()
    return tracker, scanner


def test_a_broken_frame_keeps_the_usage_before_it_and_says_why():
    broken = bytearray(chunk(DELTA))
    broken[20] ^= 1
    tracker, scanner = scan(chunk(START) + bytes(broken) + chunk({"type": "message_stop"}))
    assert tracker.usage().input_tokens == 9 and tracker.usage().output_tokens == 1
    assert "CRC mismatch" in scanner.problem


def test_invocation_metrics_count_only_when_the_events_had_no_usage():
    stop = {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 5, "outputTokenCount": 6}}
    tracker, _ = scan(chunk({"type": "message_start", "message": {"model": "m"}}) + chunk(stop))
    assert (tracker.usage().input_tokens, tracker.usage().output_tokens) == (5, 6)
    tracker, _ = scan(chunk(START) + chunk(DELTA) + chunk(stop))
    assert (tracker.usage().input_tokens, tracker.usage().output_tokens) == (9, 77)


def test_invocation_metrics_carry_the_cache_counts():
    """Claude Code on Bedrock writes a long cached prompt: the cache write dwarfs inputTokenCount,
    and leaving it out would undercount the call's input and cost."""
    metrics = {"inputTokenCount": 3, "outputTokenCount": 13, "invocationLatency": 3037,
               "cacheReadInputTokenCount": 0, "cacheWriteInputTokenCount": 25037}
    stop = {"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics}
    tracker, _ = scan(chunk({"type": "message_start", "message": {"model": "m"}}) + chunk(stop))
    usage = tracker.usage()
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens, usage.output_tokens) == (
        25040, 0, 25037, 13)


def test_an_error_message_is_the_calls_error():
    error = message({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b"")
    tracker, _ = scan(chunk(START) + error)
    assert tracker.error == "InternalFailure: boom"
    tracker, _ = scan(chunk(START) + exception("modelStreamErrorException", "model stopped"))
    assert tracker.error == "modelStreamErrorException: model stopped"


def test_other_events_are_not_read_as_chunks():
    tracker, _ = scan(event("metadata", {"usage": {"inputTokens": 3}}) + chunk(START))
    assert tracker.usage().input_tokens == 9
