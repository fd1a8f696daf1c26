"""Incremental framing of streamed response bodies: bytes in at any split, frames out.

Three stream formats carry LLM usage: Server-Sent Events, newline-delimited JSON (Ollama) and a
JSON array streamed element by element (Gemini without `alt=sse`). A body that turns out to be one
plain JSON document (an error answered to a stream request) is framed as a single frame.

Every framer is lazy: it finds frame boundaries with C-speed byte searches and hands a region of
complete frames to the per-line parser only when `interesting(region)` says it may hold something
the caller wants. Regions that cannot hold usage are dropped without being split into lines.
Memory is bounded by `max_frame`: a frame larger than that is skipped (the caller is told once).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

Interest = Callable[[bytes], bool]

DEFAULT_MAX_FRAME = 64 * 1024 * 1024
"""Any frame may be the one with the usage (a Responses `response.completed` event repeats the
whole output, base64 images included), so the cap is high: it only bounds a broken stream."""

NARROW_ABOVE = 2 * 1024
"""An interesting region larger than this is cut (at frame boundaries) into pieces of about this
size, and only the pieces that are interesting themselves are parsed."""

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True, frozen=True)
class Frame:
    data: bytes
    event: str | None = None


class _Framer:
    def __init__(self, interesting: Interest, max_frame: int) -> None:
        self.interesting = interesting
        self.max_frame = max_frame
        self.oversized = 0
        """How many frames were skipped for exceeding max_frame."""

    def feed(self, data: bytes) -> Iterable[Frame]:  # pragma: no cover - interface
        """The frames completed by data. May be lazy: consume it before the next feed, and the
        `interesting` test sees the caller's state as it is when each part is reached."""
        raise NotImplementedError

    def close(self) -> Iterable[Frame]:  # pragma: no cover - interface
        raise NotImplementedError


class _BoundaryFramer(_Framer):
    """Frames that end at a byte pattern: keeps only the unfinished tail between feeds."""

    def __init__(self, interesting: Interest, max_frame: int) -> None:
        super().__init__(interesting, max_frame)
        self.pending = bytearray()
        self.skipping = False

    def last_boundary(self, start: int) -> int:
        """End offset (exclusive) of the last complete frame found at or after start, or -1."""
        raise NotImplementedError  # pragma: no cover

    def parse(self, region: bytes) -> list[Frame]:
        raise NotImplementedError  # pragma: no cover

    def feed(self, data: bytes) -> Iterable[Frame]:
        pending = self.pending
        start = max(0, len(pending) - 1)
        pending += data
        end = self.last_boundary(start)
        if end < 0:
            if len(pending) > self.max_frame:
                if not self.skipping:
                    self.oversized += 1
                self.skipping = True
                # Keep the last byte: it may be the first half of the boundary that ends the
                # oversized frame, and losing it would skip the next frame too.
                del pending[:-1]
            return []
        region = bytes(pending[:end])
        del pending[:end]
        if self.skipping:
            self.skipping = False
            region = region[self.first_boundary(region):]
        if region and self.interesting(region):
            return self.frames(region)
        return []

    def first_boundary(self, region: bytes, start: int = 0) -> int:
        """End offset of the first frame boundary in region at or after start, or len(region)."""
        raise NotImplementedError  # pragma: no cover

    def frames(self, region: bytes) -> Iterator[Frame]:
        """The frames of an interesting region, lazily. A large one is cut at frame boundaries
        into pieces of about NARROW_ABOVE bytes, and each piece is parsed only if it is still
        interesting when reached (after the caller has seen the frames before it), so a big
        chunk (a decompressed one, or a whole body) costs line parsing only around what the
        caller wants."""
        size = len(region)
        if size <= NARROW_ABOVE:
            yield from self.parse(region)
            return
        start = 0
        while start < size:
            cut = self.first_boundary(region, start + NARROW_ABOVE)
            piece = region[start:cut] if start or cut < size else region
            if self.interesting(piece):
                yield from self.parse(piece)
            start = cut

    def close(self) -> Iterable[Frame]:
        region = bytes(self.pending)
        self.pending.clear()
        if self.skipping or not region.strip() or not self.interesting(region):
            return []
        return self.frames(region + b"\n\n")


