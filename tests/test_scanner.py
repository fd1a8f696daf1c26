"""StreamScanner end to end on the stream shapes the corpus lacks: mid-stream errors, cumulative
counters, odd terminators, bodies that are not what the Content-Type says, broken encodings."""

from __future__ import annotations

import gzip
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger.apis.anthropic_messages import MessagesTracker
from usage_ledger.apis.base import Tracker
from usage_ledger.apis.gemini import GeminiTracker
from usage_ledger.apis.ollama import OllamaTracker
from usage_ledger.apis.openai_chat import ChatTracker
from usage_ledger.apis.openai_responses import ResponsesTracker
from usage_ledger.framing import KEEP
from usage_ledger.scanner import StreamScanner, scan_body


SSE = "text/event-stream"


def sse(*events: dict | str, event: str | None = None, end: str = "\n") -> bytes:
    out = []
    for e in events:
        head = f"event: {event}{end}" if event else ""
        data = e if isinstance(e, str) else json.dumps(e, separators=(",", ":"))
        out.append(f"{head}data: {data}{end}{end}")
    return "".join(out).encode()


def named(*pairs: tuple[str, dict]) -> bytes:
    return b"".join(sse(obj, event=name) for name, obj in pairs)


def every_split(body: bytes) -> list[list[bytes]]:
    """The body whole, in two pieces at every offset, and one byte at a time."""
    return [[body], *([body[:k], body[k:]] for k in range(1, len(body))), [body[i:i + 1] for i in range(len(body))]]


def scanned(make: type[Tracker], body: bytes, pieces: list[bytes] | None = None, ctype: str = SSE,
            encoding: str = "", model: str | None = "requested") -> tuple[Tracker, StreamScanner]:
    tracker = make(model)
    scanner = StreamScanner(tracker, ctype, encoding)
    for piece in [body] if pieces is None else pieces:
        scanner.feed(piece)
    scanner.close()
    return tracker, scanner


def tokens(tracker: Tracker) -> dict[str, int | None] | None:
    usage = tracker.usage()
    if usage is None:
        return None
    return {k: getattr(usage, k) for k in ("input_tokens", "cached_input_tokens", "cache_write_tokens",
                                           "output_tokens", "reasoning_tokens", "total_tokens")}


def check_every_split(make: type[Tracker], body: bytes, ctype: str = SSE, **want) -> None:
    for pieces in every_split(body):
        tracker, scanner = scanned(make, body, pieces, ctype)
        assert scanner.problem is None
        got = {"usage": tokens(tracker), "model": tracker.model, "error": tracker.error}
        assert got == {**got, **want}, [len(p) for p in pieces]


# --- OpenAI chat and compatible servers -------------------------------------------------------

CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini-2024-07-18",
         "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}], "usage": None}
USAGE = {"prompt_tokens": 54, "completion_tokens": 20, "total_tokens": 74,
         "prompt_tokens_details": {"cached_tokens": 32}, "completion_tokens_details": {"reasoning_tokens": 8}}
USAGE_TOKENS = {"input_tokens": 54, "cached_input_tokens": 32, "cache_write_tokens": None, "output_tokens": 20,
                "reasoning_tokens": 8, "total_tokens": 74}


def test_openai_mid_stream_error_event() -> None:
    error = {"error": {"message": "The server had an error while processing your request.",
                       "type": "server_error", "param": None, "code": None}}
    body = sse(CHUNK, CHUNK, error)
    check_every_split(ChatTracker, body, usage=None, model="gpt-4o-mini-2024-07-18",
                      error="The server had an error while processing your request.")


def test_stream_without_final_blank_line_keeps_its_last_data_line() -> None:
    last = {**CHUNK, "choices": [], "usage": USAGE}
    for tail in ("", "\n", "\r", "\r\n"):
        body = sse(CHUNK) + b"data: " + json.dumps(last).encode() + tail.encode()
        check_every_split(ChatTracker, body, usage=USAGE_TOKENS, model="gpt-4o-mini-2024-07-18", error=None)


