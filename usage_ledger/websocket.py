"""Calls made over WebSocket: OpenAI Responses (Codex), one row per `response.create`, and
OpenAI Realtime sessions, one row per response.

mitmproxy's WebSocket hooks, over the pure parsers in apis/openai_responses_ws.py and
apis/openai_realtime.py. Messages are only read, never changed, delayed or reordered: mitmproxy
forwards a message once its `websocket_message` hooks have returned, and these return at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from mitmproxy import ctx, http
from mitmproxy.websocket import WebSocketMessage

from .apis.openai_realtime import API as REALTIME
from .apis.openai_realtime import RealtimeSocket, is_realtime_websocket, requested_model, subprotocol_key
from .apis.openai_responses_ws import ResponsesSocket, WsResponse, is_responses_websocket
from .attribution import credential, fingerprint, scrub
from .outcomes import failure_outcome
from .request_info import flow_tags, iso_utc, request_columns
from .providers import provider_for
from .records import CallEnded, CallFinished, CallStarted, usage_columns

log = logging.getLogger(__name__)

API = "openai-responses"
STARTED = "usage_ledger_ws_started"
"""flow.metadata: the WsResponse the latest client message started, for the budgets' gate
(Responses only: the gate answers a refusal in the Responses' shape)."""


@dataclass
class Connection:
    flow: http.HTTPFlow
    socket: ResponsesSocket | RealtimeSocket
    api: str
    provider: str
    secret: str | None


def _ms(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round((end - start) * 1000, 3)


class WebSocketCalls:
    """Sub-addon of UsageLedger: `submit` hands records to its ledger."""

    def __init__(self, submit: Callable[[object], None],
                 then_for: Callable[[str], Callable | None] = lambda row_id: None,
                 ended: Callable[[], None] = lambda: None) -> None:
        """then_for(row id): the writer's callback for that row once priced (records.CallEnded.then);
        ended(): called after a response's row ended (a stopping proxy waits for the last)."""
        self.submit = submit
        self.then_for = then_for
        self.ended = ended
        self.connections: dict[str, Connection] = {}

    def in_flight(self) -> int:
        """Responses asked for and not ended yet, on every connection."""
        return sum(len(connection.socket.open) for connection in self.connections.values())

    def move_open_responses(self, old: Callable[[object], None], new: Callable[[object], None], why: str) -> None:
        """`ledger_db` changed: each open response's row starts again in the new ledger, and ends
        in the old one as `proxy_stopped`, without the usage its new row will have."""
        for connection in self.connections.values():
            flow = connection.flow
            for response in connection.socket.open:
                if not response.announced:
                    continue  # its start has not been written anywhere yet
                new(self.started_record(flow, connection, response))
                ended = self.ended_record(flow, connection, response, "proxy_stopped", why)
                old(replace(ended, row=ended.row._replace(**usage_columns(None)), usage=None, then=None))

    def load(self, loader) -> None:
        loader.add_option(
            "ledger_keep_websocket_messages", bool, False,
            "Keep every WebSocket message of an LLM connection in its flow. By default only the "
            "latest is kept, so a long Codex session holds constant memory; kept anyway when "
            "mitmweb or the console shows flows, or flows are saved (save_stream_file).",
        )

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        path, _, query = request.path.partition("?")
        socket: ResponsesSocket | RealtimeSocket
        if is_responses_websocket(request.method, path):
            socket, api = ResponsesSocket(), API
        elif is_realtime_websocket(request.method, path):
            socket, api = RealtimeSocket(requested_model(query)), REALTIME
        else:
            return
        secret = credential(request.headers, query)
        if secret is None and api == REALTIME:
            secret = subprotocol_key(request.headers.get("sec-websocket-protocol", ""))
        self.connections[flow.id] = Connection(
            flow, socket, api, provider_for(request.pretty_host, request.port, api), secret)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        connection = self.connections.get(flow.id)
        if connection is None or flow.websocket is None:
            return
        messages = flow.websocket.messages
        message = messages[-1]
        try:
            self.read(flow, connection, message)
        except Exception:  # our bug must never break the connection
            log.exception("usage-ledger: could not read a WebSocket message of flow %s", flow.id)
        if len(messages) > 1 and not self.keep_messages():
            # Safe: mitmproxy forwards the message object it holds, not the list's entry; the
            # latest stays for addons after this one.
            del messages[:-1]

    def read(self, flow: http.HTTPFlow, connection: Connection, message: WebSocketMessage) -> None:
        if not message.is_text or message.injected:  # an injected message is ours, not a call's
            return
        socket = connection.socket
        if message.from_client:
            response = socket.client_message(message.content, message.timestamp)
            if response is not None and connection.api == API:
                flow.metadata[STARTED] = response
        else:
            response = socket.server_message(message.content, message.timestamp)
        if response is None:
            return
        if not response.announced:  # a client's request, or a response the server began itself
            response.announced = True
            self.submit(self.started_record(flow, connection, response))
        if response.ended:
            self.submit(self.ended_record(flow, connection, response))
            self.ended()

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        connection = self.connections.pop(flow.id, None)
        if connection is None:
            return
        if flow.error is not None:
            outcome, error = failure_outcome(flow.error.msg), flow.error.msg
        else:
            ws = flow.websocket
            by_client = ws is not None and ws.closed_by_client
            code = ws.close_code if ws is not None else None
            outcome = "client_aborted" if by_client else "upstream_failed"
            error = (f"WebSocket closed by the {'client' if by_client else 'server'} "
                     f"before the response ended (close code {code})")
        self.close(flow, connection, outcome, error)

    def refuse(self, flow: http.HTTPFlow, response: WsResponse, error: str) -> None:
        """The proxy refused this response (a used-up budget) before it went upstream: its row
        ends `blocked`, no tokens, no status."""
        connection = self.connections.get(flow.id)
        if connection is None or response not in connection.socket.open:
            return
        connection.socket.open.remove(response)
        response.ended_at = time.time()
        ended = self.ended_record(flow, connection, response, "blocked", error)
        self.submit(replace(ended, row=ended.row._replace(status_code=None)))
        self.ended()

    def close(self, flow: http.HTTPFlow, connection: Connection, outcome: str, error: str) -> None:
        now = time.time()
        for response in list(connection.socket.open):
            response.ended_at = now
            self.submit(self.ended_record(flow, connection, response, outcome, error))
        connection.socket.open.clear()
        self.ended()

    def close_all(self, outcome: str, error: str) -> None:
        """The proxy stops: responses still open end with the usage seen so far."""
        connections, self.connections = list(self.connections.values()), {}
        for connection in connections:
            self.close(connection.flow, connection, outcome, error)

    @staticmethod
    def keep_messages() -> bool:
        options = ctx.options
        if getattr(options, "ledger_keep_websocket_messages", False) or getattr(options, "save_stream_file", None):
            return True
        master = getattr(ctx, "master", None)
        return master is not None and master.addons.get("view") is not None

    # --- rows ------------------------------------------------------------------------------

    @staticmethod
    def row_id(flow_id: str, response: WsResponse) -> str:
        return f"{flow_id}/ws-{response.number}"

    def started_record(self, flow: http.HTTPFlow, connection: Connection, response: WsResponse) -> CallStarted:
        return CallStarted(
            flow_id=self.row_id(flow.id, response), stream=1, usage_injected=0,
            started_at=iso_utc(response.created_at),
            **request_columns(flow),
            provider=connection.provider, api=connection.api,
            model_requested=response.model_requested,
            tags=flow_tags(flow),
            api_key_id=fingerprint(connection.secret),
        )

    def ended_record(self, flow: http.HTTPFlow, connection: Connection, response: WsResponse,
                     outcome: str | None = None, error: str | None = None) -> CallEnded:
        tracker = response.tracker
        status = response.status_code
        if outcome is None:
            if status is not None:
                outcome, error = "http_error", tracker.error or f"HTTP {status}"
            elif tracker.error:
                outcome, error = "stream_error", tracker.error
            else:
                outcome = "ok"
        usage = tracker.usage()
        row = CallFinished(
            flow_id=self.row_id(flow.id, response), outcome=outcome,
            status_code=status if status is not None else 101, stream=1, usage_injected=0,
            model=tracker.model or response.model_requested,
            ttfb_ms=_ms(response.created_at, response.first_event_at),
            duration_ms=_ms(response.created_at, response.ended_at),
            **usage_columns(usage),
            cost_usd=None, price_source=None,
            service_tier=tracker.service_tier,
            error=scrub(error, connection.secret),
        )
        return CallEnded(row, provider=connection.provider, api=connection.api, usage=usage,
                         when=datetime.fromtimestamp(response.created_at, UTC),
                         service_tier=tracker.service_tier, then=self.then_for(row.flow_id))

