"""The ledger (a SQLite file or a PostgreSQL database), written by one writer thread that never
throws a record away.

Proxy hooks call `submit()` with plain records and return at once (a put on an unbounded
queue: the event loop never waits for the writer). The writer prices finished calls, batches
records into one transaction every `flush_interval` seconds (or sooner when many are waiting)
and drains everything on `close()`.

When the ledger cannot be written (locked by another connection, disk full, read-only,
missing, its server away), the writer keeps the records in memory (up to `max_pending`) and tries again with
exponential backoff for as long as it takes (opening a new connection when the old one is
broken); when memory is full it spills them to the journal
(journal.py) and replays that into the ledger once it is writable again, or at the next start.
Only when the journal cannot be written either are records dropped, and counted (status.py).
What differs between SQLite and PostgreSQL is in backend.py; the writing itself is in flush.py.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .backend import Backend, connect, default_db_path  # noqa: F401 (connect, default_db_path: imported from here)
from .journal import Journal, journal_path
from .pricing import Pricer
from .records import CallEnded, CallFinished, CallStarted, HostRejectsStreamOptions
from .status import StatusFile, now_utc, status_path
from .flush import Flush

log = logging.getLogger(__name__)

_STOP = object()
_ROWS = (CallStarted, CallFinished)
_WAKE_SLICES = 4
_DROPPED_STARTS = 100_000
"""Refused calls remembered so their finishes are refused too (a few MB at most)."""


@dataclass(frozen=True)
class _UsePricer:
    pricer: Pricer


class LedgerStore(Flush):
    def __init__(self, target: str | os.PathLike[str], flush_interval: float = 0.2, max_batch: int = 5000,
                 pricer: Pricer | None = None, *, max_pending: int = 10_000, backoff: tuple[float, float] = (0.05, 5.0),
                 busy_timeout: float = 1.0, status_interval: float = 1.0,
                 rows_written: list[Callable[[list[dict]], None]] | None = None) -> None:
        """target: a SQLite path or a postgresql:// URL. backoff: the first and the longest wait
        (s) between attempts on an unwritable ledger; busy_timeout: how long one attempt waits
        for a lock (s); rows_written: called in the writer thread with the finished rows (dicts
        of `requests` columns) of each committed batch (the list may change meanwhile). Raises
        OSError when a SQLite ledger neither exists nor can be created (a bad path), ValueError
        for a URL that is not one; any other failure to open it (a server away) is retried."""
        self.backend = backend = Backend(target)
        self.name = backend.name  # for people: no password in it
        self.rows_written = rows_written if rows_written is not None else []
        self.flush_interval, self.max_batch, self.max_pending = flush_interval, max_batch, max_pending
        self.backoff, self.busy_timeout, self.status_interval = backoff, busy_timeout, status_interval
        self.pricer = pricer or Pricer()
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.stopping = threading.Event()  # close() was called: the writer stops sleeping
        self.journal = Journal(journal_path(backend.local))
        self.status_file = StatusFile(status_path(backend.local))
        self.pending: list[object] = []  # priced records not yet written, oldest first
        self.dropped_starts: dict[str, None] = {}  # their finishes are dropped too: no row lacks its start
        self.written = self.dropped = self.failed_attempts = 0
        self.journal_records, self.journal_bytes = 0, self.journal.size()
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.started_at = now_utc()
        self.failing = False
        self.spill_failed_at = -1e9  # time.monotonic() of the last journal append that failed
        self.con = None  # a sqlite3 or psycopg connection, or None until one can be opened
        try:
            self.con = backend.open(busy_timeout)
            self.hosts_without_stream_options = {
                row[0] for row in self.con.execute("SELECT host FROM hosts_without_stream_options")
            }
        except backend.driver.errors as e:  # locked, read-only, server away, ...: the writer keeps trying
            self._failed(e)
            self.hosts_without_stream_options = set()
        self.warmed = threading.Event()  # set once the writer has loaded the prices
        self.thread = threading.Thread(target=self._run, name="usage-ledger-writer", daemon=True)
        self.thread.start()

    def submit(self, record: CallStarted | CallEnded | CallFinished | HostRejectsStreamOptions) -> None:
        """Hand a record to the writer; never blocks."""
        self.queue.put(record)

    def use_pricer(self, pricer: Pricer) -> None:
        """Price calls submitted from now on with `pricer` (in order: earlier ones keep the old)."""
        self.queue.put(_UsePricer(pricer))

    def close(self, timeout: float = 30.0) -> None:
        """Write everything submitted so far (to the journal if the ledger is still unwritable),
        then close the database."""
        if self.thread.is_alive():
            self.queue.put(_STOP)
            self.stopping.set()
            self.thread.join(timeout)
            if self.thread.is_alive():
                self._rescue()

    def _rescue(self) -> None:
        """close() timed out: the writer is stuck in a call the database does not answer (a
        PostgreSQL server that hangs while its host still acknowledges TCP, so no timeout of
        libpq's fires). What it holds goes to the journal from here: the next start replays it,
        and should the stuck write still succeed, replaying writes the same rows again."""
        records = list(self.pending)
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if type(item) is CallEnded:
                item = self.pricer.finish(item)
            if type(item) in _ROWS or type(item) is HostRejectsStreamOptions:
                records.append(item)
        if not records:
            return
        try:
            self.journal.append(records)
        except OSError as e:
            self._drop(len(records), f"the ledger did not answer at shutdown and the journal cannot be written: {e}")
            return
        log.error("usage-ledger: %s did not answer within the shutdown timeout; %d records went to the journal "
                  "%s, replayed at the next start", self.name, len(records), self.journal.path)

    # --- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        self.pricer.warm()
        self.warmed.set()
        if self.journal_bytes:
            try:
                self.journal_records = sum(1 for batch in self.journal.batches(1000) for _ in batch)
            except OSError as e:  # a journal another user left (sudo mitmdump): retried like the rest
                self._failed(e, f"journal {self.journal.path}")
        delay, retry_at, status_at, stopping, failures = self.backoff[0], 0.0, 0.0, False, 0
        while True:
            now = time.monotonic()
            waiting = bool(self.pending or self.journal_bytes)
            wait = max(0.0, min(retry_at, status_at) - now) if waiting else self.status_interval
            stopping = self._gather(wait) or stopping
            now = time.monotonic()
            if (self.pending or self.journal_bytes) and (now >= retry_at or stopping):
                if self._write_all():
                    delay, retry_at, failures = self.backoff[0], 0.0, 0
                else:
                    retry_at, delay, failures = now + delay, min(delay * 2, self.backoff[1]), failures + 1
                    if failures >= 2 and self.pending:  # not a passing hiccup: on disk, safe from a crash
                        self._spill()
            if stopping:
                if self.pending and not self._spill(force=True):
                    self._drop(len(self.pending), "the proxy stopped and the journal cannot be written")
                break
            if now >= status_at:
                self._write_status("retrying" if self.failing and (self.pending or self.journal_bytes) else "ok")
                status_at = now + self.status_interval
        self._close()
        self._write_status("stopped")

    def _close(self) -> None:
        if self.con is not None:
            try:
                self.con.close()
            except self.backend.driver.errors:  # a connection already broken is closed all the same
                pass
            self.con = None

    def _gather(self, wait: float) -> bool:
        """Take records from the queue: the first within `wait` s, then what comes within the
        flush interval, up to max_batch. True when close() asked to stop.

        After the first record the writer sleeps through the flush interval (in a few slices,
        to leave early when max_batch are waiting or close() is called) and then takes what
        came. Blocked on the queue instead, it would be woken by every put: two thread switches
        and a GIL hand-over per record, paid by the event loop as much as by the writer."""
        get, nowait = self.queue.get, self.queue.get_nowait
        try:
            item = get(timeout=wait) if wait > 0 else nowait()
        except queue.Empty:
            return False
        deadline, taken, pending = time.monotonic() + self.flush_interval, 0, self.pending
        slice_, size, stopping = self.flush_interval / _WAKE_SLICES, self.queue.qsize, self.stopping
        while item is not _STOP:
            if type(item) in _ROWS and not self.dropped_starts and len(pending) < self.max_pending:
                pending.append(item)  # the common case, without a call per record
            else:
                self._take(item)
                pending = self.pending  # a spill replaces the list
            taken += 1
            if taken >= self.max_batch:
                return False
            try:
                item = nowait()  # what is waiting already: no clock, no timeout
            except queue.Empty:
                while (remaining := deadline - time.monotonic()) > 0 and size() < self.max_batch - taken:
                    if stopping.wait(min(slice_, remaining)):
                        break
                try:
                    item = nowait()
                except queue.Empty:
                    return False  # close() queues _STOP before it sets `stopping`
        return True

    def _take(self, item: object) -> None:
        kind = type(item)
        if kind is _UsePricer:
            self.pricer = item.pricer
            return
        if kind is CallEnded:
            record: object = self.pricer.finish(item)
            kind = CallFinished
            if item.then is not None:
                try:
                    item.then(record)
                except Exception:
                    log.exception("usage-ledger: could not show the cost of flow %s", item.row.flow_id)
        else:
            record = item
        if self.dropped_starts and kind is CallFinished and record.flow_id in self.dropped_starts:
            self._drop(1, None)  # kept in the set: a background call ends twice (its POST, its poll)
            return
        if len(self.pending) >= self.max_pending and not self._spill() and kind is CallStarted:
            # Memory and journal are full: refuse new calls, but still finish those accepted
            # (so at most one finish per pending start comes on top of max_pending).
            self.dropped_starts[record.flow_id] = None
            if len(self.dropped_starts) > _DROPPED_STARTS:
                del self.dropped_starts[next(iter(self.dropped_starts))]
            self._drop(1, None)
            return
        self.pending.append(record)

    def _spill(self, force: bool = False) -> bool:
        """Move the records in memory to the end of the journal; False if it cannot be written.
        After a failure it is not tried again for a second: with memory full, every record that
        comes would otherwise encode all the others again (60 ms each for 10,000). `force`: at
        shutdown, the last chance."""
        now = time.monotonic()
        if not force and now - self.spill_failed_at < 1.0:
            return False
        try:
            self.journal_bytes += self.journal.append(self.pending)
        except OSError as e:
            self.spill_failed_at = now
            self._failed(e, f"journal {self.journal.path}")
            return False
        self.journal_records += len(self.pending)
        self.pending = []
        return True

    def _failed(self, error: Exception, what: str | None = None) -> None:
        message = self.backend.message(error, what)
        if not self.failing or message != self.last_error:
            log.warning("usage-ledger: cannot write %s; keeping records and trying again", message)
        self.failing = True
        self.failed_attempts += 1
        self.last_error, self.last_error_at = message, now_utc()

    def _drop(self, n: int, why: str | None) -> None:
        if why:
            log.error("usage-ledger: lost %d records: %s", n, why)
        elif self.dropped == 0:
            log.error("usage-ledger: memory and journal are full: dropping new calls (see usage-ledger status)")
        self.dropped += n

    def _write_status(self, state: str) -> None:
        self.status_file.update({
            "pid": os.getpid(), "ledger": self.name, "started_at": self.started_at,
            "state": state, "queue": len(self.pending) + self.queue.qsize(),
            "journal_records": self.journal_records, "journal_bytes": self.journal_bytes,
            "written": self.written, "dropped": self.dropped, "failed_attempts": self.failed_attempts,
            "last_error": self.last_error, "last_error_at": self.last_error_at,
        })
