"""This project's own corpus (tests/cases/*.json): inputs rebuilt from providers' documents and
other proxies' bug reports, one per kind of shape, endpoint and cost the shared corpus lacks.

Same format as shared/corpus (see its README), `expected` in the provider's own convention,
plus `expected_row`: the ledger row's values a user would read (normalised tokens, provider,
api, stream, outcome, cost_usd, price_source; a price_source of `genai-prices` matches any
version). A column missing from `expected_row` is not checked; `expected_row: null` says the
request is not a billable call and must get no row. A binary response body (AWS event-stream)
is `body_base64` instead of `body`.

A price that depends on the hour (DeepSeek's off-peak half price) is checked with `priced_at`:
a list of `{"started_at": "<ISO UTC>", "cost_usd": ..., "price_source": ...}`, each run through
the hooks with the call's start pinned to that moment (the price is the one at the call's
`started_at`). A real proxy stamps its own clock, so the end-to-end run leaves these out.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from mitmproxy.net.encoding import encode

CASES_DIR = Path(__file__).resolve().parent / "cases"


@dataclass(frozen=True)
class OwnCase:
    name: str
    data: dict[str, Any]

    @property
    def request(self) -> dict[str, Any]:
        return self.data["request"]

    @property
    def response(self) -> dict[str, Any]:
        return self.data["response"]

    @property
    def url(self):
        return urlsplit(self.request["url"])

    @property
    def request_body(self) -> bytes:
        body = self.request["body"]
        return json.dumps(body).encode() if isinstance(body, (dict, list)) else body.encode()

    @property
    def request_wire_body(self) -> bytes:
        """The request body as the client sends it: encoded as its Content-Encoding header says
        (Codex sends zstd)."""
        encoding = next((v for k, v in (self.request.get("headers") or {}).items()
                         if k.lower() == "content-encoding"), None)
        return encode(self.request_body, encoding) if encoding else self.request_body

    @property
    def response_body(self) -> bytes:
        if "body_base64" in self.response:
            return base64.b64decode(self.response["body_base64"])
        return self.response["body"].encode()

    @property
    def content_type(self) -> str:
        return next(v for k, v in self.response["headers"].items() if k.lower() == "content-type")

    @property
    def row(self) -> dict[str, Any]:
        return self.data["expected_row"] or {}

    @property
    def gets_row(self) -> bool:
        return self.data["expected_row"] is not None

    @property
    def priced_at(self) -> list[tuple[datetime, dict[str, Any]]]:
        """(the call's pinned start, the row's expected cost_usd and price_source there)."""
        return [(datetime.fromisoformat(p["started_at"]), {k: v for k, v in p.items() if k != "started_at"})
                for p in self.data.get("priced_at", [])]


def load_own_cases() -> list[OwnCase]:
    return [OwnCase(p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(CASES_DIR.glob("*.json"))]


def own_case_params() -> list[Any]:
    return [pytest.param(c, id=c.name) for c in load_own_cases()]


def row_differences(case: OwnCase, row: dict[str, Any], expected: dict[str, Any] | None = None
                    ) -> dict[str, tuple[Any, Any]]:
    """Columns where the ledger row differs from what the case says it should hold (`expected`
    instead of the case's `expected_row` when given)."""
    wrong = {}
    for column, want in (case.row if expected is None else expected).items():
        got = row.get(column)
        if column == "price_source" and want == "genai-prices":
            ok = isinstance(got, str) and got.startswith("genai-prices ")
        elif column == "cost_usd" and want is not None:
            ok = got is not None and abs(got - want) <= 1e-9
        else:
            ok = got == want
        if not ok:
            wrong[column] = (got, want)
    return wrong