def test_truncated_last_line_is_ignored_not_fatal() -> None:
    body = sse(CHUNK) + b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion'
    tracker, scanner = scanned(ChatTracker, body)
    assert scanner.problem is None and tracker.usage() is None and tracker.model == "gpt-4o-mini-2024-07-18"


def test_vllm_continuous_usage_last_wins() -> None:
    chunks = [{**CHUNK, "usage": {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}}
              for n in range(1, 30)]
    check_every_split(ChatTracker, sse(*chunks, "[DONE]"),
                      usage={"input_tokens": 10, "cached_input_tokens": None, "cache_write_tokens": None,
                             "output_tokens": 29, "reasoning_tokens": None, "total_tokens": 39})


def test_azure_content_filter_first_chunk_does_not_set_the_model() -> None:
    first = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
             "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False}}}]}
    body = sse(first, CHUNK, {**CHUNK, "choices": [], "usage": USAGE}, "[DONE]")
    check_every_split(ChatTracker, body, model="gpt-4o-mini-2024-07-18", usage=USAGE_TOKENS)
    only_first, _ = scanned(ChatTracker, sse(first))
    assert only_first.model is None  # the ledger then falls back to the requested deployment name


def test_groq_x_groq_usage() -> None:
    last = {**CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "x_groq": {"id": "req_1", "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}}
    del last["usage"]
    check_every_split(ChatTracker, sse(CHUNK, last, "[DONE]"),
                      usage={"input_tokens": 7, "cached_input_tokens": None, "cache_write_tokens": None,
                             "output_tokens": 3, "reasoning_tokens": None, "total_tokens": 10})


# --- Anthropic ------------------------------------------------------------------------------

MESSAGE_START = {"type": "message_start", "message": {
    "model": "claude-opus-4-1-20250805", "id": "msg_01", "type": "message", "role": "assistant", "content": [],
    "usage": {"input_tokens": 2039, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 50,
              "output_tokens": 1, "service_tier": "standard"}}}
TEXT_DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}


def test_anthropic_mid_stream_error_keeps_usage_seen_so_far() -> None:
    body = named(("message_start", MESSAGE_START), ("ping", {"type": "ping"}),
                 ("content_block_delta", TEXT_DELTA),
                 ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    check_every_split(MessagesTracker, body, model="claude-opus-4-1-20250805", error="Overloaded",
                      usage={"input_tokens": 2039 + 100 + 50, "cached_input_tokens": 50, "cache_write_tokens": 100,
                             "output_tokens": 1, "reasoning_tokens": None, "total_tokens": 2189 + 1})


def test_anthropic_several_message_deltas_last_wins_never_summed() -> None:
    body = named(
        ("message_start", MESSAGE_START),
        ("content_block_delta", TEXT_DELTA),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": None},
                           "usage": {"output_tokens": 120, "server_tool_use": {"web_search_requests": 1}}}),
        ("content_block_delta", TEXT_DELTA),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"input_tokens": 10423, "cache_read_input_tokens": None, "output_tokens": 341}}),
        ("message_stop", {"type": "message_stop"}),
    )
    # input_tokens replaced by the last delta, the cache counts kept from the start (null never
    # overwrites), output_tokens the last cumulative value: 341, not 1 + 120 + 341.
    check_every_split(MessagesTracker, body, model="claude-opus-4-1-20250805", error=None,
                      usage={"input_tokens": 10423 + 100 + 50, "cached_input_tokens": 50, "cache_write_tokens": 100,
                             "output_tokens": 341, "reasoning_tokens": None, "total_tokens": 10573 + 341})
    tracker, _ = scanned(MessagesTracker, body)
    assert tracker.usage().raw["server_tool_use"] == {"web_search_requests": 1}


# --- OpenAI Responses -----------------------------------------------------------------------

def response(status: str, usage: dict | None, **extra) -> dict:
    return {"id": "resp_1", "object": "response", "status": status, "model": "gpt-5.5-2026-04-23",
            "error": None, "output": [], "service_tier": "default", "usage": usage, **extra}


R_USAGE = {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 50,
           "output_tokens_details": {"reasoning_tokens": 32}, "total_tokens": 61}
R_TOKENS = {"input_tokens": 11, "cached_input_tokens": 4, "cache_write_tokens": None, "output_tokens": 50,
            "reasoning_tokens": 32, "total_tokens": 61}
