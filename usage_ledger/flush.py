"""How the writer thread puts what it holds into the ledger: the journal first, then the records
in memory, each batch one transaction; then the rows written go to the listeners (OpenTelemetry,
budgets). A mixin of `LedgerStore` (store.py), which holds the state it reads; kept apart
because store.py is the thread, its queue and its faults, and this is the writing itself.
"""

from __future__ import annotations

import logging

from .records import CallFinished
from .writes import clean, read_rows, write_batch

log = logging.getLogger("usage_ledger.store")


class Flush:
    """The writes of `LedgerStore`; every attribute it reads is one of LedgerStore's."""

    def _write_all(self) -> bool:
        """The journal, then the records in memory, into the ledger; False if it failed."""
        journal_read = True
        try:
            if self.con is not None and self.backend.replaced():
                self._close()  # the file was deleted or replaced: writing on would lose the rows
            if self.con is None:
                self.con = self.backend.open(self.busy_timeout)
            if self.journal_bytes:
                try:
                    for batch in self.journal.batches(self.max_batch):
                        self._write_records(batch, replayed=True)
                    self.journal.remove()
                except OSError as e:
                    # Unreadable (its permissions): what is in memory is still written, since rows
                    # do not depend on the order records come in; the journal is tried again.
                    self._failed(e, f"journal {self.journal.path}")
                    journal_read = False
                else:
                    if self.journal.unreadable_lines:
                        self._drop(self.journal.unreadable_lines, "torn or unreadable lines in the journal")
                    self.written += self.journal_records
                    self.journal_records = self.journal_bytes = 0
            if self.pending:
                self._write_records(self.pending)
                self.written += len(self.pending)
                self.pending = []
        except self.backend.driver.errors as e:
            self._failed(e)
            if self.con is not None and not self.backend.still_usable(self.con, e):
                self._close()  # not only busy: open it afresh next time
            return False
        if not journal_read:
            return False
        if self.failing:
            log.warning("usage-ledger: %s is writable again; every record kept meanwhile is written", self.name)
            self.failing = False
        return True

    def _write_records(self, records: list, replayed: bool = False) -> None:
        """One transaction; a record no retry can write (our bug, or text the database refuses)
        is cleaned, else dropped and counted, so it cannot hold up the others forever."""
        driver = self.backend.driver
        try:
            write_batch(self.con, records, replayed, driver)
            self._announce(records)
            return
        except driver.permanent:
            log.warning("usage-ledger: a batch could not be written as it is; writing its records one by one")
        except driver.errors:
            raise  # a failed attempt: _write_all keeps the records and tries again
        except Exception:  # our bug (an OverflowError, say) must not stop the writer
            log.exception("usage-ledger: a batch could not be written as it is; writing its records one by one")
        for record in records:
            try:
                write_batch(self.con, [clean(record, driver.dialect)], True, driver)
            except driver.permanent as e:
                self._drop(1, self.backend.message(e, ""))
            except driver.errors:
                raise
            except Exception as e:
                self._drop(1, f"usage-ledger internal error: {type(e).__name__}: {e}")
        self._announce(records)

    def _announce(self, records: list) -> None:
        listeners = tuple(self.rows_written)
        flow_ids = [r.flow_id for r in records if type(r) is CallFinished]
        if not listeners or not flow_ids:
            return
        try:
            rows = read_rows(self.con, flow_ids, self.backend.dialect)
        except self.backend.driver.errors:  # written all the same; only their export is lost
            log.exception("usage-ledger: could not read back %d written rows", len(flow_ids))
            return
        for listener in listeners:
            try:
                listener(rows)
            except Exception:  # a listener's failure is its own
                log.exception("usage-ledger: a rows-written listener failed")
