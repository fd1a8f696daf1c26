"""The whole proxy with addon.py against mitmdump with only an SSE-streaming addon
(benchmarks/stream_only.py), under the same load, for three kinds of call.

    uv run python benchmarks/bench_proxy.py [--requests 300] [--rounds 3] [--concurrency 8] [--context-kb 0]

Both run as real mitmdump processes (no flow lines) on loopback, in front of the stand-in provider
(tests/standin.py) in this process; httpx clients on threads send the load. Rounds are
interleaved (addon, baseline, addon, ...) so both see the same machine. Kinds of call:

  asks      a streamed chat completion whose client asked for usage itself
  hidden    the same without stream_options: the proxy adds it and hides the usage chunk
  plain     a chat completion that is not streamed

Printed per kind: mitmdump CPU per request (utime + stime from /proc/<pid>/stat, over the
load only) and the ratio addon / baseline, and p50 / p99 client latency ratios. The ledger's
goal is a CPU ratio <= 1.10 for every kind. Every addon round's rows are checked (ok, tokens).
`--context-kb N` sends each request with about N kB of earlier turns (prose and code), as an
agent's request carries its conversation: the proxy parses every recognised request body.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.proxy import MITMDUMP, Proxy  # noqa: E402
from tests.standin import StandIn  # noqa: E402

KINDS = {
    "asks": ("openai__openai-chat__stream__agno-include-usage", True, {"include_usage": True}),
    "hidden": ("openai__openai-chat__stream__agno-include-usage", True, None),
    "plain": ("openai__openai-chat__nostream__gpt5-service-tier", False, None),
}
TICK = os.sysconf("SC_CLK_TCK")
# No flow lines (mitmdump's -q would also hide the "proxy listening at" line Proxy reads its port from).
QUIET = ["--set", "flow_detail=0"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def conversation(kb: int) -> list[dict[str, str]]:
    """About `kb` kB of earlier turns, user and assistant in turn, each prose and a code block."""
    turn = ("Here is the function, with the test that fails on it: \"quoted\", tabs\t and é.\n```python\n"
            + "def total(rows):\n    return sum(r['input_tokens'] + r.get('cache_read', 0) for r in rows)\n" * 8
            + "```\n")
    messages = []
    while sum(len(m["content"]) for m in messages) < kb * 1000:
        messages.append({"role": ("user", "assistant")[len(messages) % 2], "content": turn})
    return messages


def load(proxy: Proxy, standin: StandIn, kind: str, requests: int, concurrency: int,
         context_kb: int = 0) -> tuple[float, list[float]]:
    """CPU seconds mitmdump spent on `requests` calls of one kind, and each call's latency (s)."""
    case, stream, options = KINDS[kind]
    body = {"model": "gpt-4o-mini", "stream": stream,
            "messages": [*conversation(context_kb), {"role": "user", "content": "What is 10 + 5?"}]}
    if options is not None:
        body["stream_options"] = options
    headers = {"x-standin-case": case, "x-standin-fault": "honor-include-usage"}
    latencies: list[float] = []
    todo = iter(range(requests))
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(proxy=proxy.url, trust_env=False, timeout=60) as http:
            while True:
                with lock:
                    if next(todo, None) is None:
                        return
                t0 = time.perf_counter()
                r = http.post(f"{standin.url}/v1/chat/completions", headers=headers, json=body)
                r.raise_for_status()
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    before = cpu_seconds(proxy.proc.pid)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return cpu_seconds(proxy.proc.pid) - before, latencies


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="calls per kind per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--context-kb", type=int, default=0, help="earlier turns in each request, kB")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    results = {(side, kind): ([], []) for side in ("addon", "baseline") for kind in KINDS}
    try:
        with StandIn() as standin:
            (tmp / "addon").mkdir()
            (tmp / "baseline").mkdir()
            addon = Proxy(tmp / "addon", command=[str(MITMDUMP), *QUIET, "-s", str(ROOT / "addon.py"),
                                                  "--listen-host", "127.0.0.1"])
            baseline = Proxy(tmp / "baseline", db=False, command=[
                str(MITMDUMP), *QUIET, "-s", str(ROOT / "benchmarks" / "stream_only.py"), "--listen-host", "127.0.0.1"])
            try:
                for kind in KINDS:  # warm both up: first calls load prices, open connections
                    load(addon, standin, kind, 20, 2, args.context_kb)
                    load(baseline, standin, kind, 20, 2, args.context_kb)
                for _ in range(args.rounds):
                    for kind in KINDS:
                        for side, proxy in (("addon", addon), ("baseline", baseline)):
                            cpu, lat = load(proxy, standin, kind, args.requests, args.concurrency, args.context_kb)
                            results[side, kind][0].append(cpu / args.requests)
                            results[side, kind][1].extend(lat)
                total = (args.rounds * args.requests + 20) * len(KINDS)
                rows = addon.wait_rows(total, timeout=120)
                bad = [r for r in rows if r["outcome"] != "ok" or not r["output_tokens"]]
            finally:
                addon.stop()
                baseline.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.rounds} interleaved rounds x {args.requests} calls per kind, concurrency {args.concurrency}, "
          f"{args.context_kb} kB of context per request")
    print(f"{'kind':8} {'addon ms/req':>12} {'base ms/req':>12} {'CPU ratio':>9} {'p50 ratio':>9} {'p99 ratio':>9}")
    worst = 0.0
    for kind in KINDS:
        a_cpu, a_lat = results["addon", kind]
        b_cpu, b_lat = results["baseline", kind]
        a, b = statistics.median(a_cpu), statistics.median(b_cpu)
        ratio = a / b
        worst = max(worst, ratio)
        print(f"{kind:8} {a * 1e3:12.3f} {b * 1e3:12.3f} {ratio:9.2f} {p(a_lat, 50) / p(b_lat, 50):9.2f} "
              f"{p(a_lat, 99) / p(b_lat, 99):9.2f}")
    print(f"rows: {len(rows)}, wrong: {len(bad)}; worst CPU ratio {worst:.2f} (goal <= 1.10)")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
