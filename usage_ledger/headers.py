"""A request's headers read once: mitmproxy's `Headers.get` walks every field and lowers each
name on every lookup, and a recognised call looks up about a dozen."""

from __future__ import annotations

from functools import lru_cache

from mitmproxy.http import Headers, Request
from mitmproxy.net.http.url import parse_authority


def header_map(headers: Headers) -> dict[str, str]:
    """Lower-case name -> value, exactly as `headers.get(name)` gives it: values decoded as
    UTF-8 with surrogate escapes, a repeated header's values joined with ", " in order."""
    out: dict[str, str] = {}
    for name, value in headers.fields:
        key = name.lower().decode("utf-8", "surrogateescape")
        text = value.decode("utf-8", "surrogateescape")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


def host_header(request: Request, headers: dict[str, str]) -> str | None:
    """`request.host_header` (HTTP/2 and 3: the authority, else the Host header), from the
    request's header_map."""
    if request.is_http2 or request.is_http3:
        return request.authority or headers.get("host")
    return headers.get("host")


def pretty_host(request: Request, headers: dict[str, str]) -> str:
    """`request.pretty_host` (the host of host_header, else the host connected to), from the
    request's header_map."""
    authority = host_header(request, headers)
    return _authority_host(authority) if authority else request.host


@lru_cache(maxsize=256)
def _authority_host(authority: str) -> str:
    return parse_authority(authority, check=False)[0]
