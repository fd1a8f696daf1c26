"""One recognised LLM call on its way through the proxy, and the ledger records it produces.

Knows mitmproxy's flow objects but not the addon machinery or SQLite.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mitmproxy import http

from .apis import Recognised, Tracker
from .apis.base import body_error
from .frames import Frame
from .attribution import credential, fingerprint, scrub
from .decoding import Decode, UnsupportedEncoding, decoder_for
from .headers import header_map, pretty_host
from .inject import names_stream_options
from .outcomes import final_outcome
from .hide import UsageChunkFilter
from .pricing.reported import header_cost
from .providers import provider_for
from .records import CallEnded, CallFinished, CallStarted, usage_columns
from .request_info import flow_tags, iso_utc, request_columns
from .scanner import StreamScanner, scan_body
from .stream_path import StreamPath
from .usage import Usage

log = logging.getLogger(__name__)

_STREAM_TYPES = re.compile("text/event-stream|ndjson|jsonl")
_MEDIA_TYPES = ("audio/", "image/", "video/", "application/octet-stream")


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 3)


@dataclass
class Call(StreamPath):
    row_id: str
    """The row's `flow_id`: mitmproxy's flow id, with a suffix for each replay of the flow
    (a replay reuses the flow, and is a call of its own)."""
    flow: http.HTTPFlow
    recognised: Recognised
    tracker: Tracker
    provider: str
    usage_injected: bool = False
    hide_usage_chunk: bool = False
    streamed: bool = False
    scanner: StreamScanner | None = None
    chunk_filter: UsageChunkFilter | None = None
    decode: Decode | None = None
    """Set when the proxy decodes a compressed stream to hide its usage chunk: the client then
    gets it decoded, without the Content-Encoding header."""
    tags: str | None = None
    secret: str | None = field(default=None, repr=False)
    original_body: bytes | None = field(default=None, repr=False)
    hook_failed: bool = field(default=False, repr=False)
    crash: str | None = None
    """mitmproxy's own failure on this call's connection (the `proxy_error` message)."""
    on_stream_end: Callable[[], None] | None = field(default=None, repr=False)
    """Called once, from the stream, when its terminal event has been read."""
    direct_feed: Callable[[bytes], Iterable[Frame]] | None = field(default=None, repr=False)
    """The scanner's `direct_feed` while the stream is only scanned: every chunk's path."""
    host: str = ""
    """The request's `pretty_host` (the Host header's host, else the address connected to)."""
    request_headers: Mapping[str, str] | None = field(default=None, repr=False)
    """The request's header_map, when the caller made one: read instead of mitmproxy's Headers."""
    response_headers: tuple[http.Response, Mapping[str, str]] | None = field(default=None, repr=False)
    """The response begin_response read, and its header_map (as it came, before any rewrite)."""

    @classmethod
    def start(cls, flow: http.HTTPFlow, recognised: Recognised, tracker_type: type[Tracker],
              headers: Mapping[str, str] | None = None, tags: str | None = None) -> Call:
        """Take the call's tags and credential from the request (`headers`: its header_map;
        `tags`: what flow_tags just returned for it, if the caller asked)."""
        request = flow.request
        host = request.pretty_host if headers is None else pretty_host(request, headers)
        row_id = flow.id if not flow.is_replay else f"{flow.id}/replay-{uuid.uuid4().hex[:8]}"
        tracker = tracker_type(recognised.model_requested)
        tracker.on_request(recognised.body)
        return cls(
            row_id=row_id,
            flow=flow,
            recognised=recognised,
            tracker=tracker,
            provider=provider_for(host, request.port, recognised.api),
            tags=tags if tags is not None else flow_tags(flow),
            secret=credential(request.headers if headers is None else headers, request.path.partition("?")[2]),
            host=host,
            request_headers=headers,
        )

    def inject_usage(self, request: http.Request, rewritten: bytes, hide: bool) -> None:
        """Send `rewritten` (with include_usage) upstream instead of the client's body."""
        self.original_body = request.get_content(strict=False)
        request.content = rewritten
        self.usage_injected = True
        if hide:
            # The usage chunk can only be cut out of a body we can read as it passes.
            request.headers["accept-encoding"] = "identity"
            self.hide_usage_chunk = True

    def started_record(self, flow: http.HTTPFlow, machine: str | None = None) -> CallStarted:
        return CallStarted(
            flow_id=self.row_id,
            started_at=iso_utc(flow.request.timestamp_start),
            **request_columns(flow, self.host, self.request_headers),
            provider=self.provider,
            api=self.recognised.api,
            model_requested=self.recognised.model_requested,
            stream=int(self.recognised.stream_requested),
            usage_injected=int(self.usage_injected),
            tags=self.tags,
            api_key_id=fingerprint(self.secret),
            machine=machine,
        )

    # --- response side -------------------------------------------------------------------

    def begin_response(self, response: http.Response) -> bool:
        """Decide at the response headers whether to stream; returns True to stream."""
        headers = header_map(response.headers)
        self.response_headers = response, headers
        ctype = headers.get("content-type", "").lower()
        ok = 200 <= response.status_code < 300
        if ctype.startswith(_MEDIA_TYPES):  # audio or image bytes: passed on as they come, never read
            self.streamed = True
            return True
        self.streamed = _STREAM_TYPES.search(ctype) is not None or (ok and self.recognised.stream_requested)
        if self.streamed:
            encoding = headers.get("content-encoding", "")
            if self.hide_usage_chunk and ok and "event-stream" in ctype:
                encoding = self.start_hiding(response, encoding)
            self.scanner = StreamScanner(self.tracker, ctype, encoding)
            if self.chunk_filter is not None and not encoding:
                self.chunk_filter.scan = self.scanner.feed_frames  # it hands the scanner every byte
        return self.streamed

    def start_hiding(self, response: http.Response, encoding: str) -> str:
        """Filter the stream for the client. A server may compress it though the proxy asked
        for identity: then it is decoded here and goes on decoded. The encoding the scanner
        still has to undo is returned."""
        if encoding.strip().lower() not in ("", "identity"):
            try:
                self.decode = decoder_for(encoding)
            except UnsupportedEncoding:
                log.warning("usage-ledger: flow %s: cannot decode Content-Encoding %s; the usage chunk "
                            "the proxy asked for reaches the client", self.row_id, encoding)
                return encoding
            del response.headers["content-encoding"]
        self.chunk_filter = UsageChunkFilter()  # the scanner is set in begin_response
        if "content-length" in response.headers:  # the body the client gets is shorter
            del response.headers["content-length"]
            if self.flow.request.http_version == "HTTP/1.1":
                response.headers["transfer-encoding"] = "chunked"
        return ""

    def take_retried_response(self, response: http.Response) -> None:
        """The response to the client's own request, sent again after a refusal: it reached the
        proxy whole, and is read as the stream it is (so the row says stream = 1)."""
        self.usage_injected = False
        self.hide_usage_chunk = False
        self.chunk_filter = None
        self.decode = None
        self.scanner = self.direct_feed = None
        if self.begin_response(response):
            self.on_chunk(response.raw_content or b"")
            self.on_chunk(b"")

    def rejected_stream_options(self, response: http.Response) -> bool:
        """Did a strict server refuse the request because of the field we added?"""
        if not self.usage_injected or response.status_code not in (400, 422) or self.streamed:
            return False
        return names_stream_options(response.get_content(strict=False) or b"")

    def finish(self, flow: http.HTTPFlow, outcome: str | None = None, error: str | None = None,
               then: Callable[[CallFinished], None] | None = None) -> CallEnded:
        """The completed row, still to be priced (by the writer thread, off the event loop), with
        `then` for the priced row (CallEnded.then). Without an outcome, it is read from the response."""
        response = flow.response
        status = response.status_code if response is not None else None
        read = self.response_headers if self.response_headers and self.response_headers[0] is response else None
        if response is not None and not self.streamed and outcome is None:
            if read is not None and "content-encoding" not in read[1]:
                body = response.raw_content or b""  # what get_content gives, without its header lookup
            else:
                body = response.get_content(strict=False) or b""
            if 200 <= response.status_code < 300:
                try:
                    scan_body(self.tracker, body)
                except Exception:
                    log.exception("usage-ledger: could not read usage from flow %s", self.row_id)
            else:
                error = body_error(body)
        self.direct_feed = None
        if self.scanner is not None:
            if not self.scanner.closed:
                self.scanner.abandon()  # broken off: the usage seen so far still counts
            if self.scanner.oversized:
                log.warning("usage-ledger: flow %s: skipped %d frame(s) larger than %d bytes",
                            self.row_id, self.scanner.oversized, self.scanner.max_frame)
            if self.scanner.problem:
                log.warning("usage-ledger: flow %s: %s; its usage is unknown", self.row_id, self.scanner.problem)
        outcome, error = final_outcome(outcome, error, status, self.tracker.ended, self.tracker.error)
        usage = self.tracker.usage()
        if response is None:
            reported = None
        else:  # the headers begin_response read, if they are this response's
            reported = header_cost(read[1] if read is not None else response.headers)
        if reported is not None:  # a gateway's own figure for what it charged
            usage = usage or Usage()
            usage.reported_cost = reported
        model = self.tracker.model or self.recognised.model_requested
        started = flow.request.timestamp_end or flow.request.timestamp_start
        ended = (response.timestamp_end if response is not None else None) or time.time()
        row = CallFinished(
            flow_id=self.row_id,
            outcome=outcome,
            status_code=status,
            stream=int(self.streamed),
            usage_injected=int(self.usage_injected),
            model=model,
            ttfb_ms=_ms(started, response.timestamp_start if response is not None else None),
            duration_ms=_ms(started, ended),
            **usage_columns(usage),
            cost_usd=None,
            price_source=None,
            service_tier=self.tracker.service_tier,
            error=scrub(error, self.secret),
        )
        return CallEnded(row, provider=self.provider, api=self.recognised.api, usage=usage,
                         when=datetime.fromtimestamp(flow.request.timestamp_start, UTC),
                         service_tier=self.tracker.service_tier, then=then,
                         model_requested=self.recognised.model_requested)

    def unread(self, flow: http.HTTPFlow, outcome: str | None, error: str | None) -> CallFinished:
        """The row of a call whose response could not be read: status and timing, no usage."""
        response = flow.response
        status = response.status_code if response is not None else None
        if outcome is None:
            outcome = "ok" if status is not None and 200 <= status < 300 else "http_error"
        return CallFinished(
            flow_id=self.row_id, outcome=outcome, status_code=status, stream=int(self.streamed),
            usage_injected=int(self.usage_injected), model=self.recognised.model_requested,
            ttfb_ms=None, duration_ms=None, **usage_columns(None), cost_usd=None, price_source=None,
            service_tier=None, error=error,
        )

