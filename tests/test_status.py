"""`usage-ledger status` from the status file a writer leaves beside the ledger."""

from __future__ import annotations

from usage_ledger.cli import main
from usage_ledger.status import status_path, write_status
from usage_ledger.store import LedgerStore

from .test_store import finished, started


def test_a_stopped_writer_shows_what_it_wrote_and_exits_0(tmp_path, capsys):
    db = tmp_path / "ledger.db"
    store = LedgerStore(db)
    store.submit(started(1))
    store.submit(finished(1))
    store.close()
    assert main(["status", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "writer:   stopped" in out and "written:  2 records" in out and "dropped:  0 records" in out
    assert "journal:  none" in out and "last error: none" in out


def test_a_writer_that_died_while_retrying_is_not_running_and_its_journal_counts(tmp_path, capsys):
    db = tmp_path / "ledger.db"
    write_status(status_path(str(db)), {
        "pid": 2**22 + 12345, "ledger": str(db), "started_at": "2026-12-01T10:00:00Z",
        "updated_at": "2026-12-01T10:05:00Z", "state": "retrying", "queue": 3, "journal_records": 40,
        "journal_bytes": 9000, "written": 10, "dropped": 2, "failed_attempts": 7,
        "last_error": "ledger.db: OperationalError: database is locked", "last_error_at": "2026-12-01T10:04:59Z"})
    (tmp_path / "ledger.db.journal.jsonl").write_bytes(b"x" * 9000)
    assert main(["status", "--db", str(db)]) == 1
    out = capsys.readouterr().out
    assert "not running (last seen 2026-12-01T10:05:00Z, was retrying)" in out
    assert "journal:  40 records, 9000 bytes" in out and "dropped:  2 records lost" in out
    assert "database is locked" in out


def test_no_status_file_says_so(tmp_path, capsys):
    assert main(["status", "--db", str(tmp_path / "none.db")]) == 0
    assert "no status file" in capsys.readouterr().out
