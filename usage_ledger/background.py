"""Responses background mode: a call whose usage arrives on a later poll.

`POST /v1/responses` with `background: true` answers at once with the response `queued` (or,
streamed, ends while it is `in_progress` when the client lets go) and `usage: null`. The model
runs on; the client polls `GET /v1/responses/{id}` (or replays its stream with `?stream=true`,
or cancels it with `POST .../cancel`) until the status is terminal. The poll that shows it
finished gives the original call's row its usage, model and cost; polls are not calls of their
own and get no row. Source: platform.openai.com/docs/guides/background.

Waiting responses are kept in memory only (the most recent MAX_WAITING): a poll after a proxy
restart is not matched, and the call's row keeps NULL usage.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass

from mitmproxy import http

from .apis.openai_responses import TERMINAL, ResponsesTracker
from .call import Call
from .scanner import scan_body

log = logging.getLogger(__name__)

MAX_WAITING = 10_000
_POLL_PATH = re.compile(r"/responses/([^/]+?)(/cancel)?$")


@dataclass
class Poll:
    call: Call
    """The original call, whose row the poll completes."""
    reader: Call
    """The poll's own response, read as a call's would be (streamed or not)."""


class BackgroundResponses:
    def __init__(self) -> None:
        self.waiting: OrderedDict[str, Call] = OrderedDict()
        self.polls: dict[str, Poll] = {}

    def remember(self, call: Call) -> None:
        """A finished call whose response is still running: wait for a poll to show its end."""
        tracker = call.tracker
        if isinstance(tracker, ResponsesTracker) and tracker.unfinished and tracker.response_id:
            self.waiting[tracker.response_id] = call
            self.waiting.move_to_end(tracker.response_id)
            while len(self.waiting) > MAX_WAITING:
                self.waiting.popitem(last=False)

    def start_poll(self, flow: http.HTTPFlow) -> bool:
        """Whether this request polls a waiting response (then it is watched, and no call)."""
        if not self.waiting or flow.request.method not in ("GET", "POST"):
            return False
        m = _POLL_PATH.search(flow.request.path.partition("?")[0])
        if not m or (flow.request.method == "POST") != bool(m.group(2)):
            return False
        call = self.waiting.get(m.group(1))
        if call is None:
            return False
        reader = Call.start(flow, call.recognised, ResponsesTracker)
        self.polls[flow.id] = Poll(call, reader)
        return True

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        poll = self.polls.get(flow.id)
        if poll is not None and flow.response is not None and poll.reader.begin_response(flow.response):
            flow.response.stream = poll.reader.on_chunk

    def finished(self, flow: http.HTTPFlow) -> Call | None:
        """The original call, its tracker now the poll's, when this poll shows the response
        ended; else None (still running, an error answer, or not a poll)."""
        poll = self.polls.pop(flow.id, None)
        response = flow.response
        if poll is None or response is None or not 200 <= response.status_code < 300:
            return None
        reader = poll.reader
        try:
            if reader.scanner is not None:
                reader.scanner.abandon()  # a no-op once the stream ended whole
            elif not reader.streamed:
                scan_body(reader.tracker, response.get_content(strict=False) or b"")
        except Exception:
            log.exception("usage-ledger: could not read the poll %s of a background response", flow.id)
            return None
        tracker = reader.tracker
        if tracker.status not in TERMINAL or tracker.response_id is None:
            return None
        call = self.waiting.pop(tracker.response_id, None)
        if call is None:
            return None
        call.tracker = tracker
        return call

    def failed(self, flow: http.HTTPFlow) -> None:
        self.polls.pop(flow.id, None)
