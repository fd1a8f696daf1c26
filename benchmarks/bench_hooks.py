"""The addon's own cost on the event loop per call: its hooks, driven as mitmproxy drives them,
without a proxy around them.

    uv run python benchmarks/bench_hooks.py [--calls 3000] [--repeat 5] [--profile KIND]

For each kind of call bench_proxy.py loads (asks, hidden, plain), recorded flows from
flows/corpus.mitm are copied and put through requestheaders, request, responseheaders, the
stream callable (the body in 1-4 KiB pieces) and response, with a real ledger in a temporary
folder. Printed: the main thread's CPU per call (time.thread_time, so the writer thread's work
is left out) minus that of the same loop with no addon (copying flows, cutting bodies), best of
`--repeat` runs. bench_proxy.py measures the whole proxy, but on a shared machine its ratios
swing by 20 % or more; this number moves only when the hooks do.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

from mitmproxy import http, io
from mitmproxy.test import taddons

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from usage_ledger.ledger import UsageLedger  # noqa: E402

FLOWS = ROOT / "flows" / "corpus.mitm"
KINDS = {  # as in bench_proxy.py: the recorded case, and the request's stream_options
    "asks": ("openai__openai-chat__stream__agno-include-usage", {"include_usage": True}),
    "hidden": ("openai__openai-chat__stream__agno-include-usage", None),
    "plain": ("openai__openai-chat__nostream__gpt5-service-tier", None),
}


def recorded(case: str) -> http.HTTPFlow:
    with FLOWS.open("rb") as f:
        for flow in io.FlowReader(f).stream():
            if flow.metadata.get("case") == case:
                return flow
    raise SystemExit(f"{case} is not in {FLOWS}")


def template(kind: str) -> http.HTTPFlow:
    case, options = KINDS[kind]
    flow = recorded(case)
    body = json.loads(flow.request.content)
    if body.get("stream"):
        body.pop("stream_options", None)
        if options is not None:
            body["stream_options"] = options
    flow.request.content = json.dumps(body).encode()
    flow.request.host, flow.request.port = "api.openai.com", 443
    flow.metadata.clear()
    return flow


async def drive(ledger: UsageLedger | None, flow0: http.HTTPFlow, calls: int) -> float:
    """Main-thread CPU seconds for `calls` calls (ledger None: the loop alone)."""
    rng = random.Random(7)
    body = flow0.response.raw_content or b""
    cuts = []
    i = 0
    while i < len(body):
        n = rng.randint(1024, 4096)
        cuts.append((i, i + n))
        i += n
    req, res = flow0.request, flow0.response
    t0 = time.thread_time()
    for _ in range(calls):
        # A new flow on the recorded connections (the hooks do not change those): copying the
        # whole flow would copy its certificates too, and cost more than the hooks.
        flow = http.HTTPFlow(flow0.client_conn, flow0.server_conn)
        flow.request = http.Request(req.host, req.port, req.method, req.scheme, req.authority, req.path,
                                    req.http_version, req.headers.copy(), req.raw_content, None,
                                    req.timestamp_start, req.timestamp_end)
        if ledger is not None:
            ledger.requestheaders(flow)
            ledger.request(flow)
        flow.response = http.Response(res.http_version, res.status_code, res.reason, res.headers.copy(),
                                      res.raw_content, None, res.timestamp_start, res.timestamp_end)
        if ledger is not None:
            ledger.responseheaders(flow)
        stream = flow.response.stream
        if callable(stream):
            for a, b in cuts:
                stream(body[a:b])
            stream(b"")
        if ledger is not None:
            await ledger.response(flow)
    return time.thread_time() - t0


def run(kind: str, calls: int, with_addon: bool, profile: cProfile.Profile | None = None) -> float:
    flow0 = template(kind)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = UsageLedger() if with_addon else None

        async def main() -> float:
            with taddons.context(*([ledger] if ledger else [])) as tctx:
                if ledger is not None:
                    tctx.configure(ledger, ledger_db=str(Path(tmp) / "ledger.db"))
                    await drive(ledger, flow0, 20)  # warm: the first calls load prices
                # As the proxy does once started (heap.py): what start-up left is frozen, so
                # full collections do not walk it over and over.
                gc.collect()
                gc.freeze()
                if profile is not None:
                    profile.enable()
                try:
                    return await drive(ledger, flow0, calls)
                finally:
                    if profile is not None:
                        profile.disable()
                    if ledger is not None:
                        ledger.done()

        return asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    parser.add_argument("--profile", choices=sorted(KINDS), help="cProfile the hooks for one kind")
    args = parser.parse_args(argv)
    if args.profile:
        prof = cProfile.Profile()
        run(args.profile, args.calls, True, prof)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    print(f"{args.calls} calls per kind, best of {args.repeat}; main-thread CPU per call, in µs")
    print(f"{'kind':8} {'hooks':>8} {'loop alone':>10} {'addon':>8}")
    for kind in KINDS:
        with_hooks, alone = float("inf"), float("inf")
        for _ in range(args.repeat):  # interleaved, so both see the same machine
            with_hooks = min(with_hooks, run(kind, args.calls, True))
            alone = min(alone, run(kind, args.calls, False))
        print(f"{kind:8} {with_hooks / args.calls * 1e6:8.1f} {alone / args.calls * 1e6:10.1f} "
              f"{(with_hooks - alone) / args.calls * 1e6:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
