"""OpenAI Chat Completions and every server that speaks it (Azure, Groq, Mistral, vLLM, ...).

Also the legacy `/v1/completions`, which shares the usage object and stream framing.
Usage: the last non-null `usage` object in the stream (Groq's older streams: `x_groq.usage`).
"""

from __future__ import annotations

import re
from typing import Any

from ..usage import Usage, count
from .base import Recognised, Tracker, error_message, json_model, wants_stream

_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/")
PATHS = re.compile(r"/completions$")


def recognise(method: str, path: str, body: dict[str, Any] | None) -> Recognised | None:
    if method != "POST" or body is None:
        return None
    if path.endswith("/chat/completions"):
        api = "openai-chat"
    elif path.endswith("/completions"):
        api = "openai-completions"
    else:
        return None
    deployment = _AZURE_DEPLOYMENT.search(path)
    model = deployment.group(1) if deployment else json_model(body)
    return Recognised(api, model, wants_stream(body), body)


class ChatTracker(Tracker):
    # Usage comes at a stream's end (the include_usage chunk, the finish chunk of Groq, Mistral,
    # DeepSeek, Together) or in every chunk, cumulative (vLLM's continuous stats, Gemini's
    # compatible endpoint): reading the last frames when the stream ends, or breaks off, finds
    # the final count without searching every byte on the way.
    NEEDLES = ()
    USAGE_MARK = Tracker.OPENAI_USAGE
    def on_object(self, obj: dict[str, Any], event: str | None) -> None:
        self.note_model(obj.get("model"))
        if isinstance(obj.get("service_tier"), str):
            self.service_tier = obj["service_tier"]
        usage = obj.get("usage")
        if not isinstance(usage, dict):
            groq = obj.get("x_groq")
            usage = groq.get("usage") if isinstance(groq, dict) else None
        if isinstance(usage, dict):
            self.raw_usage = usage
        if obj.get("error"):
            self.error = error_message(obj) or "error"

    def normalise(self, raw: dict[str, Any]) -> Usage:
        return usage_from_openai(raw)


def usage_from_openai(raw: dict[str, Any]) -> Usage:
    cached = count(raw, "prompt_tokens_details", "cached_tokens")
    if cached is None:
        cached = count(raw, "prompt_cache_hit_tokens")  # DeepSeek's own field
    return Usage(
        input_tokens=count(raw, "prompt_tokens"),
        cached_input_tokens=cached,
        cache_write_tokens=count(raw, "prompt_tokens_details", "cache_write_tokens"),
        output_tokens=count(raw, "completion_tokens"),
        reasoning_tokens=count(raw, "completion_tokens_details", "reasoning_tokens"),
        total_tokens=count(raw, "total_tokens"),
        raw=raw,
    )


TRACKER = ChatTracker