R_START = (("response.created", {"type": "response.created", "response": response("in_progress", None),
                                 "sequence_number": 0}),
           ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Hi",
                                           "sequence_number": 1}))


def test_responses_terminal_events_give_usage() -> None:
    for kind, status in (("response.completed", "completed"), ("response.incomplete", "incomplete"),
                         ("response.done", "completed")):
        extra = {"incomplete_details": {"reason": "max_output_tokens"}} if status == "incomplete" else {}
        body = named(*R_START, (kind, {"type": kind, "response": response(status, R_USAGE, **extra),
                                       "sequence_number": 2}))
        check_every_split(ResponsesTracker, body, usage=R_TOKENS, model="gpt-5.5-2026-04-23", error=None)


def test_responses_error_event() -> None:
    error = {"type": "error", "code": "server_error", "message": "The server had an error processing your request.",
             "param": None, "sequence_number": 2}
    check_every_split(ResponsesTracker, named(*R_START, ("error", error)), usage=None,
                      model="gpt-5.5-2026-04-23", error="The server had an error processing your request.")


def test_responses_failed_keeps_usage_and_sets_error() -> None:
    failed = response("failed", R_USAGE, error={"code": "server_error", "message": "The model failed to respond."})
    body = named(*R_START, ("response.failed", {"type": "response.failed", "response": failed, "sequence_number": 2}))
    check_every_split(ResponsesTracker, body, usage=R_TOKENS, model="gpt-5.5-2026-04-23",
                      error="The model failed to respond.")


def test_responses_stream_ending_with_done_sentinel() -> None:
    body = named(*R_START, ("response.completed", {"type": "response.completed",
                                                   "response": response("completed", R_USAGE)})) + b"data: [DONE]\n\n"
    check_every_split(ResponsesTracker, body, usage=R_TOKENS, error=None)


# --- Gemini ---------------------------------------------------------------------------------

def gemini_chunk(text: str, usage: dict) -> dict:
    return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}}],
            "usageMetadata": usage, "modelVersion": "gemini-2.5-flash", "responseId": "r1"}


GEMINI_CHUNKS = [
    gemini_chunk("The", {"promptTokenCount": 165, "totalTokenCount": 165}),
    gemini_chunk(" capital", {"promptTokenCount": 165, "candidatesTokenCount": 5, "thoughtsTokenCount": 40,
                              "totalTokenCount": 210}),
    gemini_chunk(" is Ottawa.", {"promptTokenCount": 163, "candidatesTokenCount": 13, "thoughtsTokenCount": 40,
                                 "cachedContentTokenCount": 100, "totalTokenCount": 216}),
]
GEMINI_TOKENS = {"input_tokens": 163, "cached_input_tokens": 100, "cache_write_tokens": None,
                 "output_tokens": 13 + 40, "reasoning_tokens": 40, "total_tokens": 216}


def test_gemini_cumulative_usage_metadata_last_wins_sse() -> None:
    check_every_split(GeminiTracker, sse(*GEMINI_CHUNKS, end="\r\n"), usage=GEMINI_TOKENS,
                      model="gemini-2.5-flash", error=None)


def test_gemini_cumulative_usage_metadata_last_wins_json_array() -> None:
    body = ("[" + "\r\n,\r\n".join(json.dumps(c, indent=2) for c in GEMINI_CHUNKS) + "\n]").encode()
    check_every_split(GeminiTracker, body, ctype="application/json; charset=UTF-8", usage=GEMINI_TOKENS,
                      model="gemini-2.5-flash", error=None)


def test_event_stream_whose_body_is_a_plain_json_error() -> None:
    """Gemini answers a bad streamGenerateContent with HTTP 400, text/event-stream, and JSON."""
    error = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                       "status": "INVALID_ARGUMENT"}}
    for body in (json.dumps(error, indent=2).encode() + b"\n", b"\n  " + json.dumps(error).encode(),
                 json.dumps([error]).encode()):
        check_every_split(GeminiTracker, body, usage=None, model=None,
                          error="API key not valid. Please pass a valid API key.")


