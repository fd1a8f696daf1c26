"""Framers of streams whose frames end at a byte pattern: Server-Sent Events and NDJSON.

Lazy, as framing.py says: a region of complete frames is split into lines only when the caller's
`interesting` wants it, and while the caller names needles each chunk costs one in-place search.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .frames import _BOM, DEFAULT_MAX_FRAME, Frame, Interest, _Framer, split_lines

NARROW_ABOVE = 2 * 1024
"""An interesting region larger than this is cut (at frame boundaries) into pieces of about this
size, and only the pieces that are interesting themselves are parsed."""

KEEP = 64 * 1024
"""Finished frames kept unread, so a stream's last ones can be read at its end: at least about
KEEP bytes of them (cut at a frame boundary), at most 2 * KEEP."""

_JUNCTION = 64
"""How far back before new bytes a needle search starts, so a needle split by the network is
found (needles are shorter than this)."""

_LINE_END_BYTE = re.compile(rb"[\r\n]")
_SSE_BLANK_LINE = re.compile(rb"\n\n|\r\r|\n\r")


def _boundary_end(region: bytes | bytearray, found: int, width: int) -> int:
    """The end of the `width`-byte boundary found at `found` (-1: none, and 0 is returned), past
    the LF of a CRLF when it ends in CR."""
    if found < 0:
        return 0
    end = found + width
    return end + 1 if region[end - 1] == 0x0D and region[end:end + 1] == b"\n" else end


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
        """Drop finished frames, keeping at least the last `keep` bytes: the cut is the start of
        the frame that holds the byte `keep` from the end (a frame that big, the usage in it, is
        kept whole)."""
        pending = self.pending
        size = len(pending)
        since = size - self.keep
        # Two memrchr calls spare the pattern searches back through one long frame.
        lined = pending.rfind(b"\n", 0, since) >= 0 or pending.rfind(b"\r", 0, since) >= 0
        cut = self.boundary_before(pending, since) if lined else 0
        if cut > 0:
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

    def boundary_before(self, region: bytes | bytearray, limit: int) -> int:
        """End offset of the last frame boundary in region that starts before `limit`, or 0."""
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

    def boundary_before(self, region: bytes | bytearray, limit: int) -> int:
        # Backward searches stop at the last match before limit. As in last_boundary, the CR
        # patterns are looked for only after a CR past the last LF LF (a memchr): in an LF
        # stream they are absent, and their searches would run back through the whole region.
        end = region.rfind(b"\n\n", 0, limit)
        after = end + 2 if end >= 0 else 0
        if region.find(b"\r", after, limit) >= 0:
            end = max(end, region.rfind(b"\r\r", after, limit), region.rfind(b"\n\r", after, limit))
        return _boundary_end(region, end, 2)

    def parse(self, region: bytes) -> list[Frame]:
        frames: list[Frame] = []
        data: list[bytes] = []
        event: str | None = None
        for line in split_lines(region):
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

    def boundary_before(self, region: bytes | bytearray, limit: int) -> int:
        end = region.rfind(b"\n", 0, limit)
        return _boundary_end(region, max(end, region.rfind(b"\r", end + 1, limit)), 1)

    def parse(self, region: bytes) -> list[Frame]:
        return [Frame(line) for line in split_lines(region) if line.strip()]