class SSEFramer(_BoundaryFramer):
    """text/event-stream per the WHATWG rules: CR, LF or CRLF line ends, `data:` lines joined
    with LF, `event:` names, comments ignored, an event dispatched at a blank line."""

    _BLANK_LINE = (b"\n\n", b"\r\r", b"\n\r")

    def __init__(self, interesting: Interest, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(interesting, max_frame)
        self.started = False

    def feed(self, data: bytes) -> Iterable[Frame]:
        if not self.started:
            self.pending += data
            if len(self.pending) < len(_BOM) and _BOM.startswith(bytes(self.pending)):
                return []
            self.started = True
            data = bytes(self.pending)
            self.pending.clear()
            if data.startswith(_BOM):
                data = data[len(_BOM):]
        return super().feed(data)

    def last_boundary(self, start: int) -> int:
        pending = self.pending
        found = pending.rfind(b"\n\n", start)
        # The other two blank-line patterns end in CR: only a CR after the last LF LF can make
        # one of them the later boundary. A one-byte search for it (memrchr) spares LF-only
        # streams two slow two-byte scans of every chunk.
        if pending.find(b"\r", max(start, found + 2)) >= 0:
            found = max(found, pending.rfind(b"\r\r", start), pending.rfind(b"\n\r", start))
        return -1 if found < 0 else found + 2

    def first_boundary(self, region: bytes, start: int = 0) -> int:
        found = region.find(b"\n\n", start)
        stop = len(region) if found < 0 else found
        # As in last_boundary: a CR-ending pattern can only come first if a CR comes first.
        if region.find(b"\r", start, stop) >= 0:
            hits = [i for i in (region.find(b, start, stop + 2) for b in self._BLANK_LINE) if i >= 0]
            found = min(hits) if hits else -1
        return len(region) if found < 0 else found + 2

    def parse(self, region: bytes) -> list[Frame]:
        frames: list[Frame] = []
        data: list[bytes] = []
        event: str | None = None
        for line in _LINE_END.split(region):
            if not line:
                if data:
                    frames.append(Frame(b"\n".join(data), event))
                data, event = [], None
                continue
            if line[0] == 0x3A:  # ":" starts a comment
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event = value.decode("utf-8", "replace")
        return frames


class NDJSONFramer(_BoundaryFramer):
    """One JSON value per line (application/x-ndjson)."""

    def __init__(self, interesting: Interest, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(interesting, max_frame)

    def last_boundary(self, start: int) -> int:
        found = max(self.pending.rfind(b"\n", start), self.pending.rfind(b"\r", start))
        return -1 if found < 0 else found + 1

    def first_boundary(self, region: bytes, start: int = 0) -> int:
        found = [i for i in (region.find(b"\n", start), region.find(b"\r", start)) if i >= 0]
        return min(found) + 1 if found else len(region)

    def parse(self, region: bytes) -> list[Frame]:
        return [Frame(line) for line in _LINE_END.split(region) if line.strip()]


class JSONDocumentFramer(_Framer):
    """A whole body that is one JSON document: one frame at the end."""

    def __init__(self, interesting: Interest, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(interesting, max_frame)
        self.body = bytearray()
        self.too_large = False

    def feed(self, data: bytes) -> list[Frame]:
        if not self.too_large:
            self.body += data
            if len(self.body) > self.max_frame:
                self.too_large = True
                self.oversized += 1
                self.body = bytearray()
        return []

    def close(self) -> list[Frame]:
        body = bytes(self.body)
        self.body = bytearray()
        if self.too_large or not body.strip() or not self.interesting(body):
            return []
        return [Frame(body)]


_JSON_STRUCTURE = re.compile(rb'[{}\[\]"\\]')


class JSONArrayFramer(_Framer):
    """Elements of one top-level JSON array streamed piece by piece (`[{...}\\r\\n,{...}]`).

    Tracks nesting with a regex over structural bytes only, so text inside strings costs a
    C-level scan, not a Python step per byte.
    """

    def __init__(self, interesting: Interest, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(interesting, max_frame)
        self.buf = bytearray()
        self.pos = 0  # next unscanned offset in buf
        self.depth = 0
        self.in_string = False
        self.skip_to = 0  # offset after an escaped character
        self.element_start = -1
        self.skipping = False

    def feed(self, data: bytes) -> list[Frame]:
        buf = self.buf
        buf += data
        frames: list[Frame] = []
        for m in _JSON_STRUCTURE.finditer(buf, self.pos):
            i = m.start()
            if i < self.skip_to:
                continue
            c = buf[i]
            if self.in_string:
                if c == 0x5C:  # backslash
                    self.skip_to = i + 2
                elif c == 0x22:
                    self.in_string = False
                continue
            if c == 0x22:
                self.in_string = True
            elif c in (0x7B, 0x5B):  # { [
                self.depth += 1
                if self.depth == 2:
                    self.element_start = i
            elif c in (0x7D, 0x5D):  # } ]
                if self.depth == 2 and self.element_start >= 0:
                    element = bytes(buf[self.element_start:i + 1])
                    if not self.skipping and self.interesting(element):
                        frames.append(Frame(element))
                    self.skipping = False
                    self.element_start = -1
                self.depth -= 1
        self.pos = len(buf)
        # Drop what no future frame can need.
        keep_from = self.element_start if self.element_start >= 0 else len(buf)
        if keep_from > 0:
            del buf[:keep_from]
            self.pos -= keep_from
            self.skip_to = max(0, self.skip_to - keep_from)
            if self.element_start >= 0:
                self.element_start = 0
        if len(buf) > self.max_frame:
            if not self.skipping:
                self.oversized += 1
            self.skipping = True
            # Keep scanning structure but not bytes: the element is lost, the nesting is not.
            self.element_start = 0 if self.element_start >= 0 else -1
            dropped = len(buf)
            buf.clear()
            self.skip_to = max(0, self.skip_to - dropped)
            self.pos = 0
        return frames

    def close(self) -> list[Frame]:
        self.buf = bytearray()
        return []


def framer_for(content_type: str, first_bytes: bytes, interesting: Interest,
               max_frame: int = DEFAULT_MAX_FRAME) -> _Framer:
    """Choose the framer from the response's Content-Type and its first non-blank byte."""
    first = first_bytes.lstrip()[:1]
    ctype = content_type.lower()
    if "ndjson" in ctype or "jsonl" in ctype:
        return NDJSONFramer(interesting, max_frame)
    if first == b"[":
        return JSONArrayFramer(interesting, max_frame)
    if first == b"{":
        return JSONDocumentFramer(interesting, max_frame)
    return SSEFramer(interesting, max_frame)
