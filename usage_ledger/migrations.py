"""The ledger's schema, as an append-only list of numbered migrations.

Each one runs once per database, in order, inside a transaction, and is recorded in
`_ledger_migrations`. Never edit or reorder a published migration: add the next one.
Users' SQL depends on the `requests` table (docs/ledger.md), so columns are only ever added.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime

from .dialect import SQLITE, Dialect, ddl

MIGRATION_LOCK = 0x75736c67  # any constant: the advisory lock id the ledger's migrations take

MIGRATIONS: list[tuple[str, str]] = [
    (
        "create requests",
        """
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            flow_id TEXT UNIQUE,
            started_at TEXT,
            ttfb_ms REAL,
            duration_ms REAL,
            client TEXT,
            user_agent TEXT,
            method TEXT,
            host TEXT,
            path TEXT,
            provider TEXT,
            api TEXT,
            model_requested TEXT,
            model TEXT,
            stream INTEGER,
            usage_injected INTEGER,
            status_code INTEGER,
            outcome TEXT,
            input_tokens INTEGER,
            cached_input_tokens INTEGER,
            cache_write_tokens INTEGER,
            output_tokens INTEGER,
            reasoning_tokens INTEGER,
            total_tokens INTEGER,
            usage_json TEXT,
            cost_usd REAL,
            error TEXT
        );
        CREATE INDEX requests_started_at ON requests(started_at);
        CREATE INDEX requests_model ON requests(model);
        """,
    ),
    (
        "attribution: tags and api_key_id",
        """
        ALTER TABLE requests ADD COLUMN tags TEXT;
        ALTER TABLE requests ADD COLUMN api_key_id TEXT
        """,
    ),
    (
        "price_source",
        """
        ALTER TABLE requests ADD COLUMN price_source TEXT
        """,
    ),
    (
        "hosts that reject stream_options",
        """
        CREATE TABLE hosts_without_stream_options (
            host TEXT PRIMARY KEY,
            learned_at TEXT NOT NULL,
            reason TEXT
        )
        """,
    ),
    (
        "service_tier",
        """
        ALTER TABLE requests ADD COLUMN service_tier TEXT
        """,
    ),
    (
        "machine: which proxy wrote the row, when many write one ledger",
        """
        ALTER TABLE requests ADD COLUMN machine TEXT
        """,
    ),
]


def migrate(con, dialect: Dialect = SQLITE) -> list[int]:
    """Bring the database up to the newest schema; returns the numbers applied now.

    con: a sqlite3 connection, or for POSTGRES a psycopg one in autocommit mode. SQLite runs
    each migration in its own transaction; PostgreSQL runs them all in one, under an advisory
    lock, so proxies that start together against one server migrate it once."""
    if dialect is SQLITE:
        return _apply(con, dialect, lambda: con)
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        return _apply(con, dialect, nullcontext)


def _apply(con, dialect: Dialect, each) -> list[int]:
    # PostgreSQL checks the right to create in the schema even for CREATE TABLE IF NOT EXISTS of
    # a table that exists: a proxy whose user may only read and write (the rule on `public`
    # since PostgreSQL 15) must not run it on a database migrated already.
    if dialect is SQLITE or con.execute("SELECT to_regclass('_ledger_migrations')").fetchone()[0] is None:
        con.execute(
            "CREATE TABLE IF NOT EXISTS _ledger_migrations "
            "(id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
    done = {row[0] for row in con.execute("SELECT id FROM _ledger_migrations").fetchall()}
    p = dialect.param
    applied = []
    for number, (name, sql) in enumerate(MIGRATIONS, start=1):
        if number in done:
            continue
        with each():
            for statement in (s.strip() for s in sql.split(";")):
                if statement:
                    con.execute(ddl(statement, dialect))
            con.execute(
                f"INSERT INTO _ledger_migrations (id, name, applied_at) VALUES ({p}, {p}, {p})",
                (number, name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
        applied.append(number)
    return applied
