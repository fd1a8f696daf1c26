"""Hiding the usage-only chunk that our `include_usage` injection caused.

A client that did not ask for usage may index `choices[0]` and crash on the extra
`choices: []` chunk. The filter passes the stream through event by event: each complete SSE
event goes on as soon as its closing blank line arrives (a client cannot act on half an event
anyway), byte for byte, except an event whose data is a chunk with empty `choices` and a usage
object. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import json
import re

_EVENT_END = re.compile(rb"(?<=\n\n|\r\r|\n\r)")
_EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')
_DATA_LINE = re.compile(rb"^data: ?(.*?)\r?$", re.M)


def is_usage_only_event(event: bytes) -> bool:
    if not _EMPTY_CHOICES.search(event):
        return False
    data = b"\n".join(m.group(1) for m in _DATA_LINE.finditer(event.replace(b"\r\n", b"\n").replace(b"\r", b"\n")))
    try:
        chunk = json.loads(data)
    except ValueError:
        return False
    return isinstance(chunk, dict) and chunk.get("choices") == [] and isinstance(chunk.get("usage"), dict)


class UsageChunkFilter:
    def __init__(self) -> None:
        self.pending = bytearray()
        self.hidden = 0

    def feed(self, data: bytes) -> list[bytes]:
        """The bytes to forward now (never an empty piece: that would end the response)."""
        if not data:
            rest, self.pending = bytes(self.pending), bytearray()
            return [rest] if rest else []
        start = max(0, len(self.pending) - 1)
        self.pending += data
        end = max(self.pending.rfind(b, start) for b in (b"\n\n", b"\r\r", b"\n\r"))
        if end < 0:
            return []
        end += 2
        region = bytes(self.pending[:end])
        del self.pending[:end]
        if not _EMPTY_CHOICES.search(region):
            return [region]
        kept = []
        for event in _EVENT_END.split(region):
            if event and is_usage_only_event(event):
                self.hidden += 1
            elif event:
                kept.append(event)
        out = b"".join(kept)
        return [out] if out else []
