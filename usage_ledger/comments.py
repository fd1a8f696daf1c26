"""Each priced call's line on its flow (mitmweb's and the console's comment column), in batches.

The writer thread prices calls off the event loop, a transaction of them at a time. Handing
each priced row back on its own cost a write to the loop's self-pipe, a turn of the loop and an
`update` event through every addon, per call: more than the comment itself. So the writer
thread only appends the row here, and the first row of a batch schedules one drain on the loop,
which sets every waiting comment and tells mitmweb about all those flows in one `update`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from mitmproxy import ctx, http
from mitmproxy.hooks import UpdateHook

from .records import CallFinished, describe


class CostComments:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready: list[tuple[http.HTTPFlow, CallFinished]] = []
        """Priced rows whose comment is not set yet; a drain is scheduled while it is not empty."""

    def then(self, flow: http.HTTPFlow) -> Callable[[CallFinished], None] | None:
        """The writer thread's callback for this flow's priced row (records.CallEnded.then), or
        None off an event loop (nothing could show the comment)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None

        def priced(record: CallFinished) -> None:
            with self.lock:
                self.ready.append((flow, record))
                if len(self.ready) > 1:
                    return  # the drain scheduled for the first row takes this one too
            try:
                loop.call_soon_threadsafe(self.drain)
            except RuntimeError:  # the loop has closed: nobody is looking at the flows any more
                with self.lock:
                    self.ready.clear()

        return priced

    def drain(self) -> None:
        """On the event loop (flows belong to it): set the waiting comments."""
        with self.lock:
            ready, self.ready = self.ready, []
        for flow, record in ready:
            flow.comment = describe(record)
        try:
            ctx.master.addons.trigger(UpdateHook([flow for flow, _ in ready]))
        except Exception:  # no master any more (shutting down): the comments are set anyway
            pass
