"""The answer to a call a budget refuses: HTTP 429 in the API's own error shape, so each SDK
raises its ordinary rate-limit error with our message.

Shapes: OpenAI's `{"error": {"message", "type", "param", "code"}}` (and every OpenAI-compatible
API), Anthropic's `{"type": "error", "error": {"type": "rate_limit_error", "message"}}`, Google's
`{"error": {"code": 429, "message", "status": "RESOURCE_EXHAUSTED"}}`, Ollama's `{"error"}`.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, tzinfo

from .config import Budget
from .spend import Standing, money

_PER = {"day": "today", "week": "this week", "month": "this month", "total": "in total"}


def message(s: Standing, zone: tzinfo) -> str:
    """One line naming the budget, its limit, the spend and when it resets."""
    b: Budget = s.budget
    spent = f"${money(s.spent_usd, b.limit_usd)} spent"
    if s.in_flight_usd > 0 and s.in_flight:
        spent += f" and about ${money(s.in_flight_usd, b.limit_usd)} in {s.in_flight} call(s) in flight"
    if s.end is None:
        resets = "it never resets (period total)"
    else:
        resets = "it resets " + s.end.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z").strip()
    return (f"usage-ledger budget '{b.name}' is used up: {spent} {_PER[b.period]} "
            f"of its ${money(b.limit_usd, b.limit_usd)} limit; {resets}")


def retry_after(s: Standing, now: datetime) -> int | None:
    """Seconds until the period ends (None for `total`), for the `Retry-After` header."""
    return None if s.end is None else max(1, math.ceil((s.end - now).total_seconds()))


def refusal_body(api: str, text: str) -> bytes:
    """The error body for `api` (the ledger's `api` column)."""
    if api == "anthropic-messages":
        body: dict = {"type": "error", "error": {"type": "rate_limit_error", "message": text}}
    elif api == "gemini":
        body = {"error": {"code": 429, "message": text, "status": "RESOURCE_EXHAUSTED"}}
    elif api == "ollama":
        body = {"error": text}
    else:
        body = {"error": {"message": text, "type": "budget_exceeded", "param": None, "code": "budget_exceeded"}}
    return json.dumps(body).encode()


def refusal_headers(seconds: int | None) -> dict[str, str]:
    """`Retry-After` at the period's end, and `x-should-retry: false`, which the OpenAI and
    Anthropic SDKs obey instead of retrying a 429 at once."""
    headers = {"content-type": "application/json", "x-should-retry": "false"}
    if seconds is not None:
        headers["retry-after"] = str(seconds)
    return headers


def warn_header(warned: list[Standing]) -> str:
    """`x-usage-ledger-budget`: `daily 16.20/20.00 USD`, comma-separated for several budgets."""
    return ", ".join(f"{s.budget.name} {money(s.spent_usd, s.budget.limit_usd)}/"
                     f"{money(s.budget.limit_usd, s.budget.limit_usd)} USD" for s in warned)
