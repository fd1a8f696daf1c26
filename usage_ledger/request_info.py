"""What a request says before its answer: the LLM API it calls (its path and body), its tags,
the columns of its started row. Knows mitmproxy's request objects, nothing of the addon."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mitmproxy import http

from . import json_bytes
from .apis import Recognised, Tracker, might_be_llm_call, recognise
from .attribution import take_tags
from .forms import form_fields
from .headers import header_map, host_header
from .redact import redact_path


def recognise_request(request: http.Request,
                      headers: Mapping[str, str] | None = None) -> tuple[Recognised, type[Tracker]] | None:
    """The API shape of a POST to an LLM API path, or None for any other request.

    The body is read as a JSON object (UTF-8, a BOM allowed, or the UTF-16/32 that RFC 8259's
    detection in `json.loads` accepts) or a multipart form. A body that is neither (malformed,
    empty, an array, encoded in a way mitmproxy cannot undo) is still a call to that API: it is
    recognised on its path with an empty body, so it gets a row whose outcome the provider's
    answer decides (mostly a 400 `http_error`), instead of passing unrecorded. `headers`: the
    request's `header_map`, when the caller has it."""
    path = request.path.partition("?")[0]
    if request.method != "POST" or not might_be_llm_call(path):
        return None
    if headers is None:
        headers = header_map(request.headers)
    try:
        raw = (request.get_content(strict=False) if headers.get("content-encoding") else request.raw_content) or b""
    except ValueError:
        raw = b""
    body: dict[str, Any] | None = None
    if "multipart/form-data" in headers.get("content-type", "").lower():
        body = form_fields(headers["content-type"], raw)
    elif raw:
        try:
            parsed = json_bytes.loads(raw)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            parsed = None
        body = parsed if isinstance(parsed, dict) else None
    return recognise(request.method, path, {} if body is None else body)


_TAGS = "usage_ledger_tags"


def flow_tags(flow: http.HTTPFlow) -> str | None:
    """Strip the `X-Ledger-Tag-*` headers from any request passing through (recognised or not,
    they never go upstream); the tags as JSON, kept on the flow for its call."""
    tags = take_tags(flow.request.headers)
    if tags is not None:
        flow.metadata[_TAGS] = tags
    return flow.metadata.get(_TAGS)


def iso_utc(ts: float) -> str:
    """A Unix time (s) as the ledger writes it: UTC, to the millisecond (cut, not rounded, from
    the microsecond datetime would round it to), `2026-12-04T19:20:01.123Z`.

    Every call's start goes through here on the event loop: the text up to the second is made
    by datetime once per second, and only the milliseconds per call."""
    whole = math.floor(ts)
    micro = round((ts - whole) * 1e6)  # as datetime.fromtimestamp does (half to even)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    global _second
    second = _second  # one read: another thread may replace it meanwhile
    if second[0] != whole:
        second = _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{second[1]}.{micro // 1000:03d}Z"


_second: tuple[int, str] = (-1, "")
"""The last second iso_utc wrote out, and its text."""


def request_columns(flow: http.HTTPFlow, pretty_host: str | None = None,
                    headers: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """CallStarted's columns that come from the HTTP request itself: client (`host:port`),
    user_agent, method, host (the Host header as sent, else `pretty_host`, looked up when not
    given) and path (credentials redacted). `headers`: the request's header_map, if made."""
    request = flow.request
    peer = flow.client_conn.peername
    if headers is None:
        user_agent, host = request.headers.get("user-agent"), request.host_header
    else:
        user_agent, host = headers.get("user-agent"), host_header(request, headers)
    return {"client": f"{peer[0]}:{peer[1]}" if peer else None, "user_agent": user_agent,
            "method": request.method, "host": host or pretty_host or request.pretty_host,
            "path": redact_path(request.path)}
