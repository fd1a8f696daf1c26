"""OpenAI-style embeddings (`/v1/embeddings`): input tokens only, never streamed."""

from __future__ import annotations

import re
from typing import Any

from .base import Recognised, json_model
from .openai_chat import _AZURE_DEPLOYMENT, ChatTracker

PATHS = re.compile(r"/embeddings$")


def recognise(method: str, path: str, body: dict[str, Any] | None) -> Recognised | None:
    if method != "POST" or body is None or not path.endswith("/embeddings"):
        return None
    deployment = _AZURE_DEPLOYMENT.search(path)
    return Recognised("openai-embeddings", deployment.group(1) if deployment else json_model(body), False, body)


TRACKER = ChatTracker
