"""OpenAI Realtime over WebSocket: `GET /v1/realtime?model=...` upgraded to a WebSocket (Azure:
`/openai/realtime?deployment=...`, `/openai/v1/realtime?model=...`).

One connection is one session. The server opens it with `session.created` (its `session.model`
names the model; `session.updated` may repeat it). A response starts with the client's
`{"type": "response.create", "response": {...}}` or, with server voice activity detection,
without one: the server creates it when the user stops speaking. Either way the server sends
`response.created` (`response.id`), deltas that carry `response_id`, and always, whatever the
final status (`completed`, `cancelled`, `incomplete`, `failed`), `response.done`, whose
`response.usage` is the response's usage:

    {"input_tokens", "output_tokens", "total_tokens",
     "input_token_details": {"cached_tokens", "text_tokens", "audio_tokens", "image_tokens",
                             "cached_tokens_details": {"text_tokens", "audio_tokens", "image_tokens"}},
     "output_token_details": {"text_tokens", "audio_tokens"}}

Input counts every prompt token, cached included (`text + audio + image = input`, each modality's
count includes its cached part), output every generated token. Out-of-band responses
(`"conversation": "none"`) may run beside the conversation's own, so events are matched to a
response by its id. An `error` event refuses the client event it names (`error.event_id`); one
that arrives while a `response.create` has not been answered with `response.created` yet ends
that response (the one it names, else the oldest). Other errors (a bad `session.update`, an
empty audio buffer) end nothing. Sources: platform.openai.com/docs/api-reference/realtime-server-events
and realtime-client-events; platform.openai.com/docs/guides/realtime-conversations.

Pure: message bytes in, responses out. Audio deltas are most of the traffic, both ways: a regex
over a message's bytes decides whether it can be one of the few events that matter, and only
those are parsed.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from ..usage import Usage, count
from .base import Tracker, error_message
from .openai_responses_ws import WsResponse, json_object, response_create

API = "openai-realtime"
PATHS = re.compile(r"/realtime$")

_ABOUT_A_RESPONSE = re.compile(r"response", re.I)
"""An `error` naming no client event refuses a response.create only when it speaks of a response
(`conversation_already_has_active_response`), not of another event (`input_audio_buffer_commit_empty`)."""
_MATTERS = re.compile(rb'"type"\s*:\s*"(session\.(created|updated)|response\.(created|done)|error)"')


def is_realtime_websocket(method: str, path: str) -> bool:
    """Is this WebSocket upgrade request (its path without the query) a Realtime session?"""
    return method == "GET" and PATHS.search(path) is not None


def requested_model(query: str) -> str | None:
    """The model the upgrade's query names: `model=` (OpenAI, Azure's v1) or Azure's `deployment=`."""
    found = dict(parse_qsl(query))
    model = found.get("model") or found.get("deployment")
    return model or None


def subprotocol_key(header: str) -> str | None:
    """The API key a browser client sends as a WebSocket subprotocol (it cannot set headers):
    `Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.<key>`."""
    for part in header.split(","):
        name, dot, key = part.strip().partition(".")
        if dot and name == "openai-insecure-api-key" and key:
            return key
    return None


class RealtimeTracker(Tracker):
    """One response's `response.done`: its usage, and the error of a failed one. The model comes
    from the session (the response object names none)."""

    NEEDLES = ()

    def on_object(self, obj: dict[str, Any], event: str | None) -> None:
        response = obj.get("response") if isinstance(obj.get("response"), dict) else {}
        if isinstance(response.get("usage"), dict):
            self.raw_usage = response["usage"]
        if response.get("status") == "failed":
            self.error = error_message(response.get("status_details")) or "response failed"
        if obj.get("type") == "response.done":
            self.ended = True

    def normalise(self, raw: dict[str, Any]) -> Usage:
        return Usage(
            input_tokens=count(raw, "input_tokens"),
            cached_input_tokens=count(raw, "input_token_details", "cached_tokens"),
            output_tokens=count(raw, "output_tokens"),
            reasoning_tokens=count(raw, "output_token_details", "reasoning_tokens"),
            total_tokens=count(raw, "total_tokens"),
            raw=raw,
            by_total=True,
        )


