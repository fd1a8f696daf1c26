"""The normalised usage of one call, in the ledger contract's token semantics."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Usage:
    """Token counts as the contract defines them; None means the provider did not report it.

    input_tokens counts every prompt token (cache reads and writes included) and output_tokens
    every generated token (reasoning included), whatever the provider's own convention.
    """

    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    raw: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.total_tokens is None and self.input_tokens is not None and self.output_tokens is not None:
            self.total_tokens = self.input_tokens + self.output_tokens

    @property
    def raw_json(self) -> str | None:
        return None if self.raw is None else json.dumps(self.raw, separators=(",", ":"))


def count(obj: Any, *keys: str) -> int | None:
    """The integer at obj[k1][k2]..., or None when any step is missing or not a count."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    if isinstance(obj, bool) or not isinstance(obj, (int, float)) or not math.isfinite(obj) or obj < 0:
        return None  # not a count: read as not reported
    return int(obj)


def add(*values: int | None) -> int | None:
    """Sum of the reported values; None only when none was reported."""
    present = [v for v in values if v is not None]
    return sum(present) if present else None
