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
from dataclasses import fields, replace
from operator import attrgetter

from .records import CallFinished, CallStarted, HostRejectsStreamOptions, columns

_START = columns(CallStarted)
_FINISH = columns(CallFinished)
# The finish's own view of these wins: the stream it was, the usage we added, how it ended.
_START_ONLY = [c for c in _START if c not in _FINISH]
_FULL = _FINISH + _START_ONLY

_start_values = attrgetter(*_START)
_finish_values = attrgetter(*_FINISH)
_start_only_values = attrgetter(*_START_ONLY)


def _upsert(names: list[str], update: list[str]) -> str:
    sets = ", ".join(f"{n} = excluded.{n}" for n in update)
    return (f"INSERT INTO requests ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)}) "
            f"ON CONFLICT(flow_id) DO UPDATE SET {sets}")


FULL_SQL = _upsert(_FULL, [c for c in _FULL if c != "flow_id"])
START_SQL = _upsert(_START, [c for c in _START_ONLY if c != "flow_id"])
FINISH_SQL = _upsert(_FINISH, [c for c in _FINISH if c != "flow_id"])
# Errors that writing the same records again cannot cure (unlike a lock, a full disk, ...).
PERMANENT = (sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.DataError,
             ValueError, TypeError)
_SURROGATES = re.compile("[\ud800-\udfff]")

HOST_SQL = "INSERT OR IGNORE INTO hosts_without_stream_options (host, learned_at, reason) VALUES (?, ?, ?)"


def write_batch(con: sqlite3.Connection, records: Iterable[object]) -> None:
    """Write the records in one transaction (all or nothing). Raises sqlite3.Error as SQLite
    does (locked, read-only, disk full, ...); the caller keeps the records and tries again."""
    starts: dict[str, CallStarted] = {}
    finishes: dict[str, CallFinished] = {}
    hosts: list[tuple] = []
    for record in records:
        if isinstance(record, CallFinished):
            finishes[record.flow_id] = record
        elif isinstance(record, CallStarted):
            starts[record.flow_id] = record
        elif isinstance(record, HostRejectsStreamOptions):
            hosts.append((record.host, record.learned_at, record.reason))
    # New rows in the order their calls started (so `ORDER BY id` stays the order of arrival):
    # consecutive runs of whole rows and of starts alone, one executemany each.
    runs: list[tuple[str, list[tuple]]] = []
    for flow_id, start in starts.items():
        finish = finishes.pop(flow_id, None)
        sql = START_SQL if finish is None else FULL_SQL
        values = _start_values(start) if finish is None else _finish_values(finish) + _start_only_values(start)
        if runs and runs[-1][0] is sql:
            runs[-1][1].append(values)
        else:
            runs.append((sql, [values]))
    if finishes:  # their starts are in the ledger already
        runs.append((FINISH_SQL, [_finish_values(f) for f in finishes.values()]))
    if hosts:
        runs.append((HOST_SQL, hosts))
    with con:
        for sql, rows in runs:
            con.executemany(sql, rows)


def clean(record: object) -> object:
    """The record with text SQLite cannot store replaced by U+FFFD: lone surrogates, which is how
    mitmproxy hands over header bytes that are not UTF-8 (a User-Agent, say)."""
    changes = {f.name: _SURROGATES.sub("\ufffd", v) for f in fields(record)
               if isinstance(v := getattr(record, f.name), str) and _SURROGATES.search(v)}
    return replace(record, **changes) if changes else record
