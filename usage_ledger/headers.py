"""A request's headers read once: mitmproxy's `Headers.get` walks every field and lowers each
name on every lookup, and a recognised call looks up about a dozen."""

from __future__ import annotations

from mitmproxy.http import Headers


def header_map(headers: Headers) -> dict[str, str]:
    """Lower-case name -> value, exactly as `headers.get(name)` gives it: values decoded as
    UTF-8 with surrogate escapes, a repeated header's values joined with ", " in order."""
    out: dict[str, str] = {}
    for name, value in headers.fields:
        key = name.lower().decode("utf-8", "surrogateescape")
        text = value.decode("utf-8", "surrogateescape")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out
