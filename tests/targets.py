"""Reading a test's ledger on either backend (a SQLite path or a postgresql:// URL), the way a
user's own SQL would: a connection of its own, outside the writer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from usage_ledger.dialect import is_postgres


def open_target(target: str | Path):
    """A new connection: sqlite3, or psycopg in autocommit mode (each query sees what is committed)."""
    if is_postgres(str(target)):
        import psycopg

        return psycopg.connect(str(target), autocommit=True)
    return sqlite3.connect(target)


def query(target: str | Path, sql: str, params: tuple = ()) -> list[tuple]:
    """The rows of one query (placeholders in the backend's own style: `?` or `%s`)."""
    con = open_target(target)
    try:
        return [tuple(r) for r in con.execute(sql, params).fetchall()]
    finally:
        con.close()


def ledger_rows(target: str | Path) -> list[dict]:
    """Every row of `requests` as a dict of its columns, in `id` order."""
    con = open_target(target)
    try:
        cursor = con.execute("select * from requests order by id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r)) for r in cursor.fetchall()]
    finally:
        con.close()
