"""Load through real mitmdump: client threads making streamed chat calls one after another,
each call tagged with its number, and what each client saw, for checking against the ledger."""

from __future__ import annotations

import json
import threading

import httpx

from .proxy import Proxy, wait_until

CHAT_CASE = "openai__openai-chat__stream__agno-include-usage"  # gpt-4o-mini-2024-07-18, 23 in / 8 out
CHAT_TOKENS = (23, 8)


class Load:
    """`clients` threads, each calling `/v1/chat/completions` (streamed, CHAT_CASE) through the
    proxy again and again until stop(), at most `per_client` calls each. Call numbers are unique
    (client n makes n*100000, n*100000+1, ...) and sent as `X-Ledger-Tag-Call`.

    whole: the numbers of calls whose client got the whole stream (200, ending `[DONE]`), in the
    order they ended; failed: number -> what the client got instead. A client stops at its
    first failure (a stopped proxy refuses every later call). first_client: the first client's
    n, so that loads through several proxies number their calls apart."""

    def __init__(self, proxy: Proxy, standin_url: str, clients: int = 4, per_client: int = 100_000,
                 first_client: int = 0) -> None:
        self.proxy, self.standin_url, self.per_client = proxy, standin_url, per_client
        self.whole: list[int] = []
        self.failed: dict[int, str] = {}
        self.started: set[int] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                         for n in range(first_client, first_client + clients)]
        for t in self._threads:
            t.start()

    def _client(self, n: int) -> None:
        with httpx.Client(proxy=self.proxy.url, trust_env=False, timeout=120) as http:
            for i in range(n * 100_000, n * 100_000 + self.per_client):
                if self._stop.is_set():
                    return
                self.started.add(i)
                try:
                    r = http.post(f"{self.standin_url}/v1/chat/completions",
                                  headers={"x-standin-case": CHAT_CASE, "X-Ledger-Tag-Call": str(i)},
                                  json={"model": "gpt-4o-mini", "stream": True, "messages": []})
                except httpx.HTTPError as e:
                    self.failed[i] = f"{type(e).__name__}: {e}"
                    return
                if r.status_code == 200 and r.content.endswith(b"data: [DONE]\n\n"):
                    self.whole.append(i)
                else:
                    self.failed[i] = f"{r.status_code}: {r.text[:200]}"
                    return

    def wait_whole(self, n: int, timeout: float = 120, what: str = "") -> list[int]:
        """Block until n calls have ended whole (failing at once if a client failed)."""
        def enough() -> bool:
            assert not self.failed, f"calls failed through the proxy: {self.failed}"
            return len(self.whole) >= n
        wait_until(enough, timeout, what or f"{n} calls ended whole")
        return list(self.whole)

    def stop(self) -> None:
        """Let each client finish the call it is in, then end."""
        self._stop.set()
        for t in self._threads:
            t.join(180)
        assert not any(t.is_alive() for t in self._threads), "a load client is still running"

    def __enter__(self) -> Load:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def rows_by_call(rows: list[dict]) -> dict[int, dict]:
    """The ledger's rows keyed by their `call` tag (rows without one are left out)."""
    out = {}
    for row in rows:
        tags = json.loads(row["tags"]) if row["tags"] else {}
        if "call" in tags:
            out[int(tags["call"])] = row
    return out
