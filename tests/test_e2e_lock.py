"""Real mitmdump while another connection holds the ledger (`BEGIN EXCLUSIVE`) across several
calls: the proxy keeps serving, the writer journals, and after the release every call has its
whole row. `usage-ledger status` shows it all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from usage_ledger.journal import journal_path
from usage_ledger.status import read_status, status_path

from .proxy import Proxy
from .test_store_faults import exclusive_lock, until

CHAT_CASE = "openai__openai-chat__stream__agno-include-usage"  # gpt-4o-mini-2024-07-18, 23 in / 8 out


def status_command(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "usage_ledger.cli", "status", "--db", str(db)],
                          capture_output=True, text=True, timeout=60)


def test_a_locked_ledger_across_several_calls_loses_none_of_them(tmp_path, standin):
    with Proxy(tmp_path) as proxy, httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as http:
        def call(i: int) -> None:
            r = http.post(f"{standin.url}/v1/chat/completions",
                          headers={"x-standin-case": CHAT_CASE, "x-ledger-tag-n": str(i)},
                          json={"model": "gpt-4o-mini", "stream": True, "messages": []})
            assert r.status_code == 200 and b"[DONE]" in r.content  # the client is served meanwhile

        call(0)
        proxy.wait_rows(1)  # ready: a real round trip, and its row
        journal = Path(journal_path(str(proxy.db)))
        with exclusive_lock(proxy.db):
            for i in range(1, 7):
                call(i)
            # the writer gives up on nothing: it keeps the records on disk and keeps trying
            until(lambda: journal.exists() and journal.read_bytes().count(b"\n") >= 12, what="the journal")
            status = until(lambda: (s := read_status(status_path(str(proxy.db)))) and s["state"] == "retrying" and s,
                           what="a retrying status")
            assert "locked" in status["last_error"]
            shown = status_command(proxy.db)
            assert shown.returncode == 1 and "retrying" in shown.stdout and "dropped:  0 records" in shown.stdout
        rows = proxy.wait_rows(7, timeout=60)
        assert len(rows) == 7
        for row in rows:
            assert row["outcome"] == "ok" and (row["input_tokens"], row["output_tokens"]) == (23, 8)
            assert row["started_at"] and row["host"] and row["provider"] and row["api"] == "openai-chat"
            assert row["cost_usd"] is not None and row["tags"]
        assert sorted(row["tags"] for row in rows) == sorted(f'{{"n": "{i}"}}' for i in range(7))
        status = until(lambda: (s := read_status(status_path(str(proxy.db)))) and s["journal_bytes"] == 0
                       and s["queue"] == 0 and s["state"] == "ok" and s, what="an idle status")
        assert status["dropped"] == 0 and status["written"] == 14
        assert not journal.exists()
        shown = status_command(proxy.db)
        assert shown.returncode == 0 and "journal:  none" in shown.stdout, shown.stdout
