"""The usage-chunk filter against an independent model of the WHATWG event-stream rules: any
mix of LF, CRLF and CR line ends, extra blank lines, comments, data split over lines, cut
anywhere. The model splits the stream into lines, the lines into events at empty lines, and
leaves out exactly the usage-only events (with their closing blank line)."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger.hide import UsageChunkFilter

LINE_ENDS = [b"\n", b"\r\n", b"\r"]


def lines_of(stream: bytes) -> list[tuple[bytes, int, int, bool]]:
    """(content, start, end with its line end, whether it has one), CRLF being one line end."""
    out, i, n = [], 0, len(stream)
    while i < n:
        j = i
        while j < n and stream[j] not in (10, 13):
            j += 1
        if j == n:
            out.append((stream[i:j], i, j, False))
            break
        k = j + 2 if stream[j] == 13 and j + 1 < n and stream[j + 1] == 10 else j + 1
        out.append((stream[i:j], i, k, True))
        i = k
    return out


def usage_only(lines: list[bytes]) -> bool:
    data = [value[1:] if value[:1] == b" " else value
            for name, _, value in (line.partition(b":") for line in lines if not line.startswith(b":"))
            if name == b"data"]
    try:
        obj = json.loads(b"\n".join(data)) if data else None
    except ValueError:
        return False
    return isinstance(obj, dict) and obj.get("choices") == [] and isinstance(obj.get("usage"), dict)


def expected(stream: bytes) -> bytes:
    """The stream less its usage-only events; empty lines between events stay."""
    out, event, start = [], [], 0
    for content, s, e, ended in lines_of(stream):
        if ended and content == b"":
            if event:
                if not usage_only(event):
                    out.append(stream[start:e])
                event = []
            else:
                out.append(stream[s:e])
        else:
            if not event:
                start = s
            event.append(content)
    if event and not usage_only(event):
        out.append(stream[start:])
    return b"".join(out)


@st.composite
def streams(draw) -> bytes:
    mixed = draw(st.booleans())
    fixed = draw(st.sampled_from(LINE_ENDS))

    def end() -> bytes:
        return draw(st.sampled_from(LINE_ENDS)) if mixed else fixed

    out = b""
    for _ in range(draw(st.integers(0, 6))):
        usage = draw(st.booleans())
        if usage:
            obj = {"id": "c", "choices": [], "usage": {"prompt_tokens": 1}}
        else:
            text = draw(st.text(st.sampled_from(list("ab []{}\"\\:,\r\n\té😀")), max_size=10))
            obj = draw(st.sampled_from([{"choices": [{"delta": {"content": text}}], "usage": None},
                                        {"choices": [], "prompt_filter_results": []},
                                        {"choices": [{"delta": {}}], "usage": {"p": 1}}]))
        text = json.dumps(obj, ensure_ascii=False, indent=draw(st.sampled_from([None, 0, 2])))
        lines = [b"data: " + part.encode() for part in re.split(r"\r\n|\r|\n", text)]
        if draw(st.booleans()):
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from([b": ping [ ]", b"event: x", b"id: 7"])))
        out += b"".join(end() for _ in range(draw(st.integers(0, 2))))  # extra empty lines
        out += b"".join(line + end() for line in lines) + end()
    if draw(st.booleans()):  # a last event cut short, or without its blank line
        tail = b"data: " + json.dumps({"choices": [], "usage": {"a": 1}}).encode() + end()
        out += tail[:draw(st.integers(0, len(tail)))]
    return out


@settings(max_examples=1500, deadline=None)
@given(data=st.data())
def test_the_filter_agrees_with_the_model_at_any_split(data):
    stream = data.draw(streams())
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=14))))
    seen: list[bytes] = []
    f = UsageChunkFilter(seen.append)
    f.hold_joined = data.draw(st.sampled_from([f.hold_joined, 0, 1, 40]))
    pieces = [p for a, b in zip([0, *cuts], [*cuts, len(stream)]) if a < b for p in f.feed(stream[a:b])]
    pieces += f.feed(b"")
    assert all(pieces), "an empty piece would end the client's response"
    assert b"".join(pieces) == expected(stream)
    assert b"".join(seen) == stream, "the scanner gets every byte, in order"
