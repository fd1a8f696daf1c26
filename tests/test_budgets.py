"""Budgets end to end: real mitmdump with a budget file, the real openai and anthropic SDKs
through it, the stand-in provider behind it, and the ledger read back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import httpx
import httpx2
import openai
import pytest

from .proxy import Proxy, start_refused, wait_until

API_KEY = "sk-test-budget-0123456789abcdef"
CHAT_CASE = "openai__openai-chat__stream__agno-include-usage"  # gpt-4o-mini, 23 in / 8 out
ANTHROPIC_CASE = "anthropic__anthropic-messages__stream__llm-anthropic-basic"
CHAT_COST = 23 * 0.15e-6 + 8 * 0.60e-6  # gpt-4o-mini: $0.15 / $0.60 per million tokens


def budget_file(path: Path, *budgets: str, timezone: str = "UTC") -> Path:
    path.write_text(f'timezone = "{timezone}"\n' + "".join(f"[[budget]]\n{b}\n" for b in budgets))
    return path


def openai_client(proxy: Proxy, standin, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{standin.url}/v1", api_key=API_KEY,
                         default_headers={"x-standin-case": CHAT_CASE}, **kwargs,
                         http_client=httpx.Client(proxy=proxy.url, trust_env=False))


def chat(client: openai.OpenAI, **kwargs) -> str:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "What is 10 + 5?"}], stream=True,
        max_tokens=8, **kwargs)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_the_call_that_crosses_a_hard_limit_succeeds_and_the_next_raises_the_sdks_rate_limit_error(
        tmp_path, standin):
    budgets = budget_file(tmp_path / "budgets.toml", f'name = "daily"\nlimit_usd = {CHAT_COST * 1.5!r}\n'
                          'period = "day"\naction = "block"')
    with Proxy(tmp_path, f"ledger_budgets={budgets}") as proxy:
        client = openai_client(proxy, standin)  # the SDK's own retries left on: x-should-retry stops them
        assert chat(client) == "10 + 5 equals 15."
        assert chat(client) == "10 + 5 equals 15."  # crosses the limit
        # The client has read the whole stream before the proxy has priced it: until then its
        # estimate counts and the refusal says "in flight" (a loaded machine shows that window).
        proxy.wait_rows(2)
        forwarded = len(standin.requests)
        with pytest.raises(openai.RateLimitError) as raised:
            chat(client)
        assert len(standin.requests) == forwarded, "a refused call went upstream"
        rows = proxy.wait_rows(3)
    error = raised.value
    assert error.status_code == 429
    text = error.body["message"]
    assert text.startswith("usage-ledger budget 'daily' is used up: $0.00001650 spent today "
                           "of its $0.00001238 limit; it resets ")
    assert text.endswith(" 00:00 UTC")
    assert error.body["code"] == "budget_exceeded"
    assert error.response.headers["x-should-retry"] == "false"
    retry = int(error.response.headers["retry-after"])
    assert 0 < retry <= 86400
    assert [r["outcome"] for r in rows] == ["ok", "ok", "blocked"]
    blocked = rows[2]
    assert blocked["input_tokens"] is None and blocked["output_tokens"] is None and blocked["cost_usd"] is None
    assert blocked["status_code"] is None and blocked["error"] == text
    assert blocked["model_requested"] == "gpt-4o-mini" and blocked["usage_injected"] == 0


def test_anthropic_sdk_gets_its_own_error_shape(tmp_path, standin):
    budgets = budget_file(tmp_path / "budgets.toml", 'name = "claude"\nlimit_usd = 1e-9\nperiod = "month"\n'
                          'model = "claude-*"', timezone="Europe/Berlin")
    with Proxy(tmp_path, f"ledger_budgets={budgets}") as proxy:
        client = anthropic.Anthropic(base_url=standin.url, api_key=API_KEY,
                                     default_headers={"x-standin-case": ANTHROPIC_CASE},
                                     http_client=httpx2.Client(proxy=proxy.url, trust_env=False))

        def ask():
            with client.messages.stream(model="claude-3-5-sonnet-latest", max_tokens=64,
                                        messages=[{"role": "user", "content": "hi"}]) as stream:
                return stream.get_final_message()

        ask()
        proxy.wait_rows(1)
        with pytest.raises(anthropic.RateLimitError) as raised:
            ask()
        rows = proxy.wait_rows(2)
    body = raised.value.body
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"].startswith("usage-ledger budget 'claude' is used up")
    assert "this month" in body["error"]["message"]
    assert body["error"]["message"].endswith((" CET", " CEST"))
    assert [r["outcome"] for r in rows] == ["ok", "blocked"]
    # A month from Berlin's midnight on the 1st; the header says when to come back.
    assert 0 < int(raised.value.response.headers["retry-after"]) <= 31 * 86400


def test_a_warn_budget_lets_calls_through_with_a_header_and_one_log_line_per_mark(tmp_path, standin):
    budgets = budget_file(tmp_path / "budgets.toml", f'name = "soft"\nlimit_usd = {CHAT_COST * 1.5!r}\n'
                          'period = "week"\naction = "warn"\nwarn_at = 0.5')
    with Proxy(tmp_path, f"ledger_budgets={budgets}") as proxy:
        http = httpx.Client(proxy=proxy.url, trust_env=False)
        headers = {"x-standin-case": CHAT_CASE, "authorization": f"Bearer {API_KEY}"}
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        seen = []
        for n in range(1, 5):
            r = http.post(f"{standin.url}/v1/chat/completions", json=body, headers=headers)
            assert r.status_code == 200 and "15" in r.text
            seen.append(r.headers.get("x-usage-ledger-budget"))
            proxy.wait_rows(n)  # its cost is counted before the next call
        log = proxy.log_path.read_text()
    # Each header shows the spend when the call was admitted: 0, then one, two, three calls.
    assert seen == [None, "soft 0.00000825/0.00001238 USD", "soft 0.00001650/0.00001238 USD",
                    "soft 0.00002475/0.00001238 USD"]
    assert log.count("budget 'soft' passed 50%") == 1
    assert log.count("budget 'soft' reached its $0.00001238 limit") == 1 and "calls go on" in log


def test_a_restart_keeps_the_periods_spend(tmp_path, standin):
    budgets = budget_file(tmp_path / "budgets.toml", f'name = "daily"\nlimit_usd = {CHAT_COST * 1.5!r}\n'
                          'period = "day"')
    with Proxy(tmp_path, f"ledger_budgets={budgets}") as proxy:
        client = openai_client(proxy, standin)
        chat(client)
        chat(client)
        proxy.wait_rows(2)
    with Proxy(tmp_path, f"ledger_budgets={budgets}") as proxy:
        with pytest.raises(openai.RateLimitError, match="'daily' is used up: \\$0.00001650 spent"):
            chat(openai_client(proxy, standin))
        assert [r["outcome"] for r in proxy.wait_rows(3)] == ["ok", "ok", "blocked"]


def test_32_concurrent_calls_against_a_limit_that_fits_10_let_at_most_10_through(tmp_path, standin):
    budgets = budget_file(tmp_path / "budgets.toml", f'name = "burst"\nlimit_usd = {CHAT_COST * 9.5!r}\n'
                          'period = "total"')
    with Proxy(tmp_path, f"ledger_budgets={budgets}") as proxy:
        client = openai.OpenAI(base_url=f"{standin.url}/v1", api_key=API_KEY, max_retries=0,
                               default_headers={"x-standin-case": CHAT_CASE, "x-standin-fault": "gate"},
                               http_client=httpx.Client(proxy=proxy.url, trust_env=False,
                                                        limits=httpx.Limits(max_connections=64)))
        before = len(standin.requests)
        refused: list[str] = []

        def one(_):
            try:
                return chat(client)
            except openai.RateLimitError as e:
                refused.append(e.body["message"])
                return None

        standin.close_gate()  # every call let through waits upstream: all 32 are in flight at once
        try:
            with ThreadPoolExecutor(32) as pool:
                results = pool.map(one, range(32))
                wait_until(lambda: len(standin.requests) - before + len(refused) == 32, 60, "32 calls")
                standin.open_gate()
                answered = [r for r in results if r is not None]
        finally:
            standin.open_gate()
            standin.gate = None
        rows = proxy.wait_rows(32)
    passed = len(answered)
    assert len(standin.requests) - before == passed
    assert 1 <= passed <= 10 and len(refused) == 32 - passed
    assert all("in flight" in m and "never resets" in m for m in refused)
    outcomes = [r["outcome"] for r in rows]
    assert outcomes.count("ok") == passed and outcomes.count("blocked") == 32 - passed
    assert sum(r["cost_usd"] or 0 for r in rows) <= CHAT_COST * 10


def test_the_file_is_reloaded_when_it_changes(tmp_path, standin):
    budgets = budget_file(tmp_path / "budgets.toml", 'name = "roomy"\nlimit_usd = 100.0\nperiod = "day"')
    with Proxy(tmp_path, f"ledger_budgets={budgets}") as proxy:
        client = openai_client(proxy, standin, max_retries=0)
        chat(client)
        proxy.wait_rows(1)
        budget_file(budgets, 'name = "tight"\nlimit_usd = 1e-9\nperiod = "day"')
        wait_until(lambda: "budgets reloaded" in proxy.log_path.read_text(), 60, "the reload")
        with pytest.raises(openai.RateLimitError, match="budget 'tight' is used up"):
            chat(client)
        budgets.write_text("[[budget]]\nname = 1\n")  # a bad edit: the old budgets stay
        wait_until(lambda: "stay as they were" in proxy.log_path.read_text(), 60, "the bad edit refused")
        with pytest.raises(openai.RateLimitError, match="budget 'tight' is used up"):
            chat(client)
    assert [r["outcome"] for r in proxy.rows()] == ["ok", "blocked", "blocked"]


def test_a_bad_budget_file_stops_startup_with_one_clear_line(tmp_path):
    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nname = "daily"\nlimit_usd = -5\nperiod = "day"\n')
    done = start_refused(tmp_path, f"ledger_budgets={budgets}")
    assert done.returncode != 0
    errors = [line for line in done.stdout.splitlines() if "ledger_budgets" in line]
    assert len(errors) == 1, done.stdout
    assert f'{budgets}: budget "daily" limit_usd: Input should be greater than 0' in errors[0]
    assert "Traceback" not in done.stdout + done.stderr
