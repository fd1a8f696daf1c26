"""Cutting the injected usage chunk out of a chat stream, whatever the network splits."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger.hide import UsageChunkFilter

AZURE_FIRST = b'data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[]}'
CONTENT = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"Hi \xc3\xa9"}}],"usage":null}'
USAGE = b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}'
DONE = b"data: [DONE]"


def stream(line_end: bytes) -> tuple[bytes, bytes]:
    """A stream and what the client should see of it."""
    sep = line_end * 2
    events = [AZURE_FIRST, CONTENT, CONTENT, USAGE, DONE]
    full = sep.join(events) + sep
    shown = sep.join(e for e in events if e is not USAGE) + sep
    return full, shown


def run(data: bytes, cuts: list[int], hold_joined: int | None = None) -> tuple[bytes, int]:
    f = UsageChunkFilter()
    if hold_joined is not None:  # how long an unfinished event may grow before it is held in pieces
        f.hold_joined = hold_joined
    out = bytearray()
    bounds = [0, *sorted(set(c % (len(data) + 1) for c in cuts)), len(data)]
    for a, b in zip(bounds, bounds[1:]):
        if a != b:
            pieces = f.feed(data[a:b])
            assert all(pieces), "an empty piece would end the client's response"
            out += b"".join(pieces)
    out += b"".join(f.feed(b""))
    return bytes(out), f.hidden


@settings(max_examples=1000)
@given(line_end=st.sampled_from([b"\n", b"\r\n", b"\r"]), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_only_the_usage_chunk_is_removed_at_any_split(line_end, cuts):
    full, shown = stream(line_end)
    out, hidden = run(full, cuts)
    assert out == shown and hidden == 1


def test_usage_on_a_chunk_with_choices_is_kept():
    chunk = b'data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}\n\n'
    out, hidden = run(chunk + b"data: [DONE]\n\n", [7])
    assert out == chunk + b"data: [DONE]\n\n" and hidden == 0


def test_a_stream_cut_short_still_forwards_every_byte_it_had():
    full, _ = stream(b"\n")
    partial = full[: full.index(USAGE) + 10]
    out, _ = run(partial, [3, 50])
    assert out == partial
    assert json.loads(AZURE_FIRST[6:])["choices"] == []


def test_a_crlf_event_goes_on_whole_with_its_last_lf():
    f = UsageChunkFilter()
    assert f.feed(b'data: {"x":1}\r\n\r\n') == [b'data: {"x":1}\r\n\r\n']
    assert f.feed(b'data: {"choices":[],"usage":{"prompt_tokens":1}}\r\n\r\ndata: [DONE]\r\n\r\n') == [
        b"data: [DONE]\r\n\r\n"]


def test_a_filter_failure_passes_the_bytes_on_unchanged(monkeypatch):
    f = UsageChunkFilter()
    monkeypatch.setattr(f, "without_usage_chunk", lambda region: 1 / 0)
    body = b'data: {"choices":[],"usage":{"prompt_tokens":1}}\n\ndata: [DONE]\n\n'
    out = b"".join(f.feed(body[:20]) + f.feed(body[20:]) + f.feed(b""))
    assert out == body


def test_every_single_cut_and_pair_of_adjacent_cuts():
    for line_end in (b"\n", b"\r\n", b"\r"):
        full, shown = stream(line_end)
        for cut in range(len(full) + 1):
            for cuts in ([cut], [cut, cut + 1]):
                for hold_joined in (None, 0):
                    out, hidden = run(full, cuts, hold_joined)
                    assert out == shown and hidden == 1, (line_end, cuts, hold_joined)


def chat_event(content: str, line_end: bytes) -> bytes:
    chunk = {"id": "c1", "choices": [{"index": 0, "delta": {"content": content}}], "usage": None}
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + line_end * 2


@settings(max_examples=500)
@given(line_end=st.sampled_from([b"\n", b"\r\n", b"\r"]), texts=st.lists(st.text(max_size=40), max_size=8),
       at=st.integers(0, 8), ending=st.sampled_from(["done", "blank", "no-blank", "one-line-end"]),
       spaced=st.booleans(), cuts=st.lists(st.integers(0, 10_000), max_size=12),
       hold_joined=st.sampled_from([None, 0, 1, 40]))
def test_any_stream_at_any_split_loses_only_the_usage_chunk(line_end, texts, at, ending, spaced, cuts, hold_joined):
    """Content events of any text, the usage chunk anywhere among them (last, when the stream
    ends right after it without a blank line), JSON compact or spaced."""
    usage = {"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
    usage_event = b"data: " + json.dumps(usage, separators=None if spaced else (",", ":")).encode()
    events = [chat_event(t, line_end) for t in texts]
    at = min(at, len(events))
    if ending == "no-blank":
        full, shown = b"".join(events) + usage_event, b"".join(events)
    elif ending == "one-line-end":
        full, shown = b"".join(events) + usage_event + line_end, b"".join(events)
    else:
        done = b"data: [DONE]" + line_end * 2 if ending == "done" else b""
        full = b"".join(events[:at]) + usage_event + line_end * 2 + b"".join(events[at:]) + done
        shown = b"".join(events) + done
    out, hidden = run(full, cuts)
    assert out == shown and hidden == 1


def test_a_long_event_is_held_until_its_blank_line_then_goes_on_whole():
    """A multi-megabyte event (a server that answers one big JSON document, say) is held in
    the pieces it came in and goes on when it ends; the usage chunk after it is still cut out."""
    for line_end in (b"\n", b"\r\n", b"\r"):
        sep = line_end * 2
        big = b'data: {"choices":[{"delta":{"content":"' + b"x" * 2_000_000 + b'"}}]}' + sep
        pieces = [big[k:k + 4096] for k in range(0, len(big), 4096)]
        f = UsageChunkFilter()
        assert not any(f.feed(p) for p in pieces[:-1]), "nothing goes on before the event ends"
        out = b"".join(b"".join(f.feed(p)) for p in (pieces[-1], USAGE + sep, DONE + sep, b""))
        assert out == big + DONE + sep and f.hidden == 1, line_end


def test_each_event_goes_on_as_soon_as_its_blank_line_arrives():
    """However long the event held before it, and in whatever pieces it came."""
    for line_end in (b"\n", b"\r\n", b"\r"):
        sep = line_end * 2
        for hold_joined in (None, 0, 30):
            f = UsageChunkFilter()
            if hold_joined is not None:
                f.hold_joined = hold_joined
            for event in (CONTENT, AZURE_FIRST, CONTENT):
                whole = event + sep
                half = len(whole) // 2
                assert f.feed(whole[:half]) == []
                assert b"".join(f.feed(whole[half:])) == whole, (line_end, hold_joined)
            assert f.feed(USAGE + sep) == [] and f.hidden == 1


def test_an_event_past_max_hold_goes_on_and_the_rest_of_the_stream_unfiltered(caplog):
    """Memory stays bounded on a broken stream: an event longer than any usage chunk could be
    is passed on once past `max_hold`, and from then on every byte as it comes; the scanner
    still gets all of them, in order."""
    for line_end in (b"\n", b"\r\n", b"\r"):
        sep = line_end * 2
        big = b'data: {"choices":[{"delta":{"content":"' + b"x" * 3000 + b'"}}]}' + sep
        full = big + USAGE + sep + DONE + sep
        seen: list[bytes] = []
        f = UsageChunkFilter(seen.append)
        f.hold_joined, f.max_hold = 0, 1000
        outs = [f.feed(full[k:k + 100]) for k in range(0, len(full), 100)]
        assert not any(outs[:9]) and outs[10] == [full[:1100]], "held up to max_hold, then passed on"
        assert all(out == [full[k:k + 100]] for out, k in zip(outs[11:], range(1100, len(full), 100)))
        assert f.feed(b"") == [] and f.hidden == 0 and b"".join(seen) == full, line_end
    assert "unfiltered" in caplog.text


def feed_all(chunks: list[bytes], **attrs) -> tuple[bytes, int, bytes]:
    """What the client gets, how many events were hidden, what the scanner got."""
    seen: list[bytes] = []
    f = UsageChunkFilter(seen.append)
    for name, value in attrs.items():
        setattr(f, name, value)
    pieces = [p for c in [*chunks, b""] for p in f.feed(c)]
    assert all(pieces)
    return b"".join(pieces), f.hidden, b"".join(seen)


def test_an_lf_after_a_cr_blank_line_belongs_to_the_event_after_it_when_that_has_begun():
    """Mixed line ends, cut where an event ended in CR CR and the next had begun: the LF that
    starts the next chunk is the next event's, not the end of a CRLF (found by a helper
    throwing random streams at the filter)."""
    u = b'data: {"choices":[],"usage":{"a":1}}'
    cases = [
        ([b"data: x\r\rB", b"\n\n"], b"data: x\r\rB\n\n", 0),
        ([u + b"\n\rdata: x", b"\n\ndata: y\n\n"], b"data: x\n\ndata: y\n\n", 1),
        ([b"data: x\r\r" + u, b"\n\ndata: y\n\n"], b"data: x\r\rdata: y\n\n", 1),
    ]
    for chunks, shown, hidden in cases:
        assert feed_all(chunks) == (shown, hidden, b"".join(chunks)), chunks


def test_extra_blank_lines_before_a_hidden_event_stay():
    u = b'data: {"choices":[],"usage":{"a":1}}'
    for chunks, shown in [([b"A\n\n\n" + u + b"\n\n"], b"A\n\n\n"), ([b"A\n\n", b"\n" + u], b"A\n\n\n"),
                          ([b"A\r\r", b"\r\n" + u], b"A\r\r\r\n"), ([b"A\n\n\n" + u], b"A\n\n\n")]:
        assert feed_all(chunks)[:2] == (shown, 1), chunks


def test_max_hold_bounds_an_event_even_below_hold_joined():
    f = UsageChunkFilter()
    f.max_hold = 50
    assert f.feed(b"x" * 100) == [b"x" * 100] and f.passing, "past max_hold at once, not held"
    assert f.feed(b"y\n\n") == [b"y\n\n"] and f.feed(b"") == []
