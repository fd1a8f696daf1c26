"""`usage-ledger reprice`: recompute stored costs with current prices."""

from __future__ import annotations

import argparse

from .. import report
from .common import CliError, add_db_argument, open_ledger, open_writer


def add_parser(sub) -> None:
    p = sub.add_parser("reprice", help="recompute costs with current prices")
    add_db_argument(p)
    p.add_argument("--since", help="only calls since YYYY-MM-DD, an ISO timestamp, or 7d ...")
    p.add_argument("--prices", help="a price override file; without one, rows an override file priced keep their cost")
    p.add_argument("--dry-run", action="store_true", help="say what would change, write nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ..pricing import PriceFileError, Pricer, apply_plan, plan_reprice
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name != "usage_ledger.pricing":
            raise  # a bug inside pricing, not a missing module
        raise CliError(f"repricing is not available in this version ({e})") from None
    since = report.parse_time(args.since) if args.since else None
    open_ledger(args.db).close()  # exists and is a ledger; never create one here
    try:
        pricer = Pricer(args.prices)
    except PriceFileError as e:
        raise CliError(f"bad price file: {e}") from None
    con = open_writer(args.db)
    try:
        plan = plan_reprice(con, pricer, since)
        print(summary(plan), flush=True)
        if not args.dry_run:
            apply_plan(con, plan)
    finally:
        con.close()
    print(f"dry run: nothing written ({plan.changed} rows would change)" if args.dry_run
          else f"repriced {plan.changed} rows")
    return 0


def usd(value: float) -> str:
    """Plain decimals to 1e-10 USD (what a stored cost holds), at least two: 0.00021, 12.50."""
    text = f"{value:.10f}".rstrip("0")
    return text + "0" * max(0, 2 - len(text.split(".")[1]))


def summary(plan) -> str:
    """What a RepricePlan changes, in the lines the command prints before it writes."""
    def rows(n: int) -> str:
        return f"{n} row" if n == 1 else f"{n} rows"

    lines = [f"{rows(plan.rows)} considered (finished calls): {plan.changed} change cost, "
             f"{plan.become_unpriced} of them to unpriced"]
    if plan.kept_override:
        lines.append(f"kept {rows(plan.kept_override)} priced by an override file (--prices FILE reprices them)")
    if plan.kept_reported:
        lines.append(f"kept {rows(plan.kept_reported)} whose cost the server reported")
    lines.append(f"total USD: {usd(plan.old_total_usd)} -> {usd(plan.new_total_usd)}")
    return "\n".join(lines)
