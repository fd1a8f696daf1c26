"""The path of a streamed response's bytes: mitmproxy's stream callable for one call.

A mixin of `Call` (call.py), which holds the state it reads: the scanner, the chunk filter that
hides the usage chunk (hide.py), the decoder when the proxy decodes to hide. Kept apart because
it runs once per chunk, the hottest code in the addon; nothing here touches the ledger.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class StreamPath:
    """The chunk path of `Call`; every attribute it reads is a field of Call."""

    def on_chunk(self, data: bytes) -> list[bytes]:
        """mitmproxy's stream callable: the bytes go on to the client unchanged, at once.

        The one exception is the usage-only chunk our injection caused (see hide.py).
        """
        feed = self.direct_feed
        if feed is not None and data:  # scanned only: the framer gets the chunk and nothing else runs
            try:
                frames = feed(data)
                if frames:
                    self.scanner.deliver(frames)
            except Exception:  # our bug must never break the client's stream
                self.stop_scanning()
            else:
                if frames:
                    self.notice_end()
            return [data]
        if self.decode is not None:
            if data:
                data = self.decoded(data)
                if not data:
                    return []  # nothing decoded yet: an empty piece would end the response
            elif tail := self.decoded(b""):  # a decoder may hold the body's first bytes back
                return [*self.passed_on(tail), *self.passed_on(b"")]
        return self.passed_on(data)

    def passed_on(self, data: bytes) -> list[bytes]:
        """Scan decoded bytes (`b""`: the end) and filter them for the client."""
        chunk_filter = self.chunk_filter
        pieces = None
        if chunk_filter is not None:
            pieces = chunk_filter.feed(data)  # passes bytes on whole if it fails itself
            self.hook_failed = self.hook_failed or chunk_filter.scan_failed
        if not self.hook_failed and self.scanner is not None:
            try:
                if not data:
                    self.direct_feed = None
                    self.scanner.close()
                elif chunk_filter is None or chunk_filter.scan is None:  # else the filter fed it
                    self.scanner.feed(data)
                    if chunk_filter is None and self.decode is None:
                        self.direct_feed = self.scanner.direct_feed
            except Exception:  # our bug must never break the client's stream
                self.stop_scanning()
        self.notice_end()
        if pieces is not None:
            return pieces
        return [data] if data else []

    def notice_end(self) -> None:
        """Call on_stream_end, once, when the tracker has read the API's terminal event."""
        if self.on_stream_end is not None and self.tracker.ended:
            end, self.on_stream_end = self.on_stream_end, None
            end()

    def stop_scanning(self) -> None:
        self.hook_failed, self.direct_feed = True, None
        log.exception("usage-ledger: stopped reading usage from flow %s", self.row_id)

    def decoded(self, data: bytes) -> bytes:
        try:
            return b"".join(self.decode(data))
        except Exception as e:  # corrupt: the rest goes on as it came (the client could not read it either)
            log.warning("usage-ledger: flow %s: cannot decode the stream (%s); passing it on as it came", self.row_id, e)
            self.decode = self.chunk_filter = None
            self.hook_failed = True  # the scanner reads decoded bytes only
            return data
