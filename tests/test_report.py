"""`usage-ledger report`: aggregation (SQL sum semantics), grouping, time filters and formats,
run in-process against ledgers built with the real store and plain SQL."""

from __future__ import annotations

import csv
import io
import json
import re
import struct
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from usage_ledger import report
from usage_ledger.cli import main
from usage_ledger.dialect import dialect_for
from .ledgers import NOW, add, fill, select, ts  # noqa: F401  (add, ts: imported by other tests from here)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def mixed_rows() -> list[dict]:
    """Priced and unpriced models, a pending call, an error, NULL tokens, tags."""
    day1 = ts(NOW - timedelta(days=2))
    day2 = ts(NOW - timedelta(days=1))
    return [
        dict(started_at=day1, provider="openai", model="gpt-4o", input_tokens=1_200_000,
             cached_input_tokens=200_000, output_tokens=3_000, reasoning_tokens=100, cost_usd=3.5,
             tags='{"team": "search", "cost-center": "42"}', user_agent="OpenAI/Python 1.51.0"),
        dict(started_at=day2, provider="openai", model="gpt-4o", input_tokens=800, output_tokens=20,
             cost_usd=0.0021, tags='{"team": "search"}'),
        dict(started_at=day2, provider="openai", model="gpt-4o", input_tokens=10, output_tokens=None,
             cost_usd=None, outcome="http_error", status_code=429, tags='{"team": "ads"}'),
        dict(started_at=day2, provider="ollama", model="llama3.2", host="localhost:11434",
             input_tokens=50, output_tokens=60, cost_usd=None),
        dict(started_at=day2, provider="anthropic", model="claude-sonnet-4-5", outcome="pending"),
        dict(started_at=day2, provider="anthropic", model="claude-sonnet-4-5", input_tokens=5000,
             cache_write_tokens=4000, output_tokens=7, cost_usd=0.0),
    ]


@pytest.fixture
def ledger(ledger_target: str) -> str:
    """The mixed ledger, once as a SQLite file and once as a PostgreSQL database."""
    return fill(ledger_target, mixed_rows())


def sql_groups(target: str, by: str) -> dict:
    """The groups by plain SQL on the ledger's own server (the group key in its dialect's words)."""
    expr, params = report.parse_group_by(by).sql(dialect_for(target))
    rows = select(target,
        f"SELECT {expr} AS k, count(*), sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens), "
        f"sum(output_tokens), sum(reasoning_tokens), sum(cost_usd) FROM requests GROUP BY 1", params)
    # Costs as a user checks them: to 10 significant digits (docs/ledger.md, "Reports").
    return {r[0]: dict(zip(report.FIELDS, [*r[1:-1], None if r[-1] is None else float(f"{r[-1]:.10g}")]))
            for r in rows}


