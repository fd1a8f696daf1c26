"""This project's own corpus (tests/cases/): every case through the addon's hooks, its body cut
into random pieces, gives the row its `expected_row` says and passes the client's bytes on
unchanged."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from usage_ledger.ledger import UsageLedger

from .cases import OwnCase, load_own_cases, own_case_params, row_differences
from .hooks import pass_on, rows, with_ledger


def make_flow(case: OwnCase, started: datetime | None = None) -> tuple[http.HTTPFlow, http.Response]:
    """The case's flow; `started` pins the request's timestamps (the call's started_at, and so
    the moment it is priced at), else they are now."""
    url = case.url
    request = http.Request.make(case.request["method"], case.request["url"], case.request_body,
                                case.request.get("headers") or {})
    request.host_header = url.netloc
    response = http.Response.make(case.response["status"], case.response_body, case.response["headers"])
    if started is not None:
        request.timestamp_start = request.timestamp_end = started.timestamp()
        response.timestamp_start = response.timestamp_end = started.timestamp() + 0.25
    flow = tflow.tflow(req=request)
    return flow, response


async def drive(ledger: UsageLedger, case: OwnCase, rng: random.Random, started: datetime | None = None) -> bytes:
    flow, response = make_flow(case, started)
    ledger.requestheaders(flow)
    ledger.request(flow)
    flow.response = response
    ledger.responseheaders(flow)
    sent = pass_on(response, rng, (1, 3, 17, 200, 4096))
    await ledger.response(flow)
    return sent


def run_cases(db, cases: list[OwnCase], seed: int, started: datetime | None = None
              ) -> tuple[list[dict], list[bytes]]:
    received: list[bytes] = []
    rng = random.Random(seed)

    async def steps(ledger: UsageLedger) -> None:
        for case in cases:
            received.append(await drive(ledger, case, rng, started))

    return rows(with_ledger(db, steps)), received


@pytest.mark.parametrize("case", own_case_params())
@pytest.mark.parametrize("seed", [1, 2])
def test_own_case_through_the_hooks(tmp_path, case: OwnCase, seed: int):
    rows_written, (sent,) = run_cases(tmp_path / "ledger.db", [case], seed)
    if case.gets_row:
        (row,) = rows_written
        assert row_differences(case, row) == {}
    else:
        assert rows_written == []
    assert sent == case.response_body


PINNED = [pytest.param(c, started, want, id=f"{c.name}@{started:%Y-%m-%dT%H:%M:%S}")
          for c in load_own_cases() for started, want in c.priced_at]


@pytest.mark.parametrize(("case", "started", "want"), PINNED)
def test_own_case_priced_at_its_pinned_start(tmp_path, case: OwnCase, started: datetime, want: dict):
    (row,), _ = run_cases(tmp_path / "ledger.db", [case], 1, started)
    assert row["started_at"] == started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert row_differences(case, row, want) == {}


def test_deepseek_is_priced_at_both_of_its_hours():
    """Standard rates and the off-peak half price (16:30-00:30 UTC) are both pinned and checked."""
    (case,) = [c for c in load_own_cases() if c.name.startswith("deepseek__") and c.priced_at]
    assert {w["cost_usd"] for _, w in case.priced_at} == {3.62e-05, 1.81e-05}


def test_own_corpus_covers_every_kind():
    apis = {c.row["api"] for c in load_own_cases() if c.gets_row}
    assert apis >= {"openai-chat", "anthropic-messages", "openai-images", "openai-transcriptions", "openai-speech"}
    sources = {c.row.get("price_source") for c in load_own_cases()}
    assert {"reported:perplexity usage.cost.total_cost", "reported:openrouter usage.cost",
            "reported:litellm x-litellm-response-cost", "reported:xai usage.cost_in_usd_ticks"} <= sources
