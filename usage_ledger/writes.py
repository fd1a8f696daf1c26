"""Writing a batch of records into the `requests` table: one transaction, one statement per row.

Every write is an upsert keyed by `flow_id` and touches only the columns its record knows, so
the final row does not depend on the order records arrive in, and writing a record twice (a
journal replayed again) changes nothing:

* a call whose start and finish are in the same batch: its whole row, in one INSERT;
* a start alone: its columns, leaving a finish already written (outcome, stream) as it is;
* a finish alone: its columns, on the row of its start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from .backend import SQLITE_DRIVER, Driver
from .dialect import Dialect, transaction
from .records import CallFinished, CallStarted, HostRejectsStreamOptions, columns

_START = columns(CallStarted)
_FINISH = columns(CallFinished)
# The finish's own view of these wins: the stream it was, the usage we added, how it ended.
_START_ONLY = [c for c in _START if c not in _FINISH]
_FULL = _FINISH + _START_ONLY  # the records are tuples in their columns' order

_START_ONLY_SLICE = slice(_START.index(_START_ONLY[0]), _START.index(_START_ONLY[-1]) + 1)
assert _START[_START_ONLY_SLICE] == _START_ONLY, "CallStarted's own columns must be together"
assert _START[0] == _FINISH[0] == "flow_id", "write_batch keys records by their first field"

# Errors that writing the same SQLite records again cannot cure (unlike a lock, a full disk, ...).
PERMANENT = SQLITE_DRIVER.permanent
_SURROGATES = re.compile("[\ud800-\udfff]")
_SURROGATES_AND_NUL = re.compile("[\ud800-\udfff\x00]")  # PostgreSQL's text refuses NUL too


class Statements:
    """The writer's SQL in one dialect's placeholders (both servers share the rest)."""

    def __init__(self, dialect: Dialect) -> None:
        p = dialect.param

        def values(names: list[str]) -> str:
            return f"INSERT INTO requests ({', '.join(names)}) VALUES ({', '.join(p for _ in names)})"

        def upsert(names: list[str], update: list[str]) -> str:
            sets = ", ".join(f"{n} = excluded.{n}" for n in update)
            return f"{values(names)} ON CONFLICT(flow_id) DO UPDATE SET {sets}"

        self.full = upsert(_FULL, [c for c in _FULL if c != "flow_id"])
        self.start = upsert(_START, [c for c in _START_ONLY if c != "flow_id"])
        self.finish = upsert(_FINISH, [c for c in _FINISH if c != "flow_id"])
        # New rows are usually new: a plain INSERT is cheaper, and a row already there (a record
        # written before, replayed) makes the whole batch go again as upserts.
        self.plain = {self.full: values(_FULL), self.start: values(_START)}
        self.host = ("INSERT INTO hosts_without_stream_options (host, learned_at, reason) "
                     f"VALUES ({p}, {p}, {p}) ON CONFLICT DO NOTHING")
        self.param = p


statements = cache(Statements)


def write_batch(con, records: Iterable[object], replayed: bool = False, driver: Driver = SQLITE_DRIVER) -> None:
    """Write the records in one transaction (all or nothing) on a sqlite3 connection, or a
    psycopg one in autocommit mode (with `driver` its backend's). Raises one of the driver's
    errors (locked, read-only, disk full, server away, ...); the caller keeps the records and
    tries again. `replayed`: the records may be in the ledger already (a journal), so upsert at once."""
    sql = statements(driver.dialect)
    starts: dict[str, CallStarted] = {}
    finishes: dict[str, CallFinished] = {}
    hosts: list[tuple] = []
    for record in records:
        kind = type(record)
        if kind is CallFinished:
            finishes[record[0]] = record  # flow_id, the first field of both
        elif kind is CallStarted:
            starts[record[0]] = record
        elif kind is HostRejectsStreamOptions:
            hosts.append(record)
    # New rows in the order their calls started (so `ORDER BY id` stays the order of arrival):
    # consecutive runs of whole rows and of starts alone, one executemany each.
    runs: list[tuple[str, list[tuple]]] = []
    full, start_only, statement, rows = sql.full, sql.start, None, []
    pop, own = finishes.pop, _START_ONLY_SLICE
    for flow_id, start in starts.items():
        finish = pop(flow_id, None)
        if finish is None:
            kind_sql, values = start_only, start
        else:
            kind_sql, values = full, finish + start[own]
        if kind_sql is not statement:
            statement, rows = kind_sql, []
            runs.append((statement, rows))
        rows.append(values)
    if finishes:  # their starts are in the ledger already
        runs.append((sql.finish, list(finishes.values())))
    if hosts:
        runs.append((sql.host, hosts))
    if not replayed:
        try:
            _execute(con, driver.dialect, [(sql.plain.get(s, s), rows) for s, rows in runs])
            return
        except driver.duplicate:
            pass
    _execute(con, driver.dialect, runs)


def _execute(con, dialect: Dialect, runs: list[tuple[str, list[tuple]]]) -> None:
    cursor = con.cursor()  # psycopg's executemany is a cursor's (pipelined), sqlite3's either's
    try:
        with transaction(con, dialect):
            for statement, rows in runs:
                cursor.executemany(statement, rows)
    finally:
        cursor.close()


def read_rows(con, flow_ids: list[str], dialect: Dialect = SQLITE_DRIVER.dialect) -> list[dict]:
    """The rows of these calls as they are now, as dicts of `requests` columns."""
    p = dialect.param
    rows: list[dict] = []
    for i in range(0, len(flow_ids), 500):  # well under SQLite's limit on bound parameters
        chunk = flow_ids[i:i + 500]
        cursor = con.execute(f"SELECT * FROM requests WHERE flow_id IN ({', '.join(p for _ in chunk)})", chunk)
        names = [d[0] for d in cursor.description]
        rows += [dict(zip(names, values)) for values in cursor]
    return rows


def clean(record: tuple, dialect: Dialect = SQLITE_DRIVER.dialect) -> tuple:
    """The record with text the database cannot store replaced by U+FFFD: lone surrogates, which
    is how mitmproxy hands over header bytes that are not UTF-8 (a User-Agent, say), and for
    PostgreSQL also NUL characters (its text type refuses them; SQLite keeps them); and integers
    past a 64-bit column (our bug, were one to get there) as NULL."""
    bad = _SURROGATES if dialect is SQLITE_DRIVER.dialect else _SURROGATES_AND_NUL
    changes = {name: bad.sub("\ufffd", v) for name, v in zip(record._fields, record)
               if isinstance(v, str) and bad.search(v)}
    changes.update({name: None for name, v in zip(record._fields, record)
                    if type(v) is int and not -_INT64 <= v < _INT64})
    return record._replace(**changes) if changes else record


_INT64 = 2 ** 63
