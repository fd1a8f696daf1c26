"""The ledger's schema, as an append-only list of numbered migrations.

Each one runs once per database, in order, inside a transaction, and is recorded in
`_ledger_migrations`. Never edit or reorder a published migration: add the next one.
Users' SQL depends on the `requests` table (docs/ledger.md), so columns are only ever added.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

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
]


def migrate(con: sqlite3.Connection) -> list[int]:
    """Bring the database up to the newest schema; returns the numbers applied now."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS _ledger_migrations "
        "(id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in con.execute("SELECT id FROM _ledger_migrations")}
    applied = []
    for number, (name, sql) in enumerate(MIGRATIONS, start=1):
        if number in done:
            continue
        with con:
            for statement in (s.strip() for s in sql.split(";")):
                if statement:
                    con.execute(statement)
            con.execute(
                "INSERT INTO _ledger_migrations (id, name, applied_at) VALUES (?, ?, ?)",
                (number, name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
        applied.append(number)
    return applied
