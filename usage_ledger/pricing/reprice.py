"""Bringing stored costs up to date: `usage-ledger reprice`.

Two kinds of rows keep their cost: a cost the server reported (`reported:...`, what was charged,
which no price table recomputes), and a cost an override file gave (`override:<path>`) when the
Pricer has no override file itself, so repricing with the bundled prices alone never quietly
undoes the user's own prices. A Pricer with an override file reprices every other row, those
priced by an earlier override file included.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from ..dialect import transaction
from ..reader import NOT_PENDING, dialect_of, query, to_dialect
from ..usage import Usage
from . import Pricer
from .overrides import is_override
from .reported import is_reported

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_QUANTUM = Decimal("1e-10")  # costs are stored rounded to 1e-10 USD, so their sums are exact at it


def _since_bound(since: str) -> str:
    """`since` (a UTC day or an ISO timestamp) in started_at's own format, to compare as text."""
    since = since.strip()
    if _DAY.fullmatch(since):
        return f"{since}T00:00:00.000Z"
    moment = datetime.fromisoformat(since)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _started(started_at: str | None) -> datetime:
    try:
        moment = datetime.fromisoformat(started_at or "")
    except ValueError:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _usd(total: Decimal) -> float:
    return float(total.quantize(_QUANTUM))


@dataclass
class RepricePlan:
    """What repricing would write, before anything is written. USD figures are sums of cost_usd
    over the rows considered (NULL costs add nothing), exact to 1e-10 USD."""

    rows: int = 0  # finished rows considered (started_at >= since); pending rows are never touched
    changed: int = 0  # rows whose cost_usd changes
    become_unpriced: int = 0  # of `changed`: a cost today, NULL after
    kept_override: int = 0  # priced by an override file, kept: the Pricer has no override file
    kept_reported: int = 0  # a reported cost that a recomputed one would have replaced, kept
    old_total_usd: float = 0.0
    new_total_usd: float = 0.0
    updates: list[tuple[float | None, str | None, int]] = field(default_factory=list)  # (cost, source, id)


def plan_reprice(con, pricer: Pricer, since: str | None = None) -> RepricePlan:
    """Recompute cost_usd and price_source of finished rows (started_at >= since when given:
    a UTC day or an ISO timestamp) from their stored tokens and raw usage, at each call's own
    started_at (historic prices). con: a SQLite or PostgreSQL ledger connection. Reads only;
    `apply_plan` writes. Raises ValueError for a bad `since`, the driver's error
    (reader.db_errors) for a database that is not a ledger."""
    sql = ("SELECT id, started_at, provider, api, COALESCE(model, model_requested), model_requested, input_tokens, "
           "cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, total_tokens, "
           f"usage_json, service_tier, cost_usd, price_source FROM requests WHERE {NOT_PENDING}")
    params: list[str] = []
    if since:
        sql += " AND started_at >= ?"
        params.append(_since_bound(since))
    plan = RepricePlan()
    old_total = new_total = Decimal(0)
    for (row_id, started_at, provider, api, model, requested, tokens_in, cached, written, tokens_out, reasoning,
         total, usage_json, service_tier, old_cost, old_source) in query(con, sql, params).fetchall():
        plan.rows += 1
        if old_cost is not None:
            old_total += Decimal(repr(old_cost))
        new_cost, new_source = old_cost, old_source
        if is_override(old_source) and pricer.override_source is None:
            plan.kept_override += 1
        else:
            new = pricer.price(provider=provider or "", api=api or "", model=model,
                               usage=_usage(tokens_in, cached, written, tokens_out, reasoning, total, usage_json),
                               when=_started(started_at), service_tier=service_tier, model_requested=requested)
            if is_reported(old_source) and not is_reported(new.source):
                plan.kept_reported += new.cost_usd != old_cost or new.source != old_source
            else:
                new_cost, new_source = new.cost_usd, new.source
        if new_cost is not None:
            new_total += Decimal(repr(new_cost))
        if new_cost != old_cost:
            plan.changed += 1
            plan.become_unpriced += new_cost is None
        if new_cost != old_cost or new_source != old_source:
            plan.updates.append((new_cost, new_source, row_id))
    plan.old_total_usd, plan.new_total_usd = _usd(old_total), _usd(new_total)
    return plan


def _usage(tokens_in, cached, written, tokens_out, reasoning, total, usage_json: str | None) -> Usage:
    raw = None
    if usage_json:
        try:
            raw = json.loads(usage_json)
        except ValueError:
            raw = None
    return Usage(input_tokens=tokens_in, cached_input_tokens=cached, cache_write_tokens=written,
                 output_tokens=tokens_out, reasoning_tokens=reasoning, total_tokens=total,
                 raw=raw if isinstance(raw, dict) else None)


def apply_plan(con, plan: RepricePlan) -> None:
    """Write a plan's new cost_usd/price_source in one transaction (all or nothing), committed."""
    dialect = dialect_of(con)
    with transaction(con, dialect):
        con.cursor().executemany(
            to_dialect("UPDATE requests SET cost_usd = ?, price_source = ? WHERE id = ?", dialect), plan.updates)


def reprice_rows(con, pricer: Pricer, since: str | None = None) -> int:
    """`plan_reprice` then `apply_plan` (commits); returns how many costs changed."""
    plan = plan_reprice(con, pricer, since)
    apply_plan(con, plan)
    return plan.changed
