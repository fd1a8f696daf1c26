"""Budgets without a proxy: the file's validation, scopes, calendar periods across time zones and
DST, the spend tracker's arithmetic (estimates, rollover, reload), estimates and error bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usage_ledger.budgets.config import BudgetFileError, CallFacts, in_scope, parse_budget_file, period_bounds
from usage_ledger.budgets.estimate import DEFAULT_OUTPUT_TOKENS, estimate_tokens
from usage_ledger.budgets.refusal import message, refusal_body, retry_after, warn_header
from usage_ledger.budgets.spend import Finished, SpendTracker

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def parse(text: str):
    return parse_budget_file(text, "b.toml")


def one(extra: str = "", period: str = "day", limit: float = 10.0):
    return parse(f'timezone = "UTC"\n[[budget]]\nname = "b"\nlimit_usd = {limit}\nperiod = "{period}"\n{extra}')


# --- the file ------------------------------------------------------------------------------------


def test_the_issues_example_file_parses():
    f = parse('timezone = "Europe/Berlin"\n[[budget]]\nname = "daily"\nlimit_usd = 20.0\nperiod = "day"\n'
              'action = "block"\nwarn_at = 0.8\ntags = { Project = "billing-bot" }\nmodel = "claude-*"\n'
              'user_agent = "claude-cli/*"\n')
    (b,) = f.budget
    assert (b.name, b.limit_usd, b.period, b.action, b.warn_at) == ("daily", 20.0, "day", "block", 0.8)
    assert b.tags == {"project": "billing-bot"} and f.zone() == BERLIN


@pytest.mark.parametrize(("text", "problem"), [
    ('[[budget]]\nname = "d"\nlimit_usd = 0\nperiod = "day"', 'b.toml: budget "d" limit_usd: Input should be greater than 0'),
    ('[[budget]]\nname = "d"\nlimit_usd = 5\nperiod = "fortnight"', 'b.toml: budget "d" period: Input should be'),
    ('[[budget]]\nname = "d"\nlimit_usd = 5\nperiod = "day"\naction = "stop"', 'b.toml: budget "d" action:'),
    ('[[budget]]\nname = "d"\nlimit_usd = 5\nperiod = "day"\nwarn_at = 1.5', 'b.toml: budget "d" warn_at:'),
    ('[[budget]]\nname = "d"\nlimit_usd = 5\nperiod = "day"\nmodle = "x"', 'b.toml: budget "d" modle: Extra inputs'),
    ('[[budget]]\nlimit_usd = 5\nperiod = "day"', "b.toml: budget #1 name: Field required"),
    ('timezone = "Mars/Olympus"', "b.toml: timezone: Value error, unknown time zone 'Mars/Olympus'"),
    ('[[budget]]\nname = "d"\nlimit_usd = 5\nperiod = "day"\n[[budget]]\nname = "d"\nlimit_usd = 6\nperiod = "week"',
     "two budgets are named 'd'"),
    ("[[budget]\n", "b.toml: not valid TOML"),
])
def test_a_bad_file_is_one_line_naming_the_problem(text, problem):
    with pytest.raises(BudgetFileError) as raised:
        parse(text)
    assert problem in str(raised.value) and "\n" not in str(raised.value)


# --- scope ---------------------------------------------------------------------------------------


def test_every_scope_key_given_must_match_and_globs_apply():
    b = one('provider = "anthropic"\nmodel = "claude-*"\ntags = { project = "bot*" }').budget[0]
    call = CallFacts(provider="anthropic", models=("claude-sonnet-4-5",), tags={"project": "bot-1"})
    assert in_scope(b, call)
    assert in_scope(b, CallFacts(provider="anthropic", models=("sonnet", "claude-3"), tags={"project": "bot"}))
    assert not in_scope(b, CallFacts(provider="openai", models=("claude-3",), tags={"project": "bot"}))
    assert not in_scope(b, CallFacts(provider="anthropic", models=("claude-3",)))
    assert not in_scope(b, CallFacts(provider="anthropic", models=(), tags={"project": "bot"}))
    assert in_scope(one().budget[0], CallFacts())


# --- periods -------------------------------------------------------------------------------------


def test_periods_in_a_zone():
    now = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)  # a Sunday: Berlin's clocks went forward at 02:00
    assert period_bounds("day", now, BERLIN) == (datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC))
    assert period_bounds("week", now, BERLIN) == (datetime(2026, 3, 22, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC))
    assert period_bounds("month", now, BERLIN) == (datetime(2026, 2, 28, 23, tzinfo=UTC), datetime(2026, 3, 31, 22, tzinfo=UTC))
    assert period_bounds("total", now, BERLIN)[1] is None
    # The fall-back day is 25 hours long in New York.
    start, end = period_bounds("day", datetime(2026, 11, 1, 15, tzinfo=UTC), NEW_YORK)
    assert end - start == timedelta(hours=25)
    # Havana (like Santiago and Beirut at times) skips midnight itself: the day starts at the jump.
    start, _ = period_bounds("day", datetime(2026, 3, 8, 12, tzinfo=UTC), ZoneInfo("America/Havana"))
    assert start == datetime(2026, 3, 8, 5, tzinfo=UTC)


ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))


@settings(max_examples=400, deadline=None)
@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2037, 12, 31)),
       st.sampled_from(ZONES), st.sampled_from(["day", "week", "month"]))
def test_a_period_holds_now_starts_at_a_local_calendar_boundary_and_ends_where_the_next_starts(naive, zone_name, period):
    zone = ZoneInfo(zone_name)
    now = naive.replace(tzinfo=UTC)
    start, end = period_bounds(period, now, zone)
    assert start <= now < end
    first = start.astimezone(zone)
    assert first.date() == now.astimezone(zone).date() or period != "day"
    assert (start - timedelta(microseconds=1)).astimezone(zone).date() < first.date()
    if period == "week":
        assert first.weekday() == 0
    if period == "month":
        assert first.day == 1
    assert period_bounds(period, end, zone)[0] == end
    assert timedelta(hours=20) <= end - start <= timedelta(days=32)


# --- the tracker ---------------------------------------------------------------------------------

NOON = datetime(2026, 12, 2, 12, tzinfo=UTC)
CALL = CallFacts(provider="openai", models=("gpt-4o-mini",))


def tracker_with(file_text: str, rows=(), now=NOON):
    t = SpendTracker()
    t.reload(parse(file_text), rows, now)
    return t


def test_in_flight_estimates_count_until_the_real_cost_replaces_them():
    t = tracker_with('timezone = "UTC"\n[[budget]]\nname = "b"\nlimit_usd = 1.0\nperiod = "day"')
    for n in range(4):
        assert t.admit(f"f{n}", CALL, NOON, 0.3, NOON) == (None, [])
    refused, _ = t.admit("f4", CALL, NOON, 0.3, NOON)  # 4 x 0.3 in flight
    assert refused is not None and refused.in_flight == 4 and refused.in_flight_usd == pytest.approx(1.2)
    for n in range(4):
        t.finished(f"f{n}", "gpt-4o-mini-2024-07-18", 0.1, 50, NOON)
    (s,) = t.status(NOON)
    assert (s.spent_usd, s.in_flight_usd, s.calls) == (pytest.approx(0.4), pytest.approx(0.0), 4)
    assert t.admit("f5", CALL, NOON, 0.3, NOON)[0] is None


def test_a_budget_on_the_answered_model_counts_and_blocks_its_calls():
    """`model` matches "the requested model or the one that answered": a call for gpt-4o-mini,
    answered by gpt-4o-mini-2024-07-18, counts in a `gpt-4o-mini-2024-*` budget, and once the
    proxy has seen that answer, the next request for gpt-4o-mini is admitted by it, in this run
    and after a restart (a reload from the ledger's rows)."""
    text = ('timezone = "UTC"\n[[budget]]\nname = "dated"\nlimit_usd = 1.0\nperiod = "day"\n'
            'model = "gpt-4o-mini-2024-*"')
    t = tracker_with(text)
    for n in range(2):
        assert t.admit(f"f{n}", CALL, NOON, 0.0, NOON)[0] is None
        t.finished(f"f{n}", "gpt-4o-mini-2024-07-18", 0.75, 100, NOON)
    (s,) = t.status(NOON)
    assert (s.spent_usd, s.calls) == (1.5, 2)
    refused, _ = t.admit("f2", CALL, NOON, 0.0, NOON)
    assert refused is not None and refused.budget.name == "dated"
    assert t.admit("other", CallFacts(provider="openai", models=("gpt-4o",)), NOON, 0.0, NOON)[0] is None
    rows = [Finished(f"f{n}", CallFacts(provider="openai", models=("gpt-4o-mini", "gpt-4o-mini-2024-07-18")),
                     NOON, 0.75, 100) for n in range(2)]
    assert tracker_with(text, rows).admit("f3", CALL, NOON, 0.0, NOON)[0] is not None


def test_a_period_rolling_over_unblocks():
    t = tracker_with('timezone = "Europe/Berlin"\n[[budget]]\nname = "b"\nlimit_usd = 1.0\nperiod = "day"',
                     [Finished("old", CALL, NOON - timedelta(hours=1), 2.0, 10)])
    assert t.admit("a", CALL, NOON, 0.0, NOON)[0] is not None
    midnight = datetime(2026, 12, 2, 23, tzinfo=UTC)  # 00:00 in Berlin
    assert t.admit("b", CALL, midnight - timedelta(seconds=1), 0.0, midnight - timedelta(seconds=1))[0] is not None
    assert t.admit("c", CALL, midnight, 0.0, midnight)[0] is None
    (s,) = t.status(midnight)
    assert s.spent_usd == 0 and s.start == midnight


def test_a_call_from_the_previous_period_counts_there():
    t = tracker_with('timezone = "UTC"\n[[budget]]\nname = "b"\nlimit_usd = 1.0\nperiod = "day"')
    late = datetime(2026, 12, 2, 23, 59, tzinfo=UTC)
    t.admit("late", CALL, late, 0.5, late)
    next_day = datetime(2026, 12, 3, 0, 1, tzinfo=UTC)
    t.finished("late", None, 0.9, 10, next_day)
    (s,) = t.status(next_day)
    assert (s.spent_usd, s.in_flight_usd) == (0, 0)


def test_unpriced_calls_count_their_tokens_or_a_fallback_price():
    rows = [Finished("u", CALL, NOON, None, 2_000_000), Finished("p", CALL, NOON, 0.25, 100)]
    (s,) = tracker_with('timezone = "UTC"\n[[budget]]\nname = "b"\nlimit_usd = 1.0\nperiod = "day"', rows).status(NOON)
    assert (s.spent_usd, s.unpriced_calls, s.unpriced_tokens) == (0.25, 1, 2_000_000)
    fallback = 'timezone = "UTC"\nunpriced_usd_per_mtok = 0.5\n[[budget]]\nname = "b"\nlimit_usd = 1.0\nperiod = "day"'
    (s,) = tracker_with(fallback, rows).status(NOON)
    assert (s.spent_usd, s.unpriced_calls) == (1.25, 1)


def test_a_reload_counts_the_ledger_once_and_keeps_what_it_lacks():
    text = 'timezone = "UTC"\n[[budget]]\nname = "b"\nlimit_usd = 10.0\nperiod = "day"'
    t = tracker_with(text, [Finished("a", CALL, NOON, 1.0, 1)])
    t.admit("b", CALL, NOON, 0.5, NOON)
    t.admit("c", CALL, NOON, 0.5, NOON)
    t.finished("b", None, 2.0, 1, NOON)  # finished, but not yet in the ledger when it is read again
    t.reload(parse(text), [Finished("a", CALL, NOON, 1.0, 1)], NOON)
    (s,) = t.status(NOON)
    assert (s.spent_usd, s.in_flight_usd, s.in_flight) == (3.0, 0.5, 1)
    t.reload(parse(text), [Finished("a", CALL, NOON, 1.0, 1), Finished("b", CALL, NOON, 2.0, 1)], NOON)
    assert t.status(NOON)[0].spent_usd == 3.0


def test_thresholds_are_announced_once_per_period():
    heard = []
    t = SpendTracker(lambda s, label: heard.append((s.budget.name, label)))
    t.reload(parse('timezone = "UTC"\n[[budget]]\nname = "b"\nlimit_usd = 1.0\nperiod = "day"\naction = "warn"\n'
                   'warn_at = 0.5'), [], NOON)
    for n in range(4):
        t.admit(str(n), CALL, NOON, 0, NOON)
        t.finished(str(n), None, 0.3, 1, NOON)
    assert heard == [("b", "50%"), ("b", "the limit")]
    _, warned = t.admit("x", CALL, NOON, 0, NOON)
    assert warn_header(warned) == "b 1.20/1.00 USD"


# --- estimates and answers -----------------------------------------------------------------------


def test_estimates_take_the_requests_own_output_cap():
    assert estimate_tokens("openai-chat", {"max_tokens": 100}, 400) == (100, 100)
    assert estimate_tokens("openai-responses", {"max_output_tokens": 7}, 10) == (3, 7)
    assert estimate_tokens("gemini", {"generationConfig": {"maxOutputTokens": 9}}, 4) == (1, 9)
    assert estimate_tokens("ollama", {"options": {"num_predict": 5}}, 4) == (1, 5)
    assert estimate_tokens("openai-chat", {}, 8) == (2, DEFAULT_OUTPUT_TOKENS)
    assert estimate_tokens("openai-embeddings", {"input": "x"}, 40) == (10, 0)
    assert estimate_tokens("openai-transcriptions", None, 10_000_000) == (0, DEFAULT_OUTPUT_TOKENS)


def test_each_api_gets_its_own_error_shape():
    assert json.loads(refusal_body("openai-chat", "m")) == {
        "error": {"message": "m", "type": "budget_exceeded", "param": None, "code": "budget_exceeded"}}
    assert json.loads(refusal_body("anthropic-messages", "m")) == {
        "type": "error", "error": {"type": "rate_limit_error", "message": "m"}}
    assert json.loads(refusal_body("gemini", "m")) == {
        "error": {"code": 429, "message": "m", "status": "RESOURCE_EXHAUSTED"}}
    assert json.loads(refusal_body("ollama", "m")) == {"error": "m"}


def test_the_message_names_budget_limit_spend_and_reset():
    t = tracker_with('timezone = "Europe/Berlin"\n[[budget]]\nname = "daily"\nlimit_usd = 20\nperiod = "day"',
                     [Finished("a", CALL, NOON, 20.03, 1)])
    refused, _ = t.admit("x", CALL, NOON, 0.1, NOON)
    assert message(refused, t.zone) == ("usage-ledger budget 'daily' is used up: $20.03 spent today of its "
                                        "$20.00 limit; it resets 2026-12-03 00:00 CET")
    assert retry_after(refused, NOON) == 11 * 3600


@pytest.mark.parametrize(("tz", "start", "end"), [
    ("IST-5:30", "2026-12-01T18:30:00+00:00", "2026-12-02T18:30:00+00:00"),
    ("<+0530>-5:30", "2026-12-01T18:30:00+00:00", "2026-12-02T18:30:00+00:00"),
    ("EST5EDT,M3.2.0,M11.1.0", "2026-12-02T05:00:00+00:00", "2026-12-03T05:00:00+00:00"),
])
def test_a_posix_tz_rule_sets_the_days_as_the_c_library_reads_it(monkeypatch, tz, start, end):
    """`TZ=IST-5:30` is no zone name zoneinfo knows, but the machine's clock (`date`) follows it,
    and so do the budgets' days."""
    import time

    from usage_ledger.budgets.config import local_zone

    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        bounds = period_bounds("day", NOON, local_zone())
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (bounds[0].isoformat(), bounds[1].isoformat()) == (start, end)


def test_a_posix_rule_with_dst_follows_it_through_the_year(monkeypatch):
    import time

    from usage_ledger.budgets.config import local_zone

    monkeypatch.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")
    time.tzset()
    try:
        zone = local_zone()
        summer = period_bounds("day", datetime(2026, 7, 1, 12, tzinfo=UTC), zone)
        spring = period_bounds("day", datetime(2026, 3, 8, 12, tzinfo=UTC), zone)  # 23 hours
    finally:
        monkeypatch.undo()
        time.tzset()
    assert summer[0] == datetime(2026, 7, 1, 4, tzinfo=UTC)
    assert spring[1] - spring[0] == timedelta(hours=23)
