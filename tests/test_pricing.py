"""Pricing: costs from genai-prices on real recorded usage, overrides, special rates, repricing.

Usage comes from the shared corpus, read the way the ledger reads it (recognise -> tracker ->
StreamScanner). Expected costs come from genai-prices itself, from hard-coded list prices, or
from the override formula, never from pricing.py.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import genai_prices
import pytest

from usage_ledger import store
from usage_ledger.apis import recognise
from usage_ledger.pricing import Price, PriceFileError, Pricer, reprice_rows
from usage_ledger.providers import provider_for
from usage_ledger.scanner import StreamScanner
from usage_ledger.usage import Usage

CORPUS_DIR = Path(os.environ.get("USAGE_LEDGER_CORPUS")
                  or Path(__file__).resolve().parent / "shared-corpus")
BUNDLED = f"genai-prices {genai_prices.__version__}"
M = Decimal(1_000_000)

# The ledger's provider names for the corpus' hosts, as genai-prices names them (written out
# here rather than imported, so a wrong mapping in pricing.py shows).
GENAI_ID = {"openai": "openai", "azure-openai": "azure", "anthropic": "anthropic", "gemini": "google",
            "groq": "groq", "mistral": "mistral", "deepseek": "deepseek", "together": "together",
            "openrouter": "openrouter"}


def rounded(cost: Decimal) -> float:
    return float(cost.quantize(Decimal("1e-10"), rounding=ROUND_HALF_EVEN))


def per_m(*terms: tuple[int, str]) -> float:
    """Sum of tokens x USD-per-million-tokens, rounded like a ledger row."""
    return rounded(sum((n * Decimal(rate) for n, rate in terms), Decimal(0)) / M)


# --- the corpus, read the way the ledger reads it --------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    provider: str
    api: str
    model: str | None
    usage: Usage | None
    service_tier: str | None
    when: datetime
    expected: dict[str, Any]


def _header(headers: dict[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value if isinstance(value, str) else value[0]
    return None


def _row(path: Path) -> Row:
    data = json.loads(path.read_text(encoding="utf-8"))
    request, response = data["request"], data["response"]
    url = urlsplit(request["url"])
    body = request["body"] if isinstance(request["body"], dict) else None
    rec, tracker_class = recognise(request["method"], url.path, body)
    tracker = tracker_class(rec.model_requested)
    raw = response["body"] if isinstance(response["body"], str) else json.dumps(response["body"])
    scanner = StreamScanner(tracker, _header(response["headers"], "content-type") or "")
    scanner.feed(raw.encode("utf-8"))
    scanner.close()
    date = _header(response["headers"], "date")
    when = parsedate_to_datetime(date) if date else datetime(2026, 1, 1, tzinfo=UTC)
    return Row(path.stem, provider_for(url.hostname or "", url.port, rec.api), rec.api,
               tracker.model or rec.model_requested, tracker.usage(), tracker.service_tier, when,
               data["expected"])


ROWS = tuple(_row(p) for p in sorted(CORPUS_DIR.glob("*.json"))) if CORPUS_DIR.is_dir() else ()


def params(rows) -> list[Any]:
    rows = list(rows)
    if not rows:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no corpus at {CORPUS_DIR}"))]
    return [pytest.param(r, id=r.name) for r in rows]


def by_name(fragment: str) -> Row:
    if not ROWS:
        pytest.skip(f"no corpus at {CORPUS_DIR}")
    (row,) = [r for r in ROWS if fragment in r.name]
    return row


def price(pricer: Pricer, row: Row, **changes: Any) -> Price:
    args = dict(provider=row.provider, api=row.api, model=row.model, usage=row.usage, when=row.when,
                service_tier=row.service_tier)
    return pricer.price(**(args | changes))


PRICER = Pricer()
WITH_USAGE = [r for r in ROWS if r.usage is not None]
# OpenRouter's usage.cost is what it charged, on whatever host serves the body
OPENROUTER_BILLED = [r for r in WITH_USAGE if "cost" in (r.usage.raw or {})]


# --- bundled prices --------------------------------------------------------------------------


def hand_labelled_usage(row: Row) -> genai_prices.Usage:
    """The case's hand-read counts (provider conventions) in genai-prices' terms: input is the
    whole prompt, cache included; output includes reasoning."""
    e = row.expected
    cached, written = e["cached_input_tokens"] or 0, e["cache_write_tokens"] or 0
    tokens_in, tokens_out = e["input_tokens"] or 0, e["output_tokens"] or 0
    reasoning = e["reasoning_tokens"] or 0
    if row.api == "anthropic-messages":
        tokens_in += cached + written
    if row.api == "gemini":
        tokens_out += reasoning
    # priced apart from plain tokens: Anthropic's web searches, Gemini's audio
    searches = (row.usage.raw.get("server_tool_use") or {}).get("web_search_requests", 0)

    def audio(key: str) -> int:
        return sum(d["tokenCount"] for d in row.usage.raw.get(key, []) if d.get("modality") == "AUDIO")

    return genai_prices.Usage(input_tokens=tokens_in, cache_read_tokens=cached, cache_write_tokens=written,
                              output_tokens=tokens_out, output_reasoning_tokens=reasoning, web_searches=searches,
                              input_audio_tokens=audio("promptTokensDetails"),
                              cache_audio_read_tokens=audio("cacheTokensDetails"))


@pytest.mark.parametrize("row", params(r for r in WITH_USAGE if r not in OPENROUTER_BILLED))
def test_cost_is_genai_prices_calc_for_the_same_usage(row: Row) -> None:
    try:
        calc = genai_prices.calc_price(hand_labelled_usage(row), row.model,
                                       provider_id=GENAI_ID.get(row.provider),
                                       genai_request_timestamp=row.when,
                                       price_context={"service_tier": row.service_tier} if row.service_tier
                                       and row.api != "anthropic-messages" else None)
    except LookupError:
        assert price(PRICER, row) == Price(None, None)  # unpriced model: NULL, not 0
        return
    assert price(PRICER, row) == Price(rounded(calc.total_price), BUNDLED)


_FLAVOURS = {"openai-chat": ("chat", "default"), "openai-responses": ("responses",),
             "openai-embeddings": ("embeddings",), "anthropic-messages": ("default",), "gemini": ("default",)}


def _extractable(row: Row) -> bool:
    provider = GENAI_ID.get(row.provider)
    if provider is None or row.provider == "openrouter" or row in OPENROUTER_BILLED:
        return False
    extractors = genai_prices.data_snapshot.get_snapshot().find_provider(None, provider, None).extractors or []
    return any(e.api_flavor in _FLAVOURS.get(row.api, ()) for e in extractors)


@pytest.mark.parametrize("row", params(r for r in WITH_USAGE if _extractable(r)))
def test_cost_is_genai_prices_own_reading_of_the_raw_usage(row: Row) -> None:
    """genai-prices reads the provider's usage object in the provider's own convention (Anthropic's
    input excludes cache); the ledger's normalised usage must come to the same price."""
    provider = GENAI_ID[row.provider]
    flavours = [e.api_flavor for e in
                genai_prices.data_snapshot.get_snapshot().find_provider(None, provider, None).extractors]
    flavour = next(f for f in _FLAVOURS[row.api] if f in flavours)
    response = ({"usageMetadata": row.usage.raw, "modelVersion": row.model} if row.api == "gemini"
                else {"usage": row.usage.raw, "model": row.model})
    try:
        extracted = genai_prices.extract_usage(response, provider_id=provider, api_flavor=flavour)
        calc = extracted.calc_price(genai_request_timestamp=row.when,
                                    price_context={"service_tier": row.service_tier} if row.service_tier
                                    and row.api != "anthropic-messages" else None)
    except (LookupError, ValueError):
        assert price(PRICER, row).cost_usd is None
        return
    assert price(PRICER, row) == Price(rounded(calc.total_price), BUNDLED)


