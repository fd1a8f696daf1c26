"""Reading a ledger on either backend: opening it read-only, and the read SQL that differs.

Every reader (report, tail, budget, reprice, run, the proxy's budgets) writes its SQL once, in
SQLite's words with `?` placeholders, and runs it through `query`, which hands it to whichever
driver the connection is. Where the two servers' SQL differs, the expression lives here:

| what | SQLite | PostgreSQL |
| --- | --- | --- |
| week bucket (`%Y-W%W`, weeks from Monday, days before the year's first Monday in W00) | `strftime('%Y-W%W', started_at)` | the same number from `extract(doy/isodow)` |
| a tag's value | `json_extract(tags, '$."name"')`, NULL for text that is not JSON | `tags::jsonb ->> 'name'` (the writer stores only JSON objects or NULL) |
| placeholder | `?` | `%s` (a literal `%` doubled) |
| `sum()` of integers | an int | numeric (Decimal): loaded as int (float if it has a fraction) |

Everything else the readers say (`substr`, `coalesce`, `count(CASE ...)`, `count(*) -
count(col)`, `(outcome IS NULL OR outcome <> 'pending')`) both servers say the same way.
`started_at` is ISO-8601 UTC text on both (migrations.py), so time bounds compare as text.

A PostgreSQL reader connects in autocommit mode (each statement sees every row committed before
it; no transaction stays open between a `tail`'s polls) with `default_transaction_read_only`
on. psycopg is imported only for a postgresql:// target.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from urllib.parse import quote

from .dialect import POSTGRES, SQLITE, Dialect, is_postgres
from .postgres import redacted, safe_message


class LedgerUnavailable(Exception):
    """The ledger cannot be read: missing, not a ledger, or its server cannot be reached or
    refused us. The message is one line and never holds a password."""


def db_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a ledger query can raise: sqlite3's, and psycopg's once psycopg is loaded
    (nothing else could have raised one). Use as `except db_errors() as e:`."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error, psycopg.Error) if psycopg is not None else (sqlite3.Error,)


def describe(target: str) -> str:
    """The ledger's name for messages: a file path as given, a URL without its password."""
    return redacted(target) if is_postgres(target) else str(Path(target).expanduser())


def one_line(error: BaseException, target: str) -> str:
    """A driver's error message on one line (libpq's span several), without any password."""
    return safe_message(" ".join(str(error).split()), target)


