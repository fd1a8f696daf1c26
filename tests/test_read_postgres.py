"""The reading commands on a PostgreSQL ledger (a real server, tests/pg.py): the same output as
on SQLite for the same rows, sums equal to the server's own SQL, tail's ids committed out of
order, and the mistakes (server down, bad URL, no such database or role, not a ledger) as one
line without the password."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, date, timedelta

import psycopg
import pytest

from usage_ledger import report
from usage_ledger.cli import main
from usage_ledger.cli.tail import NewRows
from usage_ledger.dialect import POSTGRES, SQLITE
from usage_ledger.reader import open_reader, week_expression

from .ledgers import NOW, add, fill, open_ledger, select, ts
from .test_cli import assert_one_line_error, usage_ledger
from .test_report import mixed_rows

BY = [*report.GROUP_EXPRESSIONS, "tag:team", "tag:cost-center", "tag:a.b"]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def edge_rows() -> list[dict]:
    """Rows around week and year boundaries, odd tags, a NULL model and a NULL started_at."""
    days = ["2024-12-29", "2024-12-30", "2025-01-01", "2025-01-05", "2025-01-06", "2026-01-01",
            "2026-01-04", "2026-01-05", "2026-12-31", "2027-01-03", "2027-01-04", "2028-02-29"]
    rows = [dict(started_at=f"{d}T23:59:59.999Z", model=f"m{i % 3}", input_tokens=i, output_tokens=2 * i,
                 cost_usd=i * 0.0001, tags='{"a.b": "dotted", "team": "x"}' if i % 2 else None)
            for i, d in enumerate(days)]
    rows.append(dict(started_at=None, model=None, input_tokens=7, cost_usd=None))
    return rows


def test_every_report_is_the_same_on_both_backends(tmp_path, pg_server, capsys):
    rows = mixed_rows() + edge_rows()
    lite = fill(str(tmp_path / "l.db"), rows)
    pg = fill(pg_server.new_database(), rows)
    for by in BY:
        for fmt in ("json", "csv", "table"):
            got = [cli(capsys, "report", "--db", db, "--by", by, "--format", fmt) for db in (lite, pg)]
            assert got[0][0] == 0 and got[0][2] == ""
            assert got[1] == got[0], (by, fmt)
        # and within a period
        got = [cli(capsys, "report", "--db", db, "--by", by, "--format", "json", "--since", "2025-01-01",
                   "--until", "2026-12-31") for db in (lite, pg)]
        assert got[1] == got[0] and json.loads(got[0][1])
    pages = []
    for db in (lite, pg):
        out = tmp_path / "page.html"
        assert cli(capsys, "report", "--db", db, "--format", "html", "-o", str(out))[0] == 0
        pages.append([line for line in out.read_text().splitlines()
                      if "class=\"meta\"" not in line and db not in line])
    assert pages[1] == pages[0]


def test_week_buckets_are_sqlites_on_every_day(pg_server):
    """PostgreSQL's week expression gives strftime('%Y-W%W') for every day of 28 years."""
    days = [(date(2000, 1, 1) + timedelta(days=n)).isoformat() + "T12:00:00.000Z" for n in range(28 * 366)]
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE requests (started_at TEXT)")
    lite.executemany("INSERT INTO requests VALUES (?)", [(d,) for d in days])
    expected = [r[0] for r in lite.execute(f"SELECT {week_expression(SQLITE)} FROM requests ORDER BY rowid")]
    with psycopg.connect(pg_server.url(), autocommit=True) as con:
        got = [r[0] for r in con.execute(
            f"SELECT {week_expression(POSTGRES)} FROM unnest(%s::text[]) WITH ORDINALITY AS t(started_at, n) "
            "ORDER BY n", [days])]
    assert len(expected) == len(days) and got == expected


