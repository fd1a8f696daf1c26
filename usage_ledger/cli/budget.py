"""`usage-ledger budget`: each budget's spend in its current period, read from the ledger.

The numbers are the proxy's own: the same file parsing (budgets/config.py) and the same
counting (budgets/spend.py's SpendTracker over the ledger's finished rows). Calls still in
flight are the running proxy's to know; here only finished calls count.
"""

from __future__ import annotations

import argparse
import json
import os
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from .common import CliError, add_db_argument, open_ledger

ENV = "USAGE_LEDGER_BUDGETS"


def add_parser(sub) -> None:
    p = sub.add_parser("budget", help="each budget's spend, limit and reset time",
                       description="Each budget of the budget file in its current period: spend, limit, "
                                   "percent used, calls, calls whose cost is unknown, and when it resets. "
                                   "Counts finished calls in the ledger, as the proxy does.")
    p.add_argument("--budgets", default=os.environ.get(ENV) or None, metavar="FILE",
                   help=f"the budget file (TOML; default ${ENV}, as the proxy's ledger_budgets option)")
    add_db_argument(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=run)


def standings(budgets: str, db: str, now: datetime | None = None) -> tuple[list, object]:
    """(each budget's Standing in its period at `now` (UTC; default the present), the BudgetFile).

    Raises CliError for a missing or bad budget file (its one-line reason) or an unreadable ledger."""
    from ..budgets.config import BudgetFileError, load_budget_file
    from ..budgets.spend import SpendTracker, period_rows

    try:
        file = load_budget_file(str(Path(budgets).expanduser()))
    except BudgetFileError as e:
        raise CliError(str(e)) from None
    now = now or datetime.now(UTC)
    tracker = SpendTracker()
    with closing(open_ledger(db)) as con:
        tracker.reload(file, period_rows(con, tracker.since(file, now)), now)
    return tracker.status(now), file


def as_json(s, file) -> dict:
    zone = file.zone()
    b = s.budget
    scope = {k: v for k, v in b.model_dump(include={"tags", "api_key_id", "provider", "model", "user_agent"}).items()
             if v is not None}
    return {
        "name": b.name, "period": b.period, "action": b.action, "scope": scope,
        "limit_usd": b.limit_usd, "warn_at": b.warn_at,
        "spent_usd": float(f"{s.spent_usd:.10g}"), "percent": round(100 * s.spent_usd / b.limit_usd, 1),
        "state": state(s), "calls": s.calls,
        "unpriced_calls": s.unpriced_calls, "unpriced_tokens": s.unpriced_tokens,
        "period_start": s.start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "resets_at": None if s.end is None else s.end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "resets_at_local": None if s.end is None else s.end.astimezone(zone).isoformat(),
    }


def state(s) -> str:
    """`used up` (a block budget refuses calls now), `over` (a warn budget past its limit),
    `warning` (past warn_at), or `ok`."""
    if s.spent_usd >= s.budget.limit_usd:
        return "used up" if s.budget.action == "block" else "over"
    return "warning" if s.warning() else "ok"


def lines(standings_, file) -> list[str]:
    """The table a person reads: one line per budget, then a note per budget with unpriced calls."""
    from ..budgets.spend import money

    zone = file.zone()
    fallback = file.unpriced_usd_per_mtok
    counted = (f"counted at the file's unpriced_usd_per_mtok, ${fallback} per million tokens" if fallback
               else "not in its spend (the file's unpriced_usd_per_mtok can price them)")
    head = ("budget", "period", "action", "spent", "limit", "used", "calls", "state", "resets")
    rows = []
    notes = []
    for s in standings_:
        b = s.budget
        resets = "never" if s.end is None else s.end.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z").strip()
        rows.append((b.name, b.period, b.action, f"${money(s.spent_usd, b.limit_usd)}",
                     f"${money(b.limit_usd, b.limit_usd)}", f"{100 * s.spent_usd / b.limit_usd:.1f}%",
                     f"{s.calls:,}", state(s), resets))
        if s.unpriced_calls:
            notes.append(f"  {b.name}: cost unknown for {s.unpriced_calls:,} call(s) "
                         f"({s.unpriced_tokens:,} tokens), {counted}")
    if not rows:
        return ["usage-ledger: the budget file declares no budgets"]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    right = {3, 4, 5, 6}
    out = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
           for r in (head, *rows)]
    return out + notes


def run(args: argparse.Namespace) -> int:
    if not args.budgets:
        raise CliError(f"no budget file: pass --budgets FILE or set ${ENV}")
    found, file = standings(args.budgets, args.db)
    if args.format == "json":
        print(json.dumps([as_json(s, file) for s in found], indent=2))
    else:
        print("\n".join(lines(found, file)))
    return 0
