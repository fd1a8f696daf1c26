"""`usage-ledger budget`: the spend of each budget in its period, as the proxy counts it."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from usage_ledger.budgets.config import period_bounds
from usage_ledger.cli import main
from usage_ledger.cli.budget import standings

from .ledgers import fill, ts
from .test_cli import assert_one_line_error, usage_ledger

FILE = """
timezone = "UTC"

[[budget]]
name = "daily"
limit_usd = 1
period = "day"
warn_at = 0.5

[[budget]]
name = "gpt-4o-month"
limit_usd = 0.5
period = "month"
action = "warn"
model = "gpt-4o*"

[[budget]]
name = "ever"
limit_usd = 100
period = "total"
"""


def fill_period(tmp_path: Path, target: str) -> tuple[str, Path, datetime]:
    """A ledger with calls in today's UTC period (and one the day before), and the budget file."""
    now = datetime.now(UTC)
    today, _ = period_bounds("day", now, UTC)
    db = fill(target, [
        dict(started_at=ts(today), model="gpt-4o", input_tokens=1000, output_tokens=10, cost_usd=0.25),
        dict(started_at=ts(today), model="claude-sonnet-4-5", input_tokens=10, output_tokens=5, cost_usd=0.5),
        dict(started_at=ts(today), model="local-llama", input_tokens=900, output_tokens=100, total_tokens=1000),
        dict(started_at=ts(today - timedelta(seconds=1)), model="gpt-4o", cost_usd=5.0),  # yesterday
        dict(started_at=ts(today), model="gpt-4o", outcome="pending"),  # not finished: not counted
        dict(started_at=ts(today), model="gpt-4o", outcome="blocked", cost_usd=9.0),  # refused: counts nothing
    ])
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(FILE)
    return db, budgets, today


@pytest.fixture
def setup(tmp_path: Path, ledger_target: str) -> tuple[str, Path, datetime]:
    """fill_period on each backend."""
    return fill_period(tmp_path, ledger_target)


@pytest.fixture
def setup_file(tmp_path: Path) -> tuple[str, Path, datetime]:
    """fill_period in a SQLite file, for the console-script tests."""
    return fill_period(tmp_path, str(tmp_path / "l.db"))


def test_the_table_shows_spend_limit_percent_calls_state_and_reset(setup, capsys):
    db, budgets, today = setup
    assert main(["budget", "--budgets", str(budgets), "--db", db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["budget", "period", "action", "spent", "limit", "used", "calls", "state", "resets"]
    tomorrow = (today + timedelta(days=1)).strftime("%Y-%m-%d %H:%M UTC")
    assert out[1].split() == ["daily", "day", "block", "$0.75", "$1.00", "75.0%", "3", "warning", *tomorrow.split()]
    assert out[3].split()[:8] == ["ever", "total", "block", "$5.75", "$100.00", "5.8%", "4", "ok"]
    assert out[3].split()[8] == "never"
    assert "  daily: cost unknown for 1 call(s) (1,000 tokens), not in its spend" in out[4]


def test_json_gives_the_numbers_and_the_reset_instant(setup, capsys):
    db, budgets, today = setup
    assert main(["budget", "--budgets", str(budgets), "--db", db, "--format", "json"]) == 0
    daily, month, ever = json.loads(capsys.readouterr().out)
    assert (daily["spent_usd"], daily["percent"], daily["calls"], daily["state"]) == (0.75, 75.0, 3, "warning")
    assert (daily["unpriced_calls"], daily["unpriced_tokens"]) == (1, 1000)
    assert daily["period_start"] == today.isoformat().replace("+00:00", "Z")
    assert daily["resets_at"] == (today + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    # scoped to gpt-4o*: this month's gpt-4o calls only, yesterday's too when it is the same month
    same_month = (today - timedelta(seconds=1)).month == today.month
    assert month["scope"] == {"model": "gpt-4o*"} and month["action"] == "warn"
    assert month["spent_usd"] == (5.25 if same_month else 0.25)
    assert month["state"] == ("over" if same_month else "ok")
    assert (ever["spent_usd"], ever["resets_at"], ever["calls"]) == (5.75, None, 4)


def test_a_new_period_starts_from_nothing(setup):
    db, budgets, today = setup
    (daily, _, ever), _ = standings(str(budgets), db, now=today + timedelta(days=1, seconds=1))
    assert (daily.spent_usd, daily.calls) == (0.0, 0)
    assert ever.spent_usd == pytest.approx(5.75)


def test_a_used_up_block_budget_says_so(tmp_path, setup, capsys):
    db, _, _ = setup
    tight = tmp_path / "tight.toml"
    tight.write_text('timezone = "UTC"\nunpriced_usd_per_mtok = 1.0\n'
                     '[[budget]]\nname = "tight"\nlimit_usd = 0.5\nperiod = "day"\n')
    assert main(["budget", "--budgets", str(tight), "--db", db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:8] == ["tight", "day", "block", "$0.7510", "$0.5000", "150.2%", "3", "used"]
    assert "counted at the file's unpriced_usd_per_mtok, $1.0 per million tokens" in out[2]


def test_mistakes_are_one_line(tmp_path, setup_file):
    db, budgets, _ = setup_file
    assert_one_line_error(usage_ledger(tmp_path, "budget", "--db", db), "no budget file")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[budget]]\nname = "x"\nlimit_usd = -1\nperiod = "day"\n')
    assert_one_line_error(usage_ledger(tmp_path, "budget", "--budgets", str(bad), "--db", db), str(bad))
    assert_one_line_error(usage_ledger(tmp_path, "budget", "--budgets", str(budgets), "--db",
                                       str(tmp_path / "none.db")), "no ledger")


def test_the_budget_file_defaults_to_the_proxys_environment_variable(tmp_path, setup_file):
    db, budgets, _ = setup_file
    result = usage_ledger(tmp_path, "budget", "--db", db, "--format", "json",
                          USAGE_LEDGER_BUDGETS=str(budgets))
    assert result.returncode == 0, result.stderr
    assert [b["name"] for b in json.loads(result.stdout)] == ["daily", "gpt-4o-month", "ever"]


def test_run_ends_with_the_budgets_the_proxy_counted_against(tmp_path):
    from .standin import StandIn
    from .test_cli import CHAT_CASE, CLIENT, free_port

    budgets = tmp_path / "budgets.toml"
    budgets.write_text('[[budget]]\nname = "daily"\nlimit_usd = 20\nperiod = "day"\n')
    db = tmp_path / "l.db"
    with StandIn() as standin:
        result = usage_ledger(tmp_path, "run", "--proxy", f"http://127.0.0.1:{free_port()}", "--db", db,
                              "--confdir", str(tmp_path / "conf"), "--", sys.executable, "-c", CLIENT,
                              standin.url, CHAT_CASE, USAGE_LEDGER_BUDGETS=str(budgets))
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    at = lines.index("usage-ledger: budgets")
    assert lines[at + 2].split()[:7] == ["daily", "day", "block", "$0.00", "$20.00", "0.0%", "1"]
