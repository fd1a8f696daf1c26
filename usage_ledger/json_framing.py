"""Framers of JSON bodies: one document (an error answered to a stream request, or
newline-delimited objects sent as plain JSON), or one array streamed element by element (Gemini
without `alt=sse`).
"""

from __future__ import annotations

import re

from .frames import DEFAULT_MAX_FRAME, LEADING_NOISE, Frame, Interest, _Framer, split_lines

_NDJSON_SEAM = re.compile(rb"\}[ \t]*\r?\n[ \t\r\n]*\{")


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
            return [Frame(line) for line in split_lines(body) if line.strip()]
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
