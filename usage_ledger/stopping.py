"""Calls in flight when the ledger goes away: the proxy stopping (wait up to
`ledger_shutdown_grace` for them to end, then close what is still open as `proxy_stopped`), or
`ledger_db` pointing at another ledger. A mixin of `UsageLedger` (ledger.py), which holds the
state it reads (`calls`, `websockets`, `store`, `all_ended`, `shutdown_grace`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from mitmproxy import ctx

if TYPE_CHECKING:
    from .store import LedgerStore

log = logging.getLogger("usage_ledger.ledger")


class Stopping:
    """The shutdown of `UsageLedger`; every attribute it reads is one of UsageLedger's."""

    def move_open_calls(self, old: LedgerStore, new: LedgerStore) -> None:
        """`ledger_db` changed while calls were in flight: each one's row is made whole in the
        new ledger (its start again, its end when it comes), and closed in the old one as
        `proxy_stopped`, saying where it went, instead of staying `pending` there for good."""
        machine = ctx.options.ledger_machine or None
        why = f"the ledger was switched to {new.name} during the call"
        for call in self.calls.values():
            new.submit(call.started_record(call.flow, machine))
            old.submit(call.unread(call.flow, "proxy_stopped", why))
        self.websockets.move_open_responses(old.submit, new.submit, why)

    def notice_all_ended(self) -> None:
        """While the proxy stops: set `all_ended` once no call is in flight, HTTP or WebSocket."""
        if self.all_ended is not None and not self.calls and not self.websockets.in_flight():
            self.all_ended.set()

    def done(self):
        """mitmproxy stops (or the script is unloaded). When it stops, its connections are still
        served until every `done` hook has returned: calls in flight may end, and be recorded as
        they end, for up to `ledger_shutdown_grace` seconds (mitmproxy awaits what this returns).
        An unload cannot wait (mitmproxy calls `done` synchronously then)."""
        master = getattr(ctx, "master", None)
        stopping = master is not None and master.should_exit.is_set()
        if stopping and (self.calls or self.websockets.in_flight()) and self.shutdown_grace > 0:
            return self.wait_then_close(self.shutdown_grace)
        self.close("proxy stopped before the call ended")
        return None

    async def wait_then_close(self, grace: float) -> None:
        self.all_ended = asyncio.Event()
        log.info("usage-ledger: waiting up to %g s for %d call(s) in flight to end", grace,
                 len(self.calls) + self.websockets.in_flight())
        loop = asyncio.get_running_loop()
        again = (signal.SIGINT, signal.SIGTERM)
        try:
            for signum in again:  # mitmproxy's own handlers do nothing once it is stopping
                loop.add_signal_handler(signum, self.all_ended.set)
        except (NotImplementedError, RuntimeError, ValueError):  # no signals on this loop or thread
            again = ()
        try:
            await asyncio.wait_for(self.all_ended.wait(), grace)
        except TimeoutError:
            pass
        finally:
            for signum in again:
                loop.remove_signal_handler(signum)
        if self.calls or self.websockets.in_flight():
            log.warning("usage-ledger: %d call(s) still open at shutdown; recorded as proxy_stopped",
                        len(self.calls) + self.websockets.in_flight())
        self.close(f"proxy stopped before the call ended (within ledger_shutdown_grace {grace:g} s)")

    def close(self, reason: str) -> None:
        """Rows still open end as `proxy_stopped`, with the usage seen so far; then the ledger
        is written out and closed."""
        self.crash_watch.uninstall()
        open_calls, self.calls = list(self.calls.values()), {}
        for call in open_calls:
            self.complete(call.flow, call, "proxy_stopped", reason)
        self.websockets.close_all("proxy_stopped", reason)
        if self.store is not None:
            self.store.close()
            self.store = None