@pytest.mark.parametrize("fragment, terms", [
    # Anthropic: input 4 uncached + 1163 written; $3 in, $3.75 5-minute write, $15 out
    ("nostream__cache-write-1163", [(4, "3"), (1163, "3.75"), (187, "15")]),
    # Anthropic: 1163 read at $0.30
    ("nostream__cache-read-1163", [(4, "3"), (1163, "0.30"), (202, "15")]),
    # OpenAI gpt-4o-mini: prompt_tokens 1149 includes the 1024 cached; $0.15 / $0.075 / $0.60
    ("openai-chat__nostream__prompt-caching-cached-1024", [(1149 - 1024, "0.15"), (1024, "0.075"), (353, "0.60")]),
])
def test_input_tokens_include_the_cache_and_are_priced_once(fragment: str, terms: list[tuple[int, str]]) -> None:
    """genai-prices takes the whole prompt as input_tokens and subtracts the cache counts itself:
    (input - cached - written)·in + cached·read + written·write + output·out."""
    row = by_name(fragment)
    e = row.expected
    if row.api == "openai-chat":
        assert (e["input_tokens"], e["cached_input_tokens"], e["output_tokens"]) == (1149, 1024, 353)
    else:
        assert e["input_tokens"] == 4 and e["output_tokens"] in (187, 202)
    assert price(PRICER, row) == Price(per_m(*terms), BUNDLED)


