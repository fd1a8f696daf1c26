"""usage_ledger/pricing/fast.py gives genai-prices' own answer, digit for digit: for every model of
the bundled snapshot (also as a fallback provider's, Claude through google, OpenAI's through
azure), usages of every key `genai_usage_values` can produce (zero, past 2**32, past Decimal's 28
digits, more cached than input), moments around every price change and off-peak boundary, and
every price context `_price_context` makes. The same Decimal (also its str) and ModelPrice, or,
where the fast path declines, genai-prices' own result or exception through `calc`."""

from __future__ import annotations

import random
import warnings
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usage_ledger.pricing import GENAI_PROVIDERS, fast

SNAPSHOT = data_snapshot.get_snapshot()
BY_ID = {p.id: p for p in SNAPSHOT.providers}
# (provider, model): every model under its own provider, and every model a provider falls back to
MODELS = ([(p, m) for p in SNAPSHOT.providers for m in p.models]
          + [(p, m) for p in SNAPSHOT.providers for f in p.fallback_model_providers or () for m in BY_ID[f].models])

# The keys genai_usage_values produces (bundled.py), audio seconds and characters included.
TOKEN_KEYS = ["input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
              "cache_write_5m_tokens", "input_audio_tokens", "cache_audio_read_tokens", "input_image_tokens",
              "cache_image_read_tokens", "output_tokens", "output_reasoning_tokens", "output_audio_tokens",
              "web_searches", "input_characters"]
CONTEXTS = [None, {"service_tier": "default"}, {"service_tier": "flex"}, {"service_tier": "priority"},
            {"service_tier": "auto"}, {"service_tier": "scale"}, {"processing": "batch"}, {"speed": "fast"},
            {"processing": "batch", "speed": "fast"}, {"service_tier": "priority", "speed": "fast"}]


def tier_starts(model) -> set[int]:
    prices = [model.prices] if isinstance(model.prices, ModelPrice) else [c.prices for c in model.prices]
    prices += [v.prices for v in model.price_variants or ()]
    return {t.start for p in prices for r in p.__dict__.values() for t in getattr(r, "tiers", ())}


def _change_dates() -> list[date]:
    constraints = [c.constraint for _, m in MODELS if not isinstance(m.prices, ModelPrice) for c in m.prices]
    constraints += [v.constraint for _, m in MODELS for v in m.price_variants or ()]
    return sorted({c.start_date for c in constraints if hasattr(c, "start_date")})


CHANGES = _change_dates()
TIERS = sorted({n for _, m in MODELS for n in tier_starts(m)})
TIMES = [time(0, 0), time(0, 29, 59), time(0, 30), time(16, 29, 59), time(16, 30), time(23, 59, 59)]  # DeepSeek's
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), timezone(timedelta(hours=14))]


