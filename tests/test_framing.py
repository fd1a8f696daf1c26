"""Framers turn bytes cut at arbitrary points into the same frames as the whole body would give,
and SSE framing follows the WHATWG event-stream rules (checked against a small reference parser
written from the spec)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger.framing import (
    Frame,
    JSONArrayFramer,
    JSONDocumentFramer,
    NDJSONFramer,
    SSEFramer,
    framer_for,
)

from usage_ledger.frames import _LINE_END, split_lines

from .corpus import pieces_at

BOM = "\ufeff"
EVERYTHING = lambda region: True  # noqa: E731


def run(framer, pieces: Iterable[bytes]) -> list[Frame]:
    frames: list[Frame] = []
    for piece in pieces:
        frames += framer.feed(piece)
    frames += framer.close()
    return frames


def sse_frames(body: bytes, pieces: Iterable[bytes] | None = None, **kw) -> list[tuple[str | None, bytes]]:
    frames = run(SSEFramer(kw.pop("interesting", EVERYTHING), **kw), [body] if pieces is None else pieces)
    return [(f.event or None, f.data) for f in frames]


# --- a reference event-stream parser, straight from the WHATWG spec ---------------------------

def whatwg_events(stream: bytes) -> list[tuple[str | None, bytes]]:
    """html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation.

    Returns (event type or None for the default, data) per dispatched event. An unterminated
    last line and an event not followed by a blank line are discarded, as the spec says.
    """
    text = stream.decode("utf-8")
    if text.startswith(BOM):
        text = text[1:]
    events: list[tuple[str | None, bytes]] = []
    data, event_type = "", ""
    pos = 0
    for end in re.finditer(r"\r\n|\r|\n", text):
        line, pos = text[pos:end.start()], end.end()
        if line == "":
            if data == "":
                data, event_type = "", ""
                continue
            if data.endswith("\n"):
                data = data[:-1]
            events.append((event_type or None, data.encode("utf-8")))
            data, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "event":
            event_type = value
        elif field == "data":
            data += value + "\n"
        # id, retry and unknown fields do not change the frames
    return events


# --- generated event streams ----------------------------------------------------------------

LINE_ENDS = st.sampled_from(["\n", "\r", "\r\n"])
VALUE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30)
JSONISH = st.sampled_from(['{"usage":{"prompt_tokens":3}}', '{"a":"b: c"}', "[DONE]", '{"t":"é東🙂"}',
                           '{"x":"\\"quoted\\" \\\\ {[]}"}', ""])


@st.composite
def sse_line(draw) -> str:
    kind = draw(st.sampled_from(["data", "data", "data", "event", "comment", "id", "retry", "other", "bare"]))
    space = draw(st.sampled_from(["", " ", "  "]))
    value = draw(st.one_of(VALUE, JSONISH))
    if kind == "comment":
        return ":" + value
    if kind == "bare":
        return draw(st.sampled_from(["data", "event", "Data", "retry"]))
    name = {"other": draw(st.sampled_from(["foo", "DATA", "Event", "data ", " data"]))}.get(kind, kind)
    return f"{name}:{space}{value}"


@st.composite
def sse_stream(draw) -> bytes:
    """Random events (several data lines, event names, comments, ids), line ends chosen per
    line, sometimes a leading BOM, sometimes no final blank line."""
    out = [BOM] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(0, 6))):
        for line in draw(st.lists(sse_line(), min_size=0, max_size=5)):
            out.append(line + draw(LINE_ENDS))
        out.append(draw(LINE_ENDS))  # the blank line that dispatches
        if draw(st.integers(0, 4)) == 0:
            out.append(draw(LINE_ENDS))  # an extra blank line
    if draw(st.booleans()):
        out.append(draw(sse_line()) + draw(st.sampled_from(["", "\n", "\r", "\r\n"])))  # unfinished event
    return "".join(out).encode("utf-8")


@st.composite
def stream_and_pieces(draw, stream_strategy) -> tuple[bytes, list[bytes]]:
    body = draw(stream_strategy)
    offsets = draw(st.lists(st.integers(0, len(body)), max_size=20))
    return body, pieces_at(body, offsets)


@settings(max_examples=250, deadline=None)
@given(sse_stream())
def test_sse_frames_equal_the_reference_parser(body: bytes) -> None:
    """The framer is the WHATWG parser plus one accounting rule: at the end of the stream an
    unfinished event is still dispatched (as if a blank line followed)."""
    assert sse_frames(body) == whatwg_events(body + b"\n\n")


@settings(max_examples=250, deadline=None)
@given(stream_and_pieces(sse_stream()))
def test_sse_any_split_gives_the_same_frames(case: tuple[bytes, list[bytes]]) -> None:
    body, pieces = case
    assert sse_frames(body, pieces) == sse_frames(body)


@settings(max_examples=100, deadline=None)
@given(sse_stream())
def test_sse_one_byte_at_a_time(body: bytes) -> None:
    assert sse_frames(body, [body[i:i + 1] for i in range(len(body))]) == sse_frames(body)


def test_sse_crlf_split_across_chunks_is_one_line_end() -> None:
    body = b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"
    for k in range(1, len(body)):
        assert sse_frames(body, [body[:k], body[k:]]) == [(None, b"a\nb"), (None, b"c")], k
    # A CR alone is a line end too, so CR + CR is a blank line, split or not.
    assert sse_frames(b"data: a\r", [b"data: a\r", b"\rdata: b\r\r"]) == [(None, b"a"), (None, b"b")]


def test_sse_whatwg_field_rules() -> None:
    body = (b"\xef\xbb\xbfevent: message_start\n"
            b"data: {\"a\":\n"
            b"data:1}\n"
            b": a comment, ignored\n"
            b"id: 7\nretry: 100\nfoo: bar\n"
            b"data:  two spaces keep one\n"
            b"\n"
            b"Data: field names are case-sensitive\n"
            b"\n"
            b"event: only an event, no data\n"
            b"\n"
            b"data\n"
            b"\n"
            b"data: after\n\n")
    assert sse_frames(body) == [
        ("message_start", b'{"a":\n1}\n two spaces keep one'),
        (None, b""),  # a bare `data` line is a data field with an empty value
        (None, b"after"),  # the event type was reset by the blank lines before
    ]
    assert sse_frames(body) == whatwg_events(body)


def test_sse_bom_stripped_only_once_and_only_at_the_start() -> None:
    bom = BOM.encode()
    body = bom + b"data: 1\n\n" + bom + b"data: 2\n\n"
    for k in range(len(body)):
        got = sse_frames(body, pieces_at(body, [k, 1, 2]))
        assert got == [(None, b"1")], k  # the second BOM makes `\ufeffdata` an unknown field
    assert sse_frames(bom + bom + b"data: x\n\n") == []


def test_sse_last_event_without_blank_line_is_kept() -> None:
    assert sse_frames(b'data: {"usage":{}}\n\ndata: {"last":1}') == [(None, b'{"usage":{}}'), (None, b'{"last":1}')]
    assert sse_frames(b"data: x\r") == [(None, b"x")]
    assert sse_frames(b"data: x\n\n: trailing comment") == [(None, b"x")]


def test_sse_multibyte_characters_split_anywhere() -> None:
    body = "data: {\"t\":\"Grüße aus 東京 🙂\"}\r\n\r\n".encode()
    want = [(None, "{\"t\":\"Grüße aus 東京 🙂\"}".encode())]
    for k in range(1, len(body)):
        for j in range(k, len(body)):
            assert sse_frames(body, pieces_at(body, [k, j])) == want


# --- NDJSON ---------------------------------------------------------------------------------

JSON_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | JSON_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(JSON_TEXT, inner, max_size=3),
    max_leaves=8,
)
JSON_OBJECTS = st.dictionaries(JSON_TEXT, JSON_VALUES, max_size=4)
TRICKY_STRINGS = st.sampled_from(['[', ']', '{', '}', '"', '\\', '\\"', '"]', '}]', '\\\\', ',\r\n{', 'é東🙂'])


@st.composite
def ndjson_body(draw) -> tuple[bytes, list]:
    objects = draw(st.lists(JSON_OBJECTS, max_size=6))
    out = []
    for obj in objects:
        out.append(json.dumps(obj, ensure_ascii=draw(st.booleans())))
        out.append(draw(st.sampled_from(["\n", "\r\n", "\n\n", "\r"])))
    if out and draw(st.booleans()):
        out.pop()  # the last line without its newline
    return "".join(out).encode(), objects


@settings(max_examples=200, deadline=None)
@given(ndjson_body(), st.data())
def test_ndjson_any_split(body_objects, data) -> None:
    body, objects = body_objects
    pieces = pieces_at(body, data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
    frames = run(NDJSONFramer(EVERYTHING), pieces)
    assert [json.loads(f.data) for f in frames] == objects


# --- JSON array (Gemini without alt=sse) ----------------------------------------------------

@st.composite
def json_array_body(draw) -> tuple[bytes, list]:
    elements = draw(st.lists(
        st.dictionaries(JSON_TEXT | TRICKY_STRINGS, JSON_VALUES | TRICKY_STRINGS
                        | st.lists(TRICKY_STRINGS, max_size=3), max_size=4), max_size=5))
    seps = st.sampled_from([",", ",\r\n", "\r\n,", "\n,\r\n", " , "])
    parts = [json.dumps(e, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2])))
             for e in elements]
    body = "["
    for i, part in enumerate(parts):
        body += (draw(seps) if i else draw(st.sampled_from(["", "\n"]))) + part
    body += draw(st.sampled_from(["]", "\n]", "]\n"]))
    return body.encode(), elements


@settings(max_examples=200, deadline=None)
@given(json_array_body(), st.data())
def test_json_array_any_split(body_elements, data) -> None:
    body, elements = body_elements
    pieces = pieces_at(body, data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
    frames = run(JSONArrayFramer(EVERYTHING), pieces)
    assert [json.loads(f.data) for f in frames] == elements


def test_json_array_gemini_shape_every_split() -> None:
    body = (b'[{"candidates": [{"content": {"parts": [{"text": "a ] } [ { \\" \\\\"}]}}],\n'
            b'  "usageMetadata": {"promptTokenCount": 11}}\r\n,\r\n'
            b'{"candidates": [{"content": {"parts": [{"text": "\\\\\\""}]}}],'
            b' "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 2}}\n]')
    want = [f.data for f in run(JSONArrayFramer(EVERYTHING), [body])]
    assert [json.loads(w)["usageMetadata"] for w in want] == [
        {"promptTokenCount": 11}, {"promptTokenCount": 11, "candidatesTokenCount": 2}]
    assert json.loads(want[0])["candidates"][0]["content"]["parts"][0]["text"] == 'a ] } [ { " \\'
    for k in range(1, len(body)):
        assert [f.data for f in run(JSONArrayFramer(EVERYTHING), [body[:k], body[k:]])] == want, k
    assert [f.data for f in run(JSONArrayFramer(EVERYTHING), [body[i:i + 1] for i in range(len(body))])] == want


def test_json_document_is_one_frame_at_the_end() -> None:
    body = b'{\n  "error": {"code": 400, "message": "API key not valid."}\n}\n'
    framer = JSONDocumentFramer(EVERYTHING)
    assert list(framer.feed(body[:10])) == [] and list(framer.feed(body[10:])) == []
    assert [f.data for f in framer.close()] == [body]


# --- oversized frames -----------------------------------------------------------------------

MAX = 64
BIG = "x" * (MAX * 4)


def small_pieces(body: bytes, data) -> list[bytes]:
    """Pieces of at most MAX/2 bytes, so the framer's memory bound is what decides."""
    offsets = list(range(0, len(body), MAX // 2))
    offsets += data.draw(st.lists(st.integers(0, len(body)), max_size=10))
    return pieces_at(body, offsets)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=6), LINE_ENDS, st.data())
