"""Amazon Bedrock prices by the model id the request names: a foundation model
(`anthropic.claude-...`), a geographic cross-Region inference profile (`us.`, `eu.`, `apac.`,
`jp.`, `au.`, `us-gov.`), the `global.` profile, or an inference profile's ARN. For Claude 4.5 and
later, AWS bills the global profile about 10% below the geographic and in-Region ones (its user
guide, "Global cross-Region inference"); earlier models cost the same everywhere. Claude's answer
through InvokeModel names only the bare model (`claude-sonnet-4-5-20250929`), so the path's id,
kept as `model_requested`, is what prices the call."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from usage_ledger.pricing import Pricer, plan_reprice
from usage_ledger.store import connect
from usage_ledger.usage import Usage

from .test_report import add

WHEN = datetime(2026, 12, 1, tzinfo=UTC)
MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"


def usd(model: str, model_requested: str | None = None, usage: Usage = MILLION) -> float | None:
    return Pricer().price(provider="bedrock", api="anthropic-messages", model=model, usage=usage, when=WHEN,
                          model_requested=model_requested).cost_usd


@pytest.mark.parametrize(("model_id", "per_million"), [
    (SONNET_45, 3.30 + 16.50),                    # in-Region
    (f"us.{SONNET_45}", 3.30 + 16.50),            # geographic profiles
    (f"eu.{SONNET_45}", 3.30 + 16.50),
    (f"apac.{SONNET_45}", 3.30 + 16.50),
    (f"jp.{SONNET_45}", 3.30 + 16.50),
    (f"au.{SONNET_45}", 3.30 + 16.50),
    (f"global.{SONNET_45}", 3.00 + 15.00),        # global: ~10% less
    (f"{ARN}global.{SONNET_45}", 3.00 + 15.00),
    (f"{ARN}us.{SONNET_45}", 3.30 + 16.50),
    ("global.anthropic.claude-haiku-4-5-20251001-v1:0", 1.00 + 5.00),
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0", 1.10 + 5.50),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", 3.00 + 15.00),  # before 4.5: one price
    ("eu.anthropic.claude-3-7-sonnet-20250219-v1:0", 3.00 + 15.00),
    ("us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0", 3.00 + 15.00),
])
def test_each_model_id_is_priced_as_its_base_model_at_its_scope(model_id, per_million):
    # Converse names no model in its answer: the row's model is the path's id
    assert usd(model_id) == pytest.approx(per_million, rel=1e-12)
    # InvokeModel's answer names the bare model: the path's id prices it all the same
    bare = model_id.rsplit("/", 1)[-1].split("anthropic.", 1)[1].removesuffix("-v1:0")
    assert usd(bare, model_requested=model_id) == pytest.approx(per_million, rel=1e-12)


def test_an_id_the_prices_lack_falls_back_to_the_answers_model():
    """An application inference profile's ARN names no model; the answer's model prices it."""
    profile = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
    assert usd("claude-sonnet-4-5-20250929", model_requested=profile) == pytest.approx(19.80)
    assert usd("claude-sonnet-4-5-20250929") == pytest.approx(19.80)


def test_only_bedrock_prices_by_the_requested_id():
    """Elsewhere the answer's model is what the provider bills (OpenAI's dated snapshots)."""
    price = Pricer().price(provider="openai", api="openai-chat", model="gpt-4o-2024-08-06", usage=MILLION,
                           when=WHEN, model_requested="gpt-4o-mini")
    assert price.cost_usd == pytest.approx(2.50 + 10.00)


def test_reprice_prices_by_the_requested_id_too(tmp_path):
    """A global-profile row that was priced at the geographic rate gets the global one."""
    con = connect(tmp_path / "ledger.db")
    add(con, flow_id="f1", started_at="2026-12-01T10:00:00.000Z", provider="bedrock", api="anthropic-messages",
        model_requested=f"global.{SONNET_45}", model="claude-sonnet-4-5-20250929", input_tokens=1200,
        output_tokens=80, cost_usd=0.00528, price_source="genai-prices 0.2.2")
    plan = plan_reprice(con, Pricer())
    assert [cost for cost, _, _ in plan.updates] == [0.0048]  # 1200 * 3e-6 + 80 * 15e-6
    con.close()


def test_an_override_file_is_looked_up_by_the_requested_id_first(tmp_path):
    """LiteLLM's file keys Bedrock's profiles by their ids (`global.anthropic....`)."""
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({
        f"global.{SONNET_45}": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
        "claude-sonnet-4-5-20250929": {"input_cost_per_token": 9e-06, "output_cost_per_token": 9e-06},
    }), encoding="utf-8")

    def cost(model_requested: str) -> float | None:
        return Pricer(str(path)).price(provider="bedrock", api="anthropic-messages", model="claude-sonnet-4-5-20250929",
                                       usage=MILLION, when=WHEN, model_requested=model_requested).cost_usd

    assert cost(f"global.{SONNET_45}") == 3.0
    assert cost(f"us.{SONNET_45}") == 18.0  # not in the file: the answer's model is
