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
from dataclasses import astuple, dataclass
from functools import cache
from pathlib import Path

from .migrations import migrate
from .pricing import Pricer
from .records import CallEnded, CallFinished, CallStarted, HostRejectsStreamOptions, columns

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True)
class _UsePricer:
    pricer: Pricer
_WRITE_ATTEMPTS = 3  # each waits out the busy timeout first


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
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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
def _upsert_sql(record_type: type) -> str:
    """Complete a call's row; insert it if its start was never written (so nothing is lost)."""
    names = columns(record_type)
    updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != "flow_id")
    return (f"INSERT INTO requests ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
            f"ON CONFLICT(flow_id) DO UPDATE SET {updates}")


class LedgerStore:
    def __init__(self, path: str | os.PathLike[str], flush_interval: float = 0.2, max_batch: int = 500,
                 pricer: Pricer | None = None) -> None:
        self.path = str(path)
        self.pricer = pricer or Pricer()
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.con = connect(self.path)  # fail fast on a bad path, in the caller's thread
        self.hosts_without_stream_options = {
            row[0] for row in self.con.execute("SELECT host FROM hosts_without_stream_options")
        }
        self.thread = threading.Thread(target=self._run, name="usage-ledger-writer", daemon=True)
        self.thread.start()

    def submit(self, record: CallStarted | CallEnded | CallFinished | HostRejectsStreamOptions) -> None:
        self.queue.put(record)

    def use_pricer(self, pricer: Pricer) -> None:
        """Price calls submitted from now on with `pricer` (in order: earlier ones keep the old)."""
        self.queue.put(_UsePricer(pricer))

    def close(self, timeout: float = 30.0) -> None:
        """Write everything submitted so far, then close the database."""
        if self.thread.is_alive():
            self.queue.put(_STOP)
            self.thread.join(timeout)

    def _run(self) -> None:
        self.pricer.warm()
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
            self._write(self._prepare(batch))
        self.con.close()

    def _prepare(self, batch: list[object]) -> list[object]:
        """The batch's records as rows to write: calls priced (here, off the event loop), in order."""
        records = []
        for record in batch:
            if isinstance(record, _UsePricer):
                self.pricer = record.pricer
            elif isinstance(record, CallEnded):
                priced = self.pricer.finish(record)
                records.append(priced)
                if record.then is not None:
                    try:
                        record.then(priced)
                    except Exception:
                        log.exception("usage-ledger: could not show the cost of flow %s", priced.flow_id)
            elif record is not _STOP:
                records.append(record)
        return records

    def _write(self, batch: list[object]) -> None:
        if not batch:
            return
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self.con:
                    for record in batch:
                        self._write_one(record)
                return
            except sqlite3.OperationalError as e:  # locked by a long reader or writer: wait
                if attempt == _WRITE_ATTEMPTS:
                    log.error("usage-ledger: could not write %d records to %s: %s", len(batch), self.path, e)
                else:
                    time.sleep(attempt)
            except sqlite3.Error:
                log.exception("usage-ledger: could not write %d records to %s", len(batch), self.path)
                return

    def _write_one(self, record: object) -> None:
        if isinstance(record, CallStarted):
            self.con.execute(_insert_sql(CallStarted), astuple(record))
        elif isinstance(record, CallFinished):
            self.con.execute(_upsert_sql(CallFinished), astuple(record))
        elif isinstance(record, HostRejectsStreamOptions):
            self.con.execute(
                "INSERT OR IGNORE INTO hosts_without_stream_options (host, learned_at, reason) VALUES (?, ?, ?)",
                astuple(record),
            )