def test_gemini_cached_content_audio_and_thoughts() -> None:
    row = by_name("gemini__gemini__nostream__crewai-cached-content-and-thoughts")
    e = row.expected
    counts = (e["input_tokens"], e["cached_input_tokens"], e["output_tokens"], e["reasoning_tokens"])
    assert counts == (1518, 1122, 202, 185)
    # promptTokensDetails: 160 AUDIO; cacheTokensDetails: 118 AUDIO. gemini-2.5-flash: text/video
    # $0.30 in, $0.03 cached; audio $1.00 in, $0.10 cached; $2.50 out, thinking included
    audio, cached_audio = 160, 118
    expected = per_m((1518 - 1122 - (audio - cached_audio), "0.30"), (1122 - cached_audio, "0.03"),
                     (audio - cached_audio, "1.00"), (cached_audio, "0.10"), (202 + 185, "2.50"))
    assert price(PRICER, row) == Price(expected, BUNDLED)


@pytest.mark.parametrize("row", params(r for r in ROWS if r.usage is None))
def test_no_usage_is_null(row: Row) -> None:
    assert price(PRICER, row) == Price(None, None)


def test_usage_without_counts_is_null_but_reported_zero_is_zero() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    args = dict(provider="openai", api="openai-chat", model="gpt-4o-mini", when=when)
    assert PRICER.price(usage=None, **args) == Price(None, None)
    assert PRICER.price(usage=Usage(raw={}), **args) == Price(None, None)
    assert PRICER.price(usage=Usage(input_tokens=0, output_tokens=0), **args) == Price(0.0, BUNDLED)
    # an embedding reports no output: its input is still priced
    embedding = PRICER.price(provider="openai", api="openai-embeddings", model="text-embedding-3-small",
                             usage=Usage(input_tokens=1000), when=when)
    assert embedding == Price(per_m((1000, "0.02")), BUNDLED)


def test_unpriced_models_are_null_and_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    pricer = Pricer()
    usage = Usage(input_tokens=10, output_tokens=5)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger="usage_ledger.pricing"):
        for _ in range(3):
            assert pricer.price(provider="localhost:8000", api="openai-chat", model="facebook/opt-125m",
                                usage=usage, when=when) == Price(None, None)
        # a known provider that does not serve this name is not priced by another's list
        assert pricer.price(provider="openai", api="openai-chat", model="moonshotai/kimi-k2",
                            usage=usage, when=when) == Price(None, None)
        # self-hosted: a cloud price for the same model name would be wrong
        assert pricer.price(provider="ollama", api="ollama", model="llama3", usage=usage,
                            when=when) == Price(None, None)
    assert len(caplog.records) == 3
    assert "facebook/opt-125m" in caplog.records[0].getMessage()


