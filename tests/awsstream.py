"""Writing AWS event-stream messages, for tests: the encoder the stand-in and cases use."""

from __future__ import annotations

import base64
import json
import struct
from binascii import crc32
from typing import Any

_TYPES = {bool: None, int: 4, bytes: 6, str: 7}


def header(name: str, value: Any) -> bytes:
    """One header: a string (type 7), bytes (6), int (int32, 4) or bool (0/1)."""
    raw_name = name.encode()
    head = bytes([len(raw_name)]) + raw_name
    if isinstance(value, bool):
        return head + bytes([0 if value else 1])
    if isinstance(value, int):
        return head + b"\x04" + struct.pack("!i", value)
    data = value.encode() if isinstance(value, str) else value
    return head + bytes([7 if isinstance(value, str) else 6]) + struct.pack("!H", len(data)) + data


def message(headers: dict[str, Any] | bytes, payload: bytes) -> bytes:
    raw_headers = headers if isinstance(headers, bytes) else b"".join(header(k, v) for k, v in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack("!I", crc32(body))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    return message({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                   json.dumps(payload, separators=(",", ":")).encode())


def chunk(anthropic_event: dict[str, Any]) -> bytes:
    """An InvokeModelWithResponseStream `chunk`: one Anthropic stream event, base64 in `bytes`."""
    data = base64.b64encode(json.dumps(anthropic_event, separators=(",", ":")).encode()).decode()
    return event("chunk", {"bytes": data, "p": "abcdefghijklmnopqrstuvwxyzABCDEF"})


def exception(kind: str, text: str) -> bytes:
    return message({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                   json.dumps({"message": text}).encode())
