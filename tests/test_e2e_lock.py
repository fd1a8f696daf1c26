"""Real mitmdump while another connection holds the ledger (`BEGIN EXCLUSIVE`) across several
calls, and across continuous load: the proxy keeps serving, the writer keeps retrying and moves
what it holds in memory to the journal, and after the release every call has its whole row
(0 lost, 0 pending, 0 without its start). `usage-ledger status` shows it all.

The lock under load is held until the events it is about have happened (calls served, the
writer retrying past where the old writer gave up, records in the journal), not for a fixed
time; the `slow` variant (run by .ci/run, `uv run pytest -m slow`) also holds it a full 60 s,
the issue's measure (#11: the old writer discarded records after ~33 s)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from usage_ledger.journal import journal_path
from usage_ledger.status import read_status, status_path

from .load import CHAT_CASE, CHAT_TOKENS, Load, rows_by_call
from .proxy import Proxy, wait_until
from .test_store_faults import exclusive_lock, until


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


def lock_during_load(tmp_path, standin, hold_s: float = 0.0) -> None:
    """Four clients call through the proxy without pause; the ledger is locked by another
    connection while they do, then released while they go on."""
    status_file = status_path(str(tmp_path / "ledger.db"))

    def status() -> dict:
        return read_status(status_file) or {}

    with Proxy(tmp_path) as proxy:
        with Load(proxy, standin.url, clients=4) as load:
            proxy.wait_rows(len(load.wait_whole(8)))  # serving, and writing rows
            with exclusive_lock(proxy.db):
                locked_at, rows_before = time.monotonic(), len(proxy.rows())
                served_before = len(load.whole)
                load.wait_whole(served_before + 40, what="40 calls served while the ledger is locked")
                # the writer keeps trying, past the 3 attempts after which the old one gave up
                locked = until(lambda: (s := status()) and s["state"] == "retrying"
                               and s["failed_attempts"] >= 5 and s["journal_records"] > 0 and s,
                               timeout=120, what="a retrying writer with records in the journal")
                assert "locked" in locked["last_error"] and locked["dropped"] == 0
                assert Path(journal_path(str(proxy.db))).stat().st_size >= locked["journal_bytes"] > 0  # it only grows
                wait_until(lambda: time.monotonic() - locked_at >= hold_s, hold_s + 1, f"{hold_s} s locked")
                assert len(proxy.rows()) == rows_before  # nothing got past the lock
                served_locked = len(load.whole) - served_before
            load.wait_whole(len(load.whole) + 20, what="20 calls served after the release")
        assert not load.failed
        calls = set(load.whole)
        assert calls == load.started and served_locked >= 40

        def all_written() -> list[dict] | None:
            rows = proxy.rows()
            return rows if len(rows) >= len(calls) and all(r["outcome"] != "pending" for r in rows) else None

        rows = wait_until(all_written, 120, f"the rows of {len(calls)} calls")
        # the status file follows within a second: a snapshot from just before the last record
        # came in is idle too, so wait for the one that counts every record
        idle = until(lambda: (s := status()) and s["state"] == "ok" and s["queue"] == 0
                     and s["journal_bytes"] == 0 and s["written"] >= 2 * len(calls) and s,
                     timeout=60, what="an idle writer that has written every record")
    by_call, host = rows_by_call(proxy.rows()), standin.url.removeprefix("http://")
    assert len(rows) == len(by_call) and set(by_call) == calls  # 0 lost, none twice
    for i, row in by_call.items():
        assert (row["outcome"], row["input_tokens"], row["output_tokens"]) == ("ok", *CHAT_TOKENS), (i, row)
        assert row["started_at"] and row["host"] == row["provider"] == host, (i, row)  # its start
        assert row["api"] == "openai-chat" and row["cost_usd"] is not None, (i, row)
    assert idle["dropped"] == 0 and idle["written"] == 2 * len(calls)  # a start and a finish each
    assert not Path(journal_path(str(proxy.db))).exists()


def test_a_ledger_locked_during_load_loses_no_call(tmp_path, standin):
    lock_during_load(tmp_path, standin)


@pytest.mark.slow
def test_a_ledger_locked_for_60_s_during_load_loses_no_call(tmp_path, standin):
    lock_during_load(tmp_path, standin, hold_s=60)
