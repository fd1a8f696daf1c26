"""The shared corpus of recorded LLM API exchanges (shared/corpus/*.json), ready for tests.

Each case is run the way the addon runs it: `recognise` picks the API shape and tracker from the
request, the response body goes through a StreamScanner in whatever pieces the test chooses,
and the result is compared with the case's `expected`, normalised to the ledger contract's token
semantics (Anthropic input includes cache reads and writes; Gemini output includes thoughts).

The folder comes from $USAGE_LEDGER_CORPUS, else tests/shared-corpus (a copy of shared/corpus kept
in the repository; see its SOURCE.md for sources and licences).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from usage_ledger.apis import Recognised, Tracker, recognise
from usage_ledger.scanner import StreamScanner

CORPUS_DIR = Path(os.environ.get("USAGE_LEDGER_CORPUS")
                  or Path(__file__).resolve().parent / "shared-corpus")

TOKENS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
          "reasoning_tokens", "total_tokens")
STREAM_TYPES = ("text/event-stream", "ndjson", "jsonl")  # as the addon decides to stream


@dataclass(frozen=True)
class Case:
    name: str
    data: dict[str, Any]
    recognised: Recognised
    tracker_class: type[Tracker]
    body: bytes
    """The response body as the provider sent it, before any Content-Encoding."""
    content_type: str
    status: int

    @property
    def api(self) -> str:
        return self.recognised.api

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def streamed(self) -> bool:
        """Whether the addon reads this response as a stream (as call.py decides)."""
        ctype = self.content_type.lower()
        return any(t in ctype for t in STREAM_TYPES) or (self.ok and self.recognised.stream_requested)

    def tracker(self) -> Tracker:
        return self.tracker_class(self.recognised.model_requested)

    def expected_usage(self) -> dict[str, int | None]:
        return expected_usage(self.api, self.data["expected"])

    @property
    def expected_model(self) -> str | None:
        return self.data["expected"].get("model")

    @property
    def expected_error(self) -> str | None:
        """The provider's error message for a non-2xx answer, else None."""
        if self.ok:
            return None
        error = json.loads(self.body)["error"]
        return error["message"] if isinstance(error, dict) else error

    def expected(self) -> dict[str, Any]:
        """Everything `observed` returns, as the case says it should be."""
        return {**self.expected_usage(), "model": self.expected_model, "error": self.expected_error}


def expected_usage(api: str, expected: dict[str, Any]) -> dict[str, int | None]:
    """The provider's reported usage in the ledger's token semantics (contract: token columns)."""
    want = {k: expected.get(k) for k in TOKENS}
    if api == "anthropic-messages" and want["input_tokens"] is not None:
        want["input_tokens"] += (want["cached_input_tokens"] or 0) + (want["cache_write_tokens"] or 0)
    if api == "gemini" and want["reasoning_tokens"] is not None:
        want["output_tokens"] = (want["output_tokens"] or 0) + want["reasoning_tokens"]
    if want["total_tokens"] is None and want["input_tokens"] is not None and want["output_tokens"] is not None:
        want["total_tokens"] = want["input_tokens"] + want["output_tokens"]  # "else input + output"
    return want


def _header(headers: dict[str, Any] | None, name: str) -> str:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value if isinstance(value, str) else ", ".join(value)
    return ""


def _load(path: Path) -> Case:
    data = json.loads(path.read_text(encoding="utf-8"))
    request, response = data["request"], data["response"]
    body = request["body"] if isinstance(request["body"], dict) else None
    found = recognise(request["method"], urlsplit(request["url"]).path, body)
    assert found is not None, f"{path.name}: request not recognised"
    recognised, tracker_class = found
    raw = response["body"]
    raw = raw.encode("utf-8") if isinstance(raw, str) else json.dumps(raw).encode("utf-8")
    return Case(path.stem, data, recognised, tracker_class, raw,
                _header(response.get("headers"), "content-type"), int(response["status"]))


@cache
def load_cases() -> tuple[Case, ...]:
    if not CORPUS_DIR.is_dir():
        return ()
    return tuple(_load(p) for p in sorted(CORPUS_DIR.glob("*.json")))


def case_params(cases: Iterable[Case] | None = None) -> list[Any]:
    """pytest parameters, one per case (ids are the file names); one skipped one if none."""
    cases = load_cases() if cases is None else list(cases)
    if not cases:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no corpus at {CORPUS_DIR}"))]
    return [pytest.param(c, id=c.name) for c in cases]


def pieces_at(body: bytes, offsets: Iterable[int]) -> list[bytes]:
    """The body cut at the given offsets (any order, duplicates and out-of-range ones ignored)."""
    cuts = sorted({o for o in offsets if 0 < o < len(body)})
    bounds = [0, *cuts, len(body)]
    return [body[a:b] for a, b in zip(bounds, bounds[1:])]


def scan(case: Case, pieces: Iterable[bytes], content_encoding: str = "") -> tuple[Tracker, StreamScanner]:
    """Feed the pieces to a fresh scanner and tracker for this case, then end the stream."""
    tracker = case.tracker()
    scanner = StreamScanner(tracker, case.content_type, content_encoding)
    for piece in pieces:
        scanner.feed(piece)
    scanner.close()
    return tracker, scanner


def observed(tracker: Tracker) -> dict[str, Any]:
    """What the ledger would record from this tracker: token columns, model and error."""
    usage = tracker.usage()
    got: dict[str, Any] = {k: getattr(usage, k) if usage else None for k in TOKENS}
    got["model"] = tracker.model
    got["error"] = tracker.error
    return got
