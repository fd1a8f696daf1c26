"""The stand-in's OpenAI Responses over WebSocket, as Codex uses it (`GET /v1/responses`,
`GET /backend-api/codex/responses`): StandIn hands it any request with `Upgrade: websocket`.

Each client `response.create` is answered with `response.created`, a few
`response.output_text.delta` events and `response.completed`, whose usage is distinct per
response (see `usage_for`), so a row cannot match the wrong call. A warm-up
(`"generate": false`) is answered `response.created` then `response.completed` with output 0.
`response.processed` and other client messages get no answer. A response.create may ask for a
behaviour with `"metadata": {"standin_fault": ...}`:

  close-midway     the server drops the TCP connection after the deltas, before the end
  error-429        one `error` event with `"status": 429` (Codex's wrapped HTTP error)
  stall            the deltas, then nothing until the client goes
  end-when-asked   the deltas; `response.completed` only once the client sends
                   `{"type": "standin.finish"}` (so a test can stop the proxy in between)

Every message the client sent is kept in StandIn.ws_messages (parsed JSON).
"""

from __future__ import annotations

import asyncio
import json

import wsproto
import wsproto.events as ev
from wsproto.extensions import PerMessageDeflate

DELTAS = ("po", "ng", "!")


def usage_for(number: int, warmup: bool = False) -> dict:
    """The usage of the connection's `number`th response (1-based): input 1000 + 100 n, of which
    cached 64 n; output 20 + n (0 for a warm-up), of which reasoning n."""
    output = 0 if warmup else 20 + number
    return {"input_tokens": 1000 + 100 * number,
            "input_tokens_details": {"cached_tokens": 64 * number},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": 0 if warmup else number},
            "total_tokens": 1000 + 100 * number + output}


def response_object(number: int, model: str, status: str, usage: dict | None) -> dict:
    return {"id": f"resp_standin_{number}", "object": "response", "status": status, "model": model,
            "service_tier": "default", "usage": usage, "output": []}


async def serve_websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes,
                          kept: list, answer=None, session=None) -> None:
    """Speak WebSocket on a connection whose upgrade request (`head`, through its blank line)
    has been read; returns when the connection ends. `answer(message)`, when given, returns the
    server events for each response.create instead (tests/synth.py's, for real agents).
    `session`, when given, speaks another protocol (standin_realtime.py): its `greeting` events
    go out once the connection is accepted, and `await session.on_message(message, send_json,
    writer)` answers every client message (False once the connection is to be dropped)."""
    ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    ws.receive_data(head)
    number = 0
    closed = False

    async def send(event) -> None:
        writer.write(ws.send(event))
        await writer.drain()

    async def send_json(obj: dict) -> None:
        await send(ev.TextMessage(json.dumps(obj)))

    text = ""
    held: list[dict] = []  # terminal events that end-when-asked keeps back
    while not closed:
        for event in ws.events():
            if isinstance(event, ev.Request):
                # permessage-deflate when offered, as OpenAI's servers and Codex use it
                # Realtime's subprotocol when offered (browsers send their key beside it)
                chosen = "realtime" if "realtime" in event.subprotocols else None
                await send(ev.AcceptConnection(extensions=[PerMessageDeflate()], subprotocol=chosen,
                                               extra_headers=[(b"x-standin", b"responses-websocket")]))
                for greeting in session.greeting if session is not None else ():
                    await send_json(greeting)
            elif isinstance(event, ev.Ping):
                await send(event.response())
            elif isinstance(event, ev.CloseConnection):
                if ws.state == wsproto.connection.ConnectionState.REMOTE_CLOSING:
                    await send(event.response())
                closed = True
            elif isinstance(event, ev.TextMessage):
                text += event.data
                if not event.message_finished:
                    continue
                message, text = json.loads(text), ""
                kept.append(message)
                if session is not None:
                    if not await session.on_message(message, send_json, writer):
                        return
                    continue
                if message.get("type") == "standin.finish" and held:
                    await send_json(held.pop(0))
                    continue
                if message.get("type") != "response.create":
                    continue
                number += 1
                if answer is not None:
                    for event in answer(message):
                        await send_json(event)
                elif not await respond(send_json, number, message, writer, held):
                    return
        if closed:
            break
        data = await reader.read(65536)
        if not data:
            return
        ws.receive_data(data)


async def respond(send_json, number: int, message: dict, writer: asyncio.StreamWriter,
                  held: list[dict] | None = None) -> bool:
    """Answer one response.create; False once the connection is to be dropped. `held` gets the
    terminal event end-when-asked keeps back."""
    model = message.get("model") or "gpt-5.1-codex"
    fault = (message.get("metadata") or {}).get("standin_fault", "")
    warmup = message.get("generate") is False
    if fault == "error-429":
        await send_json({"type": "error", "status": 429,
                         "error": {"type": "usage_limit_reached", "message": "The usage limit has been reached"}})
        return True
    await send_json({"type": "response.created", "sequence_number": 0,
                     "response": response_object(number, model, "in_progress", None)})
    if not warmup:
        # the message item around the deltas, as Codex expects it (it logs deltas outside one)
        item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []}
        await send_json({"type": "response.output_item.added", "output_index": 0, "item": item})
        for i, delta in enumerate(DELTAS):
            await send_json({"type": "response.output_text.delta", "sequence_number": i + 1,
                             "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": delta})
    if fault == "close-midway":
        writer.transport.abort()
        return False
    if fault == "stall":
        return True
    if not warmup:
        text = "".join(DELTAS)
        await send_json({"type": "response.output_item.done", "output_index": 0, "item": {
            "type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}})
    completed = {"type": "response.completed", "sequence_number": 9,
                 "response": response_object(number, model, "completed", usage_for(number, warmup))}
    if fault == "end-when-asked" and held is not None:
        held.append(completed)
        return True
    await send_json(completed)
    return True
