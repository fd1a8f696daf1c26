"""Anthropic Messages (`/v1/messages`; Vertex AI's `:rawPredict` / `:streamRawPredict`, whose
`models/count-tokens:rawPredict` counts tokens and is not a call).

`message_start` carries the input and cache counts, each `message_delta` the cumulative output
and, in newer streams, final input and cache counts that replace the start's. Fields are
replaced, never added, and a count never falls back to 0 once reported non-zero
(Anthropic-compatible servers send `input_tokens: 0` in their final `message_delta`). Anthropic's `input_tokens` excludes cache reads and writes; the ledger's
includes them.
"""

from __future__ import annotations

import re
from typing import Any

from ..usage import Usage, add, count, merge_report
from .base import Recognised, Tracker, error_message, json_model, wants_stream

_VERTEX_MODEL = re.compile(r"/publishers/anthropic/models/([^/:]+):(stream)?[rR]awPredict$")
PATHS = re.compile(r"/v1/messages$|:(stream)?[rR]awPredict$")


def recognise(method: str, path: str, body: dict[str, Any] | None) -> Recognised | None:
    if method != "POST" or body is None:
        return None
    if path.endswith("/v1/messages"):
        return Recognised("anthropic-messages", json_model(body), wants_stream(body), body)
    vertex = _VERTEX_MODEL.search(path)
    if vertex and vertex.group(1) != "count-tokens":  # the Vertex SDKs' count_tokens: not a call
        stream = bool(vertex.group(2)) or wants_stream(body)
        return Recognised("anthropic-messages", vertex.group(1), stream, body)
    return None


class MessagesTracker(Tracker):
    NEEDLES = (b"output_tokens",)  # in message_start's usage and every message_delta's
    # ...from Anthropic; a compatible server's last message_delta may report only other counts.
    USAGE_MARK = Tracker.OPENAI_USAGE
    END_MARK = re.compile(rb'"message_stop"')

    def on_object(self, obj: dict[str, Any], event: str | None) -> None:
        kind = obj.get("type")
        if kind == "message_start" and isinstance(obj.get("message"), dict):
            obj = obj["message"]
            kind = "message"
        if kind == "message":
            self.note_model(obj.get("model"))
            if isinstance(obj.get("usage"), dict):
                self.raw_usage = dict(obj["usage"])
        elif kind == "message_delta" and isinstance(obj.get("usage"), dict):
            self.raw_usage = merge_report(self.raw_usage, obj["usage"])
        elif kind == "error":
            self.error = error_message(obj) or "error"
        elif kind == "message_stop":
            self.ended = True
        if isinstance((self.raw_usage or {}).get("service_tier"), str):
            self.service_tier = self.raw_usage["service_tier"]  # type: ignore[index]

    def normalise(self, raw: dict[str, Any]) -> Usage:
        uncached = count(raw, "input_tokens")
        cache_read = count(raw, "cache_read_input_tokens")
        cache_write = count(raw, "cache_creation_input_tokens")
        if cache_write is None:  # only the per-TTL breakdown (some compatible servers)
            cache_write = add(count(raw, "cache_creation", "ephemeral_5m_input_tokens"),
                              count(raw, "cache_creation", "ephemeral_1h_input_tokens"))
        return Usage(
            input_tokens=None if uncached is None else add(uncached, cache_read, cache_write),
            cached_input_tokens=cache_read,
            cache_write_tokens=cache_write,
            output_tokens=count(raw, "output_tokens"),
            raw=raw,
        )


TRACKER = MessagesTracker