def open_reader(target: str, *, missing_ok: bool = False):
    """The ledger at `target` (a file path or a postgresql:// URL), read-only; never creates one.

    Returns a sqlite3 connection or a psycopg one (autocommit, read-only session, numeric sums
    loaded as int/float); with `missing_ok`, None when there is no ledger yet (no file, or no
    `requests` table: the proxy has not created it). Raises LedgerUnavailable with a one-line
    reason: missing (without missing_ok), not a ledger, or the server unreachable or refusing."""
    if is_postgres(target):
        return _open_postgres(target, missing_ok)
    file = Path(target).expanduser()
    if not file.exists():
        if missing_ok:
            return None
        raise LedgerUnavailable(f"no ledger at {file} (the proxy creates it on its first call; or pass --db)")
    if not file.is_file():
        raise LedgerUnavailable(f"{file} is not a file")
    try:
        con = sqlite3.connect(f"file:{quote(str(file.resolve()))}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as e:
        raise LedgerUnavailable(f"cannot read {file}: {e}") from None
    try:
        con.execute("SELECT id FROM requests LIMIT 0")
    except sqlite3.Error as e:
        con.close()
        if "no such table" in str(e) and missing_ok:
            return None
        reason = "not a usage ledger" if "no such" in str(e) else str(e)
        raise LedgerUnavailable(f"cannot read {file}: {reason}") from None
    return con


def connect_postgres(url: str, *, read_only: bool):
    """A psycopg connection in autocommit mode to the database at `url`; numeric results load
    as int/float; with `read_only`, the session is read-only. Raises LedgerUnavailable (one
    line, no password) when the server cannot be reached or refuses us."""
    from . import postgres

    try:
        import psycopg
    except ImportError as e:  # a dependency, but say so plainly if it is missing
        raise LedgerUnavailable(f"cannot read {redacted(url)}: psycopg is not installed ({e})") from None
    try:
        con = postgres.connect(url, autocommit=True)
    except (psycopg.Error, ValueError) as e:
        raise LedgerUnavailable(f"cannot connect to {redacted(url)}: {one_line(e, url)}") from None
    try:
        con.adapters.register_loader("numeric", _numeric_loader())
        if read_only:
            con.execute("SET default_transaction_read_only = on")
    except psycopg.Error as e:
        con.close()
        raise LedgerUnavailable(f"cannot read {redacted(url)}: {one_line(e, url)}") from None
    return con


def _open_postgres(url: str, missing_ok: bool):
    import psycopg

    con = connect_postgres(url, read_only=True)
    try:
        con.execute("SELECT id FROM requests LIMIT 0")
    except psycopg.errors.UndefinedTable:
        con.close()
        if missing_ok:
            return None
        raise LedgerUnavailable(f"cannot read {redacted(url)}: not a usage ledger (no requests table; "
                                "a proxy with this ledger_db creates it)") from None
    except psycopg.Error as e:
        con.close()
        raise LedgerUnavailable(f"cannot read {redacted(url)}: {one_line(e, url)}") from None
    return con


def _numeric_loader():
    """psycopg's loader for numeric (what PostgreSQL's sum() of BIGINT gives): an int when
    whole, else a float, so a report's numbers are the same Python values SQLite gives."""
    from psycopg.adapt import Loader

    class NumericLoader(Loader):
        def load(self, data) -> int | float:
            text = bytes(data).decode()
            try:
                return int(text)
            except ValueError:
                return float(text)

    return NumericLoader


def dialect_of(con) -> Dialect:
    return SQLITE if isinstance(con, sqlite3.Connection) else POSTGRES


def to_dialect(sql: str, dialect: Dialect) -> str:
    """SQL written with `?` placeholders in the dialect's placeholder (psycopg: `%s`, with any
    literal `%` doubled). The readers' SQL holds no `?` or `%` inside string literals."""
    if dialect is SQLITE:
        return sql
    return sql.replace("%", "%%").replace("?", "%s")


def query(con, sql: str, params=()):
    """Run one statement (SQLite's words, `?` placeholders) on either backend; the cursor."""
    return con.execute(to_dialect(sql, dialect_of(con)), list(params))


def placeholders(n: int) -> str:
    """`?, ?, ?` for an IN list of n values (n >= 1)."""
    return ", ".join("?" * n)


# --- expressions that differ ---------------------------------------------------------------------

NOT_PENDING = "(outcome IS NULL OR outcome <> 'pending')"
PENDING_CALLS = "count(CASE WHEN outcome = 'pending' THEN 1 END)"

_WEEK = {
    SQLITE: "strftime('%Y-W%W', started_at)",
    # SQLite's %W: (day of year - 1 + 7 - days since Monday) / 7, zero-padded. A started_at
    # that is not a date gives NULL, as strftime does, instead of failing the whole query.
    POSTGRES: ("CASE WHEN started_at ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}' THEN "
               "substr(started_at, 1, 4) || '-W' || lpad(((extract(doy FROM substr(started_at, 1, 10)::date)::int"
               " + 6 - (extract(isodow FROM substr(started_at, 1, 10)::date)::int - 1)) / 7)::text, 2, '0') END"),
}


def week_expression(dialect: Dialect) -> str:
    return _WEEK[dialect]


def tag_expression(dialect: Dialect, name: str) -> tuple[str, tuple[str, ...]]:
    """The SQL for tag `name`'s value and its parameters: the name is always a parameter."""
    if dialect is SQLITE:
        # A quoted JSON path label, so names with dots or dashes work.
        return "CASE WHEN json_valid(tags) THEN json_extract(tags, ?) END", (f'$."{name}"',)
    return "(tags::jsonb ->> ?)", (name,)

