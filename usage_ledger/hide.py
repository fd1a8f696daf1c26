"""Hiding the usage-only chunk that our `include_usage` injection caused.

A client that did not ask for usage may index `choices[0]` and crash on the extra
`choices: []` chunk. The filter passes the stream through event by event: each complete SSE
event goes on as soon as its closing blank line arrives (a client cannot act on half an event
anyway), byte for byte, except an event whose data is a chunk with empty `choices` and a usage
object. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import json
import logging
import re

log = logging.getLogger(__name__)

_BLANK_LINE = re.compile(rb"\r\n\r\n|\r\n\n|\n\r\n|\r\r\n|\r\n\r|\n\n|\n\r|\r\r")
"""A line end followed by an empty line, longest form first, so a CRLF's LF stays with it."""
_EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')
_DATA_LINE = re.compile(rb"^data: ?(.*)$", re.M)


def is_usage_only_event(event: bytes) -> bool:
    if not _EMPTY_CHOICES.search(event):
        return False
    data = b"\n".join(m.group(1) for m in _DATA_LINE.finditer(event.replace(b"\r\n", b"\n").replace(b"\r", b"\n")))
    try:
        chunk = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(chunk, dict) and chunk.get("choices") == [] and isinstance(chunk.get("usage"), dict)


class UsageChunkFilter:
    def __init__(self) -> None:
        self.pending = bytearray()
        self.hidden = 0
        self.after_cr = False  # the last region forwarded ended in CR
        self.swallow_lf = False  # ...and its last event was hidden

    def feed(self, data: bytes) -> list[bytes]:
        """The bytes to forward now (never an empty piece: that would end the response)."""
        if not data:
            rest, self.pending = bytes(self.pending), bytearray()
            return [rest] if rest else []
        lead = b""
        if self.after_cr:  # the last region ended in CR: an LF now completes its blank line
            if data[:1] == b"\n":
                data = data[1:]
                lead = b"" if self.swallow_lf else b"\n"  # with its event, shown or hidden
            self.after_cr = self.swallow_lf = False
        start = max(0, len(self.pending) - 1)
        self.pending += data
        end = max(self.pending.rfind(b, start) for b in (b"\n\n", b"\r\r", b"\n\r"))
        if end < 0:
            return [lead] if lead else []
        end += 2
        if self.pending[end - 1] == 0x0D and self.pending[end:end + 1] == b"\n":
            end += 1  # the LF of a CRLF blank line: a client may wait for it
        region = bytes(self.pending[:end])
        del self.pending[:end]
        self.after_cr = region.endswith(b"\r")
        try:
            out = lead + self.without_usage_chunk(region)
        except Exception:  # our bug must cost the client nothing: pass the region on whole
            log.exception("usage-ledger: could not filter a stream; passing it on as it came")
            out = lead + region
        return [out] if out else []

    def without_usage_chunk(self, region: bytes) -> bytes:
        if not _EMPTY_CHOICES.search(region):
            return region
        kept, start = [], 0
        for blank in _BLANK_LINE.finditer(region):
            event = region[start:blank.end()]
            start = blank.end()
            if is_usage_only_event(event):
                self.hidden += 1
                self.swallow_lf = start == len(region) and region.endswith(b"\r")
            else:
                kept.append(event)
        kept.append(region[start:])
        return b"".join(kept)
