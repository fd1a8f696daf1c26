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
import sqlite3
from collections.abc import Iterable

from .records import CallFinished, CallStarted, HostRejectsStreamOptions, columns

_START = columns(CallStarted)
_FINISH = columns(CallFinished)
# The finish's own view of these wins: the stream it was, the usage we added, how it ended.
_START_ONLY = [c for c in _START if c not in _FINISH]
_FULL = _FINISH + _START_ONLY  # the records are tuples in their columns' order

_START_ONLY_SLICE = slice(_START.index(_START_ONLY[0]), _START.index(_START_ONLY[-1]) + 1)
assert _START[_START_ONLY_SLICE] == _START_ONLY, "CallStarted's own columns must be together"


def _upsert(names: list[str], update: list[str]) -> str:
    sets = ", ".join(f"{n} = excluded.{n}" for n in update)
    return (f"INSERT INTO requests ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
            f"ON CONFLICT(flow_id) DO UPDATE SET {sets}")


def _insert(names: list[str]) -> str:
    return f"INSERT INTO requests ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"


FULL_SQL = _upsert(_FULL, [c for c in _FULL if c != "flow_id"])
START_SQL = _upsert(_START, [c for c in _START_ONLY if c != "flow_id"])
FINISH_SQL = _upsert(_FINISH, [c for c in _FINISH if c != "flow_id"])
# New rows are usually new: a plain INSERT is cheaper, and a row already there (a record written
# before, replayed) makes the whole batch go again as upserts.
_PLAIN = {FULL_SQL: _insert(_FULL), START_SQL: _insert(_START)}
# Errors that writing the same records again cannot cure (unlike a lock, a full disk, ...).
PERMANENT = (sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.DataError,
             ValueError, TypeError)
_SURROGATES = re.compile("[\ud800-\udfff]")

HOST_SQL = "INSERT OR IGNORE INTO hosts_without_stream_options (host, learned_at, reason) VALUES (?, ?, ?)"


def write_batch(con: sqlite3.Connection, records: Iterable[object], replayed: bool = False) -> None:
    """Write the records in one transaction (all or nothing). Raises sqlite3.Error as SQLite
    does (locked, read-only, disk full, ...); the caller keeps the records and tries again.
    `replayed`: the records may be in the ledger already (a journal), so upsert at once."""
    starts: dict[str, CallStarted] = {}
    finishes: dict[str, CallFinished] = {}
    hosts: list[tuple] = []
    for record in records:
        kind = type(record)
        if kind is CallFinished:
            finishes[record.flow_id] = record
        elif kind is CallStarted:
            starts[record.flow_id] = record
        elif kind is HostRejectsStreamOptions:
            hosts.append(record)
    # New rows in the order their calls started (so `ORDER BY id` stays the order of arrival):
    # consecutive runs of whole rows and of starts alone, one executemany each.
    runs: list[tuple[str, list[tuple]]] = []
    for flow_id, start in starts.items():
        finish = finishes.pop(flow_id, None)
        sql = START_SQL if finish is None else FULL_SQL
        values = start if finish is None else finish + start[_START_ONLY_SLICE]
        if runs and runs[-1][0] is sql:
            runs[-1][1].append(values)
        else:
            runs.append((sql, [values]))
    if finishes:  # their starts are in the ledger already
        runs.append((FINISH_SQL, list(finishes.values())))
    if hosts:
        runs.append((HOST_SQL, hosts))
    if not replayed:
        try:
            with con:
                for sql, rows in runs:
                    con.executemany(_PLAIN.get(sql, sql), rows)
            return
        except sqlite3.IntegrityError:
            pass
    with con:
        for sql, rows in runs:
            con.executemany(sql, rows)


def read_rows(con: sqlite3.Connection, flow_ids: list[str]) -> list[dict]:
    """The rows of these calls as they are now, as dicts of `requests` columns."""
    rows: list[dict] = []
    for i in range(0, len(flow_ids), 500):  # well under SQLite's limit on bound parameters
        chunk = flow_ids[i:i + 500]
        cursor = con.execute(f"SELECT * FROM requests WHERE flow_id IN ({', '.join('?' for _ in chunk)})", chunk)
        names = [d[0] for d in cursor.description]
        rows += [dict(zip(names, values)) for values in cursor]
    return rows


def clean(record: tuple) -> tuple:
    """The record with text SQLite cannot store replaced by U+FFFD: lone surrogates, which is how
    mitmproxy hands over header bytes that are not UTF-8 (a User-Agent, say)."""
    changes = {name: _SURROGATES.sub("\ufffd", v) for name, v in zip(record._fields, record)
               if isinstance(v, str) and _SURROGATES.search(v)}
    return record._replace(**changes) if changes else record
