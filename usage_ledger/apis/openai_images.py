"""OpenAI Images (`/v1/images/generations`, `/edits`, `/variations`; Azure deployments too).

Token-billed models (`gpt-image-1`, `gpt-image-1-mini`) answer with a `usage` object in
Responses' names: `input_tokens` (text + image, `input_tokens_details`), `output_tokens` (the
image tokens generated), `total_tokens`. With `stream: true` the usage comes in the
`image_generation.completed` / `image_edit.completed` event. DALL·E models report no usage.
Edits and variations are multipart forms; their text fields are the request body here.
Source: platform.openai.com/docs/api-reference/images.
"""

from __future__ import annotations

import re
from typing import Any

from ..usage import Usage, merge_report
from .base import Recognised, Tracker, error_message, json_model
from .openai_chat import _AZURE_DEPLOYMENT, usage_from_openai

PATHS = re.compile(r"/images/(generations|edits|variations)$")


def recognise(method: str, path: str, body: dict[str, Any] | None) -> Recognised | None:
    if method != "POST" or body is None or not PATHS.search(path):
        return None
    deployment = _AZURE_DEPLOYMENT.search(path)
    model = deployment.group(1) if deployment else json_model(body)
    return Recognised("openai-images", model, form_true(body.get("stream")), body)


def form_true(value: Any) -> bool:
    """A boolean from a JSON body (`true`) or a multipart form field (`"true"`)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


class MediaTracker(Tracker):
    """A JSON body, or the terminal event of a stream, with a top-level `usage` object."""

    # Frames hold whole base64 images; `"usage"` is rare in them and marks the one to parse.
    NEEDLES = (b'"usage"',)
    USAGE_MARK = Tracker.OPENAI_USAGE

    def on_object(self, obj: dict[str, Any], event: str | None) -> None:
        self.note_model(obj.get("model"))
        if isinstance(obj.get("usage"), dict):
            self.raw_usage = merge_report(self.raw_usage, obj["usage"])
        if obj.get("error") or obj.get("type") == "error":
            self.error = error_message(obj) or "error"

    def normalise(self, raw: dict[str, Any]) -> Usage:
        return usage_from_openai(raw)


TRACKER = MediaTracker
