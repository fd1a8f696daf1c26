"""Ledger reports: SQL aggregation and text/JSON/CSV/HTML formatting, with no I/O of their own.

Every figure follows SQL's `sum()`: a group's token or cost sum is NULL (None, `null`, "-")
when no row of the group has a value, so "unknown" never turns into 0. Rows of every outcome
count, pending ones included.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


class ReportError(ValueError):
    """A user mistake in a report's arguments (bad --by, bad date)."""


# --by: the whitelist of group expressions. The key name is the --by value itself.
GROUP_EXPRESSIONS = {
    "day": "substr(started_at, 1, 10)",
    "week": "strftime('%Y-W%W', started_at)",
    "month": "substr(started_at, 1, 7)",
    "model": "model",
    "provider": "provider",
    "api": "api",
    "host": "host",
    "user_agent": "user_agent",
}
TIME_GROUPS = ("day", "week", "month")
TAG_EXPRESSION = "CASE WHEN json_valid(tags) THEN json_extract(tags, ?) END"
GROUP_CHOICES = (*GROUP_EXPRESSIONS, "tag:NAME")


@dataclass(frozen=True)
class GroupBy:
    name: str  # the --by value and the JSON/CSV key name: "model", "day", "tag:team", ...
    expr: str
    params: tuple[str, ...] = ()

    @property
    def is_time(self) -> bool:
        return self.name in TIME_GROUPS


def parse_group_by(text: str) -> GroupBy:
    """`day`, `model`, ... or `tag:NAME` (tag names are stored lower-case, so NAME is lowered)."""
    if text in GROUP_EXPRESSIONS:
        return GroupBy(text, GROUP_EXPRESSIONS[text])
    if text.startswith("tag:"):
        name = text[4:].strip().lower()
        if not name or '"' in name or any(ord(c) < 32 for c in name):
            raise ReportError(f"bad tag name in --by {text!r}")
        # A quoted JSON path label, so names with dots or dashes work; passed as a parameter.
        return GroupBy(f"tag:{name}", TAG_EXPRESSION, (f'$."{name}"',))
    raise ReportError(f"unknown --by {text!r} (choose from {', '.join(GROUP_CHOICES)})")


# --- time bounds -------------------------------------------------------------------------------

