"""`usage-ledger tail`: print each call once it has ended."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

from .. import report
from ..reader import placeholders, query
from .common import add_db_argument, open_ledger, positive_float

TAIL_COLUMNS = ("id, started_at, user_agent, provider, model, input_tokens, output_tokens, "
                "cost_usd, outcome, status_code")


def add_parser(sub) -> None:
    p = sub.add_parser("tail", help="follow calls live", description="Print each call as it ends. Ctrl-C stops.")
    add_db_argument(p)
    p.add_argument("--interval", type=positive_float, default=1.0, help="poll every SECONDS (default 1)")
    p.add_argument("--lines", "-n", type=int, default=10, help="show the last N calls first (default 10)")
    p.set_defaults(func=run)


def fit(text: str, width: int) -> str:
    """Exactly `width` characters: padded, or cut with an ellipsis, so columns never shift."""
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "\u2026"


def tail_line(row: tuple) -> str:
    _, started_at, user_agent, provider, model, tokens_in, tokens_out, cost, outcome, status = row
    try:
        when = datetime.fromisoformat(started_at).astimezone().strftime("%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        when = str(started_at)[:14]
    what = f"{provider or '?'}/{model or '?'}"
    result = f"{outcome} {status}" if outcome == "http_error" and status else str(outcome)
    return (f"{when}  {fit(report.short_tool(user_agent), 20)} {fit(what, 36)} "
            f"{report.fmt_tokens(tokens_in):>9} in {report.fmt_tokens(tokens_out):>8} out "
            f"{report.fmt_cost(cost):>10}  {result}")


def fetch_rows(con, where: str, params: list) -> list[tuple]:
    return query(con, f"SELECT {TAIL_COLUMNS} FROM requests WHERE {where} ORDER BY id", params).fetchall()


SETTLE_S = 30.0
"""How long a row with a lower id may still appear after a higher one: on PostgreSQL many
writers take ids from one sequence and commit in their own order (a batch commits within a
second or so); on SQLite rows appear in id order, and rereading the last seconds costs little."""


class NewRows:
    """The rows that appeared since the last look, each once, whatever order their ids commit in:
    every look reads the ids above the highest one seen SETTLE_S ago and skips those seen."""

    def __init__(self, last_id: int, settle_s: float = SETTLE_S) -> None:
        self.settle_s = settle_s
        self.marks: list[tuple[float, int]] = [(time.monotonic(), last_id)]  # (when, highest id then)
        self.seen: set[int] = set()

    def floor(self, now: float) -> int:
        while len(self.marks) > 1 and self.marks[1][0] <= now - self.settle_s:
            self.marks.pop(0)
        return self.marks[0][1]

    def read(self, con) -> list[tuple]:
        now = time.monotonic()
        floor = self.floor(now)
        rows = [r for r in fetch_rows(con, "id > ?", [floor]) if r[0] not in self.seen]
        self.seen = {i for i in self.seen if i > floor} | {r[0] for r in rows}
        self.marks.append((now, max([self.marks[-1][1], *(r[0] for r in rows)])))
        return rows


def run(args: argparse.Namespace) -> int:
    """Print each call once it has ended: new rows by id, pending ones when they complete."""
    con = open_ledger(args.db)
    last_id = query(con, "SELECT coalesce(max(id), 0) FROM requests").fetchone()[0]
    recent = fetch_rows(con, "id > ?", [last_id - args.lines]) if args.lines > 0 else []
    # Calls in flight now, except stale ones a stopped proxy left pending long ago.
    day_ago = report.iso_utc(datetime.now(UTC) - timedelta(days=1))
    pending = {r[0] for r in fetch_rows(con, "outcome = 'pending' AND started_at >= ?", [day_ago])}
    show = [r for r in recent if r[8] != "pending"]
    rows = NewRows(last_id)
    while True:
        for row in show:
            print(tail_line(row))
        sys.stdout.flush()
        time.sleep(args.interval)
        new = rows.read(con)
        done = []
        if pending:
            ids = sorted(pending)
            done = fetch_rows(con, f"id IN ({placeholders(len(ids))}) AND outcome <> 'pending'", ids)
        pending |= {r[0] for r in new if r[8] == "pending"}
        pending -= {r[0] for r in done}
        show = sorted(done + [r for r in new if r[8] != "pending"])
