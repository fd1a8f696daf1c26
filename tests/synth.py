"""What a provider answers a real agent, synthesized by the stand-in (tests/standin.py) for any
request that names no recorded case: each model call gets a reply in its API's wire format
whose usage is unique to that call (call n reports 1000 + 101n input tokens, 10 + n of them
cached, and 20 + 3n output tokens), so a ledger row can only match the call it belongs to.

Model calls are recognised by the providers' documented paths:
  Anthropic      POST /v1/messages                                   (SSE when "stream": true)
  OpenAI chat    POST /v1/chat/completions                           (usage chunk only if asked)
  Responses      POST /v1/responses, /backend-api/codex/responses    (SSE when "stream": true)
  Gemini         POST /v1beta/models/{model}:generateContent, :streamGenerateContent (?alt=sse)
  Claude on Vertex   POST .../publishers/anthropic/models/{model}:rawPredict, :streamRawPredict
  Claude on Bedrock  POST /model/{id}/invoke, /invoke-with-response-stream (AWS event stream)
  Code Assist    POST cloudcode-pa.googleapis.com/v1internal:generateContent, :streamGenerateContent
                 (Gemini CLI signed in with Google; its sign-in and set-up calls: synth_google.py)
  Responses over WebSocket (`websocket`): each response.create, a warm-up (output 0) included
Start-up calls the agents make (model lists, token counts) get a minimal valid answer; anything
else gets a 404, and is kept in `other` so a test can show what an agent asked for.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from . import awsstream
from . import synth_google as google


@dataclass
class Call:
    """One model call as the ledger should record it (normalised: input includes cached)."""

    n: int
    host: str
    api: str
    model: str
    stream: bool
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int

    @property
    def uncached(self) -> int:
        return self.input_tokens - self.cached_input_tokens


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes
    headers: str = ""


@dataclass
class Synth:
    calls: list[Call] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        path = urlsplit(target).path
        query = urlsplit(target).query
        host = headers.get("host", "")
        try:
            sent = json.loads(body) if body else {}
        except ValueError:
            sent = {}
        if not isinstance(sent, dict):
            sent = {}
        if method == "POST" and path.endswith("/v1/messages"):
            return anthropic(self.call(host, "anthropic-messages", sent.get("model", ""), sent), sent)
        if method == "POST" and path.endswith("/chat/completions"):
            return chat(self.call(host, "openai-chat", sent.get("model", ""), sent), sent)
        if method == "POST" and path.endswith("/responses"):
            return responses(self.call(host, "openai-responses", sent.get("model", ""), sent))
        if method == "POST" and (m := VERTEX_CLAUDE.search(path)):
            return anthropic(self.call(host, "anthropic-messages", m.group(1), sent), sent)
        if method == "POST" and (m := BEDROCK_INVOKE.search(path)):
            streamed = bool(m.group(2))
            call = self.call(host, "anthropic-messages", unquote(m.group(1)), {"stream": streamed})
            return bedrock(call, sent)
        if host.split(":")[0] == google.CODE_ASSIST and (m := google.MODEL_CALL.match(path)):
            streamed = m.group(1) == "streamGenerateContent"  # always alt=sse
            call = self.call(host, "gemini", sent.get("model", ""), {"stream": streamed})
            config = (sent.get("request") or {}).get("generationConfig") or {}
            objects = google.code_assist(gemini_objects(call, config), call.n)
            return sse_objects(objects) if streamed else json_reply(objects[0])
        if (known := google.startup(method, host, path)) is not None:
            return json_reply(known)
        if m := GEMINI.search(path):
            streamed = m.group(2) == "streamGenerateContent"
            call = self.call(host, "gemini", m.group(1), {"stream": streamed})
            return gemini(call, "alt=sse" in query, sent.get("generationConfig") or {})
        if path.endswith("/messages/count_tokens") or path.endswith(":countTokens"):
            return json_reply({"input_tokens": 7, "totalTokens": 7})
        if method == "GET" and path.endswith("/wham/accounts/check"):
            return json_reply(chatgpt_accounts(headers.get("chatgpt-account-id", "")))
        if method == "GET" and path.endswith("/models"):
            return json_reply({"object": "list", "data": [], "models": []})
        with self.lock:
            self.other.append(f"{method} {host}{target}")
        return json_reply({"error": {"message": f"the stand-in has no {method} {path}"}}, 404)

    def websocket(self, host: str):
        """The answer to each response.create on one Responses WebSocket to host."""
        def answer(message: dict) -> list[dict]:
            warmup = message.get("generate") is False
            call = self.call(host, "openai-responses", message.get("model", ""), {"stream": True}, warmup)
            return responses_events(call, warmup)
        return answer

    def call(self, host: str, api: str, model: str, sent: dict, warmup: bool = False) -> Call:
        with self.lock:
            n = len(self.calls) + 1
            output = 0 if warmup else 20 + 3 * n
            call = Call(n, host, api, model, bool(sent.get("stream")), 1000 + 101 * n, 10 + n, output)
            self.calls.append(call)
        return call


GEMINI = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")
VERTEX_CLAUDE = re.compile(r"/publishers/anthropic/models/([^/:]+):(?:rawPredict|streamRawPredict)$")
BEDROCK_INVOKE = re.compile(r"^/model/([^/]+)/invoke(-with-response-stream)?$")
TEXT = "OK."


def json_reply(obj: object, status: int = 200) -> Reply:
    return Reply(status, "application/json", json.dumps(obj).encode())


def sse(events: list[tuple[str | None, dict | str]]) -> Reply:
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return Reply(200, "text/event-stream", "".join(out).encode())


def anthropic(call: Call, sent: dict) -> Reply:
    if not call.stream:
        return json_reply(anthropic_message(call))
    return sse([(event["type"], event) for event in anthropic_events(call)])


def bedrock(call: Call, sent: dict) -> Reply:
    """InvokeModel: the Messages body; InvokeModelWithResponseStream: each Messages event base64
    in an event-stream `chunk` (docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages.html)."""
    if not call.stream:
        return json_reply(anthropic_message(call))
    return Reply(200, "application/vnd.amazon.eventstream",
                 b"".join(awsstream.chunk(event) for event in anthropic_events(call) if event["type"] != "ping"))


def _anthropic_usage(call: Call) -> dict:
    return {"input_tokens": call.uncached, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": call.cached_input_tokens}


def _anthropic_head(call: Call) -> dict:
    return {"id": f"msg_standin{call.n}", "type": "message", "role": "assistant", "model": call.model,
            "stop_sequence": None}


def anthropic_message(call: Call) -> dict:
    return {**_anthropic_head(call), "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn",
            "usage": {**_anthropic_usage(call), "output_tokens": call.output_tokens}}


def anthropic_events(call: Call) -> list[dict]:
    """A streamed Messages response's events, in order (each with its `type`)."""
    usage, message = _anthropic_usage(call), _anthropic_head(call)
    return [
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                              "usage": {**usage, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": call.output_tokens}},
        {"type": "message_stop"},
    ]


def chat(call: Call, sent: dict) -> Reply:
    usage = {"prompt_tokens": call.input_tokens, "completion_tokens": call.output_tokens,
             "total_tokens": call.input_tokens + call.output_tokens,
             "prompt_tokens_details": {"cached_tokens": call.cached_input_tokens}}
    base = {"id": f"chatcmpl-standin{call.n}", "created": 1764633600, "model": call.model}
    if not sent.get("stream"):
        return json_reply({**base, "object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}]})
    chunk = {**base, "object": "chat.completion.chunk"}
    events: list[tuple[str | None, dict | str]] = [
        (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": TEXT}}]}),
        (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ]
    # As OpenAI does: the usage-only chunk only for a request that asked for it.
    if (sent.get("stream_options") or {}).get("include_usage"):
        events.append((None, {**chunk, "choices": [], "usage": usage}))
    return sse([*events, (None, "[DONE]")])


def responses(call: Call) -> Reply:
    if not call.stream:
        return json_reply(responses_events(call)[-1]["response"])
    return sse([(event["type"], event) for event in responses_events(call)])


def responses_events(call: Call, warmup: bool = False) -> list[dict]:
    """A streamed response's events, as SSE `data:` payloads or WebSocket messages carry them; a
    warm-up (`"generate": false`) has no output."""
    item = {"id": f"msg_standin{call.n}", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": TEXT, "annotations": []}]}
    response = {"id": f"resp_standin{call.n}", "object": "response", "created_at": 1764633600,
                "model": call.model, "status": "in_progress", "output": []}
    done = {**response, "status": "completed", "output": [item], "usage": {
        "input_tokens": call.input_tokens, "input_tokens_details": {"cached_tokens": call.cached_input_tokens},
        "output_tokens": call.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": call.input_tokens + call.output_tokens}}
    if warmup:
        return [{"type": "response.created", "response": response},
                {"type": "response.completed", "response": {**done, "output": []}}]
    return [{"type": name, **data} for name, data in [
        ("response.created", {"response": response}),
        ("response.in_progress", {"response": response}),
        ("response.output_item.added", {"output_index": 0, "item": {**item, "status": "in_progress",
                                                                   "content": []}}),
        ("response.content_part.added", {"item_id": item["id"], "output_index": 0, "content_index": 0,
                                         "part": {"type": "output_text", "text": "", "annotations": []}}),
        ("response.output_text.delta", {"item_id": item["id"], "output_index": 0, "content_index": 0,
                                        "delta": TEXT}),
        ("response.output_text.done", {"item_id": item["id"], "output_index": 0, "content_index": 0,
                                       "text": TEXT}),
        ("response.content_part.done", {"item_id": item["id"], "output_index": 0, "content_index": 0,
                                        "part": item["content"][0]}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": done}),
    ]]


def chatgpt_accounts(account_id: str) -> dict:
    """What chatgpt.com answers Codex's `GET /backend-api/wham/accounts/check` for the signed-in
    account: its workspace's backend origin, where Codex then sends its model calls."""
    account = {"id": account_id, "name": "stand-in", "structure": "personal",
               "workspace_backend_origin": "https://chatgpt.com", "account_routing_override": "NO_CONSTRAINT"}
    return {"accounts": [account], "account_ordering": [account_id], "default_account_id": account_id}


def example(schema: dict) -> object:
    """A minimal value that satisfies a JSON or Gemini (`"type": "OBJECT"`) schema: agents ask
    for structured answers (Gemini CLI's model router) and retry until they get one."""
    kind = str(schema.get("type", "object")).lower()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        required = schema.get("required") or list(schema.get("properties", {}))
        return {k: example(v) for k, v in schema.get("properties", {}).items() if k in required}
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    return {"array": [], "boolean": False}.get(kind, TEXT)


def gemini_objects(call: Call, config: dict) -> list[dict]:
    """The response objects of a Gemini call: one, or a stream's two (the first with the prompt
    count only, the last with the whole usage and the finishReason). A structured answer when
    the request asked for one."""
    text = TEXT
    if schema := config.get("responseJsonSchema") or config.get("responseSchema"):
        text = json.dumps(example(schema))
    usage = {"promptTokenCount": call.input_tokens, "candidatesTokenCount": call.output_tokens,
             "totalTokenCount": call.input_tokens + call.output_tokens,
             "cachedContentTokenCount": call.cached_input_tokens}
    last = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": usage, "modelVersion": call.model, "responseId": f"standin{call.n}"}
    if not call.stream:
        return [last]
    first = {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "index": 0}],
             "usageMetadata": {"promptTokenCount": call.input_tokens}, "modelVersion": call.model}
    return [first, last]


def gemini(call: Call, sse_framing: bool, config: dict) -> Reply:
    objects = gemini_objects(call, config)
    if not call.stream:
        return json_reply(objects[0])
    if sse_framing:
        return sse_objects(objects)
    return json_reply(objects)


def sse_objects(objects: list[dict]) -> Reply:
    """Google's SSE framing (`alt=sse`): `data: {json}` and a blank line, CRLF."""
    return Reply(200, "text/event-stream", b"".join(b"data: " + json.dumps(o).encode() + b"\r\n\r\n"
                                                    for o in objects))
