"""genai-prices' price of a call, computed without its per-call search, copying and validation.

`genai_prices.calc_price(Usage(**usage), ref, provider_id=..., genai_request_timestamp=when,
price_context=...)` does, every call: find the model (for a name it does not know, a match
against every model of the provider, ~0.7 ms), pick the prices in force at `when` for the context
(`ModelInfo.get_prices`: conditional prices, price variants), validate that price set, wrap and
validate the usage, split the counts into leaves (input minus cache reads, writes, audio, ...)
and sum rate * leaf / per. For one model, context and moment only the last step depends on the
usage, so `calc` remembers the rest:

* the lookup per (provider id, model ref): genai-prices' own `find_provider_model` answer, the
  (provider, model) or its LookupError (the data is the bundled snapshot: nothing here fetches,
  and a snapshot swapped in by genai-prices' updater empties these caches);
* the resolved ModelPrice per (model, context, which of its StartDate/TimeOfDate constraints are
  active at `when`): all `get_prices` depends on. With it a `_Plan`: the (unit, rate) pairs in
  the price's own attribute order, and per priced unit the priced units below it (more dimensions
  of the unit registry: cache_read_tokens below input_tokens), whose leaves are taken off its count.

The sum is then made with the same Decimal operations, in the same order and in the calling
thread's Decimal context as genai-prices' (`Decimal(0)`, then `+= rate * Decimal(count) / per` per
unit, a tiered rate chosen by the total input tokens), so it is the same Decimal, digit for digit.

Everything else is left to genai-prices itself, so its answer and its exception stay what they
are: a usage value that is not a non-negative int, a key outside its unit registry, audio seconds
(Groq bills whisper for at least 10 s and genai-prices rewrites those counts), a price set it
would warn about or reject (an unknown price key, an invalid rate, a missing ancestor or join
price), a missing count it wants given (a more specific count was, or two that together make
it, such as cache reads and audio for cached audio: its ValueError), and a leaf below zero (more
cached than input tokens: its ValueError). tests/test_pricing_fast.py compares this with
genai-prices over every model of the snapshot; the fast path runs only on the genai-prices
versions that test has passed on (`VERIFIED`), others always go to genai-prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import genai_prices
from genai_prices import data_snapshot
from genai_prices.decompose import is_descendant_or_self
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices
from genai_prices.units import UnitDef, _get_registry  # the registry genai-prices prices with
from genai_prices.validation import validate_priced_units

Context = dict[str, str] | None

VERIFIED = frozenset({"0.2.3"})
ENABLED = genai_prices.__version__ in VERIFIED
# Seconds of audio: genai-prices rewrites them for Groq's whisper (10 s minimum), and they may be floats.
_LEFT_TO_GENAI = frozenset({"audio_seconds", "input_audio_seconds"})
_REQUESTS = "requests"  # the one unit counted per call (1), not from the usage
_MAX_ENTRIES = 10_000  # model names come from traffic: bound the caches
_ZERO = Decimal(0)


class _Found(NamedTuple):
    provider: Provider
    model: ModelInfo
    own: bool  # a model of the provider itself, not of a fallback provider (only then is the context applied)


@dataclass(frozen=True, slots=True)
class _Plan:
    model_price: ModelPrice
    # most specific first: usage key, the positions of the priced units below it (their leaves are
    # taken off), and what makes genai-prices refuse a missing count as 0 (_BELOW, _JOINED)
    leaves: tuple[tuple[str, tuple[int, ...], tuple[str, ...], tuple[tuple[str, str], ...]], ...]
    # in the price's attribute order: the leaf's position (-1: requests, counted 1), per, base rate, tiers high first
    terms: tuple[tuple[int, Decimal, Decimal, tuple[tuple[int, Decimal], ...]], ...]
    tiered: bool


_snapshot: object = None
_lookups: dict[tuple[str | None, str], _Found | tuple[Any, ...]] = {}  # a miss holds its LookupError's args
# (model, plan): the model is held so its id is not reused while the entry lives; plan None: genai-prices prices it
_plans: dict[tuple[Any, ...], tuple[ModelInfo, _Plan | None]] = {}
_registry = _get_registry()
_PLAIN_KEYS = frozenset(_registry.units) - _LEFT_TO_GENAI - {_REQUESTS}  # genai-prices warns about others
_BELOW = {k: tuple(d for d, du in _registry.units.items() if du is not u and is_descendant_or_self(u, du))
          for k, u in _registry.units.items()}


def _joined_by(unit: UnitDef) -> tuple[tuple[str, str], ...]:
    """Pairs of units, neither inside the other, whose dimensions together are exactly `unit`'s
    (so both are above it): reported both, genai-prices refuses to infer `unit` as 0."""
    above = sorted(_registry.ancestor_usage_keys(unit.usage_key))
    units = [_registry.units[k] for k in above]
    return tuple((a.usage_key, b.usage_key) for i, a in enumerate(units) for b in units[i + 1:]
                 if a.is_compatible_with(b) and not is_descendant_or_self(a, b) and not is_descendant_or_self(b, a)
                 and dict(unit.dimensions) == {**a.dimensions, **b.dimensions})


_JOINED = {k: _joined_by(u) for k, u in _registry.units.items()}


def calc(usage: dict[str, Any], refs: list[str], provider_id: str | None, when: datetime,
         context: Context) -> tuple[Decimal, ModelPrice]:
    """(total_price, model_price) of genai-prices' calc_price for the first of `refs` it knows.
    Raises the LookupError of the last ref when it knows none, and genai-prices' ValueError for
    counts it cannot price."""
    if not ENABLED or not plain_usage(usage):
        return _genai(usage, refs, provider_id, when, context)
    _check_snapshot()
    for i, ref in enumerate(refs):
        found = _lookup(provider_id, ref)
        if not isinstance(found, _Found):
            if i == len(refs) - 1:
                raise LookupError(*found)
            continue
        priced = plain_cost(found.model, found.own, usage, when, context)
        return priced if priced is not None else _genai(usage, [ref], provider_id, when, context)
    raise LookupError("no model name")


def plain_usage(usage: dict[str, Any]) -> bool:
    """Whether `plain_cost` may price `usage`: non-negative ints of keys it knows."""
    return all(type(v) is int and v >= 0 and k in _PLAIN_KEYS for k, v in usage.items())


def plain_cost(model: ModelInfo, own: bool, usage: dict[str, int], when: datetime,
               context: Context) -> tuple[Decimal, ModelPrice] | None:
    """What `model.calc_price(Usage(**usage), provider, genai_request_timestamp=when,
    price_context=context)` gives (its total_price and model_price), or None when that is left to
    genai-prices. `own`: `model` is one of `provider.models`; `usage` passes `plain_usage`."""
    plan = _plan(model, own, when, context)
    if plan is None:
        return None
    counts: list[int] = []  # each leaf's count, in plan.leaves' order
    for key, below, lone, pairs in plan.leaves:
        value = usage.get(key)
        if value is None:
            if (lone or pairs) and _wanted(usage, lone, pairs):
                return None
            value = 0
        for i in below:
            value -= counts[i]
        if value < 0:
            return None
        counts.append(value)
    total_input = _count(usage, "input_tokens") if plan.tiered else 0
    if total_input is None:
        return None
    total = _ZERO
    for i, per, rate, tiers in plan.terms:
        for start, tier_rate in tiers:
            if total_input > start:
                rate = tier_rate
                break
        total += rate * (counts[i] if i >= 0 else 1) / per  # Decimal * int: the int exactly, as Decimal(count)
    return total, plan.model_price


def _wanted(usage: dict[str, int], lone: tuple[str, ...], pairs: tuple[tuple[str, str], ...]) -> bool:
    """Whether genai-prices, missing a count, wants it explicit: a count below it was given, or two
    that together make it."""
    return any(usage.get(k) for k in lone) or any(usage.get(a) and usage.get(b) for a, b in pairs)


def _count(usage: dict[str, int], key: str) -> int | None:
    """The count genai-prices reads for `key`; None where it would raise rather than take 0."""
    if key in usage:
        return usage[key]
    return None if _wanted(usage, _BELOW[key], _JOINED[key]) else 0


def _lookup(provider_id: str | None, ref: str) -> _Found | tuple[Any, ...]:
    key = (provider_id, ref)
    found = _lookups.get(key)
    if found is None:
        try:
            provider, model = data_snapshot.get_snapshot().find_provider_model(ref, None, provider_id, None)
            found = _Found(provider, model, any(model is m for m in provider.models))
        except LookupError as e:
            found = e.args
        if len(_lookups) >= _MAX_ENTRIES:
            _lookups.clear()
        _lookups[key] = found
    return found


def _plan(model: ModelInfo, own: bool, when: datetime, context: Context) -> _Plan | None:
    context = context if own else None  # genai-prices applies no context to a fallback provider's model
    active = tuple(c.constraint is None or c.constraint.active(when)
                   for c in (() if isinstance(model.prices, ModelPrice) else model.prices))
    if context:
        active += tuple(v.constraint is None or v.constraint.active(when) for v in model.price_variants or ())
    key = (id(model), tuple(context.items()) if context else None, active)
    entry = _plans.get(key)
    if entry is None or entry[0] is not model:
        if len(_plans) >= _MAX_ENTRIES:
            _plans.clear()
        _plans[key] = entry = model, _make_plan(model.get_prices(when, context))
    return entry[1]


def _make_plan(price: ModelPrice) -> _Plan | None:
    """How to price usages with `price`, or None for a price set genai-prices would warn about or
    reject (then it prices, warns or raises itself)."""
    if type(price) is not ModelPrice:
        return None
    terms, units = [], []
    for price_key, rate in price.__dict__.items():
        if rate is None or price_key.startswith("_"):
            continue
        try:
            unit = _registry.unit_for_price_key(price_key)
        except KeyError:
            return None  # genai-prices warns and leaves it out
        if isinstance(rate, TieredPrices):
            base, tiers = rate.base, [(t.start, t.price) for t in rate.tiers]
            starts = [s for s, _ in tiers]
            if any(type(s) is not int or s < 0 for s in starts) or starts != sorted(starts):
                return None
        else:
            base, tiers = rate, []
        if not all(_valid_rate(r) for r in [base, *(r for _, r in tiers)]):
            return None
        terms.append((unit, Decimal(unit.per), base, tuple(reversed(tiers))))
        units.append(unit)
    try:
        validate_priced_units(units, _registry)
    except ValueError:
        return None
    leaf_units = sorted((u for u in units if u.usage_key != _REQUESTS),
                        key=lambda u: (-len(u.dimensions), u.usage_key))  # genai-prices' order: most specific first
    position = {u.usage_key: i for i, u in enumerate(leaf_units)}
    leaves = tuple((u.usage_key,
                    tuple(i for i, d in enumerate(leaf_units) if d is not u and is_descendant_or_self(u, d)),
                    _BELOW[u.usage_key], _JOINED[u.usage_key]) for u in leaf_units)
    return _Plan(price, leaves, tuple((position.get(u.usage_key, -1), *rest) for u, *rest in terms),
                 any(tiers for *_, tiers in terms))


def _valid_rate(rate: object) -> bool:
    return type(rate) is Decimal and rate.is_finite() and rate >= 0


def _check_snapshot() -> None:
    global _snapshot
    snapshot = data_snapshot.get_snapshot()
    if snapshot is not _snapshot:
        _lookups.clear()
        _plans.clear()
        _snapshot = snapshot


def _genai(usage: dict[str, Any], refs: list[str], provider_id: str | None, when: datetime,
           context: Context) -> tuple[Decimal, ModelPrice]:
    """genai-prices itself: the first of `refs` it knows."""
    for i, ref in enumerate(refs):
        try:
            calc = genai_prices.calc_price(genai_prices.Usage(**usage), ref, provider_id=provider_id,
                                           genai_request_timestamp=when, price_context=context)
        except LookupError:
            if i == len(refs) - 1:
                raise
            continue
        return calc.total_price, calc.model_price
    raise LookupError("no model name")
