"""Bringing stored costs up to date: `usage-ledger reprice`."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime

from ..usage import Usage
from . import Pricer
from .reported import is_reported

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


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


def reprice_rows(con: sqlite3.Connection, pricer: Pricer, since: str | None = None) -> int:
    """Recompute cost_usd and price_source of finished rows (started_at >= since when given),
    from their stored tokens and raw usage; commits and returns how many costs changed.
    A cost the server reported outside its usage object (a header) is not stored anywhere else,
    and is what was charged: such rows keep it."""
    sql = ("SELECT id, started_at, provider, api, COALESCE(model, model_requested), input_tokens, "
           "cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, total_tokens, "
           "usage_json, service_tier, cost_usd, price_source FROM requests WHERE outcome IS NOT 'pending'")
    params: list[str] = []
    if since:
        sql += " AND started_at >= ?"
        params.append(_since_bound(since))
    updates: list[tuple[float | None, str | None, int]] = []
    changed = 0
    for (row_id, started_at, provider, api, model, tokens_in, cached, written, tokens_out, reasoning,
         total, usage_json, service_tier, old_cost, old_source) in con.execute(sql, params).fetchall():
        raw = None
        if usage_json:
            try:
                raw = json.loads(usage_json)
            except ValueError:
                raw = None
        usage = Usage(input_tokens=tokens_in, cached_input_tokens=cached, cache_write_tokens=written,
                      output_tokens=tokens_out, reasoning_tokens=reasoning, total_tokens=total,
                      raw=raw if isinstance(raw, dict) else None)
        new = pricer.price(provider=provider or "", api=api or "", model=model, usage=usage,
                           when=_started(started_at), service_tier=service_tier)
        if is_reported(old_source) and not is_reported(new.source):
            continue
        if new.cost_usd != old_cost:
            changed += 1
        if new.cost_usd != old_cost or new.source != old_source:
            updates.append((new.cost_usd, new.source, row_id))
    con.executemany("UPDATE requests SET cost_usd = ?, price_source = ? WHERE id = ?", updates)
    con.commit()
    return changed