_RELATIVE = re.compile(r"(\d+)([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def iso_utc(moment: datetime) -> str:
    """The ledger's own timestamp format, so bounds compare as plain strings with `started_at`."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str, now: datetime | None = None, *, end: bool = False) -> str:
    """A bound for `started_at`: YYYY-MM-DD (a UTC day), an ISO timestamp (UTC unless it says
    otherwise), or Nh/Nd/Nw before now. For an upper bound (`end`), a bare date includes that day."""
    text = text.strip()
    now = now or datetime.now(UTC)
    if m := _RELATIVE.fullmatch(text):
        return iso_utc(now - timedelta(**{_UNITS[m[2]]: int(m[1])}))
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            return f"{day.isoformat()}T00:00:00.000Z"
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(f"bad date {text!r} (use YYYY-MM-DD, an ISO timestamp, or 7d / 2w / 12h)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso_utc(moment)


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


_AGGREGATES = """count(*), sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens),
    sum(output_tokens), sum(reasoning_tokens), sum(cost_usd),
    count(*) - count(cost_usd), coalesce(sum(outcome = 'pending'), 0)"""


def summarise(con: sqlite3.Connection, group: GroupBy, since: str | None = None,
              until: str | None = None) -> list[Group]:
    """One Group per distinct key: time groups in time order, others by cost, then requests."""
    where, params = _where(since, until)
    sql = f"SELECT {group.expr} AS grp, {_AGGREGATES} FROM requests{where} GROUP BY grp"
    groups = [Group(*row) for row in con.execute(sql, [*group.params, *params])]
    if group.is_time:
        groups.sort(key=lambda g: (g.key is None, g.key or ""))
    else:
        groups.sort(key=lambda g: (-(g.cost_usd or 0), -g.requests, g.key is None, str(g.key)))
    return groups


def totals(con: sqlite3.Connection, since: str | None = None, until: str | None = None) -> Group:
    where, params = _where(since, until)
    return Group(None, *con.execute(f"SELECT {_AGGREGATES} FROM requests{where}", params).fetchone())


@dataclass
class DayModel:
    day: str
    model: str | None
    cost_usd: float | None
    tokens: int | None  # input + output


def daily_by_model(con: sqlite3.Connection, since: str | None = None,
                   until: str | None = None) -> list[DayModel]:
    where, params = _where(since, until)
    sql = (f"SELECT substr(started_at, 1, 10) AS day, model, sum(cost_usd), "
           f"sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) "
           f"FROM requests{where} GROUP BY day, model ORDER BY day")
    return [DayModel(*row) for row in con.execute(sql, params) if row[0]]


# --- machine formats ---------------------------------------------------------------------------


OUTPUT_FIELDS = (*FIELDS, "unpriced_calls")  # unpriced_calls: rows of the group with cost_usd NULL


def round_usd(usd: float | None) -> float | None:
    """USD to 10 significant digits: the float noise of summing (0.021641399999999998) goes,
    every real digit of a price times a token count stays."""
    return None if usd is None else float(f"{usd:.10g}")


def record(g: Group, group: GroupBy) -> dict:
    """A group as JSON/CSV: the key under the --by name, then OUTPUT_FIELDS (SQL sum semantics,
    cost_usd rounded by round_usd)."""
    values = {f: getattr(g, f) for f in FIELDS}
    values["cost_usd"] = round_usd(g.cost_usd)
    return {group.name: g.key, **values, "unpriced_calls": g.unpriced}


def records(groups: list[Group], group: GroupBy) -> list[dict]:
    return [record(g, group) for g in groups]


def to_json(groups: list[Group], group: GroupBy) -> str:
    return json.dumps(records(groups, group), indent=2, ensure_ascii=False) + "\n"


def to_csv(groups: list[Group], group: GroupBy) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([group.name, *OUTPUT_FIELDS])
    for row in records(groups, group):
        writer.writerow(["" if v is None else v for v in row.values()])
    return out.getvalue()


# --- people formats ----------------------------------------------------------------------------


def fmt_tokens(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def fmt_cost(usd: float | None) -> str:
    """$1,234.56 / $0.0123 / $0.000042: two significant digits at least, never a fake $0."""
    if usd is None:
        return "-"
    size = abs(usd)
    if size >= 1:
        return f"${usd:,.2f}"
    if size >= 0.01 or size == 0:
        return f"${usd:.4f}" if size else "$0.00"
    return f"${usd:.{min(10, 1 - math.floor(math.log10(size)))}f}"


def fmt_key(key: str | None) -> str:
    return "(none)" if key is None else str(key)


COLUMNS = ("requests", "input", "cached", "cache write", "output", "reasoning", "cost")


def cells(g: Group) -> list[str]:
    cost = fmt_cost(g.cost_usd)
    if g.cost_usd is not None and g.unpriced:
        cost += "*"
    return [f"{g.requests:,}", fmt_tokens(g.input_tokens), fmt_tokens(g.cached_input_tokens),
            fmt_tokens(g.cache_write_tokens), fmt_tokens(g.output_tokens),
            fmt_tokens(g.reasoning_tokens), cost]


def footnotes(total: Group) -> list[str]:
    notes = []
    if total.unpriced:
        verb = "is" if total.unpriced == 1 else "are"
        notes.append(f"{total.unpriced:,} of {total.requests:,} calls {verb} unpriced (no known price, no usage reported, or pending):")
        notes.append("  '-' = no call of the group is priced, '*' = the cost leaves the unpriced calls out.")
    if total.pending:
        calls = "call is" if total.pending == 1 else "calls are"
        notes.append(f"{total.pending:,} {calls} still pending (in flight, or the proxy stopped before the end).")
    return notes


def to_table(groups: list[Group], total: Group, group: GroupBy) -> str:
    if not groups:
        return "No calls recorded in this period.\n"
    header = [group.name, *COLUMNS]
    body = [[fmt_key(g.key), *cells(g)] for g in groups]
    foot = ["total", *cells(total)]
    if any(row[-1].endswith("*") for row in [*body, foot]):
        # Keep the digits of starred and plain costs in line.
        for row in [header, *body, foot]:
            row[-1] += "" if row[-1].endswith("*") else " "
    widths = [max(len(row[i]) for row in [header, *body, foot]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [line(header), rule, *map(line, body), rule, line(foot)]
    notes = footnotes(total)
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


# --- HTML --------------------------------------------------------------------------------------

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
OTHER_COLOUR = "#bab0ac"
MAX_SERIES = len(PALETTE)


def nice_step(top: float, ticks: int = 5) -> float:
    """A 1/2/5 x 10^k step giving about `ticks` intervals up to `top`."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * magnitude:
            return m * magnitude
    return 10 * magnitude


