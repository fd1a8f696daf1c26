"""Reads usage out of a response body as it streams past: decode, frame, track.

Pure: bytes in, the tracker's usage/model/error out. No I/O, no mitmproxy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import json_bytes
from .apis.base import Tracker
from .decoding import UnsupportedEncoding, decoder_for
from .eventstream import EventStreamFramer
from .framing import DEFAULT_MAX_FRAME, KEEP, LEADING_NOISE, Frame, SSEFramer, framer_for

_SNIFF_LIMIT = 64
"""Leading white space held, at most, while no framer is chosen."""
_KEPT_MAX = 2 * KEEP
_EVENT_STREAM = "application/vnd.amazon.eventstream"


class StreamScanner:
    """Feeds a streamed response body to a Tracker in constant memory.

    `problem` is set (and scanning stops) when the body cannot be read: an unknown or corrupt
    Content-Encoding. The caller forwards the bytes regardless.
    """

    def __init__(self, tracker: Tracker, content_type: str = "", content_encoding: str = "",
                 max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.tracker = tracker
        self.content_type = content_type
        self.max_frame = max_frame
        self.problem: str | None = None
        self.head = b""
        self.framer = None
        self.framing_may_fail = False
        """An EventStreamFramer: its `problem` is looked at after every chunk."""
        self.closed = False
        self.kept: list[bytes] | None = None
        """Whole-frame pieces (see feed_frames) not handed to the framer: None unless it is idle."""
        self.kept_size = 0
        self.gap = False  # pieces before `kept` were left out
        try:
            self.decode = decoder_for(content_encoding)
        except UnsupportedEncoding as e:
            self.decode = None
            self.problem = f"cannot decode Content-Encoding {e}"

    @property
    def direct_feed(self) -> Callable[[bytes], Iterable[Frame]] | None:
        """The framer's own `feed`, while `feed(data)` would do no more than call it and hand
        the frames it returns to `deliver` (no decoder, a framer that cannot lose its framing,
        nothing kept, not closed), else None: a caller that streams many small chunks saves
        two calls a chunk. Valid until anything but that pair is called on the scanner."""
        framer = self.framer
        if (framer is None or self.framing_may_fail or self.decode is not None or self.kept is not None
                or self.problem or self.closed):
            return None
        return framer.feed

    @property
    def oversized(self) -> int:
        return self.framer.oversized if self.framer is not None else 0

    def feed(self, data: bytes) -> None:
        if self.kept is not None:
            self._release()
        if self.problem or self.closed or not data:
            return
        if self.decode is not None:
            self._decode_and_take(data)
            return
        framer = self.framer
        if framer is None or self.framing_may_fail:
            self._take(data)
            return
        frames = framer.feed(data)  # _take's common case, one call less per chunk
        if frames:
            self.deliver(frames)

    def feed_frames(self, data: bytes) -> None:
        """Like feed, for bytes that end at a frame boundary, following others that did (the
        usage-chunk filter's regions of whole SSE events). While the framer is idle they are only
        kept, by reference: the last KEEP bytes or more of them, whole pieces, so what is kept
        starts at a frame boundary too. The framer gets them when the stream ends or breaks off,
        or when other bytes come; it would have read none of them before (see `_Framer.idle`)."""
        kept = self.kept
        if kept is None:
            self.feed(data)
            framer = self.framer
            if (type(framer) is SSEFramer and framer.idle and self.decode is None and not self.problem
                    and not self.closed):
                self.kept = []
            return
        kept.append(data)
        self.kept_size += len(data)
        if self.kept_size > _KEPT_MAX:
            self._drop_old()

    def _drop_old(self) -> None:
        """Leave out the oldest pieces while the rest still hold KEEP bytes or more."""
        kept = self.kept
        while len(kept) > 1 and self.kept_size - len(kept[0]) >= KEEP:
            self.kept_size -= len(kept.pop(0))
            self.gap = True

    def _release(self) -> None:
        """The kept pieces go to the framer (the last KEEP bytes or more of them, so it reads no
        more at the end than it would have kept): after a gap, in place of what it held."""
        self._drop_old()
        kept, self.kept, self.kept_size = self.kept, None, 0
        if self.gap:
            self.gap = False
            self.framer.forget()
        if kept:
            self.feed(b"".join(kept))

    def _decode_and_take(self, data: bytes) -> None:
        try:
            for piece in self.decode(data):
                self._take(piece)
        except Exception as e:  # corrupt or truncated encoding: stop, keep what we have
            if self.problem is None:
                self.problem = f"cannot decode body: {e}"

    def _take(self, data: bytes) -> None:
        if self.framer is None:
            self.head += data
            if not self.head.lstrip(LEADING_NOISE):
                # Only white space so far (keep-alive lines before the body): the framer is chosen
                # by the first byte after it, however long it lasts, and it is dropped, not held.
                if len(self.head) > _SNIFF_LIMIT:
                    self.head = b""
                return
            data, self.head = self.head, b""
            self._start(data)
        frames = self.framer.feed(data)
        if frames:
            self.deliver(frames)
        if isinstance(self.framer, EventStreamFramer) and self.framer.problem:
            self.problem = self.framer.problem  # its framing is lost: read no further

    def _start(self, first: bytes) -> None:
        if _EVENT_STREAM in self.content_type.lower():
            self.framer = EventStreamFramer(self.tracker.interesting, self.max_frame)
            self.framing_may_fail = True
            return
        self.framer = framer_for(self.content_type, first, self.tracker.interesting, self.max_frame)

    def close(self) -> None:
        if self.closed:
            return
        if self.kept is not None:
            self._release()
        self.closed = True
        if self.problem:
            return
        if self.decode is not None:
            self._decode_and_take(b"")  # the end: a decoder may still hold bytes back
            if self.problem:
                return
        if self.framer is None:
            if not self.head.lstrip(LEADING_NOISE):
                return
            self._start(self.head)
            self.deliver(self.framer.feed(self.head))
        self.deliver(self.framer.close())

    def abandon(self) -> None:
        """The stream broke off: read what the complete frames still held say (usage so far)."""
        if self.closed or self.problem or self.framer is None:
            return
        if self.kept is not None:
            self._release()
        self.closed = True
        self.deliver(self.framer.abandon())

    def deliver(self, frames: Iterable[Frame]) -> None:
        """Hand frames from the framer (see `direct_feed`) to the tracker."""
        for frame in frames:
            self.tracker.on_frame(frame)


def scan_body(tracker: Tracker, body: bytes) -> None:
    """A complete, already decoded, non-streamed body."""
    try:
        obj = json_bytes.loads(body)
    except ValueError:
        scanner = StreamScanner(tracker)  # some servers answer SSE without a stream flag
        scanner.feed(body)
        scanner.close()
        return
    tracker.on_body(obj)
