"""What every API shape module provides, and the helpers they share."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .. import json_bytes
from ..framing import Frame
from ..usage import Usage

MAX_ERROR_CHARS = 500
SPACE = rb"(?:\s|data:)*"
"""JSON white space in a mark, as the raw bytes of an event stream show it: a server may cut an
event's JSON into several `data:` lines wherever white space may go (they are joined with LF)."""


@dataclass(slots=True, frozen=True)
class Recognised:
    """A request identified as a billable LLM call."""

    api: str
    model_requested: str | None
    stream_requested: bool
    body: dict[str, Any] | None = None


class Tracker:
    """Reads one response: stream frames (or the whole body) in, usage, model and error out.

    Subclasses set `NEEDLES` and override `on_object` (run on parsed JSON of the frames that
    pass `interesting`). The last usage reported wins: providers repeat cumulative counters, so
    nothing is ever summed across frames.
    """

    NEEDLES: tuple[bytes, ...] = (b"_tokens",)
    """Byte strings of which a frame with usage holds at least one. Searched for in every byte of
    a stream, so each should be long and rare: a key of the usage object itself."""

    USAGE_MARK: re.Pattern[bytes] | None = None
    """For shapes whose usage comes in a stream's first or last frames: what marks it. Tested
    only on what a framer reads anyway (the frames before the model is known, and the last ones,
    which it keeps until the stream ends or breaks off), so NEEDLES can be empty and the bytes in
    between are not searched at all."""

    ERROR_MARK = b'"error"'

    END_MARK: re.Pattern[bytes] | None = None
    """What marks the API's terminal event (`[DONE]`, `message_stop`, ...), read like USAGE_MARK:
    only in what a framer reads anyway. A shape sets `ended` once it has seen the event, so a
    client that hangs up right after it (before the end of the body) has a complete call."""

    END_IN_OBJECTS = True
    """Whether the terminal event is a JSON object (False: chat's `[DONE]`, a plain-text frame,
    which on_text reads): if not, a frame holding an object is not searched for END_MARK."""

    OPENAI_USAGE = re.compile(rb'"usage"' + SPACE + rb':' + SPACE + rb'\{')
    """A non-null `usage` object, as OpenAI-style APIs send it (shared by those shapes)."""
    """Frames holding this are parsed too, but it is not searched for in every byte: error events
    end streams, and framers keep a stream's last frames to read when it ends."""

    def __init__(self, model_requested: str | None = None) -> None:
        self.model_requested = model_requested
        self.needles: tuple[bytes, ...] | None = None
        """What a framer may search for in place: NEEDLES once the model is known; None while
        every frame is wanted."""
        self._model: str | None = None
        self.raw_usage: dict[str, Any] | None = None
        self.error: str | None = None
        self.service_tier: str | None = None
        self.ended = False
        """The API's terminal event was seen: the response is complete whatever the connection
        does next."""

    @property
    def model(self) -> str | None:
        """The model the response names (the first non-empty one, unless a shape says otherwise)."""
        return self._model

    @model.setter
    def model(self, value: str | None) -> None:
        self._model = value
        self.needles = None if value is None else self.NEEDLES

    def on_request(self, body: dict[str, Any] | None) -> None:
        """The request's parsed body (JSON, or a multipart form's text fields), for shapes whose
        bill depends on it."""

    def interesting(self, region: bytes, end_mark: bool = True) -> bool:
        """Whether region may hold what the tracker reads: anything before the model is known,
        then a needle, the usage mark, the error mark or (unless `end_mark` is False) the end mark."""
        if self._model is None:
            return True
        for needle in self.NEEDLES:
            if needle in region:
                return True
        if self.USAGE_MARK is not None and self.USAGE_MARK.search(region) is not None:
            return True
        if end_mark and self.END_MARK is not None and self.END_MARK.search(region) is not None:
            return True
        return self.ERROR_MARK in region

    def on_frame(self, frame: Frame) -> None:
        data = frame.data
        if data[:1] != b"{" and data.lstrip()[:1] != b"{":
            self.on_text(data)  # `[DONE]` and other non-object payloads
            return
        # Each frame of an interesting region is tested again, so only those that may matter are
        # parsed; a frame holding an object cannot be an end that is not one (chat's [DONE]).
        if not self.interesting(data, self.END_IN_OBJECTS):
            return
        try:
            obj = json_bytes.loads(data, _no_constant)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's limit
            return
        if isinstance(obj, dict):
            self.on_object(obj, frame.event)

    def on_body(self, obj: Any) -> None:
        """A complete non-streamed JSON response body."""
        if isinstance(obj, dict):
            self.on_object(obj, None)

    def on_object(self, obj: dict[str, Any], event: str | None) -> None:
        raise NotImplementedError  # pragma: no cover

    def on_text(self, data: bytes) -> None:
        """A frame whose payload is not a JSON object (chat's `[DONE]`)."""

    def note_model(self, value: Any) -> None:
        if self.model is None and isinstance(value, str) and value:
            self.model = value

    def usage(self) -> Usage | None:
        return None if self.raw_usage is None else self.normalise(self.raw_usage)

    def normalise(self, raw: dict[str, Any]) -> Usage:
        raise NotImplementedError  # pragma: no cover


def _no_constant(name: str) -> None:
    """NaN and Infinity are not counts: read them as not reported."""
    return None


def error_message(obj: Any) -> str | None:
    """The human-readable reason in a provider's error object, whatever its shape."""
    if isinstance(obj, dict):
        for key in ("error", "message", "detail"):
            value = obj.get(key)
            if isinstance(value, str) and value:
                return value[:MAX_ERROR_CHARS]
            if isinstance(value, (dict, list)) and value:
                inner = error_message(value)
                if inner:
                    return inner
        return None
    if isinstance(obj, list) and obj:
        parts = [m for m in (error_message(x) for x in obj[:3]) if m]
        if parts:
            return "; ".join(parts)[:MAX_ERROR_CHARS]
        return json.dumps(obj)[:MAX_ERROR_CHARS]
    return None


def body_error(body: bytes) -> str | None:
    """The error reason in a non-2xx response body: from its JSON, else its first text."""
    text = body.strip()
    if not text:
        return None
    try:
        message = error_message(json.loads(text))
    except ValueError:
        message = None
    if message:
        return message
    return text[:MAX_ERROR_CHARS].decode("utf-8", "replace")


def json_model(body: dict[str, Any] | None) -> str | None:
    model = body.get("model") if body else None
    return model if isinstance(model, str) and model else None


def wants_stream(body: dict[str, Any] | None, default: bool = False) -> bool:
    if not body or "stream" not in body:
        return default
    return body.get("stream") is True
