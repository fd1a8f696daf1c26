"""What a call cost: the `cost_usd` and `price_source` columns.

Prices come from `genai-prices` (pydantic's price data and calculator), always from the snapshot
bundled with the installed package: it is never told to fetch, so a price only changes when the
dependency is upgraded, and `reprice_rows` is how old rows catch up. An optional override file in
LiteLLM's per-token format wins over the bundled prices.

Money is Decimal throughout and rounded once per row (`_QUANTUM`), then stored as float in the
REAL column. A call whose price is unknown gets NULL, never a silent 0.

What genai-prices can and cannot express, and what this module adds:

* Token semantics: genai-prices' `input_tokens` is the whole prompt, cache reads and writes
  included (its own Anthropic extractor sums them), exactly like the ledger's. Its calculator
  subtracts the more specific counts (`cache_read_tokens`, `cache_write_tokens`,
  `cache_write_1h_tokens`, `input_audio_tokens`, ...) before pricing the rest as plain input.
* Anthropic 1-hour cache writes: genai-prices prices `cache_write_1h_tokens` when a model has a
  1h rate. Some entries lack it (older Claude models on Vertex, Bedrock), and then every write
  would be priced at the 5-minute rate; `_one_hour_shortfall` adds the difference so 1h writes
  cost 2x the input rate, Anthropic's published multiplier.
* Service tiers: genai-prices selects OpenAI/Gemini `priority`/`flex` rates (and Anthropic's
  batch rates) through its `price_context`, but its tier rates only start at the date they were
  added to its data (2026-10-12 for OpenAI); earlier calls on those tiers get standard rates.
* Long-context tiers: genai-prices applies a tier's rate to all tokens once the total prompt
  (cache included) crosses its threshold, which is why the total is what it gets.
* Server tools: Anthropic reports `server_tool_use.web_search_requests` in usage, and
  genai-prices has a per-search price, so those are included. Searches and other tool calls that
  other providers report outside `usage` (OpenAI web search, Gemini grounding) are not priced.
* OpenRouter reports what it charged in `usage.cost`; that amount is used as is.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

import genai_prices
from genai_prices.types import PriceCalculation, calc_unit_price
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .usage import Usage, count

log = logging.getLogger(__name__)

_QUANTUM = Decimal("1e-10")
_PER_MTOK = 1_000_000
GENAI_PRICES_SOURCE = f"genai-prices {genai_prices.__version__}"
OPENROUTER_SOURCE = "openrouter usage.cost"

# The ledger's provider name -> genai-prices' provider id. Providers missing here (hosts of
# unknown OpenAI-compatible servers, providers genai-prices lacks) are matched by model alone.
GENAI_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "azure-openai": "azure",  # genai-prices' azure falls back to openai's prices
    "azure-ai": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
    "vertex": "google",  # google falls back to anthropic for Claude on Vertex
    "groq": "groq",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "openrouter": "openrouter",
    "together": "together",
    "fireworks": "fireworks",
    "xai": "x-ai",
    "perplexity": "perplexity",
    "cerebras": "cerebras",
    "cohere": "cohere",
    "moonshot": "moonshotai",
    "zai": "zai",
}
# Models run on the user's own hardware: a cloud price for the same model name would be wrong.
SELF_HOSTED = frozenset({"ollama"})

_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class PriceFileError(ValueError):
    """A bad override file; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class Price:
    cost_usd: float | None
    source: str | None


UNPRICED = Price(None, None)


# --- override file ---------------------------------------------------------------------------

