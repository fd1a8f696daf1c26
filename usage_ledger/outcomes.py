"""A call's `outcome` (docs/ledger.md, "`outcome`") from what the proxy saw. Pure."""

from __future__ import annotations

_HUNG_UP = ("client_aborted", "upstream_failed")
_CLIENT_SIDE_ERRORS = ("client disconnected", "reset by client", "connection killed", "client closed")


def failure_outcome(message: str) -> str:
    """`client_aborted` or `upstream_failed`, from mitmproxy's error message."""
    lowered = message.lower()
    return "client_aborted" if any(s in lowered for s in _CLIENT_SIDE_ERRORS) else "upstream_failed"


def final_outcome(outcome: str | None, error: str | None, status: int | None, ended: bool,
                  stream_error: str | None) -> tuple[str, str | None]:
    """(outcome, error) of a finished call. `outcome`: what ended it, if not the response
    (`client_aborted`, `proxy_stopped`, ...); `status`: the HTTP status, if any; `ended`: the API's
    terminal event was read; `stream_error`: the error the response body reported."""
    ok = status is not None and 200 <= status < 300
    if outcome in _HUNG_UP and ended and ok:
        outcome, error = None, None  # the stream had ended: a hang-up after its last event loses nothing
    if outcome is not None:
        return outcome, error
    if status is not None and not ok:
        return "http_error", stream_error or error or f"HTTP {status}"
    if stream_error:
        return "stream_error", stream_error
    return "ok", error
