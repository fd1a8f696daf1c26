"""Failures inside mitmproxy itself, which no hook reports: the `proxy_error` outcome.

When mitmproxy's connection handling raises (it cannot pass on HTTP/1 chunked trailers, for
one: `NotImplementedError: HTTP trailers are not implemented yet.`), it logs
"mitmproxy has crashed!" on `mitmproxy.proxy.server` with the client's address and the
exception (mitmproxy/proxy/server.py, `ConnectionHandler.server_event`). The flow's hooks then
see only what follows (the client giving up, a broken connection), which would read as the
client's or the server's fault. This handler hears the crash and names the calls it broke.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

SERVER_LOGGER = "mitmproxy.proxy.server"
_CRASHES = ("mitmproxy has crashed!", "connection handler has crashed")

Peer = tuple[str, int]


class ProxyCrashWatch(logging.Handler):
    """Calls `on_crash(client address, "mitmproxy: <exception>")` for every crash mitmproxy logs."""

    def __init__(self, on_crash: Callable[[Peer, str], None]) -> None:
        super().__init__(logging.ERROR)
        self.on_crash = on_crash

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if not record.getMessage().startswith(_CRASHES):
                return
            client = getattr(record, "client", None)
            exc = record.exc_info[1] if record.exc_info else None
            what = f"{type(exc).__name__}: {exc}" if exc is not None else record.getMessage()
            if client:
                self.on_crash(tuple(client), f"mitmproxy: {what}")
        except Exception:  # a logging handler must never raise into the proxy
            self.handleError(record)

    def install(self) -> None:
        logging.getLogger(SERVER_LOGGER).addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger(SERVER_LOGGER).removeHandler(self)
