"""Price overrides: a JSON file in LiteLLM's per-token format, keyed by model name.

Source of the format: LiteLLM's `model_prices_and_context_window.json` (`sample_spec` and its
entries), USD per token.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..usage import Usage, count

_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$")


OVERRIDE_PREFIX = "override:"  # price_source of a row an override file priced: "override:<absolute path>"


def is_override(source: str | None) -> bool:
    """Whether a price_source names an override file (which only another override file replaces)."""
    return bool(source) and source.startswith(OVERRIDE_PREFIX)


class PriceFileError(ValueError):
    """A bad override file; the message is one line naming the file and the problem."""


_Rate = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _OverrideEntry(BaseModel):
    """One model in LiteLLM's `model_prices_and_context_window.json` shape, USD per token.

    Other LiteLLM fields (context sizes, modes, per-image prices, ...) are ignored.
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    input_cost_per_token: _Rate | None = None
    output_cost_per_token: _Rate | None = None
    cache_read_input_token_cost: _Rate | None = None
    cache_creation_input_token_cost: _Rate | None = None
    cache_creation_input_token_cost_above_1hr: _Rate | None = None


_OVERRIDE_FILE = TypeAdapter(dict[str, _OverrideEntry])


@dataclass(frozen=True)
class Rates:
    """An override entry as Decimals (from the float's shortest repr, i.e. what the file said)."""

    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    cache_write_1h: Decimal | None

    @classmethod
    def of(cls, entry: _OverrideEntry) -> Rates:
        def d(value: float | None) -> Decimal | None:
            return None if value is None else Decimal(repr(value))

        return cls(d(entry.input_cost_per_token), d(entry.output_cost_per_token),
                   d(entry.cache_read_input_token_cost), d(entry.cache_creation_input_token_cost),
                   d(entry.cache_creation_input_token_cost_above_1hr))


def load_overrides(path: str) -> dict[str, Rates]:
    """The override file's token-priced entries, keyed by lower-case model name."""
    try:
        return _load_overrides(path)
    except PriceFileError as e:  # one line, whatever the file's keys hold
        raise PriceFileError(re.sub(r"[\r\n]+", " ", str(e))) from None


def _load_overrides(path: str) -> dict[str, Rates]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise PriceFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise PriceFileError(f"{path}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise PriceFileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise PriceFileError(f"{path}: expected a JSON object keyed by model name, got {type(data).__name__}")
    try:
        entries = _OVERRIDE_FILE.validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        raise PriceFileError(f"{path}: {where}: {first['msg']}{more}") from None
    # Entries without any token price (LiteLLM's image/audio/rerank models, `sample_spec`)
    # cannot price a token row: leave those models to the bundled prices.
    return {key.lower(): Rates.of(entry) for key, entry in entries.items()
            if entry.input_cost_per_token is not None or entry.output_cost_per_token is not None}


def override_keys(provider: str, model: str) -> list[str]:
    """Names to look the model up by, most specific first; exact matches only, never a prefix."""
    model = model.lower()
    bases = [model]
    if "/" in model:
        bases.append(model.split("/", 1)[1])
    keys: list[str] = []
    for stage in (bases, [_DATE_SUFFIX.sub("", b) for b in bases]):
        for base in stage:
            keys += [base, f"{provider.lower()}/{base}"]
    return list(dict.fromkeys(keys))


def override_cost(rates: Rates, api: str, usage: Usage) -> Decimal | None:
    """(input - cached - written)·in + cached·cache_read + written·cache_write + output·out;
    missing cache rates fall back to the input rate. None when a needed rate is missing."""
    tokens_in = usage.input_tokens or 0
    cached = usage.cached_input_tokens or 0
    written = usage.cache_write_tokens or 0
    tokens_out = usage.output_tokens or 0
    uncached = tokens_in - cached - written
    if uncached < 0:
        return None
    r_in = rates.input
    r_read = rates.cache_read if rates.cache_read is not None else r_in
    r_write = rates.cache_write if rates.cache_write is not None else r_in
    cost = Decimal(0)
    for n, rate in ((uncached, r_in), (cached, r_read), (tokens_out, rates.output)):
        if n:
            if rate is None:
                return None
            cost += n * rate
    if written:
        one_hour = 0
        if rates.cache_write_1h is not None and api == "anthropic-messages":
            raw = usage.raw if isinstance(usage.raw, dict) else {}
            one_hour = min(count(raw, "cache_creation", "ephemeral_1h_input_tokens") or 0, written)
            cost += one_hour * rates.cache_write_1h
        if r_write is None:
            return None
        cost += (written - one_hour) * r_write
    return cost
