"""Sending a request again, through mitmproxy's own upstream machinery.

Used when a strict server refused the `stream_options` we added: the client's original request
goes out once more (same TLS settings, upstream proxy and addons as any flow) and its response
replaces the refusal. The retry is buffered, so this one response reaches the client whole;
later calls to that host are not rewritten and stream as usual.
"""

from __future__ import annotations

from mitmproxy import ctx, http
from mitmproxy.addons.clientplayback import ReplayHandler

RETRY_OF = "usage_ledger_retry_of"


async def resend(flow: http.HTTPFlow, body: bytes) -> http.HTTPFlow:
    retry = flow.copy()
    retry.request.content = body
    retry.response = None
    retry.error = None
    retry.metadata[RETRY_OF] = flow.id
    await ReplayHandler(retry, ctx.options).replay()
    return retry
