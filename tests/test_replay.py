"""Replay flows/corpus.mitm (recorded by real mitmdump through addon.py) through the addon's
hooks, feeding each streamed body in small pieces, and check every ledger row."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

from mitmproxy import io
from mitmproxy.test import taddons

from usage_ledger.ledger import UsageLedger

from .hooks import pass_on, with_ledger

FLOWS = Path(__file__).resolve().parents[1] / "flows" / "corpus.mitm"
TOKENS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")


def recorded_flows():
    with FLOWS.open("rb") as f:
        return [flow for flow in io.FlowReader(f).stream() if "expected" in flow.metadata]


def normalised(api: str, expected: dict) -> dict:
    """The provider's reported usage in the ledger's semantics (contract: token columns)."""
    want = {k: expected.get(k) for k in TOKENS}
    if api == "anthropic-messages" and want["input_tokens"] is not None:
        want["input_tokens"] += (want["cached_input_tokens"] or 0) + (want["cache_write_tokens"] or 0)
    if api == "gemini" and want["reasoning_tokens"]:
        want["output_tokens"] = (want["output_tokens"] or 0) + want["reasoning_tokens"]
    return want


async def replay(ledger: UsageLedger, recorded, rng: random.Random) -> tuple[bytes, str]:
    """Drive one flow through the hooks as mitmproxy would; returns what the client received
    and the flow's comment."""
    flow = recorded.copy()
    response, flow.response = flow.response, None
    ledger.request(flow)
    flow.response = response
    ledger.responseheaders(flow)
    sent = pass_on(response, rng)
    await ledger.response(flow)
    return sent, flow.comment


def test_every_recorded_flow_gives_its_reported_usage(tmp_path):
    flows = recorded_flows()
    assert len(flows) >= 71
    db = tmp_path / "ledger.db"
    ledger = UsageLedger()
    received = {}

    async def run():
        with taddons.context(ledger) as tctx:
            tctx.configure(ledger, ledger_db=str(db))
            rng = random.Random(7)
            for flow in flows:
                sent, comment = await replay(ledger, flow, rng)
                received[flow.metadata["case"]] = (sent, flow.response.raw_content, comment)
            ledger.done()

    asyncio.run(run())
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = list(con.execute("select * from requests order by id"))
    assert len(rows) == len(flows)
    for flow, row in zip(flows, rows):
        case, expected = flow.metadata["case"], flow.metadata["expected"]
        got = {k: row[k] for k in TOKENS}
        want = normalised(flow.metadata["api"], expected)
        for k in ("cached_input_tokens", "cache_write_tokens", "reasoning_tokens"):
            if not want[k] and got[k] == 0:
                got[k] = None  # "reported 0" and "not reported" both mean none here
            if not want[k] and want[k] == 0 and got[k] is None:
                want[k] = None
        assert got == want, case
        if expected.get("model"):
            assert row["model"] == expected["model"], case
        assert row["status_code"] == flow.response.status_code, case
        ok = 200 <= flow.response.status_code < 300
        assert row["outcome"] == ("ok" if ok else "http_error"), case
        if not ok:
            assert row["error"], case
        sent, recorded_body, comment = received[case]
        assert sent == recorded_body, f"{case}: client bytes differ"
        if ok and row["input_tokens"] is not None:
            assert comment.startswith(f"{row['model']} · {row['input_tokens']} in / "), case


NONSTREAM_CASE = "openai__openai-chat__nostream__gpt5-service-tier"  # gpt-5: 8 in, 82 out


def recorded_case(name: str):
    return next(f for f in recorded_flows() if f.metadata["case"] == name)


def test_replaying_a_flow_in_mitmweb_records_a_second_call(tmp_path):
    flow = recorded_case(NONSTREAM_CASE).copy()
    response = flow.response

    async def twice(ledger):
        for replay in (None, "request"):  # mitmproxy's client replay reuses the flow
            flow.is_replay = replay
            flow.response = None
            ledger.request(flow)
            flow.response = response
            ledger.responseheaders(flow)
            await ledger.response(flow)

    con = with_ledger(tmp_path / "ledger.db", twice)
    rows = con.execute("select flow_id, outcome, input_tokens, output_tokens from requests order by id").fetchall()
    assert len(rows) == 2 and rows[0][0] != rows[1][0] and rows[1][0].startswith(rows[0][0] + "/replay-")
    assert rows[0][1:] == rows[1][1:] == ("ok", 8, 82)


def test_a_bug_while_reading_a_response_still_completes_its_row(tmp_path, monkeypatch):
    from usage_ledger import call as call_module

    def broken(self, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(call_module.Call, "finish", broken)

    async def once(ledger):
        await replay(ledger, recorded_case(NONSTREAM_CASE), random.Random(1))

    con = with_ledger(tmp_path / "ledger.db", once)
    row = con.execute("select outcome, status_code, input_tokens, error from requests").fetchone()
    assert row == ("ok", 200, None, "usage-ledger internal error: RuntimeError")


def test_the_cost_reaches_the_flow_comment_after_the_writer_priced_it(tmp_path):
    """Pricing runs on the writer thread; the response hook leaves the tokens in the comment at
    once, and the priced line replaces it on the event loop."""
    flow = recorded_case(NONSTREAM_CASE).copy()
    comments = []

    async def once(ledger):
        response, flow.response = flow.response, None
        ledger.request(flow)
        flow.response = response
        ledger.responseheaders(flow)
        await ledger.response(flow)
        comments.append(flow.comment)
        deadline = time.monotonic() + 60  # bounded: the writer prices within its flush interval
        while "$" not in flow.comment and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        comments.append(flow.comment)

    con = with_ledger(tmp_path / "ledger.db", once)
    cost = con.execute("select cost_usd from requests").fetchone()[0]
    assert comments[0] == "gpt-5-2025-08-07 · 8 in / 82 out"
    assert cost is not None and comments[1] == f"gpt-5-2025-08-07 · 8 in / 82 out · ${cost:.6f}"


def test_a_call_in_flight_when_ledger_db_changes_is_whole_in_the_new_ledger(tmp_path):
    """mitmweb's options or the console's `:set` may point the proxy at another ledger while a
    call is in flight: its row is whole there, and closed (not left pending) in the old one."""
    old, new = tmp_path / "a.db", tmp_path / "b.db"
    flow = recorded_case(NONSTREAM_CASE).copy()
    ledger = UsageLedger()

    async def run() -> None:
        with taddons.context(ledger) as tctx:
            tctx.configure(ledger, ledger_db=str(old))
            response, flow.response = flow.response, None
            ledger.request(flow)
            tctx.configure(ledger, ledger_db=str(new))
            flow.response = response
            ledger.responseheaders(flow)
            pass_on(response, random.Random(1))
            await ledger.response(flow)
            ledger.done()

    asyncio.run(run())

    def rows(db: Path) -> list[tuple]:
        con = sqlite3.connect(db)
        try:
            return con.execute("SELECT outcome, host, api, input_tokens, error FROM requests").fetchall()
        finally:
            con.close()

    assert rows(new) == [("ok", "api.openai.com", "openai-chat", 8, None)]
    assert rows(old) == [("proxy_stopped", "api.openai.com", "openai-chat", None,
                          f"the ledger was switched to {new} during the call")]