def test_unknown_host_is_priced_by_model_alone() -> None:
    usage = Usage(input_tokens=1000, output_tokens=100)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    direct = PRICER.price(provider="openai", api="openai-chat", model="gpt-4o-mini", usage=usage, when=when)
    for model in ("gpt-4o-mini", "openai/gpt-4o-mini"):
        assert PRICER.price(provider="litellm.internal:4000", api="openai-chat", model=model, usage=usage,
                            when=when) == direct == Price(per_m((1000, "0.15"), (100, "0.60")), BUNDLED)


def test_historic_calls_get_historic_prices() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=0)
    args = dict(provider="openai", api="openai-chat", model="o3", usage=usage)
    assert PRICER.price(when=datetime(2025, 5, 1, tzinfo=UTC), **args).cost_usd == 10.0
    assert PRICER.price(when=datetime(2025, 7, 1, tzinfo=UTC), **args).cost_usd == 2.0  # cut on 2025-06-10


# --- what the provider reports beyond plain tokens -------------------------------------------


def anthropic_usage(uncached: int, read: int, five_min: int | None, one_hour: int | None, out: int) -> Usage:
    raw: dict[str, Any] = {"input_tokens": uncached, "cache_read_input_tokens": read,
                           "cache_creation_input_tokens": (five_min or 0) + (one_hour or 0), "output_tokens": out}
    if five_min is not None or one_hour is not None:
        raw["cache_creation"] = {"ephemeral_5m_input_tokens": five_min or 0, "ephemeral_1h_input_tokens": one_hour or 0}
    written = raw["cache_creation_input_tokens"]
    return Usage(input_tokens=uncached + read + written, cached_input_tokens=read, cache_write_tokens=written,
                 output_tokens=out, raw=raw)


@pytest.mark.parametrize("provider, model", [
    ("anthropic", "claude-sonnet-4-5-20250929"),  # genai-prices has a 1h rate
    ("vertex", "claude-3-7-sonnet@20250219"),  # genai-prices' Vertex entry has none: added by pricing.py
])
def test_anthropic_one_hour_cache_writes_cost_twice_the_input_rate(provider: str, model: str) -> None:
    when = datetime(2026, 2, 1, tzinfo=UTC)
    usage = anthropic_usage(uncached=100, read=500, five_min=1000, one_hour=2000, out=50)
    got = PRICER.price(provider=provider, api="anthropic-messages", model=model, usage=usage, when=when)
    # $3 in, $0.30 read, $3.75 5-minute write (1.25x), $6 1-hour write (2x), $15 out
    assert got == Price(per_m((100, "3"), (500, "0.30"), (1000, "3.75"), (2000, "6"), (50, "15")), BUNDLED)
    # without the breakdown every write is billed as a 5-minute one
    usage = anthropic_usage(uncached=100, read=500, five_min=None, one_hour=None, out=50)
    usage = Usage(input_tokens=3600, cached_input_tokens=500, cache_write_tokens=3000, output_tokens=50,
                  raw={k: v for k, v in usage.raw.items()} | {"cache_creation_input_tokens": 3000})
    got = PRICER.price(provider=provider, api="anthropic-messages", model=model, usage=usage, when=when)
    assert got == Price(per_m((100, "3"), (500, "0.30"), (3000, "3.75"), (50, "15")), BUNDLED)


