"""The frame and the framer interface every stream framer implements (see framing.py).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
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

_LINE_END = re.compile(rb"\r\n|\r|\n")


def split_lines(region: bytes) -> list[bytes]:
    """region's lines, at CR, LF or CRLF (the WHATWG event-stream and NDJSON line ends).

    Nearly every server ends lines with LF alone: then bytes.split, a tenth of the regex's time
    (a memchr tells, CR being in no LF-only region)."""
    return region.split(b"\n") if 13 not in region else _LINE_END.split(region)
_BOM = b"\xef\xbb\xbf"
LEADING_NOISE = b" \t\r\n" + _BOM
"""What may come before a body's first meaningful byte: white space and a byte order mark."""


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
