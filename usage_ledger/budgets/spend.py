"""Each budget's spend in its current period: counted from the ledger's rows at start (and on
every reload of the budget file), then kept current in memory as calls finish.

`SpendTracker` is thread-safe: the proxy's event loop admits calls, and a finished call's cost
may arrive from whichever thread priced it. Per call it is dict lookups and float math; the
only SQL is `period_rows`, run by the caller off the event loop.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from ..reader import query
from .config import Budget, BudgetFile, CallFacts, in_scope, period_bounds

RECENT = 10_000
"""Finished calls remembered so a reload's SQL snapshot, which may miss rows the writer has not
committed yet, loses none of them (the writer commits within a second)."""
ANSWERED = 1_000
"""Requested models remembered with the model that last answered them."""


@dataclass
class Standing:
    """One budget in its current period. USD; tokens of calls without a known price."""

    budget: Budget
    start: datetime
    end: datetime | None
    spent_usd: float = 0.0
    calls: int = 0
    unpriced_calls: int = 0
    unpriced_tokens: int = 0
    in_flight_usd: float = 0.0
    in_flight: int = 0
    announced: set[str] = field(default_factory=set)

    @property
    def committed(self) -> float:
        """Spend plus the estimates of calls still in flight: what admission compares."""
        return self.spent_usd + max(self.in_flight_usd, 0.0)

    def warning(self) -> bool:
        b = self.budget
        mark = b.warn_at * b.limit_usd if b.warn_at else (b.limit_usd if b.action == "warn" else None)
        return mark is not None and self.spent_usd >= mark


@dataclass(frozen=True)
class Finished:
    """A finished call as the budgets see it (a ledger row's columns)."""

    flow_id: str
    facts: CallFacts
    started: datetime
    cost_usd: float | None
    tokens: int | None


@dataclass
class _InFlight:
    facts: CallFacts
    started: datetime
    estimate_usd: float
    counted: dict[str, datetime]
    """Budget name -> the period start its estimate was added in."""
    scope: CallFacts
    """`facts` with the model that last answered its requested model: what admits it."""


Announce = Callable[[Standing, str], None]


class SpendTracker:
    def __init__(self, announce: Announce | None = None) -> None:
        """announce(standing, label): called once per budget, period and threshold passed
        (label `80%` or `the limit`), in the thread that counted the spend."""
        self.lock = threading.Lock()
        self.file = BudgetFile()
        self.zone = UTC
        self.standings: dict[str, Standing] = {}
        self.in_flight: dict[str, _InFlight] = {}
        self.recent: deque[Finished] = deque(maxlen=RECENT)
        self.answered: dict[tuple[str | None, str], str] = {}
        """(provider, requested model) -> the model that last answered it (`gpt-4o-mini` ->
        `gpt-4o-mini-2024-07-18`): a budget scoped to the answered model admits by it."""
        self.announce = announce

    # --- the file and the ledger ---------------------------------------------------------------

    def since(self, file: BudgetFile, now: datetime) -> datetime | None:
        """The earliest period start of the file's budgets: the rows `reload` needs."""
        zone = file.zone()
        starts = [period_bounds(b.period, now, zone)[0] for b in file.budget]
        return min(starts) if starts else None

    def reload(self, file: BudgetFile, rows: Iterable[Finished], now: datetime) -> None:
        """Count anew from the ledger's finished rows (`period_rows` since `since(file, now)`),
        keeping the estimates of calls in flight and the finished calls the rows lack."""
        zone = file.zone()
        standings = {}
        for b in file.budget:
            start, end = period_bounds(b.period, now, zone)
            old = self.standings.get(b.name)
            announced = set(old.announced) if old and old.start == start and old.budget == b else set()
            standings[b.name] = Standing(b, start, end, announced=announced)
        seen = set()
        with self.lock:
            self.file, self.zone, self.standings = file, zone, standings
            for row in rows:
                seen.add(row.flow_id)
                self._count(row, announce=False)
            for row in self.recent:
                if row.flow_id not in seen:
                    self._count(row, announce=False)
            for call in self.in_flight.values():
                call.counted = {}
                self._add_estimate(call)
            for s in standings.values():
                self._announce(s)

    # --- calls ---------------------------------------------------------------------------------

    def admit(self, flow_id: str, facts: CallFacts, started: datetime, estimate_usd: float,
              now: datetime) -> tuple[Standing | None, list[Standing]]:
        """Decide one call before it goes upstream: (the `block` budget it would pass, as a
        snapshot, or None; the budgets in scope that are past their warning mark). An admitted
        call's estimate counts until `finished` replaces it with its cost."""
        with self.lock:
            self._roll(now)
            if not self.standings:
                return None, []
            scope = facts
            answered = self.answered.get((facts.provider, facts.models[0])) if facts.models else None
            if answered is not None and answered not in facts.models:
                scope = replace(facts, models=(*facts.models, answered))
            scoped = [s for s in self.standings.values() if in_scope(s.budget, scope)]
            for s in scoped:
                if s.budget.action == "block" and s.committed >= s.budget.limit_usd:
                    return replace(s, announced=set()), []
            # Tracked even when no budget is in scope yet: the model that answers (a dated
            # version, an Azure deployment's model) may put the finished call in one.
            call = _InFlight(facts, started, max(estimate_usd, 0.0), {}, scope)
            self.in_flight[flow_id] = call
            self._add_estimate(call)
            return None, [replace(s, announced=set()) for s in scoped if s.warning()]

    def finished(self, flow_id: str, model: str | None, cost_usd: float | None, tokens: int | None,
                 now: datetime | None = None) -> None:
        """A call admitted by `admit` ended (any outcome): its estimate gives way to its cost
        (None: unpriced; then its tokens count). Unknown flow ids are ignored."""
        with self.lock:
            call = self.in_flight.pop(flow_id, None)
            if call is None:
                return
            self._roll(now or datetime.now(UTC))
            for name, start in call.counted.items():
                s = self.standings.get(name)
                if s is not None and s.start == start:
                    s.in_flight_usd -= call.estimate_usd
                    s.in_flight -= 1
            facts = call.facts
            if model and model not in facts.models:
                facts = replace(facts, models=(*facts.models, model))
            row = Finished(flow_id, facts, call.started, cost_usd, tokens)
            self.recent.append(row)
            self._count(row, announce=True)

    def status(self, now: datetime) -> list[Standing]:
        """Snapshots of every budget in its current period, in file order."""
        with self.lock:
            self._roll(now)
            return [replace(s, announced=set(s.announced)) for s in self.standings.values()]

    # --- inside the lock -----------------------------------------------------------------------

    def _add_estimate(self, call: _InFlight) -> None:
        for s in self.standings.values():
            if in_scope(s.budget, call.scope) and s.start <= call.started:
                s.in_flight_usd += call.estimate_usd
                s.in_flight += 1
                call.counted[s.budget.name] = s.start

    def _count(self, row: Finished, announce: bool) -> None:
        models = row.facts.models
        if len(models) == 2 and models[0] != models[1]:  # (requested, answered)
            key = (row.facts.provider, models[0])
            self.answered.pop(key, None)  # so the oldest is first
            self.answered[key] = models[1]
            if len(self.answered) > ANSWERED:
                del self.answered[next(iter(self.answered))]
        cost = row.cost_usd
        fallback = self.file.unpriced_usd_per_mtok
        if cost is None and fallback and row.tokens:
            cost_fallback = row.tokens * fallback / 1e6
        else:
            cost_fallback = None
        for s in self.standings.values():
            if not (s.start <= row.started and (s.end is None or row.started < s.end)):
                continue
            if not in_scope(s.budget, row.facts):
                continue
            s.calls += 1
            if cost is None:
                if row.tokens:
                    s.unpriced_calls += 1
                    s.unpriced_tokens += row.tokens
                if cost_fallback is not None:
                    s.spent_usd += cost_fallback
            else:
                s.spent_usd += cost
            if announce:
                self._announce(s)

    def _announce(self, s: Standing) -> None:
        for label, usd in s.budget.thresholds():
            if s.spent_usd >= usd and label not in s.announced:
                s.announced.add(label)
                if self.announce is not None:
                    self.announce(replace(s, announced=set()), label)

    def _roll(self, now: datetime) -> None:
        for name, s in self.standings.items():
            if s.end is not None and now >= s.end:
                start, end = period_bounds(s.budget.period, now, self.zone)
                self.standings[name] = Standing(s.budget, start, end)


# --- the ledger's rows ---------------------------------------------------------------------------

_ROWS = """
    SELECT flow_id, started_at, provider, model_requested, model, user_agent, api_key_id, tags,
           cost_usd, input_tokens, output_tokens, total_tokens
    FROM requests
    WHERE started_at >= ? AND outcome NOT IN ('pending', 'blocked')
"""


def iso(when: datetime) -> str:
    """The ledger's `started_at` text for an instant: ISO-8601 UTC with milliseconds and Z."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def period_rows(con, since: datetime | None) -> list[Finished]:
    """The finished calls that started at or after `since` (None: none), from a SQLite or a
    PostgreSQL ledger connection. SQL; off the loop."""
    if since is None:
        return []
    rows = []
    for (flow_id, started_at, provider, requested, model, user_agent, key, tags, cost,
         tokens_in, tokens_out, total) in query(con, _ROWS, (iso(since),)):
        try:
            started = datetime.fromisoformat(started_at)
        except (TypeError, ValueError):
            continue
        rows.append(Finished(flow_id, row_facts(provider, requested, model, user_agent, key, tags),
                             started, cost, call_tokens(tokens_in, tokens_out, total)))
    return rows


def row_facts(provider: str | None, requested: str | None, model: str | None, user_agent: str | None,
              api_key_id: str | None, tags: str | None) -> CallFacts:
    """A call's scope facts from its ledger columns (`tags` as the row's JSON text)."""
    try:
        parsed = json.loads(tags) if tags else {}
    except ValueError:
        parsed = {}
    return CallFacts(provider=provider, models=tuple(m for m in (requested, model) if m),
                     user_agent=user_agent, api_key_id=api_key_id,
                     tags={str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {})


def call_tokens(input_tokens: int | None, output_tokens: int | None, total: int | None) -> int | None:
    """The tokens an unpriced call counts with: the reported total, else input + output."""
    if total is not None:
        return total
    if input_tokens is None and output_tokens is None:
        return None
    return (input_tokens or 0) + (output_tokens or 0)


def money(usd: float, limit: float) -> str:
    """USD as the budget's messages show it: cents, or enough digits for a limit under $1."""
    places = 2 if limit >= 1 else min(10, 2 - math.floor(math.log10(limit)) + 1)
    return f"{usd:.{places}f}"
