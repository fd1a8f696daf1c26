"""The usage-chunk filter feeding the scanner (what the addon runs when it hides the chunk): the
client gets every byte but the usage-only event, and the tracker still reads that event's usage,
whatever the line ends, the splits, the data lines, the stream's length or where it breaks off."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger.apis.openai_chat import ChatTracker
from usage_ledger.framing import KEEP
from usage_ledger.hide import UsageChunkFilter
from usage_ledger.scanner import StreamScanner

USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def content(text: str, i: int = 0) -> dict:
    return {"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": text}}],
            "usage": None, "n": i}


def event(obj: dict, line_end: bytes, lines: int = 1, spaced: bool = False) -> bytes:
    """An SSE event, its JSON cut into `lines` data lines after commas (as a server may)."""
    text = json.dumps(obj, ensure_ascii=False, separators=None if spaced else (",", ":")).encode()
    parts = text.split(b",")
    step = max(1, -(-len(parts) // lines))
    data = [b",".join(parts[k:k + step]) + (b"," if k + step < len(parts) else b"") for k in range(0, len(parts), step)]
    return b"".join(b"data: " + d + line_end for d in data) + line_end


def hide_and_scan(body: bytes, cuts: list[int], abandon: bool = False,
                  hold_joined: int | None = None) -> tuple[bytes, ChatTracker, UsageChunkFilter]:
    tracker = ChatTracker("gpt-4o-mini")
    scanner = StreamScanner(tracker, "text/event-stream")
    f = UsageChunkFilter(scanner.feed_frames)
    if hold_joined is not None:  # how long an unfinished event may grow before it is held in pieces
        f.hold_joined = hold_joined
    out = bytearray()
    bounds = [0, *sorted({c % (len(body) + 1) for c in cuts}), len(body)]
    for a, b in zip(bounds, bounds[1:]):
        if a != b:
            pieces = f.feed(body[a:b])
            assert all(pieces), "an empty piece would end the client's response"
            out += b"".join(pieces)
    if abandon:
        scanner.abandon()
    else:
        out += b"".join(f.feed(b""))
        scanner.close()
    return bytes(out), tracker, f


@settings(max_examples=400, deadline=None)
@given(line_end=st.sampled_from([b"\n", b"\r\n", b"\r"]), texts=st.lists(st.text(max_size=30), max_size=6),
       at=st.integers(0, 6), lines=st.integers(1, 4), spaced=st.booleans(),
       ending=st.sampled_from(["done", "blank", "no-blank", "one-line-end"]),
       cuts=st.lists(st.integers(0, 10_000), max_size=12), hold_joined=st.sampled_from([None, 0, 1, 40]))
def test_the_tracker_reads_the_hidden_usage_at_any_split(line_end, texts, at, lines, spaced, ending, cuts,
                                                         hold_joined):
    events = [event(content(t, i), line_end) for i, t in enumerate(texts)]
    hidden = event({"id": "c1", "model": "gpt-4o-mini", "choices": [], "usage": USAGE}, line_end, lines, spaced)
    at = min(at, len(events))
    if ending in ("no-blank", "one-line-end"):  # the stream ends right after it, its blank line missing
        cut = hidden[:-len(line_end) * (2 if ending == "no-blank" else 1)]
        full, shown = b"".join(events) + cut, b"".join(events)
    else:
        done = b"data: [DONE]" + line_end * 2 if ending == "done" else b""
        full = b"".join(events[:at]) + hidden + b"".join(events[at:]) + done
        shown = b"".join(events) + done
    out, tracker, f = hide_and_scan(full, cuts, hold_joined=hold_joined)
    assert out == shown and f.hidden == 1
    assert tracker.raw_usage == USAGE and tracker.model == "gpt-4o-mini"
    assert tracker.ended == (ending == "done")


def long_stream(line_end: bytes, n: int) -> tuple[bytes, bytes]:
    """n content events (well past 2 * KEEP bytes), the usage chunk, [DONE]; and the client's view."""
    events = b"".join(event(content("token " * 5, i), line_end) for i in range(n))
    hidden = event({"id": "c1", "choices": [], "usage": USAGE}, line_end)
    done = b"data: [DONE]" + line_end * 2
    return events + hidden + done, events + done


