"""Report queries: the --by whitelist, time bounds, and the SQL aggregation behind every report.

Every figure follows SQL's `sum()`: a group's token or cost sum is NULL (None) when no row of
the group has a value, so "unknown" never turns into 0. Rows of every outcome count, pending
ones included. Each query runs on a SQLite or a PostgreSQL ledger (`reader.query`; the
expressions that differ between them are reader.py's), with the same results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ..dialect import SQLITE, Dialect
from ..reader import PENDING_CALLS, dialect_of, query, tag_expression, week_expression


class ReportError(ValueError):
    """A user mistake in a report's arguments (bad --by, bad date)."""


# --by: the whitelist of group expressions (SQLite's words; `GroupBy.sql` gives each dialect's).
# The key name is the --by value itself.
GROUP_EXPRESSIONS = {
    "day": "substr(started_at, 1, 10)",
    "week": week_expression(SQLITE),
    "month": "substr(started_at, 1, 7)",
    "model": "model",
    "provider": "provider",
    "api": "api",
    "host": "host",
    "user_agent": "user_agent",
    "machine": "machine",  # which proxy: a shared ledger's person or box
}
TIME_GROUPS = ("day", "week", "month")
GROUP_CHOICES = (*GROUP_EXPRESSIONS, "tag:NAME")


@dataclass(frozen=True)
class GroupBy:
    name: str  # the --by value and the JSON/CSV key name: "model", "day", "tag:team", ...
    tag: str | None = None  # for tag:NAME, the tag's (lower-case) name

    @property
    def is_time(self) -> bool:
        return self.name in TIME_GROUPS

    def sql(self, dialect: Dialect = SQLITE) -> tuple[str, tuple[str, ...]]:
        """The group's SQL expression in the dialect's words, and its parameters."""
        if self.tag is not None:
            return tag_expression(dialect, self.tag)
        if self.name == "week":
            return week_expression(dialect), ()
        return GROUP_EXPRESSIONS[self.name], ()


def parse_group_by(text: str) -> GroupBy:
    """`day`, `model`, ... or `tag:NAME` (tag names are stored lower-case, so NAME is lowered)."""
    if text in GROUP_EXPRESSIONS:
        return GroupBy(text)
    if text.startswith("tag:"):
        name = text[4:].strip().lower()
        if not name or '"' in name or any(ord(c) < 32 for c in name):
            raise ReportError(f"bad tag name in --by {text!r}")
        return GroupBy(f"tag:{name}", name)  # the name is passed as a parameter, never as SQL
    raise ReportError(f"unknown --by {text!r} (choose from {', '.join(GROUP_CHOICES)})")


# --- time bounds -------------------------------------------------------------------------------

_RELATIVE = re.compile(r"(\d+)([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def iso_utc(moment: datetime) -> str:
    """The ledger's own timestamp format, so bounds compare as plain strings with `started_at`."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str, now: datetime | None = None, *, end: bool = False) -> str:
    """A bound for `started_at`: a date as ISO 8601 writes it (YYYY-MM-DD, YYYYMMDD, 2026-W47-5: a
    UTC day), an ISO timestamp (UTC unless it says otherwise), or Nh/Nd/Nw before now. For an
    upper bound (`end`), a date includes that day. Raises ReportError for anything else, or a
    moment outside the years 1-9999."""
    text = text.strip()
    now = now or datetime.now(UTC)
    bad = f"bad date {text!r} (use YYYY-MM-DD, an ISO timestamp, or 7d / 2w / 12h)"
    try:
        if m := _RELATIVE.fullmatch(text):
            return iso_utc(now - timedelta(**{_UNITS[m[2]]: int(m[1])}))
        try:
            day = date.fromisoformat(text)
        except ValueError:
            moment = datetime.fromisoformat(text)
        else:
            if end and day == date.max:  # the last day there is: ISO 8601's 24:00 ends it
                return f"{day.isoformat()}T24:00:00.000Z"
            return f"{(day + timedelta(days=1 if end else 0)).isoformat()}T00:00:00.000Z"
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return iso_utc(moment)
    except ValueError:
        raise ReportError(bad) from None
    except OverflowError:
        raise ReportError(f"date {text!r} is out of range (years 1 to 9999)") from None


def _where(since: str | None, until: str | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    if since:
        clauses.append("started_at >= ?")
        params.append(since)
    if until:
        clauses.append("started_at < ?")
        params.append(until)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


# --- aggregation -------------------------------------------------------------------------------

FIELDS = ("requests", "input_tokens", "cached_input_tokens", "cache_write_tokens",
          "output_tokens", "reasoning_tokens", "cost_usd")


@dataclass
class Group:
    key: str | None
    requests: int
    input_tokens: int | None
    cached_input_tokens: int | None
    cache_write_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: float | None
    unpriced: int  # rows with cost_usd NULL
    pending: int  # rows still pending


_AGGREGATES = f"""count(*), sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens),
    sum(output_tokens), sum(reasoning_tokens), sum(cost_usd),
    count(*) - count(cost_usd), {PENDING_CALLS}"""


def summarise(con, group: GroupBy, since: str | None = None,
              until: str | None = None) -> list[Group]:
    """One Group per distinct key: time groups in time order, others by cost, then requests.
    con: a ledger connection, SQLite or PostgreSQL (reader.open_reader)."""
    where, params = _where(since, until)
    expr, expr_params = group.sql(dialect_of(con))
    sql = f"SELECT {expr} AS grp, {_AGGREGATES} FROM requests{where} GROUP BY grp"
    groups = [Group(*row) for row in query(con, sql, [*expr_params, *params])]
    if group.is_time:
        groups.sort(key=lambda g: (g.key is None, g.key or ""))
    else:
        groups.sort(key=lambda g: (-(g.cost_usd or 0), -g.requests, g.key is None, str(g.key)))
    return groups


def totals(con, since: str | None = None, until: str | None = None) -> Group:
    where, params = _where(since, until)
    return Group(None, *query(con, f"SELECT {_AGGREGATES} FROM requests{where}", params).fetchone())


@dataclass
class DayModel:
    day: str
    model: str | None
    cost_usd: float | None
    tokens: int | None  # input + output


def daily_by_model(con, since: str | None = None,
                   until: str | None = None) -> list[DayModel]:
    where, params = _where(since, until)
    sql = (f"SELECT substr(started_at, 1, 10) AS day, model, sum(cost_usd), "
           f"sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) "
           f"FROM requests{where} GROUP BY day, model ORDER BY day")
    return [DayModel(*row) for row in query(con, sql, params) if row[0]]
