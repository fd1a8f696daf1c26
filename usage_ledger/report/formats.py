"""Report formats with no I/O of their own: JSON and CSV for machines, the text table and the
short forms (`tail`, `run`) for people.

A NULL sum stays "unknown": `null` in JSON, an empty CSV cell, "-" in the table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re

from .queries import FIELDS, Group, GroupBy


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
    """$1,234.56 / $0.0123 / $0.000042 / $4.2e-11: two significant digits at least, never a
    fake $0."""
    if usd is None:
        return "-"
    size = abs(usd)
    if size >= 1:
        return f"${usd:,.2f}"
    if size >= 0.01 or size == 0:
        return f"${usd:.4f}" if size else "$0.00"
    places = 1 - math.floor(math.log10(size))
    return f"${usd:.{places}f}" if places <= 10 else f"${usd:.1e}"


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