# --- Ollama NDJSON --------------------------------------------------------------------------

def test_ollama_ndjson_done_object() -> None:
    lines = [{"model": "llama3.2", "message": {"role": "assistant", "content": "Hi"}, "done": False},
             {"model": "llama3.2", "done": True, "done_reason": "stop", "prompt_eval_count": 26,
              "eval_count": 9, "total_duration": 1000}]
    body = "".join(json.dumps(x) + "\n" for x in lines).encode()
    check_every_split(OllamaTracker, body, ctype="application/x-ndjson", model="llama3.2", error=None,
                      usage={"input_tokens": 26, "cached_input_tokens": None, "cache_write_tokens": None,
                             "output_tokens": 9, "reasoning_tokens": None, "total_tokens": 35})


# --- encodings ------------------------------------------------------------------------------

def test_gzip_stream_at_every_split() -> None:
    blob = gzip.compress(sse(CHUNK, {**CHUNK, "choices": [], "usage": USAGE}, "[DONE]"))
    for pieces in every_split(blob):
        tracker, scanner = scanned(ChatTracker, blob, pieces, encoding="gzip")
        assert scanner.problem is None and tokens(tracker) == USAGE_TOKENS


def test_unsupported_content_encoding_sets_problem_and_never_raises() -> None:
    body = sse(CHUNK, {**CHUNK, "usage": USAGE})
    for encoding in ("compress", "x-snappy", "gzip, exotic"):
        tracker, scanner = scanned(ChatTracker, body, [body[:10], body[10:]], encoding=encoding)
        assert scanner.problem == f"cannot decode Content-Encoding {encoding.split(', ')[-1]}"
        assert tracker.usage() is None and tracker.error is None


def test_corrupt_gzip_sets_problem_and_stops() -> None:
    good = gzip.compress(sse(CHUNK, {**CHUNK, "choices": [], "usage": USAGE}))
    corrupt = good[:10] + bytes(b ^ 0x5A for b in good[10:40]) + good[40:]
    for body in (b"this is not gzip at all\n\n", corrupt):
        tracker, scanner = scanned(ChatTracker, body, [body[:12], body[12:], b"more"], encoding="gzip")
        assert scanner.problem is not None and scanner.problem.startswith("cannot decode body")
        assert tracker.usage() is None


def test_identity_encoding_is_no_encoding() -> None:
    body = sse({**CHUNK, "usage": USAGE})
    for encoding in ("", "identity", " Identity "):
        tracker, scanner = scanned(ChatTracker, body, encoding=encoding)
        assert scanner.problem is None and tokens(tracker) == USAGE_TOKENS


