"""Throughput of the usage scanner on long streams, against a naive per-frame json.loads scanner.

    uv run python benchmarks/bench_scanner.py [--chunks 20000] [--repeat 5] [--chunk-bytes 1024-4096] [--profile]

Builds long, realistic streams (OpenAI chat with obfuscation and an include_usage chunk at the
end, Anthropic Messages, OpenAI Responses), cuts each into network-sized pieces (1-4 KiB, fixed
seed) and times:

  ours   StreamScanner + the API's tracker (what the addon runs on every streamed chunk)
  hide   for OpenAI chat, the filter that cuts out the usage chunk the proxy asked for, feeding
         the scanner (what the addon runs when the client did not ask for usage itself)
  naive  split lines, json.loads every `data:` frame, keep the last usage seen

The ledger requires ours (and hide) to be at least 20x the naive scanner on a long stream; the
exit status is 1 when any stream falls below that.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import json
import pstats
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from usage_ledger.apis.anthropic_messages import MessagesTracker  # noqa: E402
from usage_ledger.apis.base import Tracker  # noqa: E402
from usage_ledger.apis.openai_chat import ChatTracker  # noqa: E402
from usage_ledger.apis.openai_responses import ResponsesTracker  # noqa: E402
from usage_ledger.hide import UsageChunkFilter  # noqa: E402
from usage_ledger.scanner import StreamScanner  # noqa: E402

REQUIRED_RATIO = 20.0

_WORDS = ("the", " model", " returns", " a", " token", " at", " a", " time", ",", " and", " each",
          " one", " arrives", " as", " its", " own", " chunk", ".", "\n\n", " Über", " naïve",
          " café", " 東京", " 🙂", " `code`", " \"quoted\"", " {braces}", " [brackets]", "10", " +")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _word(rng: random.Random) -> str:
    return rng.choice(_WORDS)


def _obfuscation(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(2, 14)))


def _sse(obj: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return head + "data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n\n"


def chat_stream(n: int, rng: random.Random, obfuscation: bool = True) -> tuple[bytes, dict[str, Any]]:
    """OpenAI chat completions with stream_options.include_usage, as api.openai.com sends it."""
    base = {"id": "chatcmpl-ChZNa5AVXUvGOZAleY7FgQlVr6bxn", "object": "chat.completion.chunk",
            "created": 1764500138, "model": "gpt-4o-mini-2024-07-18", "service_tier": "default",
            "system_fingerprint": "fp_50906f2aac"}
    out = []
    for i in range(n):
        delta = {"role": "assistant", "content": "", "refusal": None} if i == 0 else {"content": _word(rng)}
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
                 "usage": None}
        if obfuscation:
            chunk["obfuscation"] = _obfuscation(rng)
        out.append(_sse(chunk))
    usage = {"prompt_tokens": 23, "completion_tokens": n, "total_tokens": 23 + n,
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    final = {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], "usage": None}
    out.append(_sse(final))
    out.append(_sse({**base, "choices": [], "usage": usage}))
    out.append("data: [DONE]\n\n")
    return "".join(out).encode(), usage


def anthropic_stream(n: int, rng: random.Random) -> tuple[bytes, dict[str, Any]]:
    """Anthropic Messages: message_start, n text deltas (with padding), message_delta, stop."""
    start_usage = {"input_tokens": 17, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                   "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                   "output_tokens": 1, "service_tier": "standard"}
    out = [_sse({"type": "message_start", "message": {
        "model": "claude-sonnet-4-5-20250929", "id": "msg_017A4s3HAsrqf5d2WvBmrpLr", "type": "message",
        "role": "assistant", "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": start_usage}}, "message_start"),
        _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
             "content_block_start")]
    for i in range(n):
        if i % 500 == 0:
            out.append('event: ping\ndata: {"type": "ping"}\n\n')
        event = _sse({"type": "content_block_delta", "index": 0,
                      "delta": {"type": "text_delta", "text": _word(rng)}}, "content_block_delta")
        out.append(event[:-3] + " " * rng.randint(0, 12) + "}\n\n")  # Anthropic pads before the brace
    out.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    delta_usage = {"input_tokens": 17, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                   "output_tokens": n}
    out.append(_sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                     "usage": delta_usage}, "message_delta"))
    out.append(_sse({"type": "message_stop"}, "message_stop"))
    return "".join(out).encode(), {**start_usage, **delta_usage}


def responses_stream(n: int, rng: random.Random) -> tuple[bytes, dict[str, Any]]:
    """OpenAI Responses: created, in_progress, n output_text deltas, done events, completed
    (which repeats the whole output text)."""
    rid, mid = "resp_00592e63e61b66660169fab1b9f8e481a2b321356198d7ac1b", "msg_0dacb603de1c9e6b0169fab1c2e40081"
    response = {"id": rid, "object": "response", "created_at": 1778037177, "status": "in_progress",
                "background": False, "error": None, "incomplete_details": None, "instructions": None,
                "max_output_tokens": None, "model": "gpt-5.5-2026-04-23", "output": [],
                "parallel_tool_calls": True, "previous_response_id": None,
                "reasoning": {"effort": "low", "summary": None}, "service_tier": "auto", "store": False,
                "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
                "tool_choice": "auto", "tools": [], "top_p": 0.98, "truncation": "disabled",
                "usage": None, "user": None, "metadata": {}}
    seq = 0
    out = []
    for kind in ("response.created", "response.in_progress"):
        out.append(_sse({"type": kind, "response": response, "sequence_number": seq}, kind))
        seq += 1
    text = []
    for _ in range(n):
        word = _word(rng)
        text.append(word)
        out.append(_sse({"type": "response.output_text.delta", "content_index": 0, "delta": word,
                         "item_id": mid, "logprobs": [], "obfuscation": _obfuscation(rng),
                         "output_index": 0, "sequence_number": seq}, "response.output_text.delta"))
        seq += 1
    full = "".join(text)
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": full}
    item = {"id": mid, "type": "message", "status": "completed", "content": [part], "role": "assistant"}
    out.append(_sse({"type": "response.output_text.done", "content_index": 0, "item_id": mid, "logprobs": [],
                     "output_index": 0, "sequence_number": seq, "text": full}, "response.output_text.done"))
    out.append(_sse({"type": "response.content_part.done", "content_index": 0, "item_id": mid,
                     "output_index": 0, "part": part, "sequence_number": seq + 1}, "response.content_part.done"))
    out.append(_sse({"type": "response.output_item.done", "item": item, "output_index": 0,
                     "sequence_number": seq + 2}, "response.output_item.done"))
    usage = {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": n,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 11 + n}
    done = {**response, "status": "completed", "output": [item], "service_tier": "default", "usage": usage}
    out.append(_sse({"type": "response.completed", "response": done, "sequence_number": seq + 3},
                    "response.completed"))
    return "".join(out).encode(), usage


def network_chunks(body: bytes, rng: random.Random, lo: int = 1024, hi: int = 4096) -> list[bytes]:
    chunks, i = [], 0
    while i < len(body):
        n = rng.randint(lo, hi)
        chunks.append(body[i:i + n])
        i += n
    return chunks


# --- the two scanners ------------------------------------------------------------------------

def ours(make_tracker: Callable[[], Tracker], chunks: list[bytes], encoding: str = "") -> dict[str, Any] | None:
    tracker = make_tracker()
    scanner = StreamScanner(tracker, "text/event-stream", encoding)
    feed = scanner.feed
    for chunk in chunks:
        feed(chunk)
    scanner.close()
    assert scanner.problem is None, scanner.problem
    return tracker.raw_usage


def hiding(make_tracker: Callable[[], Tracker], chunks: list[bytes],
           keep: bool = False) -> tuple[dict[str, Any] | None, bytes | None]:
    """What the addon runs on a stream whose usage chunk it asked for: scan and filter. The
    bytes for the client are kept only when asked (the proxy sends them on and drops them)."""
    tracker = make_tracker()
    scanner = StreamScanner(tracker, "text/event-stream", "")
    hide = UsageChunkFilter(scanner.feed_frames).feed  # it hands the scanner every byte, as in call.py
    out: list[bytes] = []
    for chunk in chunks:
        pieces = hide(chunk)
        if keep:
            out += pieces
    out += hide(b"")
    scanner.close()
    return tracker.raw_usage, b"".join(out) if keep else None


def _usage_of(obj: Any) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        return None
    for holder in (obj, obj.get("message"), obj.get("response")):
        if isinstance(holder, dict) and isinstance(holder.get("usage"), dict):
            return holder["usage"]
    return None


def naive(chunks: list[bytes]) -> dict[str, Any] | None:
    """Line splitting plus json.loads of every data frame; the last usage object wins (merged,
    so Anthropic's message_start counts survive a message_delta that lacks them)."""
    usage: dict[str, Any] | None = None
    buf = b""
    for chunk in chunks:
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                continue
            found = _usage_of(json.loads(data))
            if found is not None:
                usage = {**(usage or {}), **found}
    return usage


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def bench(name: str, body: bytes, usage: dict[str, Any], make_tracker: Callable[[], Tracker],
          repeat: int, profile: bool, sizes: tuple[int, int] = (1024, 4096)) -> float:
    rng = random.Random(7)
    chunks = network_chunks(body, rng, *sizes)
    frames = body.count(b"\n\n")
    t_ours, got = _best(lambda: ours(make_tracker, chunks), repeat)
    t_naive, got_naive = _best(lambda: naive(chunks), repeat)
    for label, value in (("ours", got), ("naive", got_naive)):
        missing = {k: v for k, v in usage.items() if (value or {}).get(k) != v}
        assert not missing, f"{name}: {label} scanner got the wrong usage: {missing}"
    mb = len(body) / 1e6
    ratio = t_naive / t_ours
    print(f"{name}: {mb:.1f} MB, {frames} frames, {len(chunks)} network chunks of {sizes[0]}-{sizes[1]} bytes")
    print(f"  ours   {t_ours * 1e3:8.1f} ms  {mb / t_ours:8.1f} MB/s  {len(chunks) / t_ours:10.0f} chunks/s")
    print(f"  naive  {t_naive * 1e3:8.1f} ms  {mb / t_naive:8.1f} MB/s  {len(chunks) / t_naive:10.0f} chunks/s")
    verdict = "ok" if ratio >= REQUIRED_RATIO else "BELOW"
    print(f"  ratio  {ratio:8.1f}x  ({verdict} the required {REQUIRED_RATIO:.0f}x)")

    if name == "openai-chat":
        t_hide, _ = _best(lambda: hiding(make_tracker, chunks), repeat)
        got_hide, shown = hiding(make_tracker, chunks, keep=True)
        usage_chunk = body[body.rindex(b"data: {", 0, body.rindex(b"data: [DONE]")):body.rindex(b"data: [DONE]")]
        assert got_hide == got and shown == body.replace(usage_chunk, b""), "hide: wrong usage or client bytes"
        hide_ratio = t_naive / t_hide
        print(f"  hide   {t_hide * 1e3:8.1f} ms  {mb / t_hide:8.1f} MB/s  {len(chunks) / t_hide:10.0f} chunks/s"
              f"  ratio {hide_ratio:.1f}x  ({'ok' if hide_ratio >= REQUIRED_RATIO else 'BELOW'})")
        ratio = min(ratio, hide_ratio)
        # One long event (a big JSON document answered to a stream request): held in pieces and
        # joined once, so its cost grows with its size, not with its size squared.
        big = b'data: {"choices":[{"delta":{"content":"' + b"x" * 8_000_000 + b'"}}]}\n\n'
        big_chunks = network_chunks(big, random.Random(7), *sizes)
        t_big, _ = _best(lambda: hiding(make_tracker, big_chunks), repeat)
        print(f"  hide, one {len(big) / 1e6:.0f} MB event: {t_big * 1e3:.1f} ms, {len(big) / 1e6 / t_big:.0f} MB/s")

    gz = gzip.compress(body)
    gz_chunks = network_chunks(gz, random.Random(7), *sizes)
    t_gz, got_gz = _best(lambda: ours(make_tracker, gz_chunks, "gzip"), repeat)
    assert got_gz == got
    print(f"  ours, gzip on the wire ({len(gz) / 1e6:.2f} MB in {len(gz_chunks)} chunks): "
          f"{t_gz * 1e3:.1f} ms, {mb / t_gz:.1f} MB/s decoded")
    if profile:
        prof = cProfile.Profile()
        prof.runcall(ours, make_tracker, chunks)
        pstats.Stats(prof).sort_stats("tottime").print_stats(8)
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000, help="content chunks per stream")
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    parser.add_argument("--no-obfuscation", action="store_true", help="chat chunks without `obfuscation`")
    parser.add_argument("--profile", action="store_true", help="cProfile our scanner on each stream")
    parser.add_argument("--chunk-bytes", default="1024-4096", help="network chunk sizes, min-max (default 1024-4096)")
    args = parser.parse_args(argv)
    lo, _, hi = args.chunk_bytes.partition("-")
    sizes = (int(lo), int(hi or lo))

    rng = random.Random(1)
    streams = [
        ("openai-chat", *chat_stream(args.chunks, rng, not args.no_obfuscation),
         lambda: ChatTracker("gpt-4o-mini")),
        ("anthropic-messages", *anthropic_stream(args.chunks, rng),
         lambda: MessagesTracker("claude-sonnet-4-5")),
        ("openai-responses", *responses_stream(args.chunks, rng),
         lambda: ResponsesTracker("gpt-5.5")),
    ]
    ratios = [bench(name, body, usage, make, args.repeat, args.profile, sizes) for name, body, usage, make in streams]
    worst = min(ratios)
    print(f"worst ratio {worst:.1f}x; required {REQUIRED_RATIO:.0f}x: {'PASS' if worst >= REQUIRED_RATIO else 'FAIL'}")
    return 0 if worst >= REQUIRED_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
