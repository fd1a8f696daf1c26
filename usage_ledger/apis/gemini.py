"""Google Gemini `:generateContent` / `:streamGenerateContent` (AI Studio, Vertex AI, and
Gemini Code Assist).

Streams are SSE with `alt=sse`, else one JSON array sent element by element. Every chunk
carries a cumulative `usageMetadata`: the last one wins (a count it leaves out, or sends as 0
after a non-zero one, keeps its earlier value). `candidatesTokenCount` excludes
thinking, so output is candidates + thoughts. The model is in the URL; `modelVersion` names the
one that answered.

Gemini Code Assist (`cloudcode-pa.googleapis.com`, Gemini CLI's "Login with Google", Cloud Code
in IDEs) serves the same calls as `POST /v1internal:generateContent` and
`/v1internal:streamGenerateContent?alt=sse`: the model is the body's top-level `model`, the
Gemini request sits under `request`, and each response object wraps a Gemini response:
`{"response": {"candidates", "usageMetadata", "modelVersion"}, "traceId", "consumedCredits"}`.
Its other methods (`:countTokens`, `:loadCodeAssist`, `:onboardUser`, ...) are not billable.
Source: google-gemini/gemini-cli packages/core/src/code_assist/server.ts and converter.ts.
"""

from __future__ import annotations

import re
from typing import Any

from ..usage import Usage, add, count, merge_report
from .base import Recognised, Tracker, error_message, json_model

_MODEL_METHOD = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")
_CODE_ASSIST_METHOD = re.compile(r"^/v1[a-z0-9]*:(generateContent|streamGenerateContent)$")
"""`{version}:{method}` right under the host: Code Assist's `getMethodUrl` (the version is
`v1internal` unless CODE_ASSIST_API_VERSION says otherwise)."""
PATHS = re.compile(r":(stream)?[gG]enerateContent$")


def recognise(method: str, path: str, body: dict[str, Any] | None) -> Recognised | None:
    if method != "POST":
        return None
    m = _MODEL_METHOD.search(path)
    if m:
        return Recognised("gemini", m.group(1), m.group(2) == "streamGenerateContent", body)
    m = _CODE_ASSIST_METHOD.search(path)
    if m and body is not None and isinstance(body.get("request"), dict):
        return Recognised("gemini", json_model(body), m.group(1) == "streamGenerateContent", body)
    return None


class GeminiTracker(Tracker):
    # Every chunk repeats the cumulative usageMetadata, so the last frames hold the final one.
    NEEDLES = ()
    USAGE_MARK = re.compile(rb'"usageMetadata"')
    END_MARK = re.compile(rb'"finishReason"')

    def on_object(self, obj: dict[str, Any], event: str | None) -> None:
        if isinstance(obj.get("response"), dict) and "candidates" not in obj:
            wrapped = obj["response"]  # Code Assist's envelope
            if obj.get("error") and not wrapped.get("error"):
                wrapped = {**wrapped, "error": obj["error"]}
            obj = wrapped
        version = obj.get("modelVersion")
        if isinstance(version, str) and version:
            self.model = version
        if isinstance(obj.get("usageMetadata"), dict):
            self.raw_usage = merge_report(self.raw_usage, obj["usageMetadata"])
        if obj.get("error"):
            self.error = error_message(obj) or "error"
        candidates = obj.get("candidates")
        if isinstance(candidates, list) and any(isinstance(c, dict) and c.get("finishReason")
                                                for c in candidates):
            self.ended = True  # the last chunk: the one that says why generation stopped

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