@dataclass
class RealtimeResponse(WsResponse):
    by_client: bool = False
    """Started by a client response.create (else by the server: voice activity detection)."""
    event_id: str | None = None
    """The client's `event_id` on its response.create, which an `error` refusing it names."""


@dataclass
class RealtimeSocket:
    """The responses of one Realtime session, open ones in the order they started."""

    model_requested: str | None = None
    """The upgrade's `?model=` (Azure: `deployment=`)."""
    model: str | None = None
    """The session's model (`session.created`), once the server has named it."""
    open: list[RealtimeResponse] = field(default_factory=list)
    created: int = 0
    ended_ids: deque[str] = field(default_factory=lambda: deque(maxlen=64))
    """Ids of the last responses that ended: their events, repeated, start no new one."""

    def client_message(self, content: bytes, at: float) -> RealtimeResponse | None:
        """A client text message: the new response when it is a `response.create`."""
        body = response_create(content)
        if body is None:
            return None
        event_id = body.get("event_id") if isinstance(body.get("event_id"), str) else None
        return self._new(at, by_client=True, event_id=event_id)

    def server_message(self, content: bytes, at: float) -> RealtimeResponse | None:
        """A server text message: the response it ended, or the one it started when no client
        response.create asked for it (voice activity detection: `by_client` is False)."""
        if _MATTERS.search(content) is None:
            return None
        event = json_object(content)
        if event is None:
            return None
        kind = event.get("type")
        if kind in ("session.created", "session.updated"):
            session = event.get("session")
            if isinstance(session, dict) and isinstance(session.get("model"), str) and session["model"]:
                self.model = session["model"]
            return None
        if kind == "error":
            return self._refused(event, at)
        if kind not in ("response.created", "response.done"):
            return None
        inner = event.get("response") if isinstance(event.get("response"), dict) else {}
        response_id = inner.get("id") if isinstance(inner.get("id"), str) else None
        if response_id is not None and response_id in self.ended_ids and self._by_id(response_id) is None:
            return None  # a response.done repeated: that response has its row
        response = self._by_id(response_id) or self._unanswered() or self._new(at)
        response.response_id = response.response_id or response_id
        if response.first_event_at is None:
            response.first_event_at = at
        if kind == "response.created":
            return None if response.by_client else response
        response.tracker.on_object(event, kind)
        response.tracker.model = self.model or self.model_requested
        response.ended_at = at
        self.open.remove(response)
        if response.response_id is not None:
            self.ended_ids.append(response.response_id)
        return response

    def _new(self, at: float, by_client: bool = False, event_id: str | None = None) -> RealtimeResponse:
        self.created += 1
        tracker = RealtimeTracker(self.model_requested)
        tracker.model = self.model  # so a response cut off before its end still names it
        response = RealtimeResponse(self.created, at, self.model_requested, False, tracker,
                                    by_client=by_client, event_id=event_id)
        self.open.append(response)
        return response

    def _by_id(self, response_id: str | None) -> RealtimeResponse | None:
        if response_id is None:
            return None
        return next((r for r in self.open if r.response_id == response_id), None)

    def _unanswered(self, event_id: str | None = None) -> RealtimeResponse | None:
        """The oldest response.create the server has not answered yet (the one with this
        client event id, when given)."""
        for response in self.open:
            if response.by_client and response.response_id is None and (
                    event_id is None or response.event_id == event_id):
                return response
        return None

    def _refused(self, event: dict[str, Any], at: float) -> RealtimeResponse | None:
        """The response.create an `error` event refuses, ended, if it refuses one."""
        error = event.get("error") if isinstance(event.get("error"), dict) else {}
        named = error.get("event_id") if isinstance(error.get("event_id"), str) else None
        if named is None and not _ABOUT_A_RESPONSE.search(f"{error.get('code')} {error.get('message')}"):
            return None  # about another client event (an empty audio buffer committed, say)
        response = self._unanswered(named)
        if response is None:
            return None
        response.tracker.error = error_message(event) or "error"
        response.first_event_at = response.first_event_at or at
        response.ended_at = at
        self.open.remove(response)
        return response
