"""The ledger's SQLite file, owned by one writer thread.

Proxy hooks call `submit()` with plain records and return at once; the writer batches them into
one transaction every `flush_interval` seconds (or sooner when many are waiting) and drains
everything on `close()`.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import astuple
from functools import cache
from pathlib import Path

from .migrations import migrate
from .records import CallFinished, CallStarted, HostRejectsStreamOptions, columns

log = logging.getLogger(__name__)

_STOP = object()


def default_db_path() -> str:
    """`$USAGE_LEDGER_DB`, else `$XDG_DATA_HOME/usage-ledger/ledger.db`, else ~/.local/share/..."""
    explicit = os.environ.get("USAGE_LEDGER_DB")
    if explicit:
        return explicit
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data_home, "usage-ledger", "ledger.db")


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating it private, with its folder) and migrate the ledger."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    con = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA busy_timeout=10000")
    con.execute("PRAGMA synchronous=NORMAL")
    migrate(con)
    return con


@cache
def _insert_sql(record_type: type) -> str:
    names = columns(record_type)
    return f"INSERT OR IGNORE INTO requests ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"


@cache
def _update_sql(record_type: type) -> str:
    names = [n for n in columns(record_type) if n != "flow_id"]
    return f"UPDATE requests SET {', '.join(f'{n} = ?' for n in names)} WHERE flow_id = ?"


class LedgerStore:
    def __init__(self, path: str | os.PathLike[str], flush_interval: float = 0.2, max_batch: int = 500) -> None:
        self.path = str(path)
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.con = connect(self.path)  # fail fast on a bad path, in the caller's thread
        self.hosts_without_stream_options = {
            row[0] for row in self.con.execute("SELECT host FROM hosts_without_stream_options")
        }
        self.thread = threading.Thread(target=self._run, name="usage-ledger-writer", daemon=True)
        self.thread.start()

    def submit(self, record: CallStarted | CallFinished | HostRejectsStreamOptions) -> None:
        self.queue.put(record)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything submitted so far, then close the database."""
        if self.thread.is_alive():
            self.queue.put(_STOP)
            self.thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self.queue.get()]
            deadline = time.monotonic() + self.flush_interval
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                if batch[-1] is _STOP or remaining <= 0:
                    break
                try:
                    batch.append(self.queue.get(timeout=remaining))
                except queue.Empty:
                    break
            if batch[-1] is _STOP:
                stopping = True
                batch.pop()
            self._write([r for r in batch if r is not _STOP])
        self.con.close()

    def _write(self, batch: list[object]) -> None:
        if not batch:
            return
        try:
            with self.con:
                for record in batch:
                    self._write_one(record)
        except sqlite3.Error:
            log.exception("usage-ledger: could not write %d records to %s", len(batch), self.path)

    def _write_one(self, record: object) -> None:
        if isinstance(record, CallStarted):
            self.con.execute(_insert_sql(CallStarted), astuple(record))
        elif isinstance(record, CallFinished):
            values = astuple(record)
            self.con.execute(_update_sql(CallFinished), values[1:] + values[:1])
        elif isinstance(record, HostRejectsStreamOptions):
            self.con.execute(
                "INSERT OR IGNORE INTO hosts_without_stream_options (host, learned_at, reason) VALUES (?, ?, ?)",
                astuple(record),
            )
