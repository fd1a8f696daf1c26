"""Incremental framing of streamed response bodies: bytes in at any split, frames out.

Three stream formats carry LLM usage: Server-Sent Events, newline-delimited JSON (Ollama) and a
JSON array streamed element by element (Gemini without `alt=sse`). A body that turns out to be one
plain JSON document (an error answered to a stream request) is framed as a single frame.

Framers are lazy, because almost no frame of a stream holds usage. A region of complete frames
is split into lines and handed on only when `interesting(region)` says it may hold something the
caller wants. When the caller also names `needles` (see Interest), each new chunk costs one
in-place search for them and nothing else: frames pile up unread in a buffer that is trimmed
(at a frame boundary) to its last KEEP bytes, and those last frames are read when the stream
ends or breaks off, which is where usage and error events come. Memory is bounded by
`max_frame`: a frame larger than that, which would have to be read, is skipped and counted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

Interest = Callable[[bytes], bool]
"""Says whether a region of complete frames may hold something the caller wants.

A bound method whose object has a `needles` attribute (a tuple of byte strings, or None) says
more. While `needles` is a tuple, the framer reads frames in mid-stream only once new bytes hold
one of them (an empty tuple: never), and otherwise only its kept last frames, at the end; `needles`
None means every frame may be wanted."""

DEFAULT_MAX_FRAME = 64 * 1024 * 1024
"""Any frame may be the one with the usage (a Responses `response.completed` event repeats the
whole output, base64 images included), so the cap is high: it only bounds a broken stream."""

NARROW_ABOVE = 2 * 1024
"""An interesting region larger than this is cut (at frame boundaries) into pieces of about this
size, and only the pieces that are interesting themselves are parsed."""

KEEP = 64 * 1024
"""Finished frames kept unread, so a stream's last ones can be read at its end: at least about
KEEP bytes of them (cut at a frame boundary), at most 2 * KEEP."""

_JUNCTION = 64
"""How far back before new bytes a needle search starts, so a needle split by the network is
found (needles are shorter than this)."""

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"
LEADING_NOISE = b" \t\r\n" + _BOM
"""What may come before a body's first meaningful byte: white space and a byte order mark."""
_LINE_END_BYTE = re.compile(rb"[\r\n]")
_SSE_BLANK_LINE = re.compile(rb"\n\n|\r\r|\n\r")
_NDJSON_SEAM = re.compile(rb"\}[ \t]*\r?\n[ \t\r\n]*\{")


@dataclass(slots=True, frozen=True)
class Frame:
    data: bytes
    event: str | None = None


class _Framer:
    def __init__(self, interesting: Interest, max_frame: int) -> None:
        self.interesting = interesting
        self.owner = getattr(interesting, "__self__", None) if hasattr(
            getattr(interesting, "__self__", None), "needles") else None
        self.max_frame = max_frame
        self.oversized = 0
        """How many frames were skipped for exceeding max_frame."""

    idle = False
    """Feeding this framer now only keeps bytes: it reads no frame until the stream ends or breaks
    off, whatever bytes come (until something it reads changes the caller's needles). A caller may
    then hand it chunks in bulk."""

    def feed(self, data: bytes) -> Iterable[Frame]:  # pragma: no cover - interface
        """The frames completed by data. May be lazy: consume it before the next feed, and the
        `interesting` test sees the caller's state as it is when each part is reached."""
        raise NotImplementedError

    def close(self) -> Iterable[Frame]:  # pragma: no cover - interface
        """The frames left at the end of the stream."""
        raise NotImplementedError

    def abandon(self) -> Iterable[Frame]:
        """The complete frames still held when the stream breaks off; the unfinished one is lost."""
        return ()


