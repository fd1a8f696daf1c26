"""JSON bytes to Python values, as `json.loads` reads them, in a third of its time.

Every request body the proxy recognises, every usage-bearing frame and every non-streamed answer
is parsed on the event loop; an agent's request carries its whole conversation (100 kB and more),
so this is the biggest single cost per call. pydantic-core's parser (jiter, in Rust, installed
with pydantic) reads the JSON that RFC 8259 defines; whatever it refuses (a BOM, UTF-16/32, a
lone surrogate escape, nesting deeper than its limit, anything malformed) goes to `json.loads`,
so the values returned and the errors raised are exactly `json.loads`'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic_core import from_json


def loads(data: bytes | str, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """`json.loads(data, parse_constant=parse_constant)`: the same values (dict key order and
    duplicate keys included: the last value wins, at the first key's place) and the same errors
    (ValueError, UnicodeDecodeError, RecursionError). `parse_constant` is called for `NaN`,
    `Infinity` and `-Infinity`; without it they are floats, as in json.loads."""
    try:
        return from_json(data, allow_inf_nan=parse_constant is None, cache_strings="keys")
    except ValueError:
        return json.loads(data, parse_constant=parse_constant)
