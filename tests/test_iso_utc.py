"""Call start times as the ledger writes them: the fast path agrees with datetime to the text."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import example, given
from hypothesis import strategies as st

from usage_ledger.request_info import iso_utc


def by_datetime(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
@example(1764880801.9999996)  # the microseconds round up into the next second
@example(1764880801.0005)
@example(0.0)
def test_iso_utc_is_datetimes_text(ts):
    assert iso_utc(ts) == by_datetime(ts)


def test_calls_in_the_same_second_and_the_next():
    assert iso_utc(1764880801.25) == "2025-12-04T20:40:01.250Z"
    assert iso_utc(1764880801.999) == "2025-12-04T20:40:01.999Z"
    assert iso_utc(1764880802.001) == "2025-12-04T20:40:02.001Z"
    assert iso_utc(1764880801.5) == "2025-12-04T20:40:01.500Z"  # back again: not the cached second
