"""`usage-ledger report`: usage and cost per group, as a table, JSON, CSV or HTML."""

from __future__ import annotations

import argparse
from contextlib import closing
from datetime import UTC, datetime

from .. import report
from ..reader import describe
from .common import CliError, add_db_argument, open_ledger, write_output


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="usage and cost per day, model, ...",
                       description="Requests, tokens and cost per group, with totals. Dates are UTC.")
    add_db_argument(p)
    p.add_argument("--by", default="day", metavar="|".join(report.GROUP_CHOICES),
                   help="group by this (default: day); the key's name in json/csv output is this value")
    p.add_argument("--since", help="YYYY-MM-DD, an ISO timestamp, or 7d / 2w / 12h ago")
    p.add_argument("--until", help="YYYY-MM-DD (that day included), an ISO timestamp (excluded), or 7d ...")
    p.add_argument("--format", choices=("table", "json", "csv", "html"), default="table")
    p.add_argument("--output", "-o", help="write here instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    group = report.parse_group_by(args.by)
    now = datetime.now(UTC)
    since = report.parse_time(args.since, now) if args.since else None
    until = report.parse_time(args.until, now, end=True) if args.until else None
    if since and until and since > until:
        raise CliError(f"--since {args.since} ({since}) is later than --until {args.until} ({until})")
    with closing(open_ledger(args.db)) as con:
        groups = report.summarise(con, group, since, until)
        if args.format == "json":
            text = report.to_json(groups, group)
        elif args.format == "csv":
            text = report.to_csv(groups, group)
        elif args.format == "table":
            text = report.to_table(groups, report.totals(con, since, until), group)
        else:
            text = report.to_html(groups, report.totals(con, since, until), group,
                                  report.daily_by_model(con, since, until),
                                  period=describe_period(since, until), source=describe(args.db),
                                  generated=now.astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    write_output(text, args.output)
    return 0


def describe_period(since: str | None, until: str | None) -> str:
    if since and until:
        return f"{since[:16].replace('T', ' ')} to {until[:16].replace('T', ' ')} UTC"
    if since:
        return f"since {since[:16].replace('T', ' ')} UTC"
    if until:
        return f"until {until[:16].replace('T', ' ')} UTC"
    return "all calls"
