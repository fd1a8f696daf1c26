"""Ledgers with chosen rows, on either backend: a SQLite file (the real store's `connect`) or a
PostgreSQL database (the one migration list, then plain SQL), for the reading side's tests.

`target` is what `--db` takes: a path or a postgresql:// URL (conftest's `ledger_target`).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from usage_ledger import report
from usage_ledger.dialect import POSTGRES, is_postgres
from usage_ledger.migrations import migrate
from usage_ledger.store import connect

NOW = datetime.now(UTC)


def ts(moment: datetime) -> str:
    return report.iso_utc(moment)


def open_ledger(target: str):
    """A writable, migrated ledger: a sqlite3 connection, or a psycopg one in autocommit mode."""
    if is_postgres(target):
        import psycopg

        con = psycopg.connect(target, autocommit=True)
        migrate(con, POSTGRES)
        return con
    return connect(target)


def add(con, **cols) -> None:
    """Insert one row (defaults: a random flow_id, an hour ago, outcome ok), committed."""
    cols.setdefault("flow_id", uuid4().hex)
    cols.setdefault("started_at", ts(NOW - timedelta(hours=1)))
    cols.setdefault("outcome", "ok")
    p = "?" if isinstance(con, sqlite3.Connection) else "%s"
    con.execute(f"INSERT INTO requests ({', '.join(cols)}) VALUES ({', '.join([p] * len(cols))})",
                list(cols.values()))
    if isinstance(con, sqlite3.Connection):
        con.commit()


def execute(con, sql: str, params=()) -> None:
    """One write statement (`?` placeholders) on either backend, committed."""
    if isinstance(con, sqlite3.Connection):
        con.execute(sql, params)
        con.commit()
    else:
        con.execute(sql.replace("?", "%s"), params)


def fill(target: str, rows: list[dict]) -> str:
    """A ledger at `target` holding `rows` (each add()'s columns); returns `target`."""
    con = open_ledger(target)
    try:
        for cols in rows:
            add(con, **cols)
    finally:
        con.close()
    return target


def select(target: str, sql: str, params=()) -> list[tuple]:
    """Rows of one query (`?` placeholders) as plain tuples, psycopg's Decimals as SQLite gives them."""
    con = open_ledger(target)
    try:
        if isinstance(con, sqlite3.Connection):
            return [tuple(r) for r in con.execute(sql, params)]
        return [tuple(_plain(v) for v in r) for r in con.execute(sql.replace("?", "%s"), params)]
    finally:
        con.close()


def _plain(value):
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