class _BoundaryFramer(_Framer):
    """Frames that end at a byte pattern. Between feeds it keeps the unfinished frame and, when
    the caller names needles, up to 2 * keep bytes of finished, unread frames before it."""

    def __init__(self, interesting: Interest, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(interesting, max_frame)
        self.pending = bytearray()
        self.skipping = False
        self.at_start = True
        self.keep = min(KEEP, max_frame // 2)
        self.trim_above = 2 * self.keep
        self.searched = 0  # pending[:searched] is known to hold no needle
        self.boundary_search_from = 0  # pending[:boundary_search_from] holds no frame boundary
        self.hit = False  # pending holds a needle

    @property
    def idle(self) -> bool:
        owner = self.owner
        return (owner is not None and owner.needles == () and not self.hit and not self.skipping
                and not self.at_start)

    def forget(self) -> None:
        """Drop what is held: the bytes fed next start a frame and do not follow it (a caller
        left out frames that this framer, idle, would only have kept unread)."""
        self.pending.clear()
        self.searched = self.boundary_search_from = 0
        self.hit = False
        self.trim_above = 2 * self.keep

    def start_stream(self) -> bool:
        """Called with the stream's first bytes in pending; False to wait for more."""
        self.at_start = False
        return True

    def last_boundary(self, start: int) -> int:
        """End offset (exclusive) in pending of the last frame boundary ending after start, or -1."""
        raise NotImplementedError  # pragma: no cover

    def parse(self, region: bytes) -> list[Frame]:
        raise NotImplementedError  # pragma: no cover

    def feed(self, data: bytes) -> Iterable[Frame]:
        pending = self.pending
        pending += data
        if self.at_start and not self.start_stream():
            return ()
        owner = self.owner
        needles = owner.needles if owner is not None else None
        if needles is not None and not self.hit and not self.skipping:
            # The hot path, for almost every chunk of a long stream: only the bytes not searched
            # before are searched for the needles, in place, and nothing else is done. Finished
            # frames stay in the buffer until it holds 2 * keep bytes, so the stream's last
            # frames are still there to read when it ends.
            since = self.searched - _JUNCTION
            if since < 0:
                since = 0
            for needle in needles:
                if pending.find(needle, since) >= 0:
                    break
            else:
                self.searched = size = len(pending)
                if size > self.trim_above:
                    self._trim()
                return ()
            self.hit = True
        end = self.last_boundary(self.boundary_search_from)
        if end < 0:
            self.boundary_search_from = len(pending)
            if len(pending) > self.max_frame:
                self._overflow()
            return ()
        region = bytes(pending[:end])
        del pending[:end]
        if self.skipping:
            self.skipping = False
            region = region[self.first_boundary(region):]
        self.boundary_search_from = len(pending)
        self.trim_above = 2 * self.keep
        # What is left may already hold a needle: if so, the next feed must not skip it. Without
        # needles now (the model is not known yet), it has not been searched at all.
        if needles is None:
            self.hit, self.searched = False, 0
        else:
            self.hit = any(needle in pending for needle in needles)
            self.searched = len(pending)
        if region and self.interesting(region):
            return self.frames(region)
        return ()

    def _trim(self) -> None:
        """Drop finished frames, keeping about the last `keep` bytes, cut at a frame boundary."""
        pending = self.pending
        size = len(pending)
        since = size - self.keep
        # Two memchr calls spare a pattern search in the middle of one long line (a big frame).
        lined = pending.find(b"\n", since) >= 0 or pending.find(b"\r", since) >= 0
        cut = self.first_boundary(pending, since) if lined else size
        if cut < size:
            del pending[:cut]
            self.searched -= cut
            self.boundary_search_from = max(0, self.boundary_search_from - cut)
            self.trim_above = 2 * self.keep
        elif size > self.max_frame:
            self._overflow()
        else:  # inside one long frame: try again once it has grown by keep
            self.trim_above = size + self.keep

    def _overflow(self) -> None:
        if not self.skipping:
            self.oversized += 1
        self.skipping = True
        self.hit = False
        # Keep the last byte: it may be the first half of the boundary that ends the oversized
        # frame, and losing it would skip the next frame too.
        del self.pending[:-1]
        self.searched = self.boundary_search_from = 0

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

    def abandon(self) -> Iterable[Frame]:
        end = -1 if self.skipping else self.last_boundary(0)
        region = bytes(self.pending[:end]) if end > 0 else b""
        self.pending.clear()
        if not region.strip() or not self.interesting(region):
            return []
        return self.frames(region)


class SSEFramer(_BoundaryFramer):
    """text/event-stream per the WHATWG rules: CR, LF or CRLF line ends, `data:` lines joined
    with LF, `event:` names, comments ignored, an event dispatched at a blank line."""

    def start_stream(self) -> bool:
        """Strip one leading UTF-8 byte order mark, as the WHATWG parser does."""
        pending = self.pending
        if len(pending) < len(_BOM) and _BOM.startswith(pending):
            return False
        if pending.startswith(_BOM):
            del pending[:len(_BOM)]
        self.at_start = False
        return True

    def last_boundary(self, start: int) -> int:
        pending = self.pending
        start = start - 1 if start > 0 else 0  # a blank line may straddle the joint
        found = pending.rfind(b"\n\n", start)
        # The other two blank-line patterns end in CR: only a CR after the last LF LF can make
        # one of them the later boundary. A one-byte search for it (memchr) spares LF-only
        # streams two slower two-byte scans of every chunk.
        if pending.find(b"\r", found + 2 if found >= start else start) >= 0:
            found = max(found, pending.rfind(b"\r\r", start), pending.rfind(b"\n\r", start))
        return -1 if found < 0 else found + 2

    def first_boundary(self, region: bytes, start: int = 0) -> int:
        # A forward search that stops at the first match: never a scan to the end of a region
        # in which one of the patterns is absent (`\n\n` in a CRLF stream).
        found = _SSE_BLANK_LINE.search(region, start)
        return found.end() if found else len(region)

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

    def last_boundary(self, start: int) -> int:
        found = max(self.pending.rfind(b"\n", start), self.pending.rfind(b"\r", start))
        return -1 if found < 0 else found + 1


    def first_boundary(self, region: bytes, start: int = 0) -> int:
        found = _LINE_END_BYTE.search(region, start)
        return found.end() if found else len(region)

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
        body = bytes(self.body).lstrip(LEADING_NOISE)
        self.body = bytearray()
        if self.too_large or not body:
            return []  # one parse at the end, and an error body must always be read: no filter
        if _NDJSON_SEAM.search(body):  # newline-delimited objects sent as plain JSON
            return [Frame(line) for line in _LINE_END.split(body) if line.strip()]
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
    first = first_bytes.lstrip(LEADING_NOISE)[:1]
    ctype = content_type.lower()
    if "ndjson" in ctype or "jsonl" in ctype:
        return NDJSONFramer(interesting, max_frame)
    if first == b"[":
        return JSONArrayFramer(interesting, max_frame)
    if first == b"{":
        return JSONDocumentFramer(interesting, max_frame)
    return SSEFramer(interesting, max_frame)
