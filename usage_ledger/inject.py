"""Asking for usage in streamed chat completions: merge `stream_options.include_usage: true`.

Never overwrites what the client set: an explicit `include_usage: false` stays false, a
`stream_options` that is not an object is left alone, and non-streamed requests are untouched
(OpenAI rejects `stream_options` without `stream: true`).
"""

from __future__ import annotations

import json
from typing import Any

_MISSING = object()


def include_usage_body(raw: bytes, body: dict[str, Any]) -> bytes | None:
    """The request body with include_usage merged in, or None when it must be sent as it is."""
    if body.get("stream") is not True:
        return None
    options = body.get("stream_options", _MISSING)
    if options is _MISSING:
        # Append the field textually: every byte the client wrote stays as it was.
        end = raw.rstrip().rfind(b"}")
        if end < 0:
            return None
        return raw[:end] + b',"stream_options":{"include_usage":true}' + raw[end:]
    if options is None:
        merged: dict[str, Any] = {"include_usage": True}
    elif isinstance(options, dict) and options.get("include_usage") is None:
        merged = {**options, "include_usage": True}
    else:
        return None
    rewritten = {**body, "stream_options": merged}
    try:
        return json.dumps(rewritten, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate escape in the body: keep it escaped
        return json.dumps(rewritten, separators=(",", ":")).encode()
