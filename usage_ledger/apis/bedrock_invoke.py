"""Claude on Amazon Bedrock through InvokeModel: `POST bedrock-runtime.{region}.amazonaws.com
/model/{modelId}/invoke` and `/invoke-with-response-stream` (Claude Code on Bedrock, the
Anthropic SDKs' Bedrock clients).

The model id is in the path, URL-encoded (`us.anthropic.claude-sonnet-4-5-20250929-v1%3A0`, or
an inference-profile ARN). The body is Anthropic Messages (`anthropic_version:
bedrock-2023-05-31`, no `model`, no `stream`), and so is a non-streamed answer. A stream is AWS
event-stream (eventstream.py) whose `chunk` events carry `{"bytes": base64}`, each the JSON of
one Anthropic stream event; the last one (`message_stop`) adds
`amazon-bedrock-invocationMetrics` (`inputTokenCount`, `outputTokenCount`, and with prompt
caching `cacheReadInputTokenCount`, `cacheWriteInputTokenCount`, outside `inputTokenCount` as
Anthropic's are outside `input_tokens`), used only when the events carried no usage. An error mid-stream is an `exception` message
(`throttlingException`, `modelStreamErrorException`, ...). Other vendors' models take their
own body formats on invoke: not recognised (Converse covers them).
Source: botocore/data/bedrock-runtime/2023-09-30/service-2.json (ResponseStream, PayloadPart),
anthropic-sdk-typescript packages/bedrock-sdk, AWS Bedrock user guide (Anthropic Claude
Messages API).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote

from .. import json_bytes
from ..eventstream import exception_reason
from ..framing import Frame
from .anthropic_messages import MessagesTracker
from .base import Recognised

OPERATIONS = re.compile(r"/model/([^/]+)/(invoke|invoke-with-response-stream|converse|converse-stream)$")
PATHS = re.compile(r"/model/[^/]+/invoke(-with-response-stream)?$")

_PEEK = 64
"""Base64 characters decoded to see an event's type: 48 bytes, `{"type":"content_block_delta"`."""
_NO_USAGE = (b'"content_block_delta"', b'"content_block_start"', b'"content_block_stop"', b'"ping"')
_BYTES = re.compile(rb'"bytes"\s*:\s*"')
_METRICS = {"inputTokenCount": "input_tokens", "outputTokenCount": "output_tokens",
            "cacheReadInputTokenCount": "cache_read_input_tokens",
            "cacheWriteInputTokenCount": "cache_creation_input_tokens"}
"""invocationMetrics' counts by the Anthropic usage names they stand for."""


def operation(path: str) -> tuple[str, str] | None:
    """(model id, operation) of a Bedrock Runtime path, the id URL-decoded."""
    m = OPERATIONS.search(path)
    return (unquote(m.group(1)), m.group(2)) if m else None


def recognise(method: str, path: str, body: dict[str, Any] | None) -> Recognised | None:
    found = operation(path) if method == "POST" else None
    if found is None or found[1].startswith("converse"):
        return None
    model, op = found
    if "anthropic" in model or (body is not None and "anthropic_version" in body):
        return Recognised("anthropic-messages", model, op == "invoke-with-response-stream", body)
    return None


class BedrockMessagesTracker(MessagesTracker):
    def on_frame(self, frame: Frame) -> None:
        problem = exception_reason(frame)
        if problem is not None:
            self.error = problem
            return
        if frame.event != "chunk":
            return
        m = _BYTES.search(frame.data)
        if m is None:
            return
        end = frame.data.find(b'"', m.end())
        encoded = frame.data[m.end():end if end >= 0 else len(frame.data)]
        try:
            # Most chunks are text deltas: a few dozen characters say so without decoding it all.
            if len(encoded) > _PEEK and any(k in base64.b64decode(encoded[:_PEEK]) for k in _NO_USAGE):
                return
            event = json_bytes.loads(base64.b64decode(encoded))
        except (ValueError, binascii.Error, RecursionError):
            return
        if not isinstance(event, dict):
            return
        self.on_object(event, None)
        metrics = event.get("amazon-bedrock-invocationMetrics")
        if self.raw_usage is None and isinstance(metrics, dict):
            self.raw_usage = {ours: metrics[theirs] for theirs, ours in _METRICS.items() if theirs in metrics}


TRACKER = BedrockMessagesTracker