def test_sse_oversized_frames_are_skipped_counted_and_the_rest_come_through(bigs, end, data) -> None:
    events = [(BIG if big else f"small {i}") for i, big in enumerate(bigs)]
    body = "".join(f"data: {e}{end}{end}" for e in events).encode()
    framer = SSEFramer(EVERYTHING, max_frame=MAX)
    frames = run(framer, small_pieces(body, data))
    assert [f.data.decode() for f in frames] == [e for e in events if e != BIG]
    assert framer.oversized == sum(bigs)


def test_sse_frame_after_an_oversized_one_survives_every_split() -> None:
    """Even when the cut falls inside the blank line that ends the oversized frame."""
    for end in ("\n", "\r", "\r\n"):
        line = f"data: {BIG}{end}".encode()
        body = line + f"{end}data: next{end}{end}".encode()
        for k in range(1, len(body)):
            framer = SSEFramer(EVERYTHING, max_frame=MAX)
            frames = run(framer, [body[:k], body[k:]])
            if MAX < k <= len(line):  # seen growing past the limit before its end: skipped
                assert [f.data for f in frames] == [b"next"], (end, k)
                assert framer.oversized == 1
            else:  # it arrived whole in one piece: nothing to bound, it is passed on
                assert [f.data for f in frames] == [BIG.encode(), b"next"], (end, k)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=6), st.data())
