"""One module per API shape. Each has `PATHS` (a regex its request paths match), `recognise(method,
path, body)` and a `TRACKER` class.

Adding an API shape: write its module and list it here.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

from . import (anthropic_messages, bedrock_converse, bedrock_invoke, gemini, ollama, openai_audio, openai_chat,
               openai_embeddings, openai_images, openai_responses)
from .base import Recognised, Tracker

SHAPES: tuple[ModuleType, ...] = (
    openai_chat,
    openai_responses,
    openai_embeddings,
    openai_images,
    openai_audio,
    anthropic_messages,
    gemini,
    ollama,
    bedrock_invoke,
    bedrock_converse,
)


_ANY_PATH = re.compile("|".join(f"(?:{shape.PATHS.pattern})" for shape in SHAPES))
"""Every shape's PATHS in one pattern: one search per request instead of one per shape."""


def might_be_llm_call(path: str) -> bool:
    """A cheap test on the path alone, so other traffic's bodies are never parsed."""
    return _ANY_PATH.search(path) is not None


def recognise(method: str, path: str, body: dict[str, Any] | None) -> tuple[Recognised, type[Tracker]] | None:
    """The API shape of a request, or None when it is not a billable LLM call."""
    for shape in SHAPES:
        if shape.PATHS.search(path):
            found = shape.recognise(method, path, body)
            if found is not None:
                return found, shape.TRACKER
    return None


__all__ = ["Recognised", "Tracker", "might_be_llm_call", "recognise", "SHAPES"]