def reference(provider, model, usage: dict, when: datetime, context):
    """genai-prices' own calculation for this provider and model (after its lookup)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.calc_price(genai_prices.Usage(**usage), provider, genai_request_timestamp=when,
                                price_context=context)


def same(provider, model, usage: dict, when: datetime, context) -> bool:
    """The fast path's answer equals genai-prices'; False when the fast path declined."""
    own = any(model is m for m in provider.models)
    got = fast.plain_cost(model, own, usage, when, context) if fast.plain_usage(usage) else None
    if got is None:
        return False
    want = reference(provider, model, usage, when, context)  # raises: the fast path priced what genai-prices refuses
    assert (got[0], str(got[0])) == (want.total_price, str(want.total_price)), (provider.id, model.id, usage, when)
    assert got[1] == want.model_price
    return True


def test_installed_genai_prices_is_verified():
    assert fast.ENABLED, (f"genai-prices {genai_prices.__version__} is not in fast.VERIFIED: run this file and add "
                          "the version when it passes; until then every call is priced by genai-prices itself")


def test_every_model_at_every_price_change():
    """Each model priced plainly (input with cache reads, output) and with every kind of count,
    around each of its own price changes, under each context; once with counts of 31 digits (Decimal
rounds each product and sum, so the order of the terms shows), once with cache reads and audio but
    no cached audio (genai-prices wants cached audio explicit then: its ValueError), and at each
    of its long-context thresholds. The fast path prices most of them and equals genai-prices
    wherever it does."""
    rng = random.Random(11)
    plain = {"input_tokens": 12_345, "cache_read_tokens": 2_345, "output_tokens": 678}
    full = {k: 10 ** 6 + i for i, k in enumerate(TOKEN_KEYS)}
    full.update(input_tokens=10 ** 9, output_tokens=10 ** 8, cache_write_tokens=50_000)
    huge = {k: 3 ** 64 + 7 ** i for i, k in enumerate(TOKEN_KEYS)}  # 31 digits: every sum and product rounds
    huge.update(input_tokens=3 ** 66, output_tokens=3 ** 65)
    joined = {"input_tokens": 10 ** 6, "cache_read_tokens": 1000, "input_audio_tokens": 2000,
              "input_image_tokens": 500, "output_tokens": 100, "output_reasoning_tokens": 10}
    priced = 0
    for provider, model in MODELS:
        dates = [c.constraint.start_date for c in model.prices if hasattr(c.constraint, "start_date")] \
            if not isinstance(model.prices, ModelPrice) else []
        moments = [datetime(2025, 6, 1, 12, tzinfo=UTC)] + [
            datetime.combine(d, rng.choice(TIMES), rng.choice(ZONES)) + timedelta(days=rng.choice([-1, 0, 1]))
            for d in dates]
        for when in moments:
            priced += same(provider, model, plain, when, rng.choice(CONTEXTS))
            same(provider, model, full, when, rng.choice(CONTEXTS))
        when = rng.choice(moments)
        same(provider, model, joined, when, rng.choice(CONTEXTS))
        same(provider, model, huge, when, rng.choice(CONTEXTS))
        for start in tier_starts(model):
            for n in (start, start + 1):
                same(provider, model, {**plain, "input_tokens": n}, when, rng.choice(CONTEXTS))
    assert priced >= 0.8 * len(MODELS)


def usages():
    count = st.one_of(st.just(0), st.integers(1, 10_000), st.integers(0, 2 ** 40), st.integers(2 ** 32, 2 ** 110),
                      st.sampled_from(TIERS).flatmap(lambda n: st.sampled_from([n, n + 1])))

    @st.composite
    def usage(draw) -> dict:
        values = draw(st.dictionaries(st.sampled_from(TOKEN_KEYS), count, max_size=len(TOKEN_KEYS)))
        if draw(st.booleans()):  # a consistent one, as the ledger makes them: the parts inside their wholes
            values["cache_write_tokens"] = (values.get("cache_write_tokens", 0) + values.get("cache_write_1h_tokens", 0)
                                            + values.get("cache_write_5m_tokens", 0))
            values["input_tokens"] = values.get("input_tokens", 0) + sum(
                values.get(k, 0) for k in ("cache_read_tokens", "cache_write_tokens", "input_audio_tokens",
                                           "input_image_tokens"))
            values["output_tokens"] = values.get("output_tokens", 0) + values.get("output_reasoning_tokens", 0) \
                + values.get("output_audio_tokens", 0)
        return values

    return usage()


def moments():
    near_change = st.builds(lambda d, days, t, zone: datetime.combine(d + timedelta(days=days), t, zone),
                            st.sampled_from(CHANGES), st.integers(-1, 1), st.one_of(st.sampled_from(TIMES), st.times()),
                            st.sampled_from(ZONES))
    anytime = st.datetimes(datetime(2023, 1, 1), datetime(2028, 12, 31), timezones=st.sampled_from(ZONES))
    return st.one_of(near_change, anytime)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MODELS), usages(), moments(), st.sampled_from(CONTEXTS))
def test_random_usages_equal_genai_prices(provider_model, usage, when, context):
    same(*provider_model, usage, when, context)


REFS = ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5",
        "anthropic.claude-sonnet-4-5-20250929-v1:0", "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "gemini-2.5-flash", "gemini-2.5-pro", "deepseek-chat", "whisper-large-v3", "tts-1", "gpt-realtime",
        "meta-llama/llama-3.3-70b-instruct", "openai/gpt-4o", "not-a-model", "someone/not-a-model"]
ODD_USAGES = [{"input_tokens": -1}, {"input_tokens": True}, {"input_tokens": 10, "cache_read_tokens": 11},
              {"audio_seconds": 3.5, "input_audio_seconds": 3.5}, {"audio_seconds": 4, "input_audio_seconds": 4},
              {"input_tokens": 5, "bogus_tokens": 1}, {"cache_audio_read_tokens": 7, "output_tokens": 1},
              {"cache_read_tokens": 3, "input_audio_tokens": 4, "input_tokens": 10}, {}]


def outcome(f):
    try:
        total, prices = f()
    except Exception as e:  # noqa: BLE001  (the exception's type is the answer)
        return type(e)
    return total, str(total), prices


def same_calc(usage: dict, refs: list[str], provider_id, when: datetime, context) -> None:
    """`calc` against fast._genai: genai-prices' calc_price tried ref by ref, as bundled_cost did."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (outcome(lambda: fast.calc(usage, refs, provider_id, when, context))
                == outcome(lambda: fast._genai(usage, refs, provider_id, when, context))), (usage, refs, provider_id)


