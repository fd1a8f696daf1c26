"""OpenAI Chat Completions and every server that speaks it (Azure, Groq, Mistral, vLLM, ...).

Also the legacy `/v1/completions`, which shares the usage object and stream framing.
Usage: the last non-null `usage` object in the stream (Groq's older streams: `x_groq.usage`).
"""

from __future__ import annotations

import re
from typing import Any

from ..usage import Usage, count, first_count, merge_report
from .base import SPACE, Recognised, Tracker, error_message, json_model, wants_stream

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
    USAGE_MARK = re.compile(rb'"(usage|timings)"' + SPACE + rb':' + SPACE + rb'\{')
    END_MARK = re.compile(rb"\[DONE\]")
    END_IN_OBJECTS = False

    def on_object(self, obj: dict[str, Any], event: str | None) -> None:
        self.note_model(obj.get("model"))
        if isinstance(obj.get("service_tier"), str):
            self.service_tier = obj["service_tier"]
        usage = reported_usage(obj)
        if usage is not None:
            self.raw_usage = merge_report(self.raw_usage, usage)
        if obj.get("error"):
            self.error = error_message(obj) or "error"

    def on_text(self, data: bytes) -> None:
        if data.strip() == b"[DONE]":
            self.ended = True

    def normalise(self, raw: dict[str, Any]) -> Usage:
        return usage_from_openai(raw)


def reported_usage(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The usage object in a chat completion or chunk, wherever the server puts it: top-level
    `usage` (OpenAI), `x_groq.usage` (Groq's older streams), `choices[i].usage` (Moonshot/Kimi's
    finish chunk), or llama.cpp's `timings` when it sends no usage."""
    usage = obj.get("usage")
    if isinstance(usage, dict) and usage:
        return usage
    groq = obj.get("x_groq")
    if isinstance(groq, dict) and isinstance(groq.get("usage"), dict):
        return groq["usage"]
    choices = obj.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and isinstance(choice.get("usage"), dict):
                return choice["usage"]
    timings = obj.get("timings")
    if isinstance(timings, dict) and ("prompt_n" in timings or "predicted_n" in timings):
        return {"timings": timings}
    return usage if isinstance(usage, dict) else None  # an empty one, when nothing else says more


def usage_from_openai(raw: dict[str, Any]) -> Usage:
    """OpenAI's usage object, in either naming (Chat's `prompt_tokens`/`completion_tokens` or
    Responses' `input_tokens`/`output_tokens`, which some chat servers use), with the other
    names servers give the same counts: DeepSeek's `prompt_cache_hit_tokens`, Moonshot's
    top-level `cached_tokens`, LiteLLM's Anthropic-style `cache_read_input_tokens` and
    `cache_creation_input_tokens`, Perplexity's top-level `reasoning_tokens`, llama.cpp's
    `timings` (`prompt_n` evaluated + `cache_n` reused, `predicted_n`).
    Source: platform.openai.com/docs/api-reference/chat/object and each server's docs."""
    tokens_in = first_count(raw, ("prompt_tokens",), ("input_tokens",))
    cached = first_count(raw, ("prompt_tokens_details", "cached_tokens"), ("input_tokens_details", "cached_tokens"),
                         ("prompt_cache_hit_tokens",), ("cached_tokens",), ("cache_read_input_tokens",))
    if tokens_in is None and count(raw, "timings", "prompt_n") is not None:
        cached = count(raw, "timings", "cache_n")
        tokens_in = count(raw, "timings", "prompt_n") + (cached or 0)  # type: ignore[operator]
    return Usage(
        input_tokens=tokens_in,
        cached_input_tokens=cached,
        cache_write_tokens=first_count(
            raw, ("prompt_tokens_details", "cache_write_tokens"), ("input_tokens_details", "cache_write_tokens"),
            ("cache_creation_input_tokens",)),
        output_tokens=first_count(raw, ("completion_tokens",), ("output_tokens",), ("timings", "predicted_n")),
        reasoning_tokens=first_count(
            raw, ("completion_tokens_details", "reasoning_tokens"), ("output_tokens_details", "reasoning_tokens"),
            ("reasoning_tokens",)),
        total_tokens=count(raw, "total_tokens"),
        raw=raw,
        by_total=True,
    )


TRACKER = ChatTracker