def test_openai_service_tier() -> None:
    row = by_name("gpt5-service-tier")
    assert (row.service_tier, row.model) == ("priority", "gpt-5-2025-08-07")
    tokens_in, tokens_out = row.usage.input_tokens, row.usage.output_tokens
    # genai-prices' tier rates start on 2026-10-12, the date they entered its data: earlier
    # priority calls (like this recording) get standard rates.
    assert price(PRICER, row) == Price(per_m((tokens_in, "1.25"), (tokens_out, "10")), BUNDLED)
    later = datetime(2026, 11, 24, tzinfo=UTC)
    assert price(PRICER, row, when=later) == Price(per_m((tokens_in, "2.50"), (tokens_out, "20")), BUNDLED)
    assert price(PRICER, row, when=later, service_tier="flex") == Price(
        per_m((tokens_in, "0.625"), (tokens_out, "5")), BUNDLED)
    assert price(PRICER, row, when=later, service_tier="default") == price(PRICER, row, when=later, service_tier=None)


def test_anthropic_batch_tier_from_raw_usage() -> None:
    usage = anthropic_usage(uncached=1000, read=0, five_min=None, one_hour=None, out=1000)
    usage.raw["service_tier"] = "batch"
    got = PRICER.price(provider="anthropic", api="anthropic-messages", model="claude-haiku-4-5",
                       usage=usage, when=datetime(2026, 11, 1, tzinfo=UTC))
    assert got == Price(per_m((1000, "0.5"), (1000, "2.5")), BUNDLED)  # half of $1 / $5


def test_long_context_tier_applies_to_the_whole_prompt_cache_included() -> None:
    when = datetime(2026, 2, 1, tzinfo=UTC)
    args = dict(provider="anthropic", api="anthropic-messages", model="claude-sonnet-4-5-20250929", when=when)
    # 150k uncached + 60k read: the prompt is 210k, over the 200k threshold, so every token is at the
    # long-context rates ($6 in, $0.60 read, $22.50 out) although neither part alone crosses it
    big = anthropic_usage(uncached=150_000, read=60_000, five_min=None, one_hour=None, out=1000)
    assert PRICER.price(usage=big, **args) == Price(per_m((150_000, "6"), (60_000, "0.60"), (1000, "22.50")), BUNDLED)
    small = anthropic_usage(uncached=150_000, read=40_000, five_min=None, one_hour=None, out=1000)
    assert PRICER.price(usage=small, **args) == Price(per_m((150_000, "3"), (40_000, "0.30"), (1000, "15")), BUNDLED)


@pytest.mark.parametrize("row", params(OPENROUTER_BILLED))
def test_openrouter_reported_cost_is_used(row: Row) -> None:
    assert OPENROUTER_BILLED and any(r.provider != "openrouter" for r in OPENROUTER_BILLED)
    assert price(PRICER, row) == Price(row.usage.raw["cost"], "reported:openrouter usage.cost")


# --- overrides --------------------------------------------------------------------------------

OVERRIDE = {
    "gpt-4o-mini-2024-07-18": {"input_cost_per_token": 1.1e-06, "output_cost_per_token": 4.4e-06,
                               "cache_read_input_token_cost": 2.2e-07, "litellm_provider": "openai",
                               "mode": "chat", "max_input_tokens": 128000},
    # no cache rates: reads and writes fall back to the input rate
    "claude-3-5-sonnet-20240620": {"input_cost_per_token": 7e-06, "output_cost_per_token": 3.3e-05},
    "gpt-image-1": {"input_cost_per_image": 0.04},  # not token-priced: ignored
}


def override_formula(entry: dict[str, float], usage: Usage) -> float:
    def d(key: str) -> Decimal:
        return Decimal(repr(entry[key]))
    r_in, r_out = d("input_cost_per_token"), d("output_cost_per_token")
    r_read = d("cache_read_input_token_cost") if "cache_read_input_token_cost" in entry else r_in
    r_write = d("cache_creation_input_token_cost") if "cache_creation_input_token_cost" in entry else r_in
    tokens_in, cached = usage.input_tokens or 0, usage.cached_input_tokens or 0
    written, tokens_out = usage.cache_write_tokens or 0, usage.output_tokens or 0
    return rounded((tokens_in - cached - written) * r_in + cached * r_read + written * r_write + tokens_out * r_out)


@pytest.fixture
def override_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(OVERRIDE), encoding="utf-8")
    return path