def test_ndjson_oversized_lines_are_skipped(bigs, data) -> None:
    lines = [json.dumps({"big": BIG} if big else {"n": i}) for i, big in enumerate(bigs)]
    body = ("\n".join(lines) + "\n").encode()
    framer = NDJSONFramer(EVERYTHING, max_frame=MAX)
    frames = run(framer, small_pieces(body, data))
    assert [json.loads(f.data) for f in frames] == [{"n": i} for i, big in enumerate(bigs) if not big]
    assert framer.oversized == sum(bigs)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=6), st.data())
def test_json_array_oversized_elements_are_skipped(bigs, data) -> None:
    elements = [{"big": BIG, "nested": ["]", {"}": "\\"}]} if big else {"n": i} for i, big in enumerate(bigs)]
    body = ("[" + ",\r\n".join(json.dumps(e) for e in elements) + "]").encode()
    framer = JSONArrayFramer(EVERYTHING, max_frame=MAX)
    frames = run(framer, small_pieces(body, data))
    assert [json.loads(f.data) for f in frames] == [e for e in elements if "big" not in e]
    assert framer.oversized == sum(bigs)


def test_json_document_oversized() -> None:
    framer = JSONDocumentFramer(EVERYTHING, max_frame=MAX)
    assert run(framer, [b'{"a": "' + BIG.encode()[:40], BIG.encode() + b'"}']) == []
    assert framer.oversized == 1


