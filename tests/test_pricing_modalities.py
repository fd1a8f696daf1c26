"""A cache read beside audio input: priced, with the cache's audio part as the provider broke it
down (none here). genai-prices refuses such usage unless told the cached audio explicitly.

Expected costs by hand from the list prices in genai-prices' data (USD per million tokens):
gpt-realtime text in 4, cached 0.40, audio in 32, text out 16, audio out 64;
gemini-2.5-flash text in 0.30, cached 0.03, audio in 1.00, out 2.50."""

from datetime import UTC, datetime

import pytest

from usage_ledger.pricing import Pricer
from usage_ledger.usage import Usage

WHEN = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def realtime_usage(cached_details: dict | None) -> Usage:
    details = {"audio_tokens": 100, "text_tokens": 80, "cached_tokens": 64}
    if cached_details is not None:
        details["cached_tokens_details"] = cached_details
    raw = {"input_token_details": details, "output_token_details": {"audio_tokens": 20, "text_tokens": 5}}
    return Usage(input_tokens=180, output_tokens=25, cached_input_tokens=64, raw=raw)


def test_realtime_audio_input_with_a_text_only_cache_read_is_priced():
    price = Pricer().price(provider="openai", api="openai-realtime", model="gpt-realtime",
                           usage=realtime_usage({"text_tokens": 64, "audio_tokens": 0}), when=WHEN)
    # 16 uncached text x 4 + 64 cached x 0.40 + 100 audio x 32 + 5 text out x 16 + 20 audio out x 64
    assert price.cost_usd == pytest.approx((16 * 4 + 64 * 0.4 + 100 * 32 + 5 * 16 + 20 * 64) / 1e6, rel=1e-12)


def test_realtime_cached_audio_is_priced_at_its_own_rate():
    usage = realtime_usage({"text_tokens": 24, "audio_tokens": 40})
    with_audio = Pricer().price(provider="openai", api="openai-realtime", model="gpt-realtime", usage=usage, when=WHEN)
    text_only = Pricer().price(provider="openai", api="openai-realtime", model="gpt-realtime",
                               usage=realtime_usage({"text_tokens": 64, "audio_tokens": 0}), when=WHEN)
    assert with_audio.cost_usd is not None and with_audio.cost_usd < text_only.cost_usd


def test_a_cache_read_not_broken_down_by_modality_stays_unpriced():
    price = Pricer().price(provider="openai", api="openai-realtime", model="gpt-realtime",
                           usage=realtime_usage(None), when=WHEN)
    assert price.cost_usd is None  # how much of the cache was audio is unknown: no guess


def test_gemini_audio_prompt_with_a_text_cache_is_priced():
    raw = {"promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 100}, {"modality": "TEXT", "tokenCount": 80}],
           "cachedContentTokenCount": 64, "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 64}]}
    usage = Usage(input_tokens=180, output_tokens=25, cached_input_tokens=64, raw=raw)
    price = Pricer().price(provider="gemini", api="gemini", model="gemini-2.5-flash", usage=usage, when=WHEN)
    assert price.cost_usd == pytest.approx((16 * 0.3 + 64 * 0.03 + 100 * 1.0 + 25 * 2.5) / 1e6, rel=1e-12)
