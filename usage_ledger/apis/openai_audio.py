"""OpenAI Audio: `/v1/audio/transcriptions`, `/translations` (multipart forms) and `/speech`.

Transcriptions by token-billed models (`gpt-4o-transcribe`, `gpt-4o-mini-transcribe`) report
`usage: {type: "tokens", input_tokens, input_token_details: {audio_tokens, text_tokens},
output_tokens, total_tokens}`; duration-billed ones (`whisper-1`) `usage: {type: "duration",
seconds}`. Streams (`stream=true`) carry it in `transcript.text.done`. Text, SRT and VTT
answers carry none. Speech answers with audio bytes (no usage; `tts-1` is billed per input
character, counted from the request's `input`), or with `stream_format: "sse"` events whose
`speech.audio.done` has token usage. Source: platform.openai.com/docs/api-reference/audio.
"""

from __future__ import annotations

import re
from typing import Any

from ..usage import Usage
from .base import Recognised, json_model
from .openai_chat import _AZURE_DEPLOYMENT
from .openai_images import MediaTracker, form_true

PATHS = re.compile(r"/audio/(transcriptions|translations|speech)$")


def recognise(method: str, path: str, body: dict[str, Any] | None) -> Recognised | None:
    m = PATHS.search(path)
    if method != "POST" or body is None or not m:
        return None
    deployment = _AZURE_DEPLOYMENT.search(path)
    model = deployment.group(1) if deployment else json_model(body)
    if m.group(1) == "speech":
        return Recognised("openai-speech", model, body.get("stream_format") == "sse", body)
    return Recognised("openai-transcriptions", model, form_true(body.get("stream")), body)


class AudioTracker(MediaTracker):
    """Transcriptions and translations; speech adds the characters it was asked to say."""

    def __init__(self, model_requested: str | None = None) -> None:
        super().__init__(model_requested)
        self.input_characters: int | None = None

    def on_request(self, body: dict[str, Any] | None) -> None:
        text = body.get("input") if body else None
        if isinstance(text, str) and not body.get("file"):  # speech: the text to say
            self.input_characters = len(text)

    def usage(self) -> Usage | None:
        if self.raw_usage is None and self.input_characters is not None:
            # Counted from the request, as OpenAI bills tts-1: stored as usage_json for repricing.
            return Usage(raw={"input_characters": self.input_characters})
        return super().usage()


TRACKER = AudioTracker