def test_override_prices_the_corpus_rows_with_the_formula(override_file: Path) -> None:
    pricer = Pricer(str(override_file))
    source = f"override:{override_file}"
    overridden = [r for r in WITH_USAGE if r.model in OVERRIDE]
    if not ROWS:
        pytest.skip(f"no corpus at {CORPUS_DIR}")
    assert {r.model for r in overridden} == {"gpt-4o-mini-2024-07-18", "claude-3-5-sonnet-20240620"}
    assert any(r.usage.cached_input_tokens for r in overridden)
    assert any(r.usage.cache_write_tokens for r in overridden)
    for row in overridden:
        assert price(pricer, row) == Price(override_formula(OVERRIDE[row.model], row.usage), source), row.name
    for row in WITH_USAGE:
        if row.model not in OVERRIDE:
            assert price(pricer, row) == price(PRICER, row), row.name


def test_override_keys_match_exactly_never_by_prefix(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({
        "gpt-4o": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
        "claude-3-5-sonnet": {"input_cost_per_token": 2e-06, "output_cost_per_token": 2e-06},
        "gemini/gemini-2.5-flash": {"input_cost_per_token": 3e-06, "output_cost_per_token": 3e-06},
    }), encoding="utf-8")
    pricer = Pricer(str(path))
    usage = Usage(input_tokens=1_000_000, output_tokens=0)
    when = datetime(2026, 1, 1, tzinfo=UTC)

    def cost(provider: str, model: str) -> Price:
        return pricer.price(provider=provider, api="openai-chat", model=model, usage=usage, when=when)

    source = f"override:{path}"
    assert cost("openai", "gpt-4o") == Price(1.0, source)
    assert cost("openai", "gpt-4o-2024-08-06") == Price(1.0, source)  # date suffix
    assert cost("openrouter", "openai/gpt-4o") == Price(1.0, source)  # provider prefix
    assert cost("anthropic", "claude-3-5-sonnet-20240620") == Price(2.0, source)  # compact date suffix
    assert cost("gemini", "gemini-2.5-flash") == Price(3.0, source)  # provider-prefixed key
    assert cost("openai", "gpt-4o-mini") == Price(0.15, BUNDLED)  # never a loose prefix
    assert cost("openai", "gpt-4o-mini-2024-07-18") == Price(0.15, BUNDLED)
    assert cost("vertex", "gemini-2.5-flash").source == BUNDLED  # the prefix names another provider


def test_override_one_hour_cache_write_rate(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"claude-x": {
        "input_cost_per_token": 1e-06, "output_cost_per_token": 5e-06, "cache_read_input_token_cost": 1e-07,
        "cache_creation_input_token_cost": 1.25e-06, "cache_creation_input_token_cost_above_1hr": 2e-06}}))
    usage = anthropic_usage(uncached=100, read=200, five_min=300, one_hour=400, out=50)
    got = Pricer(str(path)).price(provider="anthropic", api="anthropic-messages", model="claude-x", usage=usage,
                                  when=datetime(2026, 1, 1, tzinfo=UTC))
    assert got == Price(per_m((100, "1"), (200, "0.1"), (300, "1.25"), (400, "2"), (50, "5")), f"override:{path}")


@pytest.mark.parametrize("content, problem", [
    (None, "cannot read"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"m": {"input_cost_per_token": "0.1", "output_cost_per_token": 0.2}}', "m.input_cost_per_token"),
    ('{"m": {"input_cost_per_token": true, "output_cost_per_token": 0.2}}', "m.input_cost_per_token"),
    ('{"m": {"input_cost_per_token": 1e-6, "output_cost_per_token": -2e-6}}', "greater than or equal to 0"),
    ('{"m": {"input_cost_per_token": NaN, "output_cost_per_token": 1}}', "finite"),
    ('{"m": [1e-6]}', "m"),
])
def test_bad_override_file_raises_one_clear_line(tmp_path: Path, content: str | None, problem: str) -> None:
    path = tmp_path / "bad prices.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(PriceFileError) as info:
        Pricer(str(path))
    message = str(info.value)
    assert str(path) in message and problem in message and "\n" not in message
    assert isinstance(info.value, ValueError)