def test_a_long_stream_keeps_only_its_last_frames_and_reads_the_usage_at_its_end():
    for line_end in (b"\n", b"\r\n", b"\r"):
        full, shown = long_stream(line_end, 3000)
        assert len(full) > 4 * KEEP
        rng = random.Random(len(line_end))
        for cuts in ([], [rng.randrange(len(full)) for _ in range(400)], list(range(0, len(full), 1021))):
            out, tracker, _ = hide_and_scan(full, cuts)
            assert out == shown and tracker.raw_usage == USAGE and tracker.ended, (line_end, len(cuts))


def test_what_the_scanner_holds_stays_bounded_and_starts_at_an_event():
    tracker = ChatTracker("gpt-4o-mini")
    scanner = StreamScanner(tracker, "text/event-stream")
    f = UsageChunkFilter(scanner.feed_frames)
    full, _ = long_stream(b"\n", 3000)
    for k in range(0, len(full), 3000):
        f.feed(full[k:k + 3000])
        assert scanner.kept_size <= 2 * KEEP + 3000 + len(f.tail)
    assert scanner.gap and scanner.kept and scanner.kept[0].startswith(b"data: ")


def test_a_stream_that_breaks_off_after_a_long_run_keeps_the_usage_it_carried():
    """Groq-style: the usage rides on the finish chunk (choices not empty: shown); the stream
    breaks off before [DONE]. abandon reads the last whole events the scanner kept."""
    finish = {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE}
    events = b"".join(event(content("x" * 40, i), b"\n") for i in range(3000)) + event(finish, b"\n")
    body = events + b'data: {"id":"c1","choi'
    out, tracker, f = hide_and_scan(body, list(range(0, len(body), 2048)), abandon=True)
    assert out == events and f.hidden == 0
    assert tracker.raw_usage == USAGE and not tracker.ended


def test_a_scanner_failure_costs_the_client_nothing_and_stops_the_scanning():
    seen = []

    def scan(data: bytes) -> None:
        seen.append(data)
        raise RuntimeError("a bug")

    f = UsageChunkFilter(scan)
    body = event(content("a"), b"\n") + event({"choices": [], "usage": USAGE}, b"\n") + b"data: [DONE]\n\n"
    out = b"".join(f.feed(body[:30]) + f.feed(body[30:]) + f.feed(b""))
    assert out == event(content("a"), b"\n") + b"data: [DONE]\n\n"
    assert f.scan_failed and f.scan is None and len(seen) == 1


def test_raw_bytes_after_whole_frames_go_to_the_framer_in_order():
    """feed after feed_frames (a caller mixing both) hands the kept frames over first."""
    tracker = ChatTracker("gpt-4o-mini")
    scanner = StreamScanner(tracker, "text/event-stream")
    first = event(content("a"), b"\n")
    scanner.feed_frames(first)
    scanner.feed_frames(event(content("b"), b"\n"))
    assert scanner.kept is not None
    scanner.feed(b'data: {"choices":[],"usage":{"prompt_tokens":3}}\n\ndata: [DONE]\n\n')
    scanner.close()
    assert tracker.raw_usage == {"prompt_tokens": 3} and tracker.ended


def test_after_an_event_past_max_hold_the_tracker_still_reads_the_usage():
    big = event(content("x" * 5000), b"\n")
    hidden = event({"id": "c1", "choices": [], "usage": USAGE}, b"\n")
    full = event(content("a"), b"\n") + big + hidden + b"data: [DONE]\n\n"
    tracker = ChatTracker("gpt-4o-mini")
    scanner = StreamScanner(tracker, "text/event-stream")
    f = UsageChunkFilter(scanner.feed_frames)
    f.hold_joined, f.max_hold = 0, 2000
    out = b"".join(b"".join(f.feed(full[k:k + 700])) for k in range(0, len(full), 700)) + b"".join(f.feed(b""))
    scanner.close()
    assert f.passing and out == full and f.hidden == 0
    assert tracker.raw_usage == USAGE and tracker.ended
