"""What a call still in flight may cost: its tokens guessed from the request alone.

Input: the JSON request body's size at `BYTES_PER_TOKEN` (about 4 bytes a token for English
text and JSON; more tokens than that for CJK text, fewer for base64 images). Output: the
request's own cap (`max_tokens`, `max_completion_tokens`, `max_output_tokens`,
`generationConfig.maxOutputTokens`, Ollama's `options.num_predict`), else
`DEFAULT_OUTPUT_TOKENS`. The estimate only holds until the call ends and its real cost replaces it.
"""

from __future__ import annotations

import math
from typing import Any

BYTES_PER_TOKEN = 4
DEFAULT_OUTPUT_TOKENS = 4096
_NO_OUTPUT = frozenset({"openai-embeddings"})


def _cap(body: dict[str, Any]) -> int | None:
    for holder, key in ((body, "max_tokens"), (body, "max_completion_tokens"), (body, "max_output_tokens"),
                        (body.get("generationConfig"), "maxOutputTokens"),
                        ((body.get("request") or {}).get("generationConfig")
                         if isinstance(body.get("request"), dict) else None, "maxOutputTokens"),
                        (body.get("options"), "num_predict")):
        value = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def estimate_tokens(api: str, body: dict[str, Any] | None, body_bytes: int) -> tuple[int, int]:
    """(input tokens, output tokens) a call may use, from its parsed JSON body and its size in
    bytes. A body that is not JSON (a multipart upload) counts no input tokens."""
    if body is None:
        return 0, 0 if api in _NO_OUTPUT else DEFAULT_OUTPUT_TOKENS
    tokens_in = math.ceil(body_bytes / BYTES_PER_TOKEN)
    if api in _NO_OUTPUT:
        return tokens_in, 0
    return tokens_in, _cap(body) or DEFAULT_OUTPUT_TOKENS
