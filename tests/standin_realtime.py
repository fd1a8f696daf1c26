"""The stand-in's OpenAI Realtime session (`GET /v1/realtime?model=...` upgraded to a WebSocket):
StandIn hands it any WebSocket upgrade whose path ends in `/realtime` (standin_ws.py frames it).

The server greets with `session.created`, whose `session.model` is the query's model with a
date (`gpt-realtime` -> `gpt-realtime-2025-08-28`), as OpenAI's does. `session.update` is
answered `session.updated`. Each `response.create` is answered `response.created`, an output
item, a transcript delta, audio deltas (`AUDIO_DELTA`, as big as 100 ms of 24 kHz PCM16) and
`response.done` with usage distinct per response (`usage_for`). `input_audio_buffer.commit`
starts a response nobody asked for with response.create, as server voice activity detection
does when the user stops speaking. Other client messages (`input_audio_buffer.append`,
`conversation.item.create`) get no answer. A response.create may ask for a behaviour with
`"response": {"metadata": {"standin_fault": ...}}`:

  busy           an `error` event (`conversation_already_has_active_response`) naming the
                 response.create's `event_id`, and no response
  failed         `response.done` with status `failed`, an error in its `status_details`, and
                 the usage of the prompt it read
  close-midway   the server drops the TCP connection after the deltas, before response.done
  stall          the deltas, then nothing until the client goes

Shapes: platform.openai.com/docs/api-reference/realtime-server-events (the GA interface).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

AUDIO_DELTA = base64.b64encode(bytes(range(256)) * 19).decode()
TRANSCRIPT = "Hello there!"
DATED = {"gpt-realtime": "gpt-realtime-2025-08-28", "gpt-realtime-mini": "gpt-realtime-mini-2025-12-15"}


def is_realtime(target: str) -> bool:
    return urlsplit(target).path.endswith("/realtime")


def usage_for(number: int, failed: bool = False) -> dict:
    """The usage of the session's `number`th response (1-based): input text 300 + 10 n and
    audio 700 + 20 n, of which cached text 32 n and audio 16 n; output text 20 + n and audio
    200 + 3 n (none for a failed response)."""
    text_in, audio_in = 300 + 10 * number, 700 + 20 * number
    text_out, audio_out = (0, 0) if failed else (20 + number, 200 + 3 * number)
    return {"total_tokens": text_in + audio_in + text_out + audio_out,
            "input_tokens": text_in + audio_in, "output_tokens": text_out + audio_out,
            "input_token_details": {"text_tokens": text_in, "audio_tokens": audio_in, "image_tokens": 0,
                                    "cached_tokens": 48 * number,
                                    "cached_tokens_details": {"text_tokens": 32 * number, "audio_tokens": 16 * number,
                                                              "image_tokens": 0}},
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out}}


@dataclass
class RealtimeSession:
    target: str
    """The upgrade request's target (path and query)."""
    responses: int = 0
    events: int = 0
    model: str = field(init=False)

    def __post_init__(self) -> None:
        requested = dict(parse_qsl(urlsplit(self.target).query)).get("model", "gpt-realtime")
        self.model = DATED.get(requested, requested)

    def event(self, kind: str, **fields) -> dict:
        self.events += 1
        return {"type": kind, "event_id": f"event_standin_{self.events}", **fields}

    def session(self) -> dict:
        return {"type": "realtime", "object": "realtime.session", "id": "sess_standin", "model": self.model,
                "output_modalities": ["audio"], "audio": {"input": {"turn_detection": {"type": "server_vad"}}}}

    @property
    def greeting(self) -> list[dict]:
        return [self.event("session.created", session=self.session())]

    async def on_message(self, message: dict, send_json, writer: asyncio.StreamWriter) -> bool:
        kind = message.get("type")
        if kind == "session.update":
            await send_json(self.event("session.updated", session=self.session()))
        elif kind == "input_audio_buffer.commit":
            await send_json(self.event("input_audio_buffer.committed", item_id="item_user", previous_item_id=None))
            return await self.respond(send_json, writer, "")
        elif kind == "response.create":
            fault = ((message.get("response") or {}).get("metadata") or {}).get("standin_fault", "")
            if fault == "busy":
                await send_json(self.event("error", error={
                    "type": "invalid_request_error", "code": "conversation_already_has_active_response",
                    "message": "Conversation already has an active response in progress: resp_standin_0",
                    "param": None, "event_id": message.get("event_id")}))
                return True
            return await self.respond(send_json, writer, fault)
        return True

    async def respond(self, send_json, writer: asyncio.StreamWriter, fault: str) -> bool:
        """One response; False once the connection is to be dropped."""
        self.responses += 1
        n = self.responses
        rid, item_id = f"resp_standin_{n}", f"item_standin_{n}"
        response = {"object": "realtime.response", "id": rid, "status": "in_progress", "status_details": None,
                    "output": [], "conversation_id": "conv_standin", "output_modalities": ["audio"],
                    "usage": None, "metadata": None}
        item = {"id": item_id, "type": "message", "object": "realtime.item", "status": "in_progress",
                "role": "assistant", "content": []}
        await send_json(self.event("response.created", response=response))
        await send_json(self.event("response.output_item.added", response_id=rid, output_index=0, item=item))
        where = {"response_id": rid, "item_id": item_id, "output_index": 0, "content_index": 0}
        await send_json(self.event("response.output_audio_transcript.delta", **where, delta=TRANSCRIPT))
        for _ in range(3):
            await send_json(self.event("response.output_audio.delta", **where, delta=AUDIO_DELTA))
        if fault == "close-midway":
            writer.transport.abort()
            return False
        if fault == "stall":
            return True
        done_item = {**item, "status": "completed",
                     "content": [{"type": "output_audio", "transcript": TRANSCRIPT}]}
        status, details = "completed", None
        if fault == "failed":
            status, done_item = "failed", None
            details = {"type": "failed", "error": {"type": "server_error", "message": "The model failed midway"}}
        await send_json(self.event("response.done", response={
            **response, "status": status, "status_details": details, "output": [done_item] if done_item else [],
            "usage": usage_for(n, failed=fault == "failed")}))
        return True