def test_json_by_model_equals_the_sql_group_by(ledger, capsys):
    code, out, err = cli(capsys, "report", "--db", ledger, "--by", "model", "--format", "json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert all(list(d) == ["model", *report.FIELDS, "unpriced_calls"] for d in data)
    assert {d["model"]: {k: d[k] for k in report.FIELDS} for d in data} == sql_groups(ledger, "model")
    by_model = {d["model"]: d for d in data}
    assert by_model["llama3.2"]["cost_usd"] is None  # no priced row: null, not 0
    assert by_model["claude-sonnet-4-5"]["cost_usd"] == 0.0  # priced at $0: 0, not null
    assert by_model["claude-sonnet-4-5"]["requests"] == 2  # the pending row counts
    assert by_model["gpt-4o"]["cost_usd"] == 3.5021
    # unpriced_calls: the table's '*' (gpt-4o has a priced and an unpriced row), and llama's '-'.
    assert by_model["gpt-4o"]["unpriced_calls"] == 1 and by_model["llama3.2"]["unpriced_calls"] == 1
    assert by_model["claude-sonnet-4-5"]["unpriced_calls"] == 1  # the pending row


def test_costs_are_rounded_to_ten_significant_digits_in_json_and_csv(ledger_target, capsys):
    # 0.0108207 twice sums to 0.021641399999999998 in binary floating point
    db = fill(ledger_target, [dict(model="m", cost_usd=0.0108207, input_tokens=1, output_tokens=1)] * 2)
    code, out, _ = cli(capsys, "report", "--db", db, "--by", "model", "--format", "json")
    assert code == 0 and '"cost_usd": 0.0216414,' in out and json.loads(out)[0]["unpriced_calls"] == 0
    code, out, _ = cli(capsys, "report", "--db", db, "--by", "model", "--format", "csv")
    assert out.splitlines()[1].split(",")[-2:] == ["0.0216414", "0"]


def test_since_later_than_until_is_an_error(ledger, capsys):
    code, out, err = cli(capsys, "report", "--db", ledger, "--since", "2026-11-05", "--until", "2026-11-01")
    assert code == 2 and out == "" and "later than --until" in err and err.count("\n") == 1


@pytest.mark.parametrize("by", ["day", "week", "month", "provider", "api", "host", "user_agent"])
def test_every_group_key_matches_sql(ledger, capsys, by):
    code, out, _ = cli(capsys, "report", "--db", ledger, "--by", by, "--format", "json")
    assert code == 0
    expected = sql_groups(ledger, by)
    assert {d[by]: {k: d[k] for k in report.FIELDS} for d in json.loads(out)} == expected


def test_csv_has_the_same_fields(ledger, capsys):
    code, out, _ = cli(capsys, "report", "--db", ledger, "--by", "model", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["model", *report.FIELDS, "unpriced_calls"]
    llama = next(r for r in rows if r["model"] == "llama3.2")
    assert llama["requests"] == "1" and llama["cost_usd"] == "" and llama["input_tokens"] == "50"


def test_day_table_is_aligned_with_totals_and_marks_unpriced(ledger, capsys):
    code, out, _ = cli(capsys, "report", "--db", ledger)
    assert code == 0
    lines = out.splitlines()
    table = lines[: lines.index("")] if "" in lines else lines
    header, rule, *body, rule2, total = table
    assert header.split()[:2] == ["day", "requests"] and set(rule) <= {"-", " "} and rule == rule2
    assert [line.split()[0] for line in body] == [(NOW - timedelta(days=d)).strftime("%Y-%m-%d") for d in (2, 1)]
    assert total.startswith("total")
    # Right-aligned numeric columns: every row's cells end where the rule's dashes end.
    ends = [m.end() for m in re.finditer(r"-+", rule)]
    for line in [header, *body, total]:
        cell_ends = [m.end() for m in re.finditer(r"\S+(?: \S+)*", line)]
        assert cell_ends[1:-1] == ends[1:-1], line  # the cost column may carry a '*' marker
    assert "1,200,000" in body[0] and "$3.50" in body[0]
    assert total.split()[1] == "6"  # six requests, the pending one included
    assert total.rstrip().endswith("$3.50*")  # $3.5021 plus unpriced calls
    notes = "\n".join(lines[len(table):])
    assert "3 of 6 calls are unpriced" in notes and "1 call is still pending" in notes


def test_null_cost_is_a_dash_not_zero(ledger, capsys):
    _, out, _ = cli(capsys, "report", "--db", ledger, "--by", "model")
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert rows["llama3.2"].split()[-1] == "-"
    assert rows["claude-sonnet-4-5"].split()[-1] == "$0.00*"  # priced at $0, plus a pending call


def test_tag_grouping(ledger, capsys):
    code, out, _ = cli(capsys, "report", "--db", ledger, "--by", "tag:team", "--format", "json")
    assert code == 0
    groups = {d["tag:team"]: d for d in json.loads(out)}
    assert set(groups) == {"search", "ads", None}
    assert groups["search"]["requests"] == 2 and groups["search"]["cost_usd"] == 3.5021
    assert groups["ads"]["cost_usd"] is None and groups[None]["requests"] == 3
    # Names are matched as stored (lower-case), dashes and dots included.
    _, out, _ = cli(capsys, "report", "--db", ledger, "--by", "tag:Cost-Center", "--format", "json")
    assert {d["tag:cost-center"]: d["requests"] for d in json.loads(out)} == {"42": 1, None: 5}
    _, out, _ = cli(capsys, "report", "--db", ledger, "--by", "tag:team")
    assert "(none)" in out and "search" in out


def test_tag_name_is_a_parameter_not_sql(ledger, capsys):
    code, out, _ = cli(capsys, "report", "--db", ledger, "--by", "tag:x') or 1=1 --", "--format", "json")
    assert code == 0 and [d["requests"] for d in json.loads(out)] == [6]
    code, _, err = cli(capsys, "report", "--db", ledger, "--by", 'tag:a"b')
    assert code == 2 and err.startswith("usage-ledger: error: bad tag name")


def test_since_and_until(ledger_target, capsys):
    path = fill(ledger_target, [dict(started_at=ts(NOW - timedelta(days=days)), model=model, input_tokens=1)
                                for days, model in ((10, "old"), (3, "recent"), (0.01, "now"))])

    def models(*extra: str) -> set:
        code, out, _ = cli(capsys, "report", "--db", path, "--by", "model", "--format", "json", *extra)
        assert code == 0
        return {d["model"] for d in json.loads(out)}

    assert models() == {"old", "recent", "now"}
    assert models("--since", "7d") == {"recent", "now"}
    assert models("--since", "1w") == {"recent", "now"}
    assert models("--since", "2h") == {"now"}
    three_days_ago = (NOW - timedelta(days=3)).strftime("%Y-%m-%d")
    assert models("--since", three_days_ago, "--until", three_days_ago) == {"recent"}  # whole UTC day
    assert models("--until", ts(NOW - timedelta(days=5))) == {"old"}
    assert models("--since", (NOW - timedelta(days=4)).isoformat()) == {"recent", "now"}


def test_parse_time():
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert report.parse_time("7d", now) == "2026-11-17T12:00:00.000Z"
    assert report.parse_time("2026-11-20", now) == "2026-11-20T00:00:00.000Z"
    assert report.parse_time("2026-11-20", now, end=True) == "2026-11-21T00:00:00.000Z"
    assert report.parse_time("2026-11-20T10:00:00Z", now) == "2026-11-20T10:00:00.000Z"
    assert report.parse_time("2026-11-20T10:00:00+02:00", now) == "2026-11-20T08:00:00.000Z"
    assert report.parse_time("2026-11-20 10:00", now) == "2026-11-20T10:00:00.000Z"  # naive = UTC
    for bad in ("yesterday", "2026-13-01", "7x", ""):
        with pytest.raises(report.ReportError):
            report.parse_time(bad, now)


def test_every_iso_date_is_a_day_and_no_bound_is_a_traceback():
    """`--until 20261120` includes that day as `--until 2026-11-20` does; `--until 9999-12-31`
    ("forever") works; a bound outside the calendar is one error line, not an OverflowError."""
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    for day in ("20261120", "2026-W47-5"):
        assert report.parse_time(day, now, end=True) == "2026-11-21T00:00:00.000Z", day
    assert report.parse_time("9999-12-31", now, end=True) > "9999-12-31T23:59:59.999Z"
    for far in ("3000000d", "0001-01-01T00:00+01:00"):
        with pytest.raises(report.ReportError, match="out of range"):
            report.parse_time(far, now)


def test_formatting():
    assert report.fmt_cost(None) == "-"
    assert report.fmt_cost(4.2e-11) == "$4.2e-11" and report.fmt_cost(1.5e-10) == "$1.5e-10"  # never "$0.0000000000"
    assert report.fmt_cost(1.5e-9) == "$0.0000000015"
    assert report.fmt_cost(0) == "$0.00"
    assert report.fmt_cost(1234.5) == "$1,234.50"
    assert report.fmt_cost(0.0123) == "$0.0123"
    assert report.fmt_cost(0.000042) == "$0.000042"
    assert report.fmt_tokens(1234567) == "1,234,567" and report.fmt_tokens(None) == "-"
    assert report.short_tool("OpenAI/Python 1.51.0") == "openai-python/1.51"
    assert report.short_tool("Anthropic/Python 0.40.0") == "anthropic-python/0.40"
    assert report.short_tool("OpenAI/JS 4.67.3") == "openai-js/4.67"
    assert report.short_tool("curl/8.5.0") == "curl/8.5"
    assert report.short_tool("python-httpx/0.27.2") == "python-httpx/0.27"
    assert report.short_tool(None) == "?"


def test_empty_period(ledger, capsys):
    code, out, _ = cli(capsys, "report", "--db", ledger, "--since", "2099-01-01")
    assert code == 0 and "No calls" in out
    _, out, _ = cli(capsys, "report", "--db", ledger, "--since", "2099-01-01", "--format", "json")
    assert json.loads(out) == []


def test_report_never_creates_or_changes_the_ledger(tmp_path, capsys):
    missing = tmp_path / "sub" / "missing.db"
    code, out, err = cli(capsys, "report", "--db", str(missing))
    assert code == 2 and out == "" and not missing.exists() and not missing.parent.exists()
    assert err.startswith("usage-ledger: error: no ledger at") and err.count("\n") == 1


HTML_MODELS = ("gpt-4o", "claude-sonnet-4-5", "llama3.2", "<b>evil</b>")


def html_report(tmp_path: Path, capsys, target: str | None = None) -> Path:
    path = fill(target or str(tmp_path / "l.db"), [
        dict(started_at=ts(NOW - timedelta(days=day, hours=1)), model=model,
             input_tokens=1000 * (i + 1) * (day + 1), output_tokens=100,
             cost_usd=None if model == "llama3.2" else 0.01 * (i + 1) * (day + 1))
        for day in range(6) for i, model in enumerate(HTML_MODELS)])
    out = tmp_path / "report.html"
    code, stdout, err = cli(capsys, "report", "--db", path, "--by", "model", "--format", "html", "--output", str(out))
    assert code == 0 and stdout == "" and "wrote" in err
    return out


def test_html_is_one_self_contained_file_with_svg_charts(tmp_path, capsys, ledger_target):
    page = html_report(tmp_path, capsys, ledger_target).read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2
    assert "Cost per day" in page and "Tokens per day" in page
    assert "<table>" in page and "claude-sonnet-4-5" in page
    assert "<b>evil</b>" not in page and "&lt;b&gt;evil&lt;/b&gt;" in page
    # Nothing fetched from anywhere: no scripts, links, imports or external URLs.
    for needle in ("<script", "<link", "src=", "href=", "@import", "url("):
        assert needle not in page
    assert set(re.findall(r"https?://[^\s\"']+", page)) <= {"http://www.w3.org/2000/svg"}
    # Six days, four models: bars for the priced three in the cost chart, all four for tokens.
    cost_svg, token_svg = re.findall(r"<svg.*?</svg>", page, re.S)
    assert cost_svg.count("<rect") == 6 * 3 and token_svg.count("<rect") == 6 * 4
    # The headline's '*' is explained beside it (llama3.2's six calls are unpriced).
    assert re.search(r'cost<b>\$[\d.,]+\*</b><small class="notes">\* leaves out 6 unpriced calls</small>', page)
    assert not re.search(r"\de[-+]\d", page)  # plain decimals, never 1.56e-05


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and raw rows (RGB or RGBA) of an 8-bit, non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0
    bpp = 3 if colour == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_html_renders_in_headless_chromium(tmp_path, capsys):
    page = html_report(tmp_path, capsys)
    shot = tmp_path / "shot.png"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,1400", page.as_uri()], capture_output=True, timeout=120, check=False)
    assert shot.exists()
    _, bpp, rows = read_png(shot)
    colours = {bytes(row[i:i + 3]) for row in rows[::4] for i in range(0, len(row), bpp * 4)}
    for hex_colour in report.PALETTE[:4]:  # each model's bars were painted
        assert bytes.fromhex(hex_colour[1:]) in colours, hex_colour


def test_chart_costs_are_plain_decimals():
    assert [report.axis_cost(v) for v in (0, 1.56e-05, 0.25, 12.5)] == ["$0", "$0.0000156", "$0.25", "$12.50"]


def test_report_by_machine_splits_a_shared_ledger_by_proxy(tmp_path):
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    from usage_ledger.migrations import migrate

    db = tmp_path / "shared.db"
    con = sqlite3.connect(db)
    migrate(con)
    con.executemany("INSERT INTO requests (flow_id, started_at, machine, input_tokens, output_tokens, cost_usd, "
                    "outcome, model) VALUES (?, '2026-12-03T10:00:00.000Z', ?, ?, 5, ?, 'ok', 'm')",
                    [("a", "alpha", 10, 0.01), ("b", "beta", 20, 0.02), ("c", "beta", 30, 0.03)])
    con.commit()
    con.close()
    cli = Path(sys.executable).parent / "usage-ledger"
    out = subprocess.run([str(cli), "report", "--db", str(db), "--by", "machine", "--format", "csv"],
                         capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert lines[0].startswith("machine,")
    by = {line.split(",")[0]: line.split(",")[1] for line in lines[1:]}
    assert by["alpha"] == "1" and by["beta"] == "2"
