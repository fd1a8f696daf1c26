"""Prices from genai-prices' bundled snapshot: the ledger's usage in genai-prices' terms, the
price variant a call's context selects, and what genai-prices' data cannot express."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices.types import ModelPrice, calc_unit_price

from ..usage import Usage, count
from . import fast

_PER_MTOK = 1_000_000
GENAI_PRICES_SOURCE = f"genai-prices {genai_prices.__version__}"

# The ledger's provider name -> genai-prices' provider id. Providers missing here (hosts of
# unknown OpenAI-compatible servers, providers genai-prices lacks) are matched by model alone.
GENAI_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "azure-openai": "azure",  # genai-prices' azure falls back to openai's prices
    "azure-ai": "azure",
    "anthropic": "anthropic",
    "gemini": "google",
    "vertex": "google",  # google falls back to anthropic for Claude on Vertex
    "gemini-code-assist": "google",
    "github-copilot": "github-copilot",
    "bedrock": "aws",
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


def price_names(provider: str, model: str, model_requested: str | None = None) -> list[str]:
    """The model names a call's price is looked up by, most specific first: the row's model,
    and on Amazon Bedrock first the request's model id (the path's: a foundation model, a
    geographic `us.`/`eu.`/`apac.`/`jp.`/`au.`/`us-gov.` or the `global.` cross-Region inference
    profile, or an inference profile's ARN). Bedrock bills by that id, and Claude's answer names
    only the bare model (`claude-sonnet-4-5-20250929`): for Claude 4.5 and later AWS bills the
    global profile about 10% below the geographic and in-Region ones (Bedrock user guide, "Global
    cross-Region inference"), which the bare name cannot tell. An id the prices lack (an
    application inference profile's ARN names no model) falls back to the answer's model."""
    names = [model]
    if provider == "bedrock" and model_requested and model_requested != model:
        names.insert(0, model_requested)
    return names


def bundled_cost(provider: str, api: str, model: str, usage: Usage, when: datetime,
                 service_tier: str | None, model_requested: str | None = None) -> Decimal:
    """USD from genai-prices' data for this model (each of `price_names`, also tried without a
    `vendor/` prefix).

    Raises LookupError for a model genai-prices does not know, ValueError for counts it cannot
    price (more cached tokens than input)."""
    genai_usage = genai_usage_values(api, usage)
    context = _price_context(api, service_tier, usage.raw)
    provider_id = GENAI_PROVIDERS.get(provider)
    refs = [ref for name in price_names(provider, model, model_requested)
            for ref in [name] + ([name.split("/", 1)[1]] if "/" in name else [])]
    total, prices = fast.calc(genai_usage, refs, provider_id, when, context)  # = genai_prices.calc_price's
    return total + _one_hour_shortfall(prices, genai_usage)


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
    elif api == "openai-realtime":
        # Each modality's count includes its cached part, as genai-prices reads them.
        details = raw.get("input_token_details")
        values["input_audio_tokens"] = count(details, "audio_tokens") or 0
        values["cache_audio_read_tokens"] = count(details, "cached_tokens_details", "audio_tokens") or 0
        values["input_image_tokens"] = count(details, "image_tokens") or 0
        values["cache_image_read_tokens"] = count(details, "cached_tokens_details", "image_tokens") or 0
        values["output_audio_tokens"] = count(raw, "output_token_details", "audio_tokens") or 0
    elif api == "openai-images":
        values["input_image_tokens"] = count(raw, "input_tokens_details", "image_tokens") or 0
    elif api == "openai-transcriptions":
        values["input_audio_tokens"] = (count(raw, "input_token_details", "audio_tokens")
                                        or count(raw, "input_tokens_details", "audio_tokens") or 0)
    elif api == "gemini":
        # Billed as input, but not part of promptTokenCount (and so not of the ledger's input).
        values["input_tokens"] += count(raw, "toolUsePromptTokenCount") or 0
        values["input_audio_tokens"] = (_gemini_modality(raw, "promptTokensDetails", "AUDIO")
                                        + _gemini_modality(raw, "toolUsePromptTokensDetails", "AUDIO"))
        values["cache_audio_read_tokens"] = _gemini_modality(raw, "cacheTokensDetails", "AUDIO")
        values["output_audio_tokens"] = _gemini_modality(raw, "candidatesTokensDetails", "AUDIO")
    values.update(other_units(api, raw))
    kept = {k: v for k, v in values.items() if v}
    # A cache read beside audio (or image) input: genai-prices must be told how much of the cache
    # was audio, even none, or it refuses to price. Said only when the provider broke the cache down.
    if _cache_broken_down(api, raw) and kept.get("cache_read_tokens"):
        for whole, cached in (("input_audio_tokens", "cache_audio_read_tokens"),
                              ("input_image_tokens", "cache_image_read_tokens")):
            if kept.get(whole):
                kept.setdefault(cached, 0)
    return kept


def _cache_broken_down(api: str, raw: dict[str, Any]) -> bool:
    """Did the provider report its cache read by modality (Realtime's `cached_tokens_details`,
    Gemini's `cacheTokensDetails`)?"""
    if api == "openai-realtime":
        details = raw.get("input_token_details")
        return isinstance(details, dict) and isinstance(details.get("cached_tokens_details"), dict)
    return api == "gemini" and isinstance(raw.get("cacheTokensDetails"), list)


def other_units(api: str, raw: dict[str, Any] | None) -> dict[str, int | float]:
    """What a call is billed by besides tokens: seconds of audio transcribed (`usage.seconds`,
    whisper-1), characters spoken (`input_characters`, counted from a tts-1 request)."""
    raw = raw if isinstance(raw, dict) else {}
    units: dict[str, int | float] = {}
    if api == "openai-transcriptions" and raw.get("type") == "duration":
        seconds = raw.get("seconds")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 < seconds < float("inf"):
            units["audio_seconds"] = units["input_audio_seconds"] = seconds
    elif api == "openai-speech" and count(raw, "input_characters"):
        units["input_characters"] = count(raw, "input_characters") or 0
    return units


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


def _one_hour_shortfall(prices: ModelPrice, genai_usage: dict[str, int]) -> Decimal:
    """What genai-prices left out for 1h cache writes on a model with no 1h rate in its data:
    it priced them as 5-minute writes, Anthropic bills them at 2x the input rate."""
    one_hour = genai_usage.get("cache_write_1h_tokens", 0)
    if (not one_hour or getattr(prices, "cache_write_1h_mtok", None) is not None
            or prices.cache_write_mtok is None or prices.input_mtok is None):
        return Decimal(0)
    total_input = genai_usage.get("input_tokens", 0)  # picks the long-context tier, as genai-prices does
    as_1h = 2 * calc_unit_price(prices.input_mtok, one_hour, total_input, _PER_MTOK)
    as_5m = calc_unit_price(prices.cache_write_mtok, one_hour, total_input, _PER_MTOK)
    return max(as_1h - as_5m, Decimal(0))
