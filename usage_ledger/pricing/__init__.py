"""What a call cost: the `cost_usd` and `price_source` columns.

In order: a cost the server itself reports (`reported.py`: OpenRouter's `usage.cost`,
Perplexity's `usage.cost.total_cost`, xAI's ticks, LiteLLM's cost header), on any host; then the
optional override file in LiteLLM's per-token format (`overrides.py`); then `genai-prices`
(pydantic's price data and calculator, `bundled.py`), always from the snapshot bundled with the
installed package: it is never told to fetch, so a price only changes when the dependency is
upgraded, and `reprice_rows` (`reprice.py`) is how old rows catch up. `fast.py` computes
genai-prices' answer (the same Decimal) without its per-call lookup and validation, ~10x faster,
and leaves every case it does not cover to genai-prices itself.

Money is Decimal throughout and rounded once per row (`_QUANTUM`), then stored as float in the
REAL column. A call whose price is unknown gets NULL, never a silent 0.

What genai-prices can and cannot express, and what this package adds:

* Token semantics: genai-prices' `input_tokens` is the whole prompt, cache reads and writes
  included (its own Anthropic extractor sums them), exactly like the ledger's. Its calculator
  subtracts the more specific counts (`cache_read_tokens`, `cache_write_tokens`,
  `cache_write_1h_tokens`, `input_audio_tokens`, ...) before pricing the rest as plain input.
* Anthropic 1-hour cache writes: genai-prices prices `cache_write_1h_tokens` when a model has a
  1h rate. Some entries lack it (older Claude models on Vertex, Bedrock), and then every write
  would be priced at the 5-minute rate; the shortfall is added so 1h writes cost 2x the input
  rate, Anthropic's published multiplier.
* Service tiers: genai-prices selects OpenAI/Gemini `priority`/`flex` rates (and Anthropic's
  batch rates) through its `price_context`, but its tier rates only start at the date they were
  added to its data (2026-10-12 for OpenAI); earlier calls on those tiers get standard rates.
* Long-context tiers: genai-prices applies a tier's rate to all tokens once the total prompt
  (cache included) crosses its threshold, which is why the total is what it gets.
* Server tools: Anthropic reports `server_tool_use.web_search_requests` in usage, and
  genai-prices has a per-search price, so those are included. Searches and other tool calls that
  other providers report outside `usage` (OpenAI web search, Gemini grounding) are not priced.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from ..records import CallEnded, CallFinished
from ..usage import Usage
from .bundled import GENAI_PRICES_SOURCE, GENAI_PROVIDERS, bundled_cost, genai_usage_values, other_units, price_names
from .overrides import (OVERRIDE_PREFIX, PriceFileError, Rates, is_override, load_overrides, override_cost,
                        override_keys)
from .reported import body_cost, is_reported

log = logging.getLogger(__name__)

_QUANTUM = Decimal("1e-10")

# Models run on the user's own hardware: a cloud price for the same model name would be wrong.
SELF_HOSTED = frozenset({"ollama"})


@dataclass(frozen=True)
class Price:
    cost_usd: float | None
    source: str | None


UNPRICED = Price(None, None)


class Pricer:
    """Prices calls: the server's own figure first, then the override file, then genai-prices."""

    def __init__(self, overrides_path: str | None = None) -> None:
        self.overrides: dict[str, Rates] = {}
        self.override_source: str | None = None
        if overrides_path:
            path = os.path.abspath(os.path.expanduser(overrides_path))
            self.overrides = load_overrides(path)
            self.override_source = f"{OVERRIDE_PREFIX}{path}"
        self._warned: set[tuple[str, str | None]] = set()

    def price(self, *, provider: str, api: str, model: str | None, usage: Usage | None, when: datetime,
              service_tier: str | None = None, model_requested: str | None = None) -> Price:
        """The call's cost in USD (rounded to 1e-10) and where it came from; UNPRICED (None, None)
        when no usage was reported or no price is known. Never raises for a price it lacks.
        `model_requested` prices Bedrock calls by the request's model id (`price_names`)."""
        if usage is None:
            return UNPRICED
        raw = usage.raw if isinstance(usage.raw, dict) else {}
        reported = usage.reported_cost or body_cost(raw)
        if reported is not None:
            return Price(_to_float(reported[0]), reported[1])
        if usage.input_tokens is None and usage.output_tokens is None and not other_units(api, raw):
            return UNPRICED
        if not model:
            self._warn(provider, model, "no model named, so no price")
            return UNPRICED
        if service_tier is None and isinstance(raw.get("service_tier"), str):
            service_tier = raw["service_tier"]  # Anthropic reports it inside usage
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when

        rates = next(filter(None, (self._override(provider, name)
                                   for name in price_names(provider, model, model_requested))), None)
        if rates is not None:
            cost = override_cost(rates, api, usage)
            if cost is None:
                self._warn(provider, model, f"{self.override_source} lacks a rate this call needs")
                return UNPRICED
            return Price(_to_float(cost), self.override_source)

        if provider in SELF_HOSTED:
            self._warn(provider, model, "self-hosted, no price")
            return UNPRICED

        try:
            cost = bundled_cost(provider, api, model, usage, when, service_tier, model_requested)
        except LookupError:
            self._warn(provider, model, "not in genai-prices' data and not overridden, so no price")
            return UNPRICED
        except ValueError as e:  # inconsistent counts, e.g. more cached tokens than input tokens
            self._warn(provider, model, f"cannot price its usage: {e}")
            return UNPRICED
        except Exception as e:  # a surprise inside the price library must not cost the call its row
            self._warn(provider, model, f"pricing failed: {type(e).__name__}: {e}")
            return UNPRICED
        return Price(_to_float(cost), GENAI_PRICES_SOURCE)

    def finish(self, ended: CallEnded) -> CallFinished:
        """The row of `ended` with its cost (the writer thread prices here, off the event loop);
        a surprise while pricing leaves the call unpriced, never without its row."""
        try:
            price = self.price(provider=ended.provider, api=ended.api, model=ended.row.model, usage=ended.usage,
                               when=ended.when, service_tier=ended.service_tier, model_requested=ended.model_requested)
        except Exception:
            log.exception("usage-ledger: could not price flow %s", ended.row.flow_id)
            price = UNPRICED
        return ended.row._replace(cost_usd=price.cost_usd, price_source=price.source)

    def warm(self) -> None:
        """Load genai-prices' data now (its first lookup takes ~0.5 s), so no call waits for it."""
        try:
            bundled_cost("openai", "openai-chat", "gpt-4o", Usage(input_tokens=1, output_tokens=1),
                         datetime.now(UTC), None)
        except Exception:  # only a warm-up: the first real call would see the same error
            log.debug("usage-ledger: price warm-up failed", exc_info=True)

    def _override(self, provider: str, model: str) -> Rates | None:
        if not self.overrides:
            return None
        for key in override_keys(provider, model):
            if key in self.overrides:
                return self.overrides[key]
        return None

    def _warn(self, provider: str, model: str | None, why: str) -> None:
        if (provider, model) not in self._warned:
            self._warned.add((provider, model))
            log.warning("usage-ledger: %s model %r: %s", provider, model, why)


def _to_float(cost: Decimal) -> float:
    return float(cost.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN))


from .reprice import RepricePlan, apply_plan, plan_reprice, reprice_rows  # noqa: E402  (it prices with Pricer)

__all__ = ["GENAI_PRICES_SOURCE", "GENAI_PROVIDERS", "Price", "PriceFileError", "Pricer", "RepricePlan", "UNPRICED",
           "apply_plan", "genai_usage_values", "is_override", "is_reported", "plan_reprice", "reprice_rows"]
