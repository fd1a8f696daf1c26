"""`usage-ledger reprice` on a real ledger (a SQLite file, a PostgreSQL database): what it keeps (override-priced rows without
--prices, reported costs, pending rows), what it says before writing, and --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usage_ledger.cli import main
from usage_ledger.pricing import GENAI_PRICES_SOURCE

from .ledgers import fill, select

WHEN = "2026-06-01T12:00:00.000Z"
OLD_OVERRIDE = "override:/gone/prices.json"
# gpt-4o-mini's bundled price: $0.15 per M input tokens, $0.60 per M output tokens.
MINI = dict(provider="openai", api="openai-chat", model="gpt-4o-mini", input_tokens=1000, output_tokens=100)
MINI_BUNDLED = 0.00021  # 1000 * 0.15e-6 + 100 * 0.6e-6


@pytest.fixture
def ledger(ledger_target: str) -> str:
    return fill(ledger_target, [
        dict(flow_id="stale", started_at=WHEN, **MINI, cost_usd=0.001, price_source=GENAI_PRICES_SOURCE),
        dict(flow_id="mine", started_at=WHEN, **MINI, cost_usd=1.0, price_source=OLD_OVERRIDE),
        dict(flow_id="gone", started_at=WHEN, provider="openai", api="openai-chat", model="no-such-model-xyz",
             input_tokens=10, output_tokens=10, cost_usd=0.5, price_source=GENAI_PRICES_SOURCE),
        dict(flow_id="charged", started_at=WHEN, provider="openrouter", api="openai-chat",
             model="openai/gpt-4o-mini", input_tokens=1000, output_tokens=100, cost_usd=0.3,
             price_source="reported:openrouter usage.cost"),
        dict(flow_id="flying", started_at=WHEN, outcome="pending", **MINI),
    ])


def costs(db: str) -> dict[str, tuple[float | None, str | None]]:
    return {f: (c, s) for f, c, s in select(db, "SELECT flow_id, cost_usd, price_source FROM requests")}


def reprice(capsys, db: str, *args: str) -> list[str]:
    assert main(["reprice", "--db", db, *args]) == 0
    out, err = capsys.readouterr()
    return out.splitlines()


SUMMARY = [
    "4 rows considered (finished calls): 2 change cost, 1 of them to unpriced",
    "kept 1 row priced by an override file (--prices FILE reprices them)",
    "kept 1 row whose cost the server reported",
    "total USD: 1.801 -> 1.30021",
]


def test_dry_run_says_what_would_change_and_writes_nothing(capsys, ledger: str) -> None:
    before = costs(ledger)
    assert reprice(capsys, ledger, "--dry-run") == [*SUMMARY, "dry run: nothing written (2 rows would change)"]
    assert costs(ledger) == before


def test_without_prices_override_rows_keep_their_cost(capsys, ledger: str) -> None:
    before = costs(ledger)
    assert reprice(capsys, ledger) == [*SUMMARY, "repriced 2 rows"]
    after = costs(ledger)
    assert after["stale"] == (MINI_BUNDLED, GENAI_PRICES_SOURCE)
    assert after["gone"] == (None, None)  # no known price: NULL, never a stale figure
    for kept in ("mine", "charged", "flying"):
        assert after[kept] == before[kept]
    # Nothing left to do: a second run changes nothing and says so.
    assert reprice(capsys, ledger)[0] == "4 rows considered (finished calls): 0 change cost, 0 of them to unpriced"


def test_prices_file_reprices_override_rows_too(capsys, ledger: str, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"gpt-4o-mini": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}))
    source = f"override:{prices}"
    lines = reprice(capsys, ledger, "--prices", str(prices))
    # 1000 * 1e-6 + 100 * 2e-6 = 0.0012 for both gpt-4o-mini rows; the OpenRouter row keeps its 0.3.
    assert lines == ["4 rows considered (finished calls): 3 change cost, 1 of them to unpriced",
                     "kept 1 row whose cost the server reported",
                     "total USD: 1.801 -> 0.3024", "repriced 3 rows"]
    after = costs(ledger)
    assert after["stale"] == after["mine"] == (0.0012, source)
    assert after["charged"] == (0.3, "reported:openrouter usage.cost")


def test_a_row_without_an_outcome_is_not_pending_so_it_is_repriced(capsys, ledger_target: str) -> None:
    db = fill(ledger_target, [dict(flow_id="old", started_at=WHEN, outcome=None, **MINI),
                              dict(flow_id="flying", started_at=WHEN, outcome="pending", **MINI)])
    assert reprice(capsys, db)[0] == "1 row considered (finished calls): 1 change cost, 0 of them to unpriced"
    assert costs(db) == {"old": (MINI_BUNDLED, GENAI_PRICES_SOURCE), "flying": (None, None)}
