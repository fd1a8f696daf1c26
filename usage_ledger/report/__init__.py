"""Ledger reports, with no I/O of their own: `queries` (the SQL aggregation), `formats` (JSON,
CSV, the text table, short forms for `tail`/`run`) and `html` (the HTML page).

Every name lives on here, so `from usage_ledger import report; report.summarise(...)` keeps
working whichever module a function sits in.
"""

from .formats import (COLUMNS, OUTPUT_FIELDS, cells, fmt_cost, fmt_key, fmt_tokens, footnotes,
                      record, records, round_usd, short_tool, short_version, to_csv, to_json,
                      to_table)
from .html import (CSS, MAX_SERIES, OTHER_COLOUR, PALETTE, Series, axis_cost, chart_series,
                   day_range, legend, nice_step, short_tokens, svg_stacked_bars, to_html)
from .queries import (FIELDS, GROUP_CHOICES, GROUP_EXPRESSIONS, TIME_GROUPS,
                      DayModel, Group, GroupBy, ReportError, daily_by_model, iso_utc,
                      parse_group_by, parse_time, summarise, totals)

__all__ = [
    "COLUMNS", "CSS", "FIELDS", "GROUP_CHOICES", "GROUP_EXPRESSIONS", "MAX_SERIES", "OTHER_COLOUR",
    "OUTPUT_FIELDS", "PALETTE", "TIME_GROUPS", "DayModel", "Group", "GroupBy",
    "ReportError", "Series", "axis_cost", "cells", "chart_series", "daily_by_model", "day_range",
    "fmt_cost", "fmt_key", "fmt_tokens", "footnotes", "iso_utc", "legend", "nice_step",
    "parse_group_by", "parse_time", "record", "records", "round_usd", "short_tokens", "short_tool",
    "short_version", "summarise", "svg_stacked_bars", "to_csv", "to_html", "to_json", "to_table",
    "totals",
]
