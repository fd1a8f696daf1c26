"""OpenAI Responses over WebSocket (Codex: `GET /v1/responses` on api.openai.com with an API
key, `GET /backend-api/codex/responses` on chatgpt.com signed in with ChatGPT).

One connection carries many responses. Each starts with a client text message
`{"type": "response.create", "model": ..., "input": ..., ...}` (Codex's first may be a warm-up
with `"generate": false`; later ones carry `previous_response_id`); the server answers with one
text message per event, the same JSON as the SSE `data:` payloads, ending with
`response.completed` (or `.incomplete` / `.failed` / `.done` / `error`), whose `response.usage`
is the usage. Codex's `response.processed` acknowledgements and `codex.rate_limits` events are
not calls. Source: openai/codex, codex-rs/codex-api/src/endpoint/responses_websocket.rs and
common.rs (`ResponsesWsRequest`).

Pure: message bytes in, calls out. Almost every server message is a delta: a regex over its bytes
(C speed) decides whether it can be an event that matters, and only those are parsed.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .. import json_bytes
from .base import Tracker, error_message
from .openai_responses import TERMINAL_EVENTS, ResponsesTracker

PATHS = re.compile(r"/responses$")

_CREATE = re.compile(rb'"type"\s*:\s*"response\.create"')
# `"type"` right after a quote that is not escaped: a key, never text inside a JSON string.
_MATTERS = re.compile(rb'"type"\s*:\s*"(response\.(created|completed|incomplete|failed|cancelled|done)|error)"')


def is_responses_websocket(method: str, path: str) -> bool:
    """Is this WebSocket upgrade request (its path without the query) a Responses connection?"""
    return method == "GET" and PATHS.search(path) is not None


@dataclass
class WsResponse:
    """One `response.create` and what the server said about it."""

    number: int
    """1 for the connection's first response.create, 2 for the next, ..."""
    created_at: float
    """When the client sent its response.create (UNIX seconds)."""
    model_requested: str | None
    warmup: bool
    tracker: Tracker
    response_id: str | None = None
    first_event_at: float | None = None
    ended_at: float | None = None
    status_code: int | None = None
    """The HTTP status an `error` event names (Codex's wrapped 429s, 401s), else None."""
    announced: bool = False
    """Its row has been started (the proxy's own mark: websocket.py)."""

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


@dataclass
class ResponsesSocket:
    """The responses of one WebSocket connection, in the order the client asked for them."""

    open: list[WsResponse] = field(default_factory=list)
    created: int = 0
    ended_ids: deque[str] = field(default_factory=lambda: deque(maxlen=64))
    """Ids of the last responses that ended: a terminal event repeated for one ends no other."""

    def client_message(self, content: bytes, at: float) -> WsResponse | None:
        """A client text message: the new response when it is a `response.create`."""
        body = response_create(content)
        if body is None:
            return None
        self.created += 1
        model = body.get("model") if isinstance(body.get("model"), str) and body.get("model") else None
        tracker = ResponsesTracker(model)
        response = WsResponse(self.created, at, model, body.get("generate") is False, tracker)
        self.open.append(response)
        return response

    def server_message(self, content: bytes, at: float) -> WsResponse | None:
        """A server text message: the response it ended, if it ended one."""
        # The server answers responses in order (Codex sends the next response.create once the
        # last has ended): a message is the oldest open response's, as far as timing goes.
        if self.open and self.open[0].first_event_at is None:
            self.open[0].first_event_at = at
        if _MATTERS.search(content) is None:
            return None
        event = json_object(content)
        kind = event.get("type") if event is not None else None
        if kind != "response.created" and kind not in TERMINAL_EVENTS:
            return None
        inner = event.get("response") if isinstance(event.get("response"), dict) else {}
        response = self._for(inner.get("id"), kind)
        if response is None:
            return None
        response.tracker.on_object(event, kind)
        if kind == "response.created":
            if isinstance(inner.get("id"), str):
                response.response_id = inner["id"]
            return None
        if kind == "error":
            status = event.get("status", event.get("status_code"))
            if isinstance(status, int) and not isinstance(status, bool) and not 200 <= status < 300:
                response.status_code = status
            response.tracker.error = response.tracker.error or error_message(event) or "error"
        response.ended_at = at
        self.open.remove(response)
        if response.response_id is not None:
            self.ended_ids.append(response.response_id)
        return response

    def _for(self, response_id: Any, kind: str) -> WsResponse | None:
        """The open response an event is about. With an id: the one it names, else none if that
        one has ended (a terminal event repeated), else the oldest the server has not named yet
        (it names it here first). Without: for `response.created` and an `error` (refusing a
        request) the oldest not named yet; else, and for an `error` when all are named, the
        oldest (an `error` mid-response ends it)."""
        if isinstance(response_id, str):
            for response in self.open:
                if response.response_id == response_id:
                    return response
            if response_id in self.ended_ids:
                return None
            return next((r for r in self.open if r.response_id is None), None)
        if kind in ("response.created", "error"):
            unnamed = next((r for r in self.open if r.response_id is None), None)
            if unnamed is not None or kind == "response.created":
                return unnamed
        return self.open[0] if self.open else None


def response_create(content: bytes) -> dict[str, Any] | None:
    """A client message's JSON when it is a `response.create` (Responses over WebSocket and
    Realtime name it alike), else None; a cheap search first, so most messages are not parsed."""
    if _CREATE.search(content) is None:
        return None
    body = json_object(content)
    return body if body is not None and body.get("type") == "response.create" else None


def json_object(content: bytes) -> dict[str, Any] | None:
    """A message's JSON object, or None when it is not one."""
    try:
        obj = json_bytes.loads(content)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None
