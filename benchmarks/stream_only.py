"""The baseline addon for benchmarks/bench_proxy.py: mitmdump streaming SSE and nothing else."""


def responseheaders(flow):
    if "event-stream" in flow.response.headers.get("content-type", ""):
        flow.response.stream = True
