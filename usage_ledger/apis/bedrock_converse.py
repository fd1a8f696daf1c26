"""Amazon Bedrock's Converse API, every model: `POST bedrock-runtime.{region}.amazonaws.com
/model/{modelId}/converse` and `/converse-stream`.

The model id is in the path, URL-encoded; answers do not name one. Usage is `usage`
(`inputTokens`, `outputTokens`, `totalTokens`, `cacheReadInputTokens`, `cacheWriteInputTokens`)
in the body, or in a stream's `metadata` event; the stream is AWS event-stream
(eventstream.py), one JSON payload per event (`messageStart`, `contentBlockDelta`, ...,
`messageStop`, `metadata`), errors as `exception` messages. `inputTokens` excludes cache reads
and writes (AWS's prompt-caching guide), so the ledger's input is their sum.
Source: botocore/data/bedrock-runtime/2023-09-30/service-2.json (ConverseResponse,
ConverseStreamOutput, TokenUsage), docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html.
"""

from __future__ import annotations

import re
from typing import Any

from ..eventstream import exception_reason
from ..framing import Frame
from ..usage import Usage, add, count, merge_report
from .base import Recognised, Tracker
from .bedrock_invoke import operation

PATHS = re.compile(r"/model/[^/]+/converse(-stream)?$")


def recognise(method: str, path: str, body: dict[str, Any] | None) -> Recognised | None:
    found = operation(path) if method == "POST" else None
    if found is None or not found[1].startswith("converse"):
        return None
    return Recognised("bedrock-converse", found[0], found[1] == "converse-stream", body)


class ConverseTracker(Tracker):
    NEEDLES = ()
    USAGE_MARK = re.compile(rb'"usage"\s*:\s*\{')

    def on_frame(self, frame: Frame) -> None:
        problem = exception_reason(frame)
        if problem is not None:
            self.error = problem
        elif frame.event == "metadata":  # the only event with usage; deltas are never parsed
            super().on_frame(frame)

    def on_object(self, obj: dict[str, Any], event: str | None) -> None:
        if isinstance(obj.get("usage"), dict):
            self.raw_usage = merge_report(self.raw_usage, obj["usage"])

    def normalise(self, raw: dict[str, Any]) -> Usage:
        uncached = count(raw, "inputTokens")
        cache_read = count(raw, "cacheReadInputTokens")
        cache_write = count(raw, "cacheWriteInputTokens")
        return Usage(
            input_tokens=None if uncached is None else add(uncached, cache_read, cache_write),
            cached_input_tokens=cache_read,
            cache_write_tokens=cache_write,
            output_tokens=count(raw, "outputTokens"),
            total_tokens=count(raw, "totalTokens"),
            raw=raw,
        )


TRACKER = ConverseTracker
