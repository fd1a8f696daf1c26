"""The writer loses nothing when the ledger cannot be written: a lock held by another
connection, a full in-memory queue, an unwritable file. Real SQLite files and, where the fault
has a PostgreSQL twin (a lock, text it refuses), a real PostgreSQL database (`ledger_target`);
the backoff is made short so a test takes seconds, and every wait is bounded polling on an event."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from usage_ledger.backend import Backend, local_files
from usage_ledger.dialect import is_postgres
from usage_ledger.journal import encode, journal_path
from usage_ledger.status import read_status, status_path
from usage_ledger.store import LedgerStore, connect
from usage_ledger.writes import write_batch

from .proxy import wait_until
from .targets import ledger_rows, open_target
from .test_store import finished, started

FAST = {"flush_interval": 0.01, "backoff": (0.01, 0.05), "busy_timeout": 0.02, "status_interval": 0.05}


def until(condition, timeout: float = 30.0, what: str = "condition"):
    return wait_until(condition, timeout, what, interval=0.01)


@contextmanager
def exclusive_lock(target: Path | str):
    """Another connection holding the ledger's write lock (waiting for a write in progress):
    SQLite's `BEGIN EXCLUSIVE` (up to 60 s), PostgreSQL's `LOCK TABLE requests IN EXCLUSIVE
    MODE` (readers still read, as in SQLite's WAL mode)."""
    if is_postgres(str(target)):
        other = open_target(target)
        try:
            with other.transaction():
                other.execute("LOCK TABLE requests IN EXCLUSIVE MODE")
                yield
        finally:
            other.close()
        return
    other = sqlite3.connect(target, isolation_level=None, timeout=60)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def assert_complete(rows: list[dict], n: int) -> None:
    """n calls, each with its start and its finish: 0 lost, 0 pending, 0 without a start."""
    assert len(rows) == n
    assert {r["flow_id"] for r in rows} == {f"f{i}" for i in range(n)}
    assert all(r["outcome"] == "ok" and r["input_tokens"] == 23 for r in rows)
    assert all(r["started_at"] and r["host"] == "api.openai.com" and r["provider"] == "openai"
               and r["api"] == "openai-chat" and r["tags"] == '{"project": "x"}' for r in rows)


def test_a_lock_held_past_many_retries_loses_nothing(ledger_target):
    db = ledger_target
    store = LedgerStore(db, max_pending=1000, **FAST)  # the ledger is created before it returns
    with exclusive_lock(db):
        for i in range(40):  # calls keep coming while the ledger is locked
            store.submit(started(i))
            if i % 2:
                store.submit(finished(i - 1))
                store.submit(finished(i))
        until(lambda: store.failed_attempts >= 10, what="ten failed attempts")  # the old writer gave up after 3
        assert ledger_rows(db) == []
    until(lambda: len(ledger_rows(db)) == 40 and not store.pending and not store.journal_bytes, what="rows")
    store.close()
    assert_complete(ledger_rows(db), 40)
    local = local_files(db)[0]
    status = read_status(status_path(local))
    assert (status["state"], status["dropped"], status["queue"], status["journal_bytes"]) == ("stopped", 0, 0, 0)
    assert status["written"] == 80
    assert ("lock timeout" if is_postgres(db) else "database is locked") in status["last_error"]
    assert not os.path.exists(journal_path(local))


def test_a_full_queue_spills_to_the_journal_which_the_next_start_replays_twice_alike(ledger_target):
    db = ledger_target
    store = LedgerStore(db, max_pending=10, **FAST)
    with exclusive_lock(db):
        for i in range(100):
            store.submit(started(i))
        for i in range(100):
            store.submit(finished(i))
        until(lambda: store.journal_records >= 190, what="the journal")
        store.close()  # stopping while locked: what is left in memory goes to the journal too
    journal = Path(journal_path(local_files(db)[0]))
    assert store.dropped == 0 and store.pending == []
    saved = journal.read_bytes()
    assert saved.count(b"\n") == 200
    assert ledger_rows(db) == []

    LedgerStore(db, **FAST).close()  # the next start
    first = ledger_rows(db)
    assert_complete(first, 100)
    assert not journal.exists()

    journal.write_bytes(saved)  # as if that replay had been cut short before removing it
    LedgerStore(db, **FAST).close()
    assert ledger_rows(db) == first


def _unwritable(path: Path) -> bool:
    """Make the file unwritable even for root (chattr +i); False where that is not possible."""
    os.chmod(path, 0o400)
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
        if done.returncode != 0:
            return False
    try:
        os.close(os.open(path, os.O_RDWR))
    except PermissionError:
        return True
    return False


def _writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    os.chmod(path, 0o600)


@pytest.fixture
def unwritable_ledger(tmp_path):
    db = tmp_path / "ledger.db"
    connect(db).close()
    if not _unwritable(db):
        _writable(db)
        pytest.skip("cannot make a file unwritable here")
    yield db
    if not os.access(db, os.W_OK) or os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(db)], capture_output=True)
        os.chmod(db, 0o600)


