"""Plain records the proxy hooks hand to the ledger's writer thread.

The row records are NamedTuples in their columns' order: the writer hands them to SQLite as
they are, with no copy per field (benchmarks/bench_writer.py). Change one with `_replace`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from datetime import datetime

from .usage import Usage


class CallStarted(NamedTuple):
    """A recognised request reached the proxy: insert its row as `pending`."""

    flow_id: str
    stream: int
    usage_injected: int
    # From here to `outcome`, the columns only the start knows: one slice (writes.py).
    started_at: str
    client: str | None
    user_agent: str | None
    method: str
    host: str
    path: str
    provider: str
    api: str
    model_requested: str | None
    tags: str | None = None
    api_key_id: str | None = None
    machine: str | None = None
    outcome: str = "pending"


class CallFinished(NamedTuple):
    """The call ended (completed, failed or abandoned): fill in the rest of its row."""

    flow_id: str
    outcome: str
    status_code: int | None
    stream: int
    usage_injected: int
    model: str | None
    ttfb_ms: float | None
    duration_ms: float | None
    input_tokens: int | None
    cached_input_tokens: int | None
    cache_write_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    total_tokens: int | None
    usage_json: str | None
    cost_usd: float | None
    price_source: str | None
    service_tier: str | None
    error: str | None


@dataclass(slots=True, frozen=True)
class CallEnded:
    """A call's end before it is priced: its row with `cost_usd` and `price_source` still None,
    and what pricing needs. The writer thread prices it into a CallFinished: pricing is too slow
    for the event loop (genai-prices' first lookup loads its data, ~0.5 s). `then` is called, on
    the writer thread, with the priced row."""

    row: CallFinished
    provider: str
    api: str
    usage: Usage | None
    when: datetime
    service_tier: str | None
    then: Callable[[CallFinished], None] | None = None
    model_requested: str | None = None
    """The model the request named, for prices that depend on it (Bedrock's inference profiles)."""


USAGE_COLUMNS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
                 "reasoning_tokens", "total_tokens")


def usage_columns(usage: Usage | None) -> dict[str, int | str | None]:
    """CallFinished's usage columns from a Usage: the six token counts (tokens, None where the
    provider reported none) and `usage_json` (the raw usage object as JSON); all None without a
    Usage. Spread into the row: `CallFinished(..., **usage_columns(usage))`."""
    values: dict[str, int | str | None] = {name: getattr(usage, name) if usage else None
                                           for name in USAGE_COLUMNS}
    values["usage_json"] = usage.raw_json if usage else None
    return values


def columns(record_type: type) -> list[str]:
    return list(record_type._fields)


class HostRejectsStreamOptions(NamedTuple):
    """A server refused a request because of `stream_options`: never inject there again."""

    host: str
    learned_at: str
    reason: str | None


def describe(record: CallFinished, priced: bool = True) -> str:
    """One line for people: what mitmweb and the console show as the flow's comment. Before the
    writer has priced the call (`priced=False`) the cost is left out."""
    parts = [record.model or "unknown model"]
    if record.input_tokens is not None or record.output_tokens is not None:
        tokens = f"{record.input_tokens if record.input_tokens is not None else '?'} in"
        tokens += f" / {record.output_tokens if record.output_tokens is not None else '?'} out"
        if record.cached_input_tokens:
            tokens += f" ({record.cached_input_tokens} cached)"
        parts.append(tokens)
    else:
        parts.append("no usage reported")
    if priced:
        parts.append("unpriced" if record.cost_usd is None else f"${record.cost_usd:.6f}")
    if record.outcome != "ok":
        parts.append(record.outcome + (f": {record.error}" if record.error else ""))
    return " · ".join(parts)
