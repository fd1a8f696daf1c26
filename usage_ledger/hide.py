"""Hiding the usage-only chunk that our `include_usage` injection caused.

A client that did not ask for usage may index `choices[0]` and crash on the extra
`choices: []` chunk. The filter passes the stream through event by event: each complete SSE
event goes on as soon as its closing blank line arrives (a client cannot act on half an event
anyway), byte for byte, except an event whose data is a chunk with empty `choices` and a usage
object. An unfinished event at the end of the stream goes on too, unless it is that chunk (a
server may end the stream right after it, with no blank line and no `[DONE]`). Pure: bytes in,
bytes out; the bytes must be decoded (no Content-Encoding).

Cost per chunk, on the path every chunk of an LF stream takes: one backward search for the last
blank line (it stops at the first it meets), a memchr for CR in the few bytes after it, the copies
of what goes on and what is held, and one search for an empty array (`[` then `]` or white space:
C code, about 0.3-0.5 ns a byte; no memchr-speed test exists for a pair of bytes that are each
common, and every byte of a usage-only event is common in the others); events are looked at one by
one only in a region that has one. The regions also feed the usage scanner (`scan`), which then
keeps them by reference instead of copying and searching the stream again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from . import json_bytes
from .frames import DEFAULT_MAX_FRAME

log = logging.getLogger(__name__)

_BLANK_LINE = re.compile(rb"\r\n\r\n|\r\n\n|\n\r\n|\r\r\n|\r\n\r|\n\n|\n\r|\r\r")
"""A line end followed by an empty line, longest form first, so a CRLF's LF stays with it."""
_EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')
_MAYBE_EMPTY_ARRAY = re.compile(rb"\[[\]\s]")
"""What every event with an empty `choices` holds, however its JSON is spaced or its data split
into lines: an opening bracket followed by the closing one or white space."""
_DATA_LINE = re.compile(rb"^data: ?(.*)$", re.M)
_HOLD_JOINED = 64 * 1024
"""An unfinished event longer than this is held in the pieces it comes in, joined once when it
ends: joining every piece to it as it came would copy a long event (a big JSON document answered
to a stream request) over and over, in time growing with its size squared."""


def _leading_blank_lines(event: bytes) -> bytes:
    """The empty lines an event starts with: extra line ends after the blank line before it,
    which are not the event's own and go on when it is cut out."""
    return event[:len(event) - len(event.lstrip(b"\r\n"))]


def is_usage_only_event(event: bytes) -> bool:
    """Is this SSE event (its lines, with or without the closing blank line) a chunk whose
    `choices` is empty and whose `usage` is an object?"""
    data = b"\n".join(m.group(1) for m in _DATA_LINE.finditer(event.replace(b"\r\n", b"\n").replace(b"\r", b"\n")))
    if not _EMPTY_CHOICES.search(data):
        return False
    try:
        chunk = json_bytes.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(chunk, dict) and chunk.get("choices") == [] and isinstance(chunk.get("usage"), dict)


