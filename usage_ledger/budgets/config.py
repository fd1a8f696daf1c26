"""The budget file: its pydantic model, scope matching and calendar periods. No I/O but reading
the file in `load_budget_file`.

Shape (TOML, docs/ledger.md "Budgets"):

    timezone = "Europe/Berlin"        # optional, IANA name; default the machine's local zone
    [[budget]]
    name = "daily"                    # unique; shown in messages
    limit_usd = 20.0
    period = "day"                    # day | week | month | total
    action = "block"                  # block | warn
    warn_at = 0.8                     # optional fraction of the limit
    tags = { project = "billing-bot" } # optional scope: every key given must match (globs)
    api_key_id = "..."  provider = "anthropic"  model = "claude-*"  user_agent = "claude-cli/*"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from fnmatch import fnmatchcase
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .libc_zone import LibcZone


class BudgetFileError(ValueError):
    """A bad budget file; the message is one line naming the file and the problem."""


Period = Literal["day", "week", "month", "total"]
_Glob = Annotated[str, Field(min_length=1)]


class Budget(BaseModel):
    """One `[[budget]]` table. Scope keys left out match every call."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: Annotated[str, Field(min_length=1)]
    limit_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    period: Period
    action: Literal["block", "warn"] = "block"
    warn_at: Annotated[float, Field(gt=0, lt=1)] | None = None
    tags: dict[str, _Glob] | None = None
    api_key_id: _Glob | None = None
    provider: _Glob | None = None
    model: _Glob | None = None
    user_agent: _Glob | None = None

    @field_validator("limit_usd", "warn_at", mode="before")
    @classmethod
    def _int_is_a_number(cls, value):  # `limit_usd = 20` is as good as 20.0
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("tags")
    @classmethod
    def _tag_names_lowercase(cls, tags):  # the ledger lowercases X-Ledger-Tag-* names
        return None if tags is None else {k.lower(): v for k, v in tags.items()}

    def thresholds(self) -> list[tuple[str, float]]:
        """(label, USD) the spend is announced at when it passes them, lowest first."""
        marks = [(f"{self.warn_at:.0%}", self.warn_at * self.limit_usd)] if self.warn_at else []
        return [*marks, ("the limit", self.limit_usd)]


class BudgetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    timezone: str | None = None
    unpriced_usd_per_mtok: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    """Price per million tokens for calls with no known price; 0 counts only their tokens."""
    budget: list[Budget] = []

    @field_validator("unpriced_usd_per_mtok", mode="before")
    @classmethod
    def _int_is_a_number(cls, value):
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name):
        if name is not None:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {name!r} (an IANA name, like 'Europe/Berlin')") from None
        return name

    @model_validator(mode="after")
    def _unique_names(self):
        seen: set[str] = set()
        for b in self.budget:
            if b.name in seen:
                raise ValueError(f"two budgets are named {b.name!r}")
            seen.add(b.name)
        return self

    def zone(self) -> tzinfo:
        """The file's zone, else the machine's local one (as a fixed-rule tzinfo from the OS)."""
        return ZoneInfo(self.timezone) if self.timezone else local_zone()


def local_zone() -> tzinfo:
    """The machine's zone with its DST rules: `$TZ` when it names one, else as the C library
    reads it (a POSIX rule such as `IST-5:30`), else /etc/localtime, else the current fixed
    offset."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return LibcZone()
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return datetime.now().astimezone().tzinfo or UTC


def parse_budget_file(text: str, source: str) -> BudgetFile:
    """The validated file; BudgetFileError with one line `<source>: <problem>` otherwise."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BudgetFileError(f"{source}: not valid TOML: {e}") from None
    try:
        return BudgetFile.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = _where(data, first["loc"])
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        raise BudgetFileError(f"{source}: {where}{first['msg']}{more}") from None


def load_budget_file(path: str) -> BudgetFile:
    """Read and validate the file at `path`; BudgetFileError (one line) if missing or bad."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise BudgetFileError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    return parse_budget_file(text, path)


def _where(data: dict, loc: tuple) -> str:
    """`budget "daily" limit_usd: ` for pydantic's ('budget', 0, 'limit_usd')."""
    if not loc:
        return ""
    parts = []
    if loc[0] == "budget" and len(loc) > 1 and isinstance(loc[1], int):
        try:
            parts.append(f'budget "{data["budget"][loc[1]]["name"]}"')
        except (KeyError, IndexError, TypeError):
            parts.append(f"budget #{loc[1] + 1}")
        loc = loc[2:]
    parts += [str(p) for p in loc]
    return " ".join(parts) + ": " if parts else ""


# --- scope ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallFacts:
    """What a budget's scope can match on: the ledger columns of one call."""

    provider: str | None = None
    models: tuple[str, ...] = ()
    """The requested model and the response's model; a `model` glob matching either matches."""
    user_agent: str | None = None
    api_key_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def _glob(pattern: str | None, value: str | None) -> bool:
    return pattern is None or (value is not None and fnmatchcase(value, pattern))


def in_scope(budget: Budget, call: CallFacts) -> bool:
    """Does the call count against the budget? Every scope key the budget gives must match."""
    if budget.model is not None and not any(fnmatchcase(m, budget.model) for m in call.models if m):
        return False
    if budget.tags and not all(_glob(p, call.tags.get(k)) for k, p in budget.tags.items()):
        return False
    return (_glob(budget.provider, call.provider) and _glob(budget.user_agent, call.user_agent)
            and _glob(budget.api_key_id, call.api_key_id))


def matching(budgets: Iterable[Budget], call: CallFacts) -> list[Budget]:
    return [b for b in budgets if in_scope(b, call)]


# --- periods -------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _local_midnight(day: datetime, zone: tzinfo) -> datetime:
    """The first instant of the local calendar day `day` (a date's fields), in UTC. A midnight
    that a DST jump skips (fold 0 takes the offset before the jump) is the jump's instant."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def period_bounds(period: Period, now: datetime, zone: tzinfo) -> tuple[datetime, datetime | None]:
    """[start, end) in UTC of the calendar period holding `now` (aware), as the clocks in `zone`
    show it: a day starts at local midnight, a week on Monday, a month on its first day. `total`
    is (1970-01-01, None): it never resets."""
    if period == "total":
        return _EPOCH, None
    local = now.astimezone(zone)
    if period == "day":
        first = local
        following = local + timedelta(days=1)
    elif period == "week":
        first = local - timedelta(days=local.weekday())
        following = first + timedelta(days=7)
    elif period == "month":
        first = local.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown period {period!r}")
    start, end = _local_midnight(first, zone), _local_midnight(following, zone)
    if now < start:  # a zone whose midnight is skipped by a jump at 00:00 exactly can land here
        start = now
    return start, end