def test_an_unwritable_ledger_is_journaled_then_replayed_when_writable(unwritable_ledger):
    db = unwritable_ledger
    store = LedgerStore(db, **FAST)  # starts anyway: a read-only ledger is a state, not a bad path
    for i in range(30):
        store.submit(started(i))
        store.submit(finished(i))
    until(lambda: store.journal_records == 60, what="the journal")
    assert "PermissionError" in store.last_error
    _writable(db)
    until(lambda: not store.journal_bytes and not store.pending, what="the replay")
    store.close()
    assert_complete(ledger_rows(db), 30)
    assert store.dropped == 0 and store.written == 60


def test_when_even_the_journal_cannot_be_written_the_loss_is_counted_and_no_finish_lacks_its_start(
        unwritable_ledger):
    db = unwritable_ledger
    journal = Path(journal_path(str(db)))
    journal.mkdir()  # a folder where the journal would be: it cannot be written
    store = LedgerStore(db, max_pending=5, **FAST)
    for i in range(20):
        store.submit(started(i))
    for i in range(20):
        store.submit(finished(i))
    until(lambda: store.dropped == 30, what="the drops")  # 15 calls refused, start and finish
    _writable(db)
    until(lambda: not store.pending, what="the rest written")
    store.close()
    rows = ledger_rows(db)
    assert len(rows) == 5 and all(r["host"] and r["outcome"] == "ok" for r in rows)
    assert store.dropped == 30
    assert read_status(status_path(str(db)))["dropped"] == 30


def test_a_finish_written_before_its_start_still_makes_the_whole_row(ledger_target):
    backend = Backend(ledger_target)
    con = backend.open(1.0)
    for batch in ([finished(1)], [started(1)],
                  [started(2), finished(2)],  # the same call in one batch: one statement
                  [finished(3), started(3)],
                  [started(1), finished(2)]):  # written again (a replay): nothing changes
        write_batch(con, batch, driver=backend.driver)
    con.close()
    rows = {r["flow_id"]: r for r in ledger_rows(ledger_target)}
    assert set(rows) == {"f1", "f2", "f3"}
    for row in rows.values():
        assert (row["outcome"], row["host"], row["input_tokens"], row["tags"]) == (
            "ok", "api.openai.com", 23, '{"project": "x"}')
        assert row["model_requested"] == "gpt-4o-mini" and row["model"] == "gpt-4o-mini-2024-07-18"


def test_text_the_database_refuses_is_cleaned_not_a_stuck_writer(ledger_target):
    db = ledger_target
    store = LedgerStore(db, **FAST)
    store.submit(started(0)._replace(user_agent="x\udcff"))  # a User-Agent byte that is not UTF-8
    store.submit(finished(0))
    store.submit(started(1))
    store.submit(finished(1)._replace(error="a\x00b"))  # NUL: PostgreSQL's text refuses it
    store.submit(started(2))
    store.submit(finished(2))
    store.close()
    rows = ledger_rows(db)
    assert [r["user_agent"] for r in rows] == ["x\ufffd", "curl/8", "curl/8"]
    assert [r["error"] for r in rows] == [None, "a\ufffdb" if is_postgres(db) else "a\x00b", None]
    assert [r["outcome"] for r in rows] == ["ok"] * 3 and store.dropped == 0


def test_a_line_the_journal_cannot_parse_does_not_stop_the_writer(tmp_path):
    db = tmp_path / "ledger.db"
    path = Path(journal_path(str(db)))
    path.write_bytes(b"".join(encode(r) for r in (started(0), finished(0))) + b"[" * 100_000 + b"\n")
    store = LedgerStore(db, **FAST)
    store.submit(started(1))
    store.submit(finished(1))
    until(lambda: len(ledger_rows(db)) == 2 and not store.journal_bytes, what="journal and new call written")
    assert store.thread.is_alive()
    store.close()
    assert_complete(ledger_rows(db), 2)
    assert store.dropped == 1  # the line that is no record, counted


