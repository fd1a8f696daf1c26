"""Latency of the first calls after the proxy starts: real mitmdump with addon.py, a stand-in
provider on loopback, one non-streamed chat call after another.

    uv run python benchmarks/bench_first_call.py [--runs 3] [--calls 4]

Prints each call's client-side latency in ms, per fresh proxy. The ledger requires the first
call to be within 20 ms of the second (issue 11): nothing slow may run on the event loop the
first time (genai-prices' data load, ~0.5 s, happens on the writer thread).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.proxy import Proxy  # noqa: E402
from tests.standin import StandIn  # noqa: E402

CASE = "openai__openai-chat__nostream__gpt5-service-tier"
BODY = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}


def latencies(calls: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp, StandIn() as standin, Proxy(Path(tmp)) as proxy:
        client = httpx.Client(proxy=proxy.url, trust_env=False, timeout=30)
        # Readiness: a request mitmproxy answers itself (not an LLM call, so nothing recorded).
        deadline = time.monotonic() + 30
        while True:
            try:
                client.get(f"{standin.url}/ready")
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
        out = []
        for _ in range(calls):
            start = time.perf_counter()
            r = client.post(f"{standin.url}/v1/chat/completions", json=BODY, headers={"x-standin-case": CASE})
            out.append((time.perf_counter() - start) * 1000)
            assert r.status_code == 200, r.text
        proxy.wait_rows(calls)
        return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=4)
    args = parser.parse_args()
    worst = 0.0
    for run in range(args.runs):
        ms = latencies(args.calls)
        worst = max(worst, ms[0] - ms[1])
        print(f"run {run + 1}: " + "  ".join(f"{m:7.1f}" for m in ms) + " ms")
    print(f"worst first-minus-second: {worst:.1f} ms (required <= 20 ms)")
    return 0 if worst <= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