def test_report_totals_from_postgres_equal_sql_sums(pg_server, capsys):
    rng = random.Random(14)
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "llama3.2", None]
    rows = []
    for _ in range(600):
        tokens_in = rng.choice([None, rng.randrange(0, 3_000_000_000)])  # sums past 2**31: BIGINT
        rows.append(dict(started_at=ts(NOW - timedelta(minutes=rng.randrange(0, 60 * 24 * 40))),
                         model=rng.choice(models), provider=rng.choice(["openai", "anthropic", None]),
                         input_tokens=tokens_in, output_tokens=rng.choice([None, rng.randrange(0, 10_000)]),
                         cached_input_tokens=None if tokens_in is None else tokens_in // 3,
                         cost_usd=rng.choice([None, round(rng.uniform(0, 2), 10)]),
                         outcome=rng.choice(["ok", "ok", "ok", "pending", "http_error"])))
    db = fill(pg_server.new_database(), rows)
    (want,) = select(db, "SELECT count(*), sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), "
                         "sum(cost_usd), count(*) - count(cost_usd) FROM requests")
    assert want[1] > 2**32  # the sums really are past what 32 bits hold
    for by in ("model", "day", "week", "provider"):
        code, out, _ = cli(capsys, "report", "--db", db, "--by", by, "--format", "json")
        groups = json.loads(out)
        assert code == 0 and sum(g["requests"] for g in groups) == want[0]
        for i, field in ((1, "input_tokens"), (2, "cached_input_tokens"), (3, "output_tokens")):
            assert sum(g[field] or 0 for g in groups) == want[i], (by, field)
            assert all(type(g[field]) in (int, type(None)) for g in groups)
        assert sum(g["cost_usd"] or 0 for g in groups) == pytest.approx(want[4], rel=1e-9)
        assert sum(g["unpriced_calls"] for g in groups) == want[5]
    per_model = {r[0]: r[1:] for r in select(
        db, "SELECT model, count(*), sum(input_tokens), sum(output_tokens), sum(cost_usd) FROM requests GROUP BY model")}
    _, out, _ = cli(capsys, "report", "--db", db, "--by", "model", "--format", "json")
    for g in json.loads(out):
        n, tokens_in, tokens_out, cost = per_model[g["model"]]
        assert (g["requests"], g["input_tokens"], g["output_tokens"]) == (n, tokens_in, tokens_out)
        assert g["cost_usd"] == (None if cost is None else float(f"{cost:.10g}"))
    _, out, _ = cli(capsys, "report", "--db", db)
    total = next(line for line in out.splitlines() if line.startswith("total")).split()
    assert total[1:3] == [f"{want[0]:,}", f"{want[1]:,}"] and total[-1].rstrip("*") == report.fmt_cost(want[4])


def test_tail_sees_rows_whose_ids_commit_out_of_order(pg_server):
    """Two writers on one server: the lower id commits after the higher one is seen."""
    db = pg_server.new_database()
    writer = open_ledger(db)
    add(writer, model="before")
    reader = open_reader(db)
    rows = NewRows(reader.execute("SELECT max(id) FROM requests").fetchone()[0])
    with psycopg.connect(db) as slow:  # a transaction left open: its row's id is taken, not visible
        slow.execute("INSERT INTO requests (flow_id, started_at, outcome, model) VALUES ('slow', %s, 'ok', 'slow')",
                     [ts(NOW)])
        add(writer, model="fast")
        assert [r[4] for r in rows.read(reader)] == ["fast"]
        assert rows.read(reader) == []
    # committed now, below the id already shown: shown once all the same
    assert [r[4] for r in rows.read(reader)] == ["slow"]
    assert rows.read(reader) == []
    ids = [r[0] for r in select(db, "SELECT id FROM requests WHERE model IN ('slow', 'fast') ORDER BY id")]
    assert ids == sorted(ids) and select(db, "SELECT model FROM requests ORDER BY id")[1][0] == "slow"
    reader.close()
    writer.close()


# --- mistakes: one line, exit 2, never the password ---------------------------------------------


def assert_error_line(code: int, out: str, err: str, text: str) -> None:
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith("usage-ledger: error: ") and err.count("\n") == 1 and text in err, err
    assert "s3cret" not in err, err


