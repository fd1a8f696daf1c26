"""Ollama's native API (`/api/chat`, `/api/generate`, `/api/embed`): NDJSON or one JSON body.

Counts come from the final `done: true` object. Ollama streams unless the body says
`"stream": false`.
"""

from __future__ import annotations

import re
from typing import Any

from ..usage import Usage, count
from .base import Recognised, Tracker, error_message, json_model, wants_stream

_PATHS = ("/api/chat", "/api/generate", "/api/embed", "/api/embeddings")
PATHS = re.compile(r"/api/(chat|generate|embed|embeddings)$")


def recognise(method: str, path: str, body: dict[str, Any] | None) -> Recognised | None:
    if method != "POST" or body is None or not path.endswith(_PATHS) or "model" not in body:
        return None
    streams = path.endswith(("/api/chat", "/api/generate"))
    return Recognised("ollama", json_model(body), streams and wants_stream(body, default=True), body)


class OllamaTracker(Tracker):
    NEEDLES = (b"eval_count",)
    END_MARK = re.compile(rb'"done"\s*:\s*true')

    def on_object(self, obj: dict[str, Any], event: str | None) -> None:
        self.note_model(obj.get("model"))
        if obj.get("done") is True:
            self.ended = True
        if obj.get("done") is True or "prompt_eval_count" in obj:
            self.raw_usage = {k: v for k, v in obj.items() if k.endswith(("_count", "_duration"))}
        if obj.get("error"):
            self.error = error_message(obj) or "error"

    def normalise(self, raw: dict[str, Any]) -> Usage:
        return Usage(
            input_tokens=count(raw, "prompt_eval_count"),
            output_tokens=count(raw, "eval_count"),
            raw=raw,
        )


TRACKER = OllamaTracker
