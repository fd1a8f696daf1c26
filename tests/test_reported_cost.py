"""A cost the server reports wins over every price table, on any host."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from mitmproxy.http import Headers

from usage_ledger import store
from usage_ledger.apis.openai_chat import usage_from_openai
from usage_ledger.pricing import Price, Pricer, reprice_rows
from usage_ledger.pricing.reported import body_cost, header_cost
from usage_ledger.usage import Usage

WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def price(usage: Usage, provider: str = "gateway.example.com", model: str = "sonar",
          pricer: Pricer | None = None) -> Price:
    return (pricer or Pricer()).price(provider=provider, api="openai-chat", model=model, usage=usage, when=WHEN)


def test_perplexity_low_search_context_is_what_it_charged_not_the_table():
    raw = {"prompt_tokens": 9, "completion_tokens": 120, "total_tokens": 129, "search_context_size": "low",
           "cost": {"input_tokens_cost": 0.000009, "output_tokens_cost": 0.00012, "request_cost": 0.005,
                    "total_cost": 0.005129}}
    assert price(usage_from_openai(raw), provider="perplexity") == Price(0.005129,
                                                                         "reported:perplexity usage.cost.total_cost")
    without = {k: v for k, v in raw.items() if k != "cost"}
    assert price(usage_from_openai(without), provider="perplexity").cost_usd == pytest.approx(0.012129)


@pytest.mark.parametrize("provider", ["openrouter", "openai", "llm.corp.example", "127.0.0.1:4000"])
def test_openrouter_cost_on_any_host(provider):
    raw = {"prompt_tokens": 10, "completion_tokens": 5, "cost": 0.00042, "is_byok": False,
           "cost_details": {"upstream_inference_cost": None}}
    assert price(usage_from_openai(raw), provider, "openai/gpt-4o") == Price(0.00042, "reported:openrouter usage.cost")


def test_openrouter_byok_adds_the_upstream_charge_and_unknown_upstream_is_not_a_reported_cost():
    byok = {"prompt_tokens": 10, "completion_tokens": 5, "cost": 0.0001, "is_byok": True,
            "cost_details": {"upstream_inference_cost": 0.002}}
    assert price(usage_from_openai(byok), model="openai/gpt-4o") == Price(0.0021, "reported:openrouter usage.cost")
    assert body_cost({**byok, "cost_details": {}}) is None


def test_xai_ticks():
    raw = {"prompt_tokens": 32, "completion_tokens": 9, "total_tokens": 135,
           "completion_tokens_details": {"reasoning_tokens": 94}, "cost_in_usd_ticks": 37756000}
    assert price(usage_from_openai(raw), "xai", "grok-4") == Price(0.0037756, "reported:xai usage.cost_in_usd_ticks")


def test_litellm_header_cost():
    reported = header_cost(Headers([(b"X-LiteLLM-Response-Cost", b"0.00123")]))
    assert reported is not None
    assert price(Usage(input_tokens=5, output_tokens=1, reported_cost=reported)) == Price(
        0.00123, "reported:litellm x-litellm-response-cost")
    assert price(Usage(reported_cost=reported)).cost_usd == 0.00123  # a figure even without token counts
    for junk in (b"None", b"", b"-1", b"nan", b"inf"):
        assert header_cost(Headers([(b"x-litellm-response-cost", junk)])) is None


def test_nonsense_costs_are_not_reported_costs():
    for cost in (-1, True, "abc", float("nan"), {"total_cost": -0.1}, {"total_cost": None}, [1]):
        assert body_cost({"prompt_tokens": 1, "cost": cost}) is None
    assert body_cost({"cost_in_usd_ticks": -5}) is None


def test_a_reported_cost_wins_over_the_override_file(tmp_path):
    prices = tmp_path / "p.json"
    prices.write_text(json.dumps({"sonar": {"input_cost_per_token": 1.0, "output_cost_per_token": 1.0}}))
    usage = usage_from_openai({"prompt_tokens": 9, "completion_tokens": 1, "cost": {"total_cost": 0.5}})
    assert price(usage, pricer=Pricer(str(prices))) == Price(0.5, "reported:perplexity usage.cost.total_cost")


def test_reprice_keeps_a_cost_only_a_header_reported(tmp_path):
    con = store.connect(tmp_path / "l.db")
    try:
        con.execute(
            "INSERT INTO requests (flow_id, started_at, method, host, path, provider, api, model, stream, "
            "usage_injected, outcome, input_tokens, output_tokens, usage_json, cost_usd, price_source) "
            "VALUES ('f1', '2026-11-01T00:00:00.000Z', 'POST', 'litellm.local', '/v1/chat/completions', "
            "'litellm.local', 'openai-chat', 'gpt-4o-mini', 0, 0, 'ok', 10, 5, '{}', 0.00123, "
            "'reported:litellm x-litellm-response-cost')")
        con.commit()
        assert reprice_rows(con, Pricer()) == 0
        assert con.execute("SELECT cost_usd, price_source FROM requests").fetchone() == (
            0.00123, "reported:litellm x-litellm-response-cost")
    finally:
        con.close()
