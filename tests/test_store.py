"""The ledger: migrations, permissions, the writer thread's batching and draining; the writer's
tests run on both backends (`ledger_target`: a SQLite file, a real PostgreSQL database)."""

from __future__ import annotations

import sqlite3
import stat
import threading

from usage_ledger.migrations import MIGRATIONS, migrate
from usage_ledger.records import CallFinished, CallStarted, HostRejectsStreamOptions
from usage_ledger.store import LedgerStore, connect, default_db_path

from .targets import ledger_rows, query


def started(i: int) -> CallStarted:
    return CallStarted(flow_id=f"f{i}", started_at="2026-11-24T09:15:02.123Z", client="127.0.0.1:5000",
                       user_agent="curl/8", method="POST", host="api.openai.com", path="/v1/chat/completions",
                       provider="openai", api="openai-chat", model_requested="gpt-4o-mini", stream=1,
                       usage_injected=1, tags='{"project": "x"}', api_key_id="0123456789ab")


def finished(i: int) -> CallFinished:
    return CallFinished(flow_id=f"f{i}", outcome="ok", status_code=200, stream=1, usage_injected=1,
                        model="gpt-4o-mini-2024-07-18", ttfb_ms=12.5, duration_ms=80.0, input_tokens=23,
                        cached_input_tokens=0, cache_write_tokens=None, output_tokens=8, reasoning_tokens=0,
                        total_tokens=31, usage_json='{"prompt_tokens":23}', cost_usd=None, price_source=None,
                        service_tier="default", error=None)


def test_new_ledger_is_private_and_fully_migrated(tmp_path):
    path = tmp_path / "sub" / "dir" / "ledger.db"
    con = connect(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    applied = [row[0] for row in con.execute("select id from _ledger_migrations order by id")]
    assert applied == list(range(1, len(MIGRATIONS) + 1))
    assert con.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert migrate(con) == []  # running again changes nothing


def test_migrating_a_version_1_ledger_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE _ledger_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    for statement in MIGRATIONS[0][1].split(";"):
        if statement.strip():
            con.execute(statement)
    con.execute("INSERT INTO _ledger_migrations VALUES (1, 'create requests', '2026-01-01')")
    con.execute("INSERT INTO requests (flow_id, model, input_tokens, outcome) VALUES ('old', 'gpt-4o', 5, 'ok')")
    con.commit()
    con.close()
    con = connect(path)
    row = con.execute("select flow_id, model, input_tokens, tags, api_key_id, price_source from requests").fetchone()
    assert row == ("old", "gpt-4o", 5, None, None, None)


def test_writer_inserts_then_completes_and_drains_on_close(ledger_target):
    path = ledger_target
    store = LedgerStore(path, flush_interval=5.0)  # only close() can have flushed these
    for i in range(300):
        store.submit(started(i))
    for i in range(0, 300, 2):
        store.submit(finished(i))
    store.submit(HostRejectsStreamOptions("api.mistral.ai", "2026-11-24T09:00:00+00:00", "HTTP 422"))
    store.close()
    outcomes = dict(query(path, "select outcome, count(*) from requests group by outcome"))
    assert outcomes == {"ok": 150, "pending": 150}
    assert query(path, "select input_tokens, output_tokens, tags from requests where flow_id='f0'") == [
        (23, 8, '{"project": "x"}')]
    assert [r["flow_id"] for r in ledger_rows(path)] == [f"f{i}" for i in range(300)]  # in the order they came
    again = LedgerStore(path)
    again.close()
    assert again.hosts_without_stream_options == {"api.mistral.ai"}


def test_writer_commits_within_its_interval(ledger_target):
    path = ledger_target
    store = LedgerStore(path, flush_interval=0.05)
    store.submit(started(1))
    seen = threading.Event()
    for _ in range(100):
        if query(path, "select count(*) from requests") == [(1,)]:
            seen.set()
            break
        threading.Event().wait(0.02)
    store.close()
    assert seen.is_set()


def test_default_path_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("USAGE_LEDGER_DB", str(tmp_path / "x.db"))
    assert default_db_path() == str(tmp_path / "x.db")
    monkeypatch.delenv("USAGE_LEDGER_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_path() == str(tmp_path / "usage-ledger" / "ledger.db")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_db_path() == str(tmp_path / ".local" / "share" / "usage-ledger" / "ledger.db")


def test_listeners_get_each_finished_row_as_written_once_committed(ledger_target):
    path = ledger_target
    got: list[dict] = []

    def listener(rows: list[dict]) -> None:
        # committed before we are told: another connection already sees the rows
        done = {r[0] for r in query(path, "select flow_id from requests where outcome = 'ok'")}
        assert {r["flow_id"] for r in rows} <= done
        got.extend(rows)

    def broken(rows: list[dict]) -> None:
        raise RuntimeError("a listener's own bug")

    store = LedgerStore(path, flush_interval=5.0, rows_written=[broken, listener])
    for i in range(40):
        store.submit(started(i))
    for i in range(0, 40, 4):
        store.submit(finished(i))
    store.close()
    assert sorted(r["flow_id"] for r in got) == sorted(f"f{i}" for i in range(0, 40, 4))
    row = got[0]
    assert (row["model_requested"], row["model"], row["input_tokens"], row["output_tokens"], row["tags"]) == (
        "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 23, 8, '{"project": "x"}')
    assert row["started_at"] == "2026-11-24T09:15:02.123Z" and row["outcome"] == "ok"


def test_a_count_too_big_for_the_column_costs_only_that_count_and_the_writer_goes_on(ledger_target):
    """Our bug, were such a count to get past the usage readers: the row is written with the
    count NULL, and every record after it still is."""
    path = ledger_target
    store = LedgerStore(path, flush_interval=0.01)
    for i in range(3):
        store.submit(started(i))
    store.submit(finished(0)._replace(input_tokens=10 ** 30))
    store.submit(finished(1))
    store.close()
    later = LedgerStore(path)
    later.submit(finished(2))
    later.close()
    assert query(path, "select flow_id, outcome, input_tokens, output_tokens from requests order by flow_id") == [
        ("f0", "ok", None, 8), ("f1", "ok", 23, 8), ("f2", "ok", 23, 8)]
    assert store.dropped == 0
