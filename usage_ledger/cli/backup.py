"""`usage-ledger backup FILE`: a consistent copy of the ledger, safe while the proxy writes.

`cp ledger.db` misses what is still in `ledger.db-wal` and can copy a half-written page; SQLite's
online backup API (sqlite3.Connection.backup) copies one consistent snapshot: every transaction
committed before it started, none half.
"""

from __future__ import annotations

import argparse
import sqlite3
from contextlib import closing
from pathlib import Path

from ..dialect import is_postgres
from ..postgres import redacted
from .common import CliError, add_db_argument, open_ledger


def add_parser(sub) -> None:
    p = sub.add_parser("backup", help="copy the ledger safely, even while the proxy writes",
                       description="Write a consistent copy of the ledger to FILE with SQLite's online "
                                   "backup API (use this, not cp, while the proxy runs).")
    add_db_argument(p)
    p.add_argument("file", metavar="FILE", help="the copy to write (must not exist)")
    p.set_defaults(func=run)


def backup(db: str, target: Path) -> int:
    """Copy `db` to `target` in one read transaction; returns the rows in the copy's `requests`."""
    with closing(open_ledger(db)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)  # pages=-1: all in one step, so one snapshot even while others write
        dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
        return dst.execute("SELECT count(*) FROM requests").fetchone()[0]


def run(args: argparse.Namespace) -> int:
    if is_postgres(args.db):
        raise CliError(f"backup copies SQLite ledgers; for {redacted(args.db)} use PostgreSQL's own pg_dump "
                       f"(pg_dump --table=requests --format=custom --file=ledger.dump DBNAME)")
    target = Path(args.file).expanduser()
    if target.exists():
        raise CliError(f"{target} exists; choose a new file")
    tmp = target.with_name(target.name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        rows = backup(args.db, tmp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"usage-ledger: backed up {rows:,} calls to {target}")
    return 0
