"""The normalised usage of one call, in the ledger contract's token semantics."""

from __future__ import annotations

import json
import math
from dataclasses import InitVar, dataclass, field
from decimal import Decimal
from typing import Any


_COMPACT = json.JSONEncoder(separators=(",", ":"))
"""json.dumps with these arguments would build an encoder per call (usage_json: once a call)."""


@dataclass(slots=True)
class Usage:
    """Token counts as the contract defines them; None means the provider did not report it.

    input_tokens counts every prompt token (cache reads and writes included) and output_tokens
    every generated token (reasoning included), whatever the provider's own convention. Counts
    that cannot be parts of a whole are read as reported outside it (see `settle`), so every
    Usage holds `reasoning_tokens <= output_tokens` and
    `cached_input_tokens + cache_write_tokens <= input_tokens`.
    """

    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    raw: dict[str, Any] | None = field(default=None, repr=False)
    reported_cost: tuple[Decimal, str] | None = field(default=None, repr=False)
    """What the server said the call cost, from outside the usage object (a response header):
    (USD, price_source). Costs inside `raw` are read by the pricer itself."""
    by_total: InitVar[bool] = False
    """Take the provider's total as evidence when settling (see `settle`): shapes whose total is
    input + output pass True. Settled here, once, from the counts as reported."""

    def __post_init__(self, by_total: bool) -> None:
        settle(self, by_total)
        if self.total_tokens is None and self.input_tokens is not None and self.output_tokens is not None:
            self.total_tokens = self.input_tokens + self.output_tokens

    @property
    def raw_json(self) -> str | None:
        return None if self.raw is None else _COMPACT.encode(self.raw)


def settle(usage: Usage, by_total: bool = True) -> Usage:
    """Make the parts fit inside their wholes, in place, from the counts' own evidence; returns
    the same Usage.

    Providers disagree on whether reasoning is inside the output count (OpenAI: inside; xAI and
    Gemini's OpenAI-compatible endpoint: outside, `prompt + completion + reasoning == total`)
    and whether cache reads and writes are inside the prompt count (OpenAI: inside; servers
    echoing Anthropic's convention in OpenAI's shape: outside). A part larger than its whole is
    outside it; else, when the provider's own total adds up only with a part outside, it is.
    Otherwise the part is inside, the OpenAI convention. `by_total` is for shapes whose total is
    input + output (OpenAI's; not Gemini's, whose total also counts tool-use prompts), so that only
    there the total is taken as evidence.

    Usage runs this once, on the counts as reported (its `by_total` argument): run again, on
    counts it has moved, a total that fitted no reading of the report may fit one of the moved
    counts, and a part would be moved twice.
    """
    reasoning = usage.reasoning_tokens or 0
    cache = (usage.cached_input_tokens or 0) + (usage.cache_write_tokens or 0)
    tokens_in, tokens_out = usage.input_tokens, usage.output_tokens
    reasoning_out = tokens_out is not None and reasoning > tokens_out
    cache_out = tokens_in is not None and cache > tokens_in
    total = usage.total_tokens
    if by_total and total is not None and tokens_in is not None and tokens_out is not None:
        for r_out, c_out in ((False, False), (True, False), (False, True), (True, True)):
            if (r_out or not reasoning_out) and (c_out or not cache_out) and (
                    tokens_in + tokens_out + reasoning * r_out + cache * c_out == total):
                reasoning_out, cache_out = r_out, c_out
                break
    if reasoning_out and tokens_out is not None:
        usage.output_tokens = tokens_out + reasoning
    if cache_out and tokens_in is not None:
        usage.input_tokens = tokens_in + cache
    return usage


MAX_COUNT = 2 ** 53
"""No call has this many tokens, and past it a JSON number is no longer exact: a count above it
is read as not reported, as a negative one is (a ledger column holds at most 2**63 - 1)."""


def count(obj: Any, *keys: str) -> int | None:
    """The integer at obj[k1][k2]..., or None when any step is missing or not a count (a bool, a
    negative or non-finite number, one above MAX_COUNT)."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    if (isinstance(obj, bool) or not isinstance(obj, (int, float)) or not math.isfinite(obj) or obj < 0
            or obj > MAX_COUNT):
        return None  # not a count: read as not reported
    return int(obj)


def first_count(obj: Any, *paths: tuple[str, ...]) -> int | None:
    """The first of several places a count may be reported (providers' alternative names)."""
    for path in paths:
        value = count(obj, *path)
        if value is not None:
            return value
    return None


def add(*values: int | None) -> int | None:
    """Sum of the reported values; None only when none was reported."""
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def merge_report(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A stream's usage after a new report: the new values win, except that a count never goes
    back to 0 after a non-zero report (Anthropic-compatible servers repeat `input_tokens: 0` in
    their final `message_delta`), and fields the new report leaves out or sends as null keep
    their earlier value. Nested objects merge the same way. Counts are never added up."""
    merged = dict(old or {})
    for key, value in new.items():
        before = merged.get(key)
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(before, dict):
            merged[key] = merge_report(before, value)
        elif _is_zero(value) and _is_count(before) and before > 0:
            continue
        else:
            merged[key] = value
    return merged


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_zero(value: Any) -> bool:
    return _is_count(value) and value == 0
