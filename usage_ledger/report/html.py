"""The HTML report: one self-contained page (inline CSS and SVG charts), with no I/O of its own."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from datetime import date, timedelta

from .formats import COLUMNS, cells, fmt_cost, fmt_key, fmt_tokens, footnotes
from .queries import DayModel, Group, GroupBy


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
