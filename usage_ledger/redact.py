"""Keeping secrets out of the ledger."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

_SECRET_PARAM = re.compile(r"(key|token|secret|signature|sig|password|auth|credential)", re.I)


def redact_path(path: str) -> str:
    """The request path with the values of secret-looking query parameters replaced."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_SECRET_PARAM.search(k) for k, _ in pairs):
        return path
    safe = [(k, "REDACTED" if _SECRET_PARAM.search(k) else v) for k, v in pairs]
    return f"{base}?{urlencode(safe, safe='-._~/:,')}"
