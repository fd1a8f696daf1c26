"""This project's own corpus (tests/cases/): every case through the addon's hooks, its body cut
into random pieces, gives the row its `expected_row` says and passes the client's bytes on
unchanged."""

from __future__ import annotations

import random

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from usage_ledger.ledger import UsageLedger

from .cases import OwnCase, load_own_cases, own_case_params, row_differences
from .hooks import pass_on, rows, with_ledger


def make_flow(case: OwnCase) -> tuple[http.HTTPFlow, http.Response]:
    url = case.url
    request = http.Request.make(case.request["method"], case.request["url"], case.request_body,
                                case.request.get("headers") or {})
    request.host_header = url.netloc
    response = http.Response.make(case.response["status"], case.response_body, case.response["headers"])
    flow = tflow.tflow(req=request)
    return flow, response


async def drive(ledger: UsageLedger, case: OwnCase, rng: random.Random) -> bytes:
    flow, response = make_flow(case)
    ledger.requestheaders(flow)
    ledger.request(flow)
    flow.response = response
    ledger.responseheaders(flow)
    sent = pass_on(response, rng, (1, 3, 17, 200, 4096))
    await ledger.response(flow)
    return sent


def run_cases(db, cases: list[OwnCase], seed: int) -> tuple[list[dict], list[bytes]]:
    received: list[bytes] = []
    rng = random.Random(seed)

    async def steps(ledger: UsageLedger) -> None:
        for case in cases:
            received.append(await drive(ledger, case, rng))

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


def test_own_corpus_covers_every_kind():
    apis = {c.row["api"] for c in load_own_cases() if c.gets_row}
    assert apis >= {"openai-chat", "anthropic-messages", "openai-images", "openai-transcriptions", "openai-speech"}
    sources = {c.row.get("price_source") for c in load_own_cases()}
    assert {"reported:perplexity usage.cost.total_cost", "reported:openrouter usage.cost",
            "reported:litellm x-litellm-response-cost", "reported:xai usage.cost_in_usd_ticks"} <= sources