# --- the `interesting` filter ---------------------------------------------------------------

class Recorder:
    """An interest test that keeps regions containing `keep` and remembers its answers."""

    def __init__(self) -> None:
        self.accepted: list[bytes] = []
        self.rejected: list[bytes] = []

    def __call__(self, region: bytes) -> bool:
        ok = b"keep" in region
        (self.accepted if ok else self.rejected).append(bytes(region))
        return ok


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["keep", "drop", "drop more", "keep é東"]), max_size=40),
       st.sampled_from(["\n", "\r\n"]), st.data())
def test_rejected_regions_produce_no_frames(words, end, data) -> None:
    body = "".join(f"event: e{i}{end}data: {w} {i}{end}{end}" for i, w in enumerate(words)).encode()
    pieces = pieces_at(body, data.draw(st.lists(st.integers(0, len(body)), max_size=15)))
    recorder = Recorder()
    frames = [f.data for f in run(SSEFramer(recorder), pieces)]
    everything = [f.data for f in run(SSEFramer(EVERYTHING), [body])]
    kept = [d for d in everything if b"keep" in d]
    # Nothing wanted is lost, nothing is invented, order is kept ...
    assert [d for d in frames if b"keep" in d] == kept
    it = iter(everything)
    assert all(any(d == e for e in it) for d in frames)
    # ... and every frame comes from a region the filter accepted.
    for d in frames:
        assert any(d in region for region in recorder.accepted), d


def test_nothing_interesting_nothing_parsed() -> None:
    body = b"data: " + b'{"choices":[]}' * 1000 + b"\n\n"
    for framer in (SSEFramer(lambda r: False), NDJSONFramer(lambda r: False), JSONArrayFramer(lambda r: False)):
        assert run(framer, [body[:100], body[100:]]) == []


def test_a_json_document_is_always_delivered() -> None:
    # One parse at the end, and an error body must be read whatever it says.
    body = b'{"error": {"message": "no"}}'
    assert [f.data for f in run(JSONDocumentFramer(lambda r: False), [body[:5], body[5:]])] == [body]


def test_large_interesting_region_gives_the_same_frames_as_small_ones() -> None:
    """A region far larger than a network chunk (a decompressed one) is narrowed before parsing,
    with the same frames as the parser would give on the whole."""
    events = [f"data: {{\"n\":{i},\"pad\":\"{'p' * (i % 50)}\"}}\r\n\r\n" for i in range(2000)]
    events[1234] = 'event: x\r\ndata: {"usage":{"keep":1}}\r\n\r\n'
    body = "".join(events).encode()
    everything = [f.data for f in run(SSEFramer(EVERYTHING), [body])]
    assert len(everything) == 2000 and everything[1234] == b'{"usage":{"keep":1}}'
    narrowed = [f.data for f in run(SSEFramer(lambda r: b'"usage"' in r), [body])]
    assert b'{"usage":{"keep":1}}' in narrowed
    it = iter(everything)
    assert all(any(d == e for e in it) for d in narrowed)
    assert len(narrowed) < 100  # only the neighbourhood of the wanted event was parsed


# --- choosing the framer --------------------------------------------------------------------

def test_framer_for() -> None:
    assert isinstance(framer_for("application/x-ndjson", b'{"a":1}', EVERYTHING), NDJSONFramer)
    assert isinstance(framer_for("application/jsonl", b"", EVERYTHING), NDJSONFramer)
    assert isinstance(framer_for("application/json; charset=UTF-8", b" \r\n[{", EVERYTHING), JSONArrayFramer)
    assert isinstance(framer_for("text/event-stream", b'{\n  "error"', EVERYTHING), JSONDocumentFramer)
    assert isinstance(framer_for("text/event-stream", b"data: {", EVERYTHING), SSEFramer)
    assert isinstance(framer_for("text/event-stream", b"event: x", EVERYTHING), SSEFramer)
    assert isinstance(framer_for("text/event-stream", b": comment", EVERYTHING), SSEFramer)
    assert isinstance(framer_for("", b"\xef\xbb\xbfdata: x", EVERYTHING), SSEFramer)


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"data: x", b":", b"", b"\xff"]), max_size=30))
def test_split_lines_is_the_line_end_regex_split(parts):
    region = b"".join(parts)
    assert split_lines(region) == _LINE_END.split(region)
