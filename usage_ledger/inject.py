"""Asking for usage in streamed chat completions: merge `stream_options.include_usage: true`.

Never overwrites what the client set: an explicit `include_usage: false` stays false, a
`stream_options` that is not an object is left alone, and non-streamed requests are untouched
(OpenAI rejects `stream_options` without `stream: true`). The body keeps its encoding (UTF-8, or
the UTF-16/32 that RFC 8259's detection reads, its BOM included). Also here: whether an error
answer names `stream_options`, so that the proxy sends the client's own request again.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from . import json_bytes

_MISSING = object()
_FIELD = ',"stream_options":{"include_usage":true}'


def include_usage_body(raw: bytes, body: dict[str, Any]) -> bytes | None:
    """The request body (`raw`, decoded of any Content-Encoding; `body`, it parsed) with
    include_usage merged in, in raw's text encoding, or None when it must be sent as it is."""
    if body.get("stream") is not True:
        return None
    bom, codec = _encoding(raw)
    options = body.get("stream_options", _MISSING)
    if options is _MISSING:
        # Append the field textually: every character the client wrote stays as it was.
        if codec == "utf-8":  # as bytes: an agent's body is its whole conversation
            end = raw.rstrip().rfind(b"}")
            return None if end < 0 else raw[:end] + _FIELD.encode() + raw[end:]
        try:
            text = raw[len(bom):].decode(codec)
        except UnicodeDecodeError:
            return None
        end = text.rstrip().rfind("}")
        return None if end < 0 else _encoded(bom, codec, text[:end] + _FIELD + text[end:])
    if options is None:
        merged: dict[str, Any] = {"include_usage": True}
    elif isinstance(options, dict) and options.get("include_usage") is None:
        merged = {**options, "include_usage": True}
    else:
        return None
    rewritten = {**body, "stream_options": merged}
    try:  # allow_nan=False: 1e400 was read as inf, and `Infinity` is no JSON a server must accept
        out = _encoded(bom, codec, json.dumps(rewritten, ensure_ascii=False, separators=(",", ":"), allow_nan=False))
    except ValueError:
        return None
    if out is None:  # a lone surrogate escape in the body: keep it escaped
        out = _encoded(bom, codec, json.dumps(rewritten, separators=(",", ":"), allow_nan=False))
    return out


_BOMS = {"utf-32": ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be")),
         "utf-16": ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")),
         "utf-8-sig": ((codecs.BOM_UTF8, "utf-8"),)}


def _encoding(raw: bytes) -> tuple[bytes, str]:
    """(BOM, codec) of a JSON text, as json.detect_encoding finds it, the byte order explicit."""
    found = json.detect_encoding(raw)
    for bom, codec in _BOMS.get(found, ()):
        if raw.startswith(bom):
            return bom, codec
    return b"", found


def _encoded(bom: bytes, codec: str, text: str) -> bytes | None:
    try:
        return bom + text.encode(codec)
    except UnicodeEncodeError:
        return None


def names_stream_options(body: bytes) -> bool:
    """Does an error answer name `stream_options` as its cause: in a message, a `loc`, a `param`
    (any string in its JSON), or anywhere in a body that is not JSON? A key of that name does not
    count: servers that echo the request they refused (pydantic's `input`) echo the field the
    proxy added, whatever the error was (a missing `messages`, say)."""
    if b"stream_options" not in body:
        return False
    try:
        answer = json_bytes.loads(body)
    except (ValueError, RecursionError):
        return True
    return _names(answer)


def _names(answer: Any) -> bool:
    stack = [answer]  # no recursion: the answer may nest as deep as the parser allows
    while stack:
        value = stack.pop()
        if isinstance(value, str) and "stream_options" in value:
            return True
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False
