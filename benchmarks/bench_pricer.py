"""CPU time of one `Pricer.price` call, with usage_ledger/pricing/fast.py and with genai-prices'
own calculator (fast.ENABLED off), for a few kinds of call.

    uv run python benchmarks/bench_pricer.py [--calls 3000] [--repeat 5]

Each line: microseconds of this thread's CPU time per call (best of --repeat), both ways,
interleaved, and the price (the same both ways: tests/test_pricing_fast.py proves it for every
model). Measured on a loaded 2-core box: gpt-4o-mini ~108 -> ~10 us, claude-sonnet-4-5 with 1h
and 5-minute cache writes ~136 -> ~12, gemini-2.5-flash ~175 -> ~12, an OpenRouter model
genai-prices lacks ~1200 -> ~7 (its miss was a search through every model, each call).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from usage_ledger.pricing import Pricer, fast  # noqa: E402
from usage_ledger.usage import Usage  # noqa: E402

WHEN = datetime(2026, 11, 24, 9, 15, tzinfo=UTC)
CALLS = {
    "gpt-4o-mini, cache reads": dict(
        provider="openai", api="openai-chat", model="gpt-4o-mini-2024-07-18", usage=Usage(1234, 1024, None, 321, 0)),
    "claude-sonnet-4-5, 1h + 5m cache writes": dict(
        provider="anthropic", api="anthropic-messages", model="claude-sonnet-4-5-20250929",
        usage=Usage(5000, 2000, 1500, 400, raw={"cache_creation": {"ephemeral_1h_input_tokens": 500,
                                                                   "ephemeral_5m_input_tokens": 1000}})),
    "gemini-2.5-flash, reasoning": dict(
        provider="gemini", api="gemini", model="gemini-2.5-flash",
        usage=Usage(3000, 1000, None, 800, 200, raw={"promptTokenCount": 3000})),
    "openrouter model genai-prices lacks": dict(
        provider="openrouter", api="openai-chat", model="someone/not-a-model", usage=Usage(100, None, None, 50)),
}


def per_call(pricer: Pricer, call: dict, n: int) -> float:
    start = time.thread_time()
    for _ in range(n):
        pricer.price(when=WHEN, **call)
    return (time.thread_time() - start) / n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    pricer = Pricer()
    pricer.warm()
    print(f"{'':42s} {'genai-prices':>14s} {'fast.py':>10s}  price (USD)")
    for name, call in CALLS.items():
        best = {True: float("inf"), False: float("inf")}
        prices = set()
        for _ in range(args.repeat):
            for enabled in (False, True):
                fast.ENABLED = enabled
                prices.add(pricer.price(when=WHEN, **call).cost_usd)
                n = args.calls // 10 if enabled is False and "lacks" in name else args.calls
                best[enabled] = min(best[enabled], per_call(pricer, call, n))
        fast.ENABLED = True
        assert len(prices) == 1, prices
        print(f"{name:42s} {best[False] * 1e6:11.1f} us {best[True] * 1e6:7.1f} us  {prices.pop()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
