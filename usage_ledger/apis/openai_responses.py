"""OpenAI Responses (`/v1/responses`, `/v1/responses/compact`).

Streams are named SSE events; usage arrives with the terminal event (`response.completed`,
`.incomplete`, `.failed`, or `response.done` from Codex backends), inside `response`.
`/responses/input_tokens` (a count) and GETs of stored responses are not billable calls; but a
background response (`background: true`) answers `queued` with `usage: null`, and its usage
arrives on a later `GET /responses/{id}` (or its `?stream=true` replay), which background.py
matches back to the call.
"""

from __future__ import annotations

import re
from typing import Any

from ..usage import Usage
from .base import Recognised, Tracker, error_message, json_model, wants_stream
from .openai_chat import usage_from_openai

PATHS = re.compile(r"/responses(/compact)?$")


def recognise(method: str, path: str, body: dict[str, Any] | None) -> Recognised | None:
    if method != "POST" or body is None:
        return None
    if not (path.endswith("/responses") or path.endswith("/responses/compact")):
        return None
    return Recognised("openai-responses", json_model(body), wants_stream(body), body)


TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed",
                             "response.cancelled", "response.done", "error"})
"""The event types that end a Responses stream (SSE or WebSocket)."""


class ResponsesTracker(Tracker):
    # Usage comes only with the terminal event, the stream's last: nothing is searched on the way.
    NEEDLES = ()
    USAGE_MARK = Tracker.OPENAI_USAGE
    END_MARK = re.compile(rb'"response\.(completed|incomplete|failed|cancelled|done)"')

    def __init__(self, model_requested: str | None = None) -> None:
        super().__init__(model_requested)
        self.response_id: str | None = None
        self.status: str | None = None
        """The response's last reported `status`: `queued`/`in_progress` for a background
        response still running when its answer ends (its usage comes on a later poll)."""

    @property
    def unfinished(self) -> bool:
        return self.response_id is not None and self.status in ("queued", "in_progress")

    def on_object(self, obj: dict[str, Any], event: str | None) -> None:
        kind = obj.get("type") or event
        response = obj.get("response") if isinstance(obj.get("response"), dict) else None
        if response is None and (kind is None or obj.get("object") in ("response", "response.compaction")):
            response = obj  # a non-streamed body is the response itself
        if response is not None:
            self.note_model(response.get("model"))
            if isinstance(response.get("id"), str):
                self.response_id = response["id"]
            if isinstance(response.get("status"), str):
                self.status = response["status"]
            if self.status == "failed" and not self.error:
                self.error = error_message(response) or "response failed"
            if isinstance(response.get("service_tier"), str):
                self.service_tier = response["service_tier"]
            if isinstance(response.get("usage"), dict):
                self.raw_usage = response["usage"]
            if kind == "response.failed":
                self.error = error_message(response) or "response failed"
        if kind == "error":
            self.error = error_message(obj) or "error"
        if kind in TERMINAL_EVENTS:
            self.ended = True

    def normalise(self, raw: dict[str, Any]) -> Usage:
        return usage_from_openai(raw)


TRACKER = ResponsesTracker
