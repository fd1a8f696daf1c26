"""Google Gemini `:generateContent` / `:streamGenerateContent` (AI Studio and Vertex AI).

Streams are SSE with `alt=sse`, else one JSON array sent element by element. Every chunk
carries a cumulative `usageMetadata`: the last one wins (a count it leaves out, or sends as 0
after a non-zero one, keeps its earlier value). `candidatesTokenCount` excludes
thinking, so output is candidates + thoughts. The model is in the URL; `modelVersion` names the
one that answered.
"""

from __future__ import annotations

import re
from typing import Any

from ..usage import Usage, add, count, merge_report
from .base import Recognised, Tracker, error_message

_MODEL_METHOD = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")
PATHS = re.compile(r":(stream)?[gG]enerateContent$")


def recognise(method: str, path: str, body: dict[str, Any] | None) -> Recognised | None:
    if method != "POST":
        return None
    m = _MODEL_METHOD.search(path)
    if not m:
        return None
    return Recognised("gemini", m.group(1), m.group(2) == "streamGenerateContent", body)


class GeminiTracker(Tracker):
    # Every chunk repeats the cumulative usageMetadata, so the last frames hold the final one.
    NEEDLES = ()
    USAGE_MARK = re.compile(rb'"usageMetadata"')

    def on_object(self, obj: dict[str, Any], event: str | None) -> None:
        version = obj.get("modelVersion")
        if isinstance(version, str) and version:
            self.model = version
        if isinstance(obj.get("usageMetadata"), dict):
            self.raw_usage = merge_report(self.raw_usage, obj["usageMetadata"])
        if obj.get("error"):
            self.error = error_message(obj) or "error"

    def normalise(self, raw: dict[str, Any]) -> Usage:
        thoughts = count(raw, "thoughtsTokenCount")
        return Usage(
            input_tokens=count(raw, "promptTokenCount"),
            cached_input_tokens=count(raw, "cachedContentTokenCount"),
            output_tokens=add(count(raw, "candidatesTokenCount"), thoughts),
            reasoning_tokens=thoughts,
            total_tokens=count(raw, "totalTokenCount"),
            raw=raw,
        )


TRACKER = GeminiTracker