def test_unreachable_or_wrong_databases_are_one_line_without_the_password(tmp_path, pg_server, capsys):
    from .proxy import free_port

    port = pg_server.port
    down = f"postgresql://ledger:s3cret-pw@127.0.0.1:{free_port()}/team"
    budgets = tmp_path / "b.toml"
    budgets.write_text('[[budget]]\nname = "d"\nlimit_usd = 1\nperiod = "day"\n')
    cases = [
        (down, "cannot connect to postgresql://ledger@127.0.0.1:"),
        (f"postgresql://ledger@127.0.0.1:{port}/no_such_db?password=s3cret-pw", 'database "no_such_db" does not exist'),
        (f"postgresql://nobody:s3cret-pw@127.0.0.1:{port}/postgres", 'role "nobody" does not exist'),
        ("postgresql://ledger:s3cret-pw@127.0.0.1:notaport/team", "invalid integer value"),
        (pg_server.url(), "not a usage ledger"),  # a database without the requests table
    ]
    for url, text in cases:
        for command in (["report"], ["tail"], ["reprice", "--dry-run"], ["budget", "--budgets", str(budgets)]):
            assert_error_line(*cli(capsys, *command, "--db", url), text)
    # As users run it: the console script, no traceback
    result = usage_ledger(tmp_path, "report", "--db", down)
    assert_one_line_error(result, "Connection refused")
    assert "s3cret" not in result.stderr


def test_backup_of_a_postgresql_ledger_says_to_use_pg_dump(tmp_path, pg_server):
    db = fill(pg_server.new_database(), [dict(model="m")])
    url = db.replace("ledger@", "ledger:s3cret-pw@")
    result = usage_ledger(tmp_path, "backup", "--db", url, str(tmp_path / "copy.db"))
    assert_one_line_error(result, "pg_dump")
    assert "s3cret" not in result.stderr and not (tmp_path / "copy.db").exists()


# --- the proxy's budgets count spend from the ledger it writes ------------------------------------

BUDGETS = """
timezone = "UTC"
[[budget]]
name = "search"
limit_usd = 10
period = "day"
tags = { team = "search" }
[[budget]]
name = "all"
limit_usd = 10
period = "total"
"""


def test_the_proxys_budgets_read_spend_from_either_backend(ledger_target):
    from usage_ledger.budgets.addon import read_spend
    from usage_ledger.budgets.config import parse_budget_file, period_bounds
    from usage_ledger.budgets.spend import SpendTracker

    today, _ = period_bounds("day", NOW, UTC)
    db = fill(ledger_target, [
        dict(started_at=ts(today), model="gpt-4o", cost_usd=0.25, tags='{"team": "search"}'),
        dict(started_at=ts(today), model="gpt-4o", cost_usd=0.5, tags='{"team": "ads"}'),
        dict(started_at=ts(today), model="llama", input_tokens=900, output_tokens=100, tags='{"team": "search"}'),
        dict(started_at=ts(today - timedelta(seconds=1)), model="gpt-4o", cost_usd=4.0, tags='{"team": "search"}'),
        dict(started_at=ts(today), model="gpt-4o", outcome="pending", tags='{"team": "search"}'),
        dict(started_at=ts(today), model="gpt-4o", outcome="blocked", cost_usd=9.0, tags='{"team": "search"}'),
    ])
    tracker = SpendTracker()
    read_spend(db, tracker, parse_budget_file(BUDGETS, "b.toml"))
    search, everything = tracker.status(NOW)
    assert (search.spent_usd, search.calls, search.unpriced_calls, search.unpriced_tokens) == (0.25, 2, 1, 1000)
    assert (everything.spent_usd, everything.calls) == (pytest.approx(4.75), 4)


def test_budgets_on_a_database_the_writer_has_not_created_yet_count_nothing(pg_server):
    from usage_ledger.budgets.addon import read_spend
    from usage_ledger.budgets.config import parse_budget_file
    from usage_ledger.budgets.spend import SpendTracker
    from usage_ledger.reader import LedgerUnavailable

    from .proxy import free_port

    tracker = SpendTracker()
    read_spend(pg_server.new_database(), tracker, parse_budget_file(BUDGETS, "b.toml"))  # no requests table
    assert [s.calls for s in tracker.status(NOW)] == [0, 0]

    with pytest.raises(LedgerUnavailable) as e:  # the server away: the proxy says so, never the password
        read_spend(f"postgresql://ledger:s3cret-pw@127.0.0.1:{free_port()}/x", tracker,
                   parse_budget_file(BUDGETS, "b.toml"))
    assert "s3cret" not in str(e.value) and "cannot connect to postgresql://ledger@127.0.0.1" in str(e.value)
