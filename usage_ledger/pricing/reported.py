"""Costs the server itself reports: what it says it charged wins over any price table.

Read from the shape, never from the host, so a gateway or corporate proxy serving the same body
on its own domain is priced the same way. Each shape names its `price_source`:

* `reported:openrouter usage.cost`: OpenRouter's `usage.cost` (USD credits). With the user's own
  provider key (`is_byok: true`) `cost` is only OpenRouter's fee and the provider's charge is
  `cost_details.upstream_inference_cost` (openrouter.ai/docs/use-cases/usage-accounting).
* `reported:perplexity usage.cost.total_cost`: Perplexity's `usage.cost` object, whose
  `total_cost` includes the search-context request fee (docs.perplexity.ai, chat completions).
* `reported:xai usage.cost_in_usd_ticks`: xAI's exact charge in ticks of 1e-10 USD
  (docs.x.ai/developers/cost-tracking).
* `reported:litellm x-litellm-response-cost`: the response header LiteLLM's proxy sets to the
  cost it computed (docs.litellm.ai/docs/proxy/cost_tracking).

Older rows may carry `openrouter usage.cost`, the same figure under its first name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

OPENROUTER = "reported:openrouter usage.cost"
PERPLEXITY = "reported:perplexity usage.cost.total_cost"
XAI = "reported:xai usage.cost_in_usd_ticks"
LITELLM = "reported:litellm x-litellm-response-cost"
LITELLM_HEADER = "x-litellm-response-cost"
_USD_PER_XAI_TICK = Decimal("1e-10")


def is_reported(source: str | None) -> bool:
    """Whether a price_source is a server's own figure (which no repricing can recompute)."""
    return bool(source) and (source.startswith("reported:") or source == "openrouter usage.cost")


def body_cost(raw: Mapping[str, Any] | None) -> tuple[Decimal, str] | None:
    """(USD, price_source) from a usage object that reports its own cost, else None."""
    if not isinstance(raw, Mapping):
        return None
    cost = raw.get("cost")
    if isinstance(cost, Mapping):
        total = _usd(cost.get("total_cost"))
        return None if total is None else (total, PERPLEXITY)
    if cost is not None:
        total = _usd(cost)
        if total is None:
            return None
        if raw.get("is_byok") is True:
            details = raw.get("cost_details")
            upstream = _usd(details.get("upstream_inference_cost") if isinstance(details, Mapping) else None)
            if upstream is None:
                return None  # the larger part of the cost is unknown
            total += upstream
        return total, OPENROUTER
    ticks = raw.get("cost_in_usd_ticks")
    if isinstance(ticks, int) and not isinstance(ticks, bool) and ticks >= 0:
        return ticks * _USD_PER_XAI_TICK, XAI
    return None


def header_cost(headers: Mapping[str, str]) -> tuple[Decimal, str] | None:
    """(USD, price_source) from a response header that reports the call's cost, else None.
    `headers` is looked up case-insensitively when it is mitmproxy's Headers."""
    value = headers.get(LITELLM_HEADER)
    if value is None:
        return None
    total = _usd(value.strip())
    return None if total is None else (total, LITELLM)


def _usd(value: Any) -> Decimal | None:
    """A non-negative finite amount (number or numeric text), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return Decimal(repr(value)) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            return None
        return amount if amount.is_finite() and amount >= 0 else None
    return None
