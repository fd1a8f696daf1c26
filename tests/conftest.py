"""Test-wide settings and checks.

CI runs hypothesis derandomized, so a landing is judged on examples that were run before it,
while local runs keep exploring new ones.

Every ledger any test writes under its `tmp_path` is checked after the test for the token
columns' containment invariants (docs/ledger.md): `reasoning_tokens <= output_tokens` and
`cached_input_tokens + cache_write_tokens <= input_tokens`, on every row (a whole that is
NULL, not reported, bounds nothing).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows the end of each mitmdump log under its tmp_path: a failure on a busy
    CI machine is then explained by what the proxy said, without running it again."""
    report = yield
    tmp = item.funcargs.get("tmp_path") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(tmp, Path):
        for log in sorted(tmp.rglob("mitmdump*.log")):
            text = log.read_text(errors="replace")
            report.sections.append((f"mitmdump log {log.relative_to(tmp)} (last 4000 characters)", text[-4000:]))
    return report


@pytest.fixture(scope="module")
def standin():
    """The stand-in LLM provider on loopback (tests/standin.py), one per test module."""
    from .standin import StandIn

    with StandIn() as s:
        yield s


BROKEN_INVARIANTS = """
    select id, flow_id, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens
    from requests
    where (reasoning_tokens is not null and output_tokens is not null and reasoning_tokens > output_tokens)
       or (input_tokens is not null
           and coalesce(cached_input_tokens, 0) + coalesce(cache_write_tokens, 0) > input_tokens)
"""


def ledger_violations(db: Path) -> list[tuple]:
    """Rows of one SQLite file that break the token invariants ([] when it has no ledger)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        return con.execute(BROKEN_INVARIANTS).fetchall()
    except sqlite3.Error:  # not a ledger (no requests table), or not SQLite at all
        return []
    finally:
        con.close()


@pytest.fixture(autouse=True)
def every_ledger_row_keeps_the_token_invariants(request):
    if "tmp_path" not in request.fixturenames:
        yield
        return
    root = request.getfixturevalue("tmp_path")  # set up first, so torn down after this check
    yield
    broken = {str(db): rows for db in root.rglob("*.db") if (rows := ledger_violations(db))}
    assert not broken, f"rows breaking reasoning <= output or cache <= input: {broken}"


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server (tests/pg.py), one per test run; skipped without the binary."""
    from .pg import PgServer, pg_bin

    if pg_bin() is None:
        pytest.skip("PostgreSQL server binary not installed (Debian: apt-get install postgresql)")
    server = PgServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_target(request, tmp_path, monkeypatch):
    """Where a test's ledger lives, once per backend: a SQLite path, or a fresh PostgreSQL database's URL.
    The default ledger folder (where a PostgreSQL ledger's journal and status file go) is under tmp_path."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("USAGE_LEDGER_DB", raising=False)
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("pg_server").new_database()