# --- repricing --------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _insert(con: sqlite3.Connection, i: int, row: Row, pricer: Pricer, outcome: str = "ok",
            started_at: str | None = None) -> None:
    u = row.usage or Usage()
    p = price(pricer, row)
    con.execute(
        "INSERT INTO requests (flow_id, started_at, provider, api, model_requested, model, outcome, input_tokens, "
        "cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, total_tokens, usage_json, "
        "cost_usd, price_source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (f"f{i}", started_at or _iso(row.when), row.provider, row.api, row.model, row.model, outcome,
         u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.output_tokens, u.reasoning_tokens,
         u.total_tokens, u.raw_json, p.cost_usd, p.source))


def _costs(con: sqlite3.Connection) -> dict[str, tuple[float | None, str | None]]:
    return {f: (c, s) for f, c, s in con.execute("SELECT flow_id, cost_usd, price_source FROM requests")}


def test_reprice_rows_changes_exactly_the_overridden_rows(tmp_path: Path, override_file: Path) -> None:
    if not ROWS:
        pytest.skip(f"no corpus at {CORPUS_DIR}")
    con = store.connect(tmp_path / "l.db")
    try:
        rows = [r for r in ROWS if r.provider != "openrouter"]  # OpenRouter's own figure never changes
        for i, row in enumerate(rows):
            _insert(con, i, row, PRICER)
        gpt = next(r for r in rows if r.model == "gpt-4o-mini-2024-07-18" and r.usage)
        _insert(con, 1000, gpt, PRICER, outcome="pending")  # in flight: left alone
        _insert(con, 1001, gpt, PRICER, started_at="2020-01-01T00:00:00.000Z")  # before `since`
        con.commit()
        before = _costs(con)

        assert reprice_rows(con, Pricer()) == 0  # same prices: nothing changes
        assert _costs(con) == before

        since = "2021-01-01"
        changed = reprice_rows(con, Pricer(str(override_file)), since)
        after = _costs(con)
        affected = {f"f{i}" for i, r in enumerate(rows) if r.model in OVERRIDE and r.usage is not None}
        assert changed == len(affected) > 0
        assert {f for f in after if after[f] != before[f]} == affected
        for i, row in enumerate(rows):
            if f"f{i}" in affected:
                assert after[f"f{i}"] == (override_formula(OVERRIDE[row.model], row.usage),
                                          f"override:{override_file}")
        assert after["f1000"] == before["f1000"] and after["f1001"] == before["f1001"]

        # Without an override file, the rows an override file priced keep that price ...
        assert reprice_rows(con, Pricer()) == 0
        assert _costs(con) == after
        # ... and an empty one brings them back; the ISO form of `since`, as the CLI passes it,
        # selects the same rows.
        empty = override_file.with_name("empty.json")
        empty.write_text("{}")
        assert reprice_rows(con, Pricer(str(empty)), "2021-01-01T00:00:00.000Z") == len(affected)
        assert _costs(con) == before
    finally:
        con.close()


def test_reprice_rows_reads_the_one_hour_split_from_usage_json(tmp_path: Path) -> None:
    con = store.connect(tmp_path / "l.db")
    try:
        usage = anthropic_usage(uncached=100, read=0, five_min=0, one_hour=10_000, out=10)
        when = datetime(2026, 2, 1, tzinfo=UTC)
        row = Row("1h", "anthropic", "anthropic-messages", "claude-sonnet-4-5-20250929", usage, None, when, {})
        _insert(con, 1, row, PRICER)
        con.execute("UPDATE requests SET cost_usd = NULL, price_source = NULL")
        con.commit()
        assert reprice_rows(con, PRICER) == 1
        expected = per_m((100, "3"), (10_000, "6"), (10, "15"))
        assert _costs(con) == {"f1": (expected, BUNDLED)}
    finally:
        con.close()
