"""Budgets over WebSocket: each `response.create` Codex sends is checked before it goes upstream.

The gate's `websocket_message` hook runs after the ledger's WebSocket reader (websocket.py),
which has started the response's row and left it in `flow.metadata[STARTED]`. A refused
`response.create` is dropped (the server never sees it), and the client gets, in its place, the
error event a Responses server sends (`{"type": "error", "status": 429, "error": {"code",
"message"}}`, Codex's `WrappedWebsocketErrorEvent`, which it turns into an HTTP 429 error:
openai/codex codex-rs/codex-api/src/endpoint/responses_websocket.rs), with the budget's
message. No `retry-after` goes with it: Codex would sleep until the period ends. Warm-ups (`"generate": false`) generate nothing and are never refused.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from mitmproxy import ctx, http

from .. import json_bytes
from ..request_info import flow_tags
from ..websocket import API, STARTED
from .refusal import message


def refusal_event(text: str) -> bytes:
    """The Responses error event for a refused `response.create` (UTF-8 JSON text)."""
    return json.dumps({"type": "error", "status": 429,
                       "error": {"type": "budget_exceeded", "code": "budget_exceeded", "message": text}}).encode()


async def check_websocket_message(gate, flow: http.HTTPFlow) -> None:
    """Admit or refuse the response the latest client message started, if it started one."""
    response = flow.metadata.pop(STARTED, None)
    websockets = gate.budgets.ledger.websockets
    connection = websockets.connections.get(flow.id)
    if response is None or response.warmup or connection is None or flow.websocket is None:
        return
    sent = flow.websocket.messages[-1]
    try:
        body = json_bytes.loads(sent.content)
    except (ValueError, RecursionError):
        body = None
    row_id = websockets.row_id(flow.id, response)
    facts, estimate = await gate.assess(connection.provider, API, response.model_requested,
                                        body if isinstance(body, dict) else None, len(sent.content),
                                        flow.request.headers.get("user-agent"), connection.secret, flow_tags(flow))
    now = datetime.now(UTC)
    tracker = gate.budgets.tracker
    refused, _ = tracker.admit(row_id, facts, datetime.fromtimestamp(response.created_at, UTC), estimate, now)
    if refused is None:
        return
    text = message(refused, tracker.zone)
    websockets.refuse(flow, response, text)
    ctx.master.commands.call("inject.websocket", flow, True, refusal_event(text), True)
    sent.drop()  # last: should anything above fail, the call goes through rather than vanish