def test_oversized_frame_is_counted_and_the_usage_after_it_still_read() -> None:
    # The oversized frame holds a usage object, so it is one the scanner would have to read.
    big = {**CHUNK, "choices": [{"index": 0, "delta": {"content": "x" * 5000}}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    body = sse(CHUNK, big, {**CHUNK, "choices": [], "usage": USAGE})
    tracker = ChatTracker("m")
    scanner = StreamScanner(tracker, SSE, max_frame=1000)
    for i in range(0, len(body), 100):
        scanner.feed(body[i:i + 100])
    scanner.close()
    assert scanner.oversized == 1 and tokens(tracker) == USAGE_TOKENS


# --- whole bodies and robustness ------------------------------------------------------------

def test_scan_body_reads_sse_sent_without_a_stream_flag() -> None:
    tracker = ChatTracker("m")
    scan_body(tracker, sse(CHUNK, {**CHUNK, "choices": [], "usage": USAGE}, "[DONE]"))
    assert tokens(tracker) == USAGE_TOKENS and tracker.model == "gpt-4o-mini-2024-07-18"


def test_feed_after_close_and_empty_feeds_are_harmless() -> None:
    body = sse({**CHUNK, "usage": USAGE})
    tracker, scanner = scanned(ChatTracker, body, [b"", body, b""])
    scanner.feed(b'data: {"usage":{"prompt_tokens":1}}\n\n')
    scanner.close()
    assert tokens(tracker) == USAGE_TOKENS


TRACKERS = st.sampled_from([ChatTracker, MessagesTracker, ResponsesTracker, GeminiTracker, OllamaTracker])


@settings(max_examples=300, deadline=None)
@given(TRACKERS, st.sampled_from([SSE, "application/json", "application/x-ndjson", ""]),
       st.lists(st.binary(max_size=40) | st.sampled_from(
           [b"data: ", b"{", b"[", b"}", b"]", b'"', b"\\", b"\r", b"\n", b'"usage":{', b'"error"', b"\xef\xbb\xbf",
            b'{"usage":{"prompt_tokens":"x"}}', b'{"error":1}', b'{"usageMetadata":[]}', b'"done":true']),
           max_size=30))
def test_any_bytes_never_raise(make, ctype, pieces) -> None:
    tracker = make(None)
    scanner = StreamScanner(tracker, ctype)
    for piece in pieces:
        scanner.feed(piece)
    scanner.close()
    tracker.usage()


# --- what is read where: first frames, needles, and the kept last frames ------------------------

def long_stream(*tail_events: dict, n: int = 2000) -> bytes:
    """An OpenAI-style stream with n content chunks (far more than the kept KEEP bytes)."""
    content = {**CHUNK, "choices": [{"index": 0, "delta": {"content": "word "}}], "usage": None}
    return sse(CHUNK, *([content] * n), *tail_events)


def test_usage_after_a_long_stream_is_read_at_its_end_at_any_split() -> None:
    body = long_stream({**CHUNK, "choices": [], "usage": USAGE})
    assert len(body) > 4 * KEEP
    for step in (1, 97, 4096, len(body)):
        tracker = ChatTracker("m")
        scanner = StreamScanner(tracker, SSE)
        for i in range(0, len(body), step):
            scanner.feed(body[i:i + step])
        scanner.close()
        assert tokens(tracker) == USAGE_TOKENS, step


def test_an_error_event_ending_a_long_stream_is_found() -> None:
    body = long_stream({"error": {"message": "The server had an error while processing your request."}})
    tracker = ChatTracker("m")
    scanner = StreamScanner(tracker, SSE)
    for i in range(0, len(body), 1500):
        scanner.feed(body[i:i + 1500])
    scanner.close()
    assert tracker.error == "The server had an error while processing your request."


def test_a_stream_that_breaks_off_keeps_the_last_cumulative_usage_it_carried() -> None:
    # vLLM's continuous usage stats: every chunk carries the usage so far.
    chunks = [{**CHUNK, "usage": {"prompt_tokens": 5, "completion_tokens": i, "total_tokens": 5 + i}}
              for i in range(1, 400)]
    body = sse(*chunks)
    cut = body[: len(body) - 30]  # the last chunk arrives only in part
    tracker = ChatTracker("m")
    scanner = StreamScanner(tracker, SSE)
    for i in range(0, len(cut), 500):
        scanner.feed(cut[i:i + 500])
    # Only the first frames (before the model was known) were read in mid-stream...
    assert tokens(tracker)["output_tokens"] < 10
    # ...and the kept last frames tell the usage so far.
    scanner.abandon()
    assert tokens(tracker)["output_tokens"] == 398


def test_a_json_body_behind_a_byte_order_mark_is_read() -> None:
    tracker, scanner = scanned(ChatTracker, b'\xef\xbb\xbf{"error":{"message":"bad key"}}', ctype=SSE)
    assert tracker.error == "bad key"


def test_a_json_array_after_any_length_of_white_space_is_read_as_one() -> None:
    """Keep-alive line ends before a Gemini JSON array, in their own chunks: the framer is chosen
    by the first byte after them, not by the 64th blank byte."""
    body = json.dumps([{"candidates": [{"finishReason": "STOP"}], "modelVersion": "gemini-2.5-flash",
                        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}}])
    for pad in (b"\n" * 63, b"\n" * 64, b"\r\n" * 5000):
        tracker, _ = scanned(GeminiTracker, b"", [pad, body.encode()], ctype="application/json")
        assert tracker.usage().total_tokens == 7, len(pad)


def test_a_last_message_delta_without_output_tokens_still_replaces_the_counts() -> None:
    """A compatible server's final message_delta may report only input and cache counts: each
    replaces the start's (ledger.md: a later report replaces an earlier one field by field)."""
    body = named(("message_start", {"type": "message_start", "message": {
                      "type": "message", "model": "claude-x", "usage": {"input_tokens": 5, "output_tokens": 1}}}),
                 *[("content_block_delta", {"type": "content_block_delta", "delta": {"text": "x" * 50}})] * 3000,
                 ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                    "usage": {"input_tokens": 900, "cache_read_input_tokens": 800}}),
                 ("message_stop", {"type": "message_stop"}))
    tracker, _ = scanned(MessagesTracker, body, [body[i:i + 4096] for i in range(0, len(body), 4096)])
    assert tokens(tracker) == {"input_tokens": 1700, "cached_input_tokens": 800, "cache_write_tokens": None,
                               "output_tokens": 1, "reasoning_tokens": None, "total_tokens": 1701}