def rows_if_any(db: Path) -> list[tuple]:
    """The ledger's rows, read without creating the file (none while it is missing)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return []
    try:
        return con.execute("SELECT flow_id FROM requests").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def test_a_deleted_ledger_is_made_again_and_the_rows_after_go_into_it(tmp_path):
    """An open connection to a deleted SQLite file writes on into nothing: the writer sees the
    file is gone (or another one is in its place) and opens the path afresh."""
    db = tmp_path / "ledger.db"
    store = LedgerStore(db, **FAST)
    store.submit(started(0))
    store.submit(finished(0))
    until(lambda: ledger_rows(db) and ledger_rows(db)[0]["outcome"] == "ok", what="the first row")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    for i in range(1, 6):
        store.submit(started(i))
        store.submit(finished(i))
    until(lambda: len(rows_if_any(db)) == 5, what="the rows in the new file")
    store.close()
    assert sorted(r["flow_id"] for r in ledger_rows(db)) == [f"f{i}" for i in range(1, 6)]


def test_a_refused_call_that_ends_twice_gets_no_row_at_all(unwritable_ledger):
    """A background Responses call ends twice under one flow id (its POST, the poll that shows
    it done): once its start was refused (memory and journal full), both ends are refused."""
    db = unwritable_ledger
    Path(journal_path(str(db))).mkdir()  # the journal cannot be written
    store = LedgerStore(db, max_pending=2, **FAST)
    for record in (started(0), started(1), started(2), finished(2), finished(0), finished(1)):
        store.submit(record)
    until(lambda: store.dropped == 2, what="the refused call's start and first end")
    store.submit(finished(2))
    until(lambda: store.dropped == 3, what="its second end, refused too")
    _writable(db)
    until(lambda: not store.pending, what="the rest written")
    store.close()
    assert_complete(ledger_rows(db), 2)


def test_a_journal_the_proxy_cannot_read_neither_stops_the_writer_nor_holds_up_the_ledger(tmp_path):
    """A journal another user left (an earlier `sudo mitmdump`: root's, mode 0600): the calls of
    this run are written all the same, the journal is retried, and the error is shown."""
    import shutil
    import sys
    import textwrap

    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("root without setpriv: file modes do not apply")
    drop = (["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
            if os.geteuid() == 0 else [])
    db = tmp_path / "ledger.db"
    path = Path(journal_path(str(db)))
    path.write_bytes(b"".join(encode(r) for r in (started(0), finished(0))))
    path.chmod(0)
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = {[str(Path(__file__).resolve().parents[1])]!r}
        from tests.test_store import started, finished
        from tests.test_store_faults import FAST, until
        from tests.targets import ledger_rows
        from usage_ledger.store import LedgerStore
        store = LedgerStore({str(db)!r}, **FAST)
        for i in range(1, 6):
            store.submit(started(i)); store.submit(finished(i))
        until(lambda: len(ledger_rows({str(db)!r})) == 5, what="this run's calls")
        print("alive", store.thread.is_alive(), "error", "PermissionError" in (store.last_error or ""))
        store.close()
    """)
    done = subprocess.run([*drop, sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "alive True error True" in done.stdout, done.stdout + done.stderr[-2000:]
    path.chmod(0o600)
    LedgerStore(db, **FAST).close()  # the next start, the journal readable again, replays it
    assert_complete(ledger_rows(db), 6)


def test_with_memory_full_and_no_journal_a_new_record_does_not_write_all_the_others_again(unwritable_ledger):
    """Each refused record used to re-encode every record held (60 ms each for 10,000), so the
    writer fell far behind the proxy: a failed journal is tried again at most once a second."""
    db = unwritable_ledger
    Path(journal_path(str(db))).mkdir()
    store = LedgerStore(db, max_pending=5, **{**FAST, "backoff": (5.0, 5.0)})  # few ledger attempts
    for i in range(500):
        store.submit(started(i))
    until(lambda: store.dropped == 495, what="the refused starts")
    attempts = store.failed_attempts
    store.close()
    assert attempts < 100  # a handful of seconds' worth, not one per refused record
