"""The writer on a real PostgreSQL server that goes away: records kept in memory, then in the
journal (in the default ledger folder, named by the database), written once the server is back
on a new connection; `usage-ledger status --db URL` finds that writer; no password anywhere."""

from __future__ import annotations

import logging
import os
import signal
import uuid
from pathlib import Path

import pytest

from usage_ledger.backend import local_files
from usage_ledger.cli import main
from usage_ledger.journal import journal_path
from usage_ledger.postgres import local_name, redacted
from usage_ledger.status import read_status, status_path
from usage_ledger.store import LedgerStore

from .targets import ledger_rows, open_target
from .test_store import finished, started
from .test_store_faults import FAST, assert_complete, until

SECRET = "s3cret-pw"  # the test server trusts every password: it is only carried, never checked


@pytest.fixture
def secret_url(pg_server, tmp_path, monkeypatch) -> str:
    """A fresh database's URL with a password in it; the default ledger folder under tmp_path."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("USAGE_LEDGER_DB", raising=False)
    return pg_server.new_database().replace("ledger@", f"ledger:{SECRET}@")


def local_texts(folder: Path) -> str:
    """Every local file's name and contents, as one text to search for the password."""
    return "\n".join(f"{p.name}\n{p.read_bytes().decode(errors='replace')}" for p in folder.rglob("*") if p.is_file())


def test_a_server_away_keeps_every_record_and_the_writer_reconnects(pg_server, secret_url, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    url = secret_url
    local, name = local_files(url)
    assert local == str(tmp_path / "data" / "usage-ledger" / local_name(url)) and name == redacted(url)
    assert SECRET not in local and SECRET not in name
    store = LedgerStore(url, max_pending=20, **FAST)
    store.submit(started(0))
    store.submit(finished(0))
    until(lambda: store.written == 2, what="the first call written")
    pg_server.stop()
    try:
        for i in range(1, 60):  # calls keep coming while the server is away
            store.submit(started(i))
            store.submit(finished(i))
        until(lambda: store.journal_records >= 100, what="the journal")  # memory holds 20: the rest spilled
        until(lambda: store.failed_attempts >= 5, what="five failed attempts")
        status = until(lambda: (s := read_status(status_path(local))) and s["state"] == "retrying" and s,
                       what="a retrying status")
        assert status["ledger"] == redacted(url) and status["dropped"] == 0
        assert status["last_error"].startswith(redacted(url))
        assert os.path.getsize(journal_path(local)) > 0
        assert main(["status", "--db", url]) == 1
        shown = capsys.readouterr().out
        assert f"ledger:   {redacted(url)}" in shown and "writer:   retrying" in shown
        assert "dropped:  0 records" in shown and "records, " in shown  # the journal's records
        assert SECRET not in shown
    finally:
        pg_server.start()
    until(lambda: not store.pending and not store.journal_bytes, what="the replay")
    store.close()
    assert_complete(ledger_rows(url), 60)
    assert store.dropped == 0 and store.written == 120
    assert not os.path.exists(journal_path(local))
    assert read_status(status_path(local))["state"] == "stopped"
    assert main(["status", "--db", url]) == 0
    assert "writer:   stopped" in capsys.readouterr().out
    assert SECRET not in caplog.text and SECRET not in local_texts(tmp_path / "data")
    assert "is writable again" in caplog.text


def server_processes(pg_server) -> list[int]:
    """The postmaster and every process it forked."""
    main_pid = int((pg_server.data / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == main_pid:
            children.append(int(stat.parent.name))
    return [main_pid, *children]


def test_a_server_that_hangs_at_shutdown_leaves_what_the_writer_holds_in_the_journal(pg_server, secret_url):
    """A server process that stops (SIGSTOP: its host still acknowledges TCP, so no timeout of
    libpq's fires) holds the writer in its write: close() gives up waiting and puts what the
    writer holds in the journal, which the next start replays."""
    url = secret_url
    local, _ = local_files(url)
    store = LedgerStore(url, **FAST)
    store.submit(started(0))
    store.submit(finished(0))
    until(lambda: store.written == 2, what="the first call written")
    pids = server_processes(pg_server)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(1, 4):
            store.submit(started(i))
            store.submit(finished(i))
        until(lambda: store.pending and store.queue.qsize() == 0, what="the writer holding the records")
        store.close(timeout=2)
        assert store.thread.is_alive()  # still in its write
        assert os.path.getsize(journal_path(local)) > 0
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    store.thread.join(60)
    LedgerStore(url, **FAST).close()
    assert_complete(ledger_rows(url), 4)


def test_a_url_libpq_cannot_read_is_refused_without_its_password(secret_url):
    with pytest.raises(ValueError) as refused:
        LedgerStore(secret_url + "?no_such_option=1")
    assert "no_such_option" in str(refused.value) and SECRET not in str(refused.value)


def test_a_user_that_may_only_read_and_write_writes_a_database_migrated_already(pg_server, secret_url):
    LedgerStore(secret_url).close()  # migrated by a user that may create tables
    role = f"writer_{uuid.uuid4().hex[:8]}"
    con = open_target(secret_url)
    try:  # PostgreSQL 15's default: nobody else may create in `public`
        con.execute(f"CREATE ROLE {role} LOGIN")
        con.execute(f"GRANT SELECT, INSERT, UPDATE ON requests, hosts_without_stream_options, _ledger_migrations TO {role}")
    finally:
        con.close()
    store = LedgerStore(secret_url.replace("ledger:", f"{role}:"))
    store.submit(started(1))
    store.submit(finished(1))
    store.close()
    assert (store.last_error, store.written, store.dropped) == (None, 2, 0)
    assert [(r["flow_id"], r["outcome"]) for r in ledger_rows(secret_url)] == [("f1", "ok")]