def test_ndjson_sent_as_application_json_is_read_line_by_line() -> None:
    body = b'{"model":"llama3.2","done":false}\n{"model":"llama3.2","done":true,"prompt_eval_count":3,"eval_count":4}\n'
    tracker, scanner = scanned(OllamaTracker, body, ctype="application/json")
    assert (tracker.usage().input_tokens, tracker.usage().output_tokens) == (3, 4)


def test_a_crlf_body_of_many_megabytes_is_read() -> None:
    event = (b'data: {"candidates":[{"content":{"parts":[{"text":"hi"}]}}],'
             b'"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":7},"modelVersion":"g"}\r\n\r\n')
    body = event * (4_000_000 // len(event))
    tracker = GeminiTracker("m")
    scan_body(tracker, body)  # see benchmarks/ for speed; quadratic framing took 10 s here
    assert tracker.usage().output_tokens == 7


def test_a_last_event_larger_than_keep_is_read_whole_with_its_usage():
    """A finish chunk carrying the usage and 140 kB of content (Responses' response.completed
    repeats the whole output the same way): trimming what is kept must cut before that event,
    never after it, at whatever splits it arrives. Found by a helper fuzzing the scanner."""
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    first = {"model": "gpt-4o-mini", "choices": []}
    big = {"model": "gpt-4o-mini", "choices": [{"delta": {"content": "y" * 140_000}}], "usage": usage}
    for end in ("\n", "\r\n", "\r"):
        body = sse(first, big, "[DONE]", end=end)
        start = body.index(b"data:", 10)
        for pieces in ([body[:start], body[start:]], [body[:start + 140_000], body[start + 140_000:start + 140_001],
                                                      body[start + 140_001:]]):
            tracker, _ = scanned(ChatTracker, body, pieces)
            assert tracker.raw_usage == usage and tracker.ended, (end, [len(p) for p in pieces])
    lines = (json.dumps(first) + "\n" + json.dumps(big) + "\n" + json.dumps({"model": "m", "done": True}) + "\n").encode()
    start = lines.index(b"\n") + 1
    tracker, _ = scanned(ChatTracker, lines, [lines[:start], lines[start:]], ctype="application/x-ndjson")
    assert tracker.raw_usage == usage


def test_usage_whose_json_is_cut_into_data_lines_is_read_wherever_it_comes():
    """A server may cut an event's JSON into several `data:` lines wherever white space may go,
    also between `"usage"`, its colon and its object; the usage is read without a [DONE] or an
    error beside it (found by the helper fuzzing the scanner)."""
    first = b'data: {"model":"gpt-4o-mini","choices":[]}\n\n'
    later = b'data: {"model":"gpt-4o-mini","choices":[{"delta":{"content":"x"}}]}\n\n'
    counts = b'{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
    for cut in (b'"usage":\ndata: ' + counts, b'"usage"\ndata: :' + counts, b'"usage"\ndata:\ndata: :\ndata: ' + counts):
        event = b'data: {"model":"gpt-4o-mini","choices":[],' + cut
        for pieces in ([first, event], [first, event, later], [first + event + later]):
            tracker, _ = scanned(ChatTracker, b"".join(pieces), pieces)
            assert tracker.raw_usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}, (cut, pieces)