class UsageChunkFilter:
    """`feed` takes the decoded body chunk by chunk and returns what goes on to the client.

    `scan`, if given, is handed every byte of the stream, unfiltered and in order: each region of
    whole events as it goes on (`StreamScanner.feed_frames`, which then need not look for frame
    boundaries itself), and the unfinished event at the end. If it raises, `scan_failed` is set,
    the error logged, and nothing more is handed to it; the client's bytes are not affected.
    """

    def __init__(self, scan: Callable[[bytes], None] | None = None) -> None:
        self.tail = b""
        """The bytes after the last blank line: the event still arriving (empty while `more`
        holds it, a long one, in pieces)."""
        self.more: list[bytes] = []
        self.more_size = 0
        self.hold_joined = _HOLD_JOINED
        self.max_hold = DEFAULT_MAX_FRAME
        """An unfinished event longer than this is no usage chunk (a few hundred bytes) but a
        broken stream: it goes on, and so does the rest of the stream, unfiltered (`passing`),
        so that memory stays bounded."""
        self.passing = False
        self.hidden = 0
        self.scan = scan
        self.scan_failed = False
        self.after_cr = False  # the last region forwarded ended in CR
        self.swallow_lf = False  # ...and its last event was hidden
        self.cr_seen = False  # the stream has CR line ends (or CRs) somewhere

    def feed(self, data: bytes) -> list[bytes]:
        """The bytes to forward now (never an empty piece: that would end the response);
        `b""` says the stream has ended."""
        if not data:
            return self.finish()
        if self.more or self.passing:
            return self.feed_long(data)
        if self.cr_seen:
            return self.feed_cr(data)
        # LF line ends so far, as nearly every server sends: the last blank line is the last LF LF,
        # unless a CR after it makes a CR-ending one later (`int in bytes`: a memchr without the
        # argument parsing of `find`).
        tail = self.tail
        if tail:
            buf = tail + data
            end = buf.rfind(b"\n\n", len(tail) - 1)  # a blank line may straddle the joint
        else:
            buf = data
            end = data.rfind(b"\n\n")
        if end < 0:
            if 13 in data:
                return self.feed_cr(data)
            return self.hold(buf)
        end += 2
        if end == len(buf):
            region, rest = buf, b""
        else:
            region, rest = buf[:end], buf[end:]
            if 13 in rest:
                return self.feed_cr(data)
        self.tail = rest
        scan = self.scan
        if scan is not None:
            try:  # inline, as scanned() does: this is every chunk's path
                scan(region)
            except Exception:
                self.scan_stopped()
        if _MAYBE_EMPTY_ARRAY.search(region) is not None:
            region = self.filtered(region)
        return [region] if region else []

    def feed_cr(self, data: bytes) -> list[bytes]:
        """feed, once the stream has shown a CR: any of the blank-line forms may end an event."""
        self.cr_seen = True
        lead = b""
        if self.after_cr:  # the last region ended in CR: an LF now completes its blank line
            self.after_cr = False
            if data[:1] == b"\n":
                data = data[1:]
                if self.scan is not None:
                    self.scanned(b"\n")
                lead = b"" if self.swallow_lf else b"\n"  # with its event, shown or hidden
            self.swallow_lf = False
            if not data:
                return [lead] if lead else []
        tail = self.tail
        buf = tail + data if tail else data
        start = len(tail) - 1 if tail else 0  # a blank line may straddle the joint
        end = buf.rfind(b"\n\r", start)
        end = max(end, buf.rfind(b"\n\n", max(end, start)))
        end = max(end, buf.rfind(b"\r\r", max(end, start)))
        if end < 0:
            held = self.hold(buf)
            return [lead, *held] if lead else held
        end += 2
        if buf[end - 1] == 0x0D and buf[end:end + 1] == b"\n":
            end += 1  # the LF of a CRLF blank line: a client may wait for it
        at_end = end == len(buf)
        region = buf if at_end else buf[:end]
        self.tail = buf[end:]
        # An LF in the next chunk completes the blank line only if it comes right after it:
        # with bytes of the next event already here, it is that event's.
        self.after_cr = at_end and buf[end - 1] == 0x0D
        if self.scan is not None:
            self.scanned(region)
        if _MAYBE_EMPTY_ARRAY.search(region) is not None:
            region = self.filtered(region)
        self.swallow_lf = self.swallow_lf and self.after_cr
        out = lead + region if lead else region
        return [out] if out else []

    def hold(self, event: bytes) -> list[bytes]:
        """Keep an unfinished event; past `hold_joined` bytes, as pieces in `more`. Returns what
        goes on now: nothing, unless the event is past `max_hold`."""
        if len(event) <= self.hold_joined and len(event) <= self.max_hold:
            self.tail = event
            return []
        self.tail, self.more, self.more_size = b"", [event], len(event)
        return self.give_up() if self.more_size > self.max_hold else []

    def feed_long(self, data: bytes) -> list[bytes]:
        """feed while a long unfinished event is held in pieces: the next piece is only added to
        them, unless it may end the event (a blank line in it or across the joint, in any form).
        While `passing`, every byte goes on as it comes."""
        if self.passing:
            if self.scan is not None:
                self.scanned(data)
            return [data]
        more = self.more
        probe = more[-1][-1:] + data
        if b"\n\n" not in probe and b"\n\r" not in probe and b"\r\r" not in probe:
            more.append(data)
            self.more_size += len(data)
            return self.give_up() if self.more_size > self.max_hold else []
        self.tail, self.more = b"".join(more), []
        return self.feed(data)

    def give_up(self) -> list[bytes]:
        """An event past `max_hold`: what is held goes on, and the rest of the stream as it comes."""
        log.warning("usage-ledger: a stream event of more than %d bytes; the rest of the stream goes on "
                    "unfiltered (a usage chunk the proxy asked for would reach the client)", self.max_hold)
        held, self.more, self.passing = b"".join(self.more), [], True
        if self.scan is not None:
            self.scanned(held)
        return [held]

    def scanned(self, data: bytes) -> None:
        try:
            self.scan(data)
        except Exception:
            self.scan_stopped()

    def scan_stopped(self) -> None:
        """scan raised: our bug must cost the client nothing, so usage is no longer read instead."""
        log.exception("usage-ledger: stopped reading usage from a stream")
        self.scan, self.scan_failed = None, True

    def filtered(self, region: bytes) -> bytes:
        """A region of whole events that may hold the usage chunk, without it."""
        try:
            return self.without_usage_chunk(region)
        except Exception:  # our bug must cost the client nothing: pass the region on whole
            log.exception("usage-ledger: could not filter a stream; passing it on as it came")
            return region

    def finish(self) -> list[bytes]:
        if self.passing:
            return []
        rest, self.tail = b"".join((self.tail, *self.more)), b""
        self.more = []
        if not rest:
            return []
        if self.scan is not None:
            self.scanned(rest)
        try:
            if _MAYBE_EMPTY_ARRAY.search(rest) is not None and is_usage_only_event(rest):
                self.hidden += 1
                blank = _leading_blank_lines(rest)
                return [blank] if blank else []
        except Exception:
            log.exception("usage-ledger: could not filter a stream's end; passing it on as it came")
        return [rest]

    def without_usage_chunk(self, region: bytes) -> bytes:
        kept, start = [], 0
        for blank in _BLANK_LINE.finditer(region):
            event = region[start:blank.end()]
            start = blank.end()
            if is_usage_only_event(event):
                self.hidden += 1
                self.swallow_lf = start == len(region) and region.endswith(b"\r")
                blank = _leading_blank_lines(event)
                if blank:
                    kept.append(blank)
            else:
                kept.append(event)
        kept.append(region[start:])
        return b"".join(kept)