_Rate = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _OverrideEntry(BaseModel):
    """One model in LiteLLM's `model_prices_and_context_window.json` shape, USD per token.

    Other LiteLLM fields (context sizes, modes, per-image prices, ...) are ignored.
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    input_cost_per_token: _Rate | None = None
    output_cost_per_token: _Rate | None = None
    cache_read_input_token_cost: _Rate | None = None
    cache_creation_input_token_cost: _Rate | None = None
    cache_creation_input_token_cost_above_1hr: _Rate | None = None


_OVERRIDE_FILE = TypeAdapter(dict[str, _OverrideEntry])


@dataclass(frozen=True)
class _Rates:
    """An override entry as Decimals (from the float's shortest repr, i.e. what the file said)."""

    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    cache_write_1h: Decimal | None

    @classmethod
    def of(cls, entry: _OverrideEntry) -> _Rates:
        def d(value: float | None) -> Decimal | None:
            return None if value is None else Decimal(repr(value))

        return cls(d(entry.input_cost_per_token), d(entry.output_cost_per_token),
                   d(entry.cache_read_input_token_cost), d(entry.cache_creation_input_token_cost),
                   d(entry.cache_creation_input_token_cost_above_1hr))


def load_overrides(path: str) -> dict[str, _Rates]:
    """The override file's token-priced entries, keyed by lower-case model name."""
    try:
        return _load_overrides(path)
    except PriceFileError as e:  # one line, whatever the file's keys hold
        raise PriceFileError(re.sub(r"[\r\n]+", " ", str(e))) from None


def _load_overrides(path: str) -> dict[str, _Rates]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise PriceFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise PriceFileError(f"{path}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise PriceFileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise PriceFileError(f"{path}: expected a JSON object keyed by model name, got {type(data).__name__}")
    try:
        entries = _OVERRIDE_FILE.validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        raise PriceFileError(f"{path}: {where}: {first['msg']}{more}") from None
    # Entries without any token price (LiteLLM's image/audio/rerank models, `sample_spec`)
    # cannot price a token row: leave those models to the bundled prices.
    return {key.lower(): _Rates.of(entry) for key, entry in entries.items()
            if entry.input_cost_per_token is not None or entry.output_cost_per_token is not None}


def _override_keys(provider: str, model: str) -> list[str]:
    """Names to look the model up by, most specific first; exact matches only, never a prefix."""
    model = model.lower()
    bases = [model]
    if "/" in model:
        bases.append(model.split("/", 1)[1])
    keys: list[str] = []
    for stage in (bases, [_DATE_SUFFIX.sub("", b) for b in bases]):
        for base in stage:
            keys += [base, f"{provider.lower()}/{base}"]
    return list(dict.fromkeys(keys))


# --- the pricer ------------------------------------------------------------------------------


class Pricer:
    """Prices calls: override file first, then OpenRouter's own figure, then genai-prices."""

    def __init__(self, overrides_path: str | None = None) -> None:
        self.overrides: dict[str, _Rates] = {}
        self.override_source: str | None = None
        if overrides_path:
            path = os.path.abspath(os.path.expanduser(overrides_path))
            self.overrides = load_overrides(path)
            self.override_source = f"override:{path}"
        self._warned: set[tuple[str, str | None]] = set()

    def price(self, *, provider: str, api: str, model: str | None, usage: Usage | None, when: datetime,
              service_tier: str | None = None) -> Price:
        if usage is None or (usage.input_tokens is None and usage.output_tokens is None):
            return UNPRICED
        if not model:
            self._warn(provider, model, "no model named, so no price")
            return UNPRICED
        raw = usage.raw if isinstance(usage.raw, dict) else {}
        if service_tier is None and isinstance(raw.get("service_tier"), str):
            service_tier = raw["service_tier"]  # Anthropic reports it inside usage
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when

        rates = self._override(provider, model)
        if rates is not None:
            cost = _override_cost(rates, api, usage)
            if cost is None:
                self._warn(provider, model, f"{self.override_source} lacks a rate this call needs")
                return UNPRICED
            return Price(_to_float(cost), self.override_source)

        if provider == "openrouter":
            reported = _openrouter_cost(raw)
            if reported is not None:
                return Price(_to_float(reported), OPENROUTER_SOURCE)

        if provider in SELF_HOSTED:
            self._warn(provider, model, "self-hosted, no price")
            return UNPRICED

        try:
            cost = self._bundled(provider, api, model, usage, when, service_tier)
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

    def _override(self, provider: str, model: str) -> _Rates | None:
        if not self.overrides:
            return None
        for key in _override_keys(provider, model):
            if key in self.overrides:
                return self.overrides[key]
        return None

    def _bundled(self, provider: str, api: str, model: str, usage: Usage, when: datetime,
                 service_tier: str | None) -> Decimal:
        genai_usage = genai_usage_values(api, usage)
        context = _price_context(api, service_tier, usage.raw)
        provider_id = GENAI_PROVIDERS.get(provider)
        refs = [model] + ([model.split("/", 1)[1]] if "/" in model else [])
        for i, ref in enumerate(refs):
            try:
                calc = genai_prices.calc_price(genai_prices.Usage(**genai_usage), ref, provider_id=provider_id,
                                               genai_request_timestamp=when, price_context=context)
            except LookupError:
                if i == len(refs) - 1:
                    raise
                continue
            return calc.total_price + _one_hour_shortfall(calc, genai_usage)
        raise AssertionError("unreachable")  # pragma: no cover

    def _warn(self, provider: str, model: str | None, why: str) -> None:
        if (provider, model) not in self._warned:
            self._warned.add((provider, model))
            log.warning("usage-ledger: %s model %r: %s", provider, model, why)


def genai_usage_values(api: str, usage: Usage) -> dict[str, int]:
    """The usage as genai-prices' `Usage` keywords: totals as the ledger has them (input includes
    cache reads and writes, output includes reasoning), plus the details the provider reported
    that are priced differently (1h cache writes, audio, Gemini's tool-use prompt, Anthropic's
    web searches)."""
    raw = usage.raw if isinstance(usage.raw, dict) else {}
    values = {
        "input_tokens": usage.input_tokens or 0,
        "cache_read_tokens": usage.cached_input_tokens or 0,
        "cache_write_tokens": usage.cache_write_tokens or 0,
        "output_tokens": usage.output_tokens or 0,
        "output_reasoning_tokens": usage.reasoning_tokens or 0,
    }
    if api == "anthropic-messages":
        one_hour = count(raw, "cache_creation", "ephemeral_1h_input_tokens")
        five_min = count(raw, "cache_creation", "ephemeral_5m_input_tokens")
        if one_hour is not None:
            values["cache_write_1h_tokens"] = min(one_hour, values["cache_write_tokens"])
        if five_min is not None:
            values["cache_write_5m_tokens"] = min(five_min, values["cache_write_tokens"])
        values["web_searches"] = count(raw, "server_tool_use", "web_search_requests") or 0  # $ per search
    elif api in ("openai-chat", "openai-completions"):
        values["input_audio_tokens"] = count(raw, "prompt_tokens_details", "audio_tokens") or 0
        values["output_audio_tokens"] = count(raw, "completion_tokens_details", "audio_tokens") or 0
    elif api == "gemini":
        # Billed as input, but not part of promptTokenCount (and so not of the ledger's input).
        values["input_tokens"] += count(raw, "toolUsePromptTokenCount") or 0
        values["input_audio_tokens"] = (_gemini_modality(raw, "promptTokensDetails", "AUDIO")
                                        + _gemini_modality(raw, "toolUsePromptTokensDetails", "AUDIO"))
        values["cache_audio_read_tokens"] = _gemini_modality(raw, "cacheTokensDetails", "AUDIO")
        values["output_audio_tokens"] = _gemini_modality(raw, "candidatesTokensDetails", "AUDIO")
    return {k: v for k, v in values.items() if v}


def _gemini_modality(raw: dict[str, Any], key: str, modality: str) -> int:
    details = raw.get(key)
    if not isinstance(details, list):
        return 0
    return sum(count(d, "tokenCount") or 0 for d in details if isinstance(d, dict) and d.get("modality") == modality)


def _price_context(api: str, service_tier: str | None, raw: dict[str, Any] | None) -> dict[str, str] | None:
    """genai-prices' request context: which price variant (tier, batch, fast mode) applies."""
    context: dict[str, str] = {}
    if service_tier:
        if api == "anthropic-messages":
            # Anthropic's tiers are `standard`, `priority` (negotiated, no list price), `batch`.
            if service_tier == "batch":
                context["processing"] = "batch"
        else:
            context["service_tier"] = service_tier  # OpenAI / Gemini: default, flex, priority, ...
    if isinstance(raw, dict) and isinstance(raw.get("speed"), str):
        context["speed"] = raw["speed"]  # Anthropic fast mode
    return context or None


def _one_hour_shortfall(calc: PriceCalculation, genai_usage: dict[str, int]) -> Decimal:
    """What genai-prices left out for 1h cache writes on a model with no 1h rate in its data:
    it priced them as 5-minute writes, Anthropic bills them at 2x the input rate."""
    one_hour = genai_usage.get("cache_write_1h_tokens", 0)
    prices = calc.model_price
    if (not one_hour or getattr(prices, "cache_write_1h_mtok", None) is not None
            or prices.cache_write_mtok is None or prices.input_mtok is None):
        return Decimal(0)
    total_input = genai_usage.get("input_tokens", 0)  # picks the long-context tier, as genai-prices does
    as_1h = 2 * calc_unit_price(prices.input_mtok, one_hour, total_input, _PER_MTOK)
    as_5m = calc_unit_price(prices.cache_write_mtok, one_hour, total_input, _PER_MTOK)
    return max(as_1h - as_5m, Decimal(0))


def _override_cost(rates: _Rates, api: str, usage: Usage) -> Decimal | None:
    """(input - cached - written)·in + cached·cache_read + written·cache_write + output·out;
    missing cache rates fall back to the input rate. None when a needed rate is missing."""
    tokens_in = usage.input_tokens or 0
    cached = usage.cached_input_tokens or 0
    written = usage.cache_write_tokens or 0
    tokens_out = usage.output_tokens or 0
    uncached = tokens_in - cached - written
    if uncached < 0:
        return None
    r_in = rates.input
    r_read = rates.cache_read if rates.cache_read is not None else r_in
    r_write = rates.cache_write if rates.cache_write is not None else r_in
    cost = Decimal(0)
    for n, rate in ((uncached, r_in), (cached, r_read), (tokens_out, rates.output)):
        if n:
            if rate is None:
                return None
            cost += n * rate
    if written:
        one_hour = 0
        if rates.cache_write_1h is not None and api == "anthropic-messages":
            raw = usage.raw if isinstance(usage.raw, dict) else {}
            one_hour = min(count(raw, "cache_creation", "ephemeral_1h_input_tokens") or 0, written)
            cost += one_hour * rates.cache_write_1h
        if r_write is None:
            return None
        cost += (written - one_hour) * r_write
    return cost


def _openrouter_cost(raw: dict[str, Any]) -> Decimal | None:
    """What OpenRouter says it charged. With your own provider key (BYOK) `cost` is only
    OpenRouter's fee; the provider's charge is `cost_details.upstream_inference_cost`."""
    cost = raw.get("cost")
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0:
        return None
    total = Decimal(repr(cost))
    if raw.get("is_byok") is True:
        details = raw.get("cost_details")
        upstream = details.get("upstream_inference_cost") if isinstance(details, dict) else None
        if isinstance(upstream, bool) or not isinstance(upstream, (int, float)):
            return None  # the larger part of the cost is unknown
        total += Decimal(repr(upstream))
    return total


def _to_float(cost: Decimal) -> float:
    return float(cost.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN))


# --- repricing -------------------------------------------------------------------------------


def _since_bound(since: str) -> str:
    """`since` (a UTC day or an ISO timestamp) in started_at's own format, to compare as text."""
    since = since.strip()
    if _DAY.fullmatch(since):
        return f"{since}T00:00:00.000Z"
    moment = datetime.fromisoformat(since)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _started(started_at: str | None) -> datetime:
    try:
        moment = datetime.fromisoformat(started_at or "")
    except ValueError:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def reprice_rows(con: sqlite3.Connection, pricer: Pricer, since: str | None = None) -> int:
    """Recompute cost_usd and price_source of finished rows (started_at >= since when given),
    from their stored tokens and raw usage; commits and returns how many costs changed."""
    sql = ("SELECT id, started_at, provider, api, COALESCE(model, model_requested), input_tokens, "
           "cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, total_tokens, "
           "usage_json, service_tier, cost_usd, price_source FROM requests WHERE outcome IS NOT 'pending'")
    params: list[str] = []
    if since:
        sql += " AND started_at >= ?"
        params.append(_since_bound(since))
    updates: list[tuple[float | None, str | None, int]] = []
    changed = 0
    for (row_id, started_at, provider, api, model, tokens_in, cached, written, tokens_out, reasoning,
         total, usage_json, service_tier, old_cost, old_source) in con.execute(sql, params).fetchall():
        raw = None
        if usage_json:
            try:
                raw = json.loads(usage_json)
            except ValueError:
                raw = None
        usage = Usage(input_tokens=tokens_in, cached_input_tokens=cached, cache_write_tokens=written,
                      output_tokens=tokens_out, reasoning_tokens=reasoning, total_tokens=total,
                      raw=raw if isinstance(raw, dict) else None)
        new = pricer.price(provider=provider or "", api=api or "", model=model, usage=usage,
                           when=_started(started_at), service_tier=service_tier)
        if new.cost_usd != old_cost:
            changed += 1
        if new.cost_usd != old_cost or new.source != old_source:
            updates.append((new.cost_usd, new.source, row_id))
    con.executemany("UPDATE requests SET cost_usd = ?, price_source = ? WHERE id = ?", updates)
    con.commit()
    return changed