def day_range(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


@dataclass
class Series:
    name: str
    colour: str
    values: list[float]


def chart_series(cells_: list[DayModel], days: list[str], attr: str) -> list[Series]:
    """One series per model (the costliest first, then by tokens); the rest merged as "other"."""
    by_model: dict[str | None, dict[str, float]] = {}
    cost: dict[str | None, float] = {}
    tokens: dict[str | None, float] = {}
    for c in cells_:
        by_model.setdefault(c.model, {})[c.day] = getattr(c, attr) or 0
        cost[c.model] = cost.get(c.model, 0) + (c.cost_usd or 0)
        tokens[c.model] = tokens.get(c.model, 0) + (c.tokens or 0)
    models = sorted(by_model, key=lambda m: (-cost[m], -tokens[m], m is None, str(m)))
    named, rest = models[:MAX_SERIES], models[MAX_SERIES:]
    if len(rest) == 1:
        named, rest = models, []
    series = [Series(fmt_key(m), PALETTE[i], [by_model[m].get(d, 0) for d in days])
              for i, m in enumerate(named)]
    if rest:
        series.append(Series(f"other ({len(rest)} models)", OTHER_COLOUR,
                             [sum(by_model[m].get(d, 0) for m in rest) for d in days]))
    return series


def svg_stacked_bars(days: list[str], series: list[Series], fmt_value, label: str) -> str:
    """A stacked bar chart as inline SVG: one bar per day, one colour per series."""
    width, height = 960, 320
    left, right, top, bottom = 78, 16, 16, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    stacks = [sum(s.values[i] for s in series) for i in range(len(days))]
    peak = max(stacks, default=0)
    step = nice_step(peak)
    y_max = step * max(1, math.ceil(peak / step - 1e-9)) if peak > 0 else step
    slot = plot_w / max(1, len(days))
    bar_w = max(1.0, slot * 0.78)

    def y(v: float) -> float:
        return top + plot_h - v / y_max * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'role="img" aria-label="{html.escape(label)}" class="chart">']
    ticks = int(round(y_max / step))
    for i in range(ticks + 1):
        v = i * step
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        out.append(f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{html.escape(fmt_value(v))}</text>')
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        base = 0.0
        parts = []
        for s in series:
            v = s.values[i]
            if v <= 0:
                continue
            tip = html.escape(f"{day} {s.name}: {fmt_value(v)}")
            parts.append(f'<rect x="{x:.1f}" y="{y(base + v):.1f}" width="{bar_w:.1f}" '
                         f'height="{y(base) - y(base + v):.1f}" fill="{s.colour}"><title>{tip}</title></rect>')
            base += v
        out.extend(parts)
    every = max(1, math.ceil(len(days) / 12))
    for i, day in enumerate(days):
        if i % every == 0:
            x = left + i * slot + slot / 2
            text = day[5:] if i and day[:4] == days[i - every][:4] else day
            out.append(f'<text x="{x:.1f}" y="{height - bottom + 18}" text-anchor="middle">{text}</text>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" class="axis"/>')
    out.append("</svg>")
    return "\n".join(out)


def legend(series: list[Series]) -> str:
    items = "".join(f'<span><i style="background:{s.colour}"></i>{html.escape(s.name)}</span>' for s in series)
    return f'<div class="legend">{items}</div>'


def short_tokens(v: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= size:
            return f"{v / size:,.3g}{suffix}"
    return f"{v:,.0f}"


def axis_cost(v: float) -> str:
    """Plain decimals, never an exponent: $0, $0.0000156, $0.25, $12.50."""
    if v == 0:
        return "$0"
    if v >= 1:
        return f"${v:,.2f}"
    return "$" + f"{v:.10f}".rstrip("0").rstrip(".")


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 2rem auto; max-width: 1000px; padding: 0 1rem; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.meta { color: #666; margin-top: 0; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; min-width: 9rem; }
.card b { display: block; font-size: 1.3rem; }
.chart { width: 100%; height: auto; }
.chart text { font-size: 12px; fill: #555; }
.chart .grid { stroke: #e5e5e5; } .chart .axis { stroke: #888; }
.legend { display: flex; flex-wrap: wrap; gap: .3rem 1.2rem; margin: .3rem 0 0 78px; font-size: 13px; }
.legend i { display: inline-block; width: .8rem; height: .8rem; margin-right: .35rem;
            border-radius: 2px; vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; word-break: break-all; }
thead th { border-bottom: 2px solid #ccc; } tfoot td { font-weight: 600; border-top: 2px solid #ccc; }
.notes { color: #666; font-size: 13px; }
"""


def to_html(groups: list[Group], total: Group, group: GroupBy, daily: list[DayModel], *,
            period: str, source: str, generated: str) -> str:
    esc = html.escape
    charts = "<p>No calls recorded in this period.</p>"
    if daily:
        days = day_range(daily[0].day, daily[-1].day)
        cost_series = chart_series(daily, days, "cost_usd")
        token_series = chart_series(daily, days, "tokens")
        priced = any(c.cost_usd for c in daily)
        cost_chart = (svg_stacked_bars(days, cost_series, axis_cost, "Cost per day by model")
                      if priced else "<p>No priced calls in this period.</p>")
        charts = (
            "<h2>Cost per day (USD), by model</h2>\n" + cost_chart + "\n"
            + legend([s for s in cost_series if any(s.values)])
            + ("<p class=\"notes\">Unpriced calls add nothing to this chart.</p>" if total.unpriced else "")
            + "\n<h2>Tokens per day (input + output), by model</h2>\n"
            + svg_stacked_bars(days, token_series, short_tokens, "Tokens per day by model")
            + "\n" + legend(token_series)
        )
    head = "".join(f"<th>{esc(h)}</th>" for h in [group.name, *COLUMNS])
    body = "\n".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in [fmt_key(g.key), *cells(g)]) + "</tr>" for g in groups
    )
    foot = "".join(f"<td>{esc(c)}</td>" for c in ["total", *cells(total)])
    notes = "<br>".join(esc(n) for n in footnotes(total))
    tokens_in, tokens_out = fmt_tokens(total.input_tokens), fmt_tokens(total.output_tokens)
    starred = bool(total.unpriced and total.cost_usd is not None)
    cost = fmt_cost(total.cost_usd) + ("*" if starred else "")
    star_note = (f'<small class="notes">* leaves out {total.unpriced:,} unpriced '
                 f'call{"s" * (total.unpriced != 1)}</small>' if starred else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>usage-ledger report</title>
<style>{CSS}</style>
</head>
<body>
<h1>LLM usage report</h1>
<p class="meta">{esc(period)} &middot; by {esc(group.name)} &middot; {esc(source)} &middot; generated {esc(generated)}</p>
<div class="cards">
<div class="card">cost<b>{esc(cost)}</b>{star_note}</div>
<div class="card">calls<b>{total.requests:,}</b></div>
<div class="card">input tokens<b>{esc(tokens_in)}</b></div>
<div class="card">output tokens<b>{esc(tokens_out)}</b></div>
</div>
{charts}
<h2>By {esc(group.name)}</h2>
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
<tfoot><tr>{foot}</tr></tfoot>
</table>
<p class="notes">{notes}</p>
</body>
</html>
"""


# --- short forms for `tail` and `run` ----------------------------------------------------------

_SDK = re.compile(r"([A-Za-z][\w.-]*)/(Python|JS|Node|Go|Java|Ruby)\s+v?(\d[\w.]*)")
_PRODUCT = re.compile(r"([A-Za-z][\w.+-]*)(?:/v?(\d[\w.]*))?")


def short_version(version: str) -> str:
    return ".".join(version.split(".")[:2])


def short_tool(user_agent: str | None) -> str:
    """`OpenAI/Python 1.51.0` -> `openai-python/1.51`, `curl/8.5.0` -> `curl/8.5`."""
    if not user_agent:
        return "?"
    if m := _SDK.match(user_agent.strip()):
        return f"{m[1].lower()}-{m[2].lower()}/{short_version(m[3])}"
    if m := _PRODUCT.match(user_agent.strip()):
        name = m[1].lower()[:24]
        return f"{name}/{short_version(m[2])}" if m[2] else name
    return user_agent.strip()[:24]