def test_calc_odd_usages_as_genai_prices():
    """Negative, boolean, float and unknown counts, more cached than input, audio seconds (Groq
    bills whisper for at least 10 s), a count genai-prices wants explicit, none at all: through
    `calc`, each with each name and provider, the same price or the same exception type."""
    rng = random.Random(11)
    for usage in ODD_USAGES:
        for ref in REFS:
            for provider_id in (None, "openai", "anthropic", "google", "aws", "groq", "openrouter", "azure"):
                same_calc(usage, [ref], provider_id, datetime(2026, 11, 24, 9, 15, tzinfo=UTC), rng.choice(CONTEXTS))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(set(GENAI_PROVIDERS.values())) + [None]), st.lists(st.sampled_from(REFS), min_size=1,
       max_size=3), st.one_of(usages(), st.sampled_from(ODD_USAGES)), moments(), st.sampled_from(CONTEXTS))
def test_calc_equals_genai_prices_lookups_and_errors(provider_id, refs, usage, when, context):
    """`calc` (the lookups, the fallback to genai-prices) against genai-prices' calc_price tried
    ref by ref: the same price, or the same exception type."""
    same_calc(usage, refs, provider_id, when, context)


@pytest.mark.parametrize(("provider_id", "ref", "usage"), [
    ("openai", "gpt-4o-mini-2024-07-18", {"input_tokens": 1234, "cache_read_tokens": 1024, "output_tokens": 321}),
    ("anthropic", "claude-sonnet-4-5-20250929", {"input_tokens": 5000, "cache_read_tokens": 2000,
                                                 "cache_write_tokens": 1500, "cache_write_1h_tokens": 500,
                                                 "cache_write_5m_tokens": 1000, "output_tokens": 400}),
    ("google", "gemini-2.5-flash", {"input_tokens": 3000, "cache_read_tokens": 1000, "output_tokens": 800,
                                    "output_reasoning_tokens": 200}),
    ("aws", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", {"input_tokens": 400_000, "output_tokens": 10}),
])
def test_common_calls_take_the_fast_path(provider_id, ref, usage):
    provider, model = SNAPSHOT.find_provider_model(ref, None, provider_id, None)
    when = datetime(2026, 11, 24, 9, 15, tzinfo=UTC)
    assert same(provider, model, usage, when, {"service_tier": "default"})
    assert fast.calc(usage, [ref], provider_id, when, None)[0] > Decimal(0)


def test_price_sets_genai_prices_would_refuse_are_left_to_it():
    """Price sets the snapshot does not have today: a missing ancestor price, an unknown price key
    (genai-prices warns and leaves it out), a negative rate, a tiered rate without an input rate
    for a usage with cache reads but no input count. The fast path declines each; genai-prices
    itself raises or warns."""
    from genai_prices.types import ClauseEquals, ModelInfo, Tier, TieredPrices

    when = datetime(2026, 11, 24, tzinfo=UTC)
    provider = BY_ID["openai"]
    cases = [
        (ModelPrice(input_mtok=Decimal(1), cache_audio_read_mtok=Decimal(1)), {"input_tokens": 5}, ValueError),
        (ModelPrice(input_mtok=Decimal(1), bogus_mtok=Decimal(2)), {"input_tokens": 5}, UserWarning),
        (ModelPrice(input_mtok=Decimal(-1)), {"input_tokens": 5}, ValueError),
        (ModelPrice(output_mtok=TieredPrices(Decimal(1), [Tier(10, Decimal(2))])),
         {"cache_read_tokens": 5, "output_tokens": 5}, ValueError),
    ]
    for price, usage, expected in cases:
        model = ModelInfo(id="synthetic", match=ClauseEquals("synthetic"), prices=price)
        assert fast.plain_cost(model, False, usage, when, None) is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(expected):
                model.calc_price(genai_prices.Usage(**usage), provider, genai_request_timestamp=when)
