"""The mitmproxy addon: recognise LLM API calls, read their usage, hand rows to the ledger."""

from __future__ import annotations

import logging
import sqlite3

from mitmproxy import ctx, exceptions, http

from .call import Call, failure_outcome, recognise_request
from .inject import include_usage_body
from .records import CallFinished, CallStarted
from .store import LedgerStore, default_db_path

log = logging.getLogger(__name__)


class UsageLedger:
    def __init__(self) -> None:
        self.store: LedgerStore | None = None
        self.calls: dict[str, Call] = {}

    def load(self, loader) -> None:
        loader.add_option(
            "ledger_db", str, default_db_path(),
            "SQLite file of the usage ledger; created with its folder, mode 0600.",
        )
        loader.add_option(
            "ledger_inject_usage", bool, True,
            "Add stream_options.include_usage to streamed chat-completion requests that do not set it.",
        )
        loader.add_option(
            "ledger_hide_injected_usage", bool, True,
            "Remove from the client's view the usage-only chunk that the injection caused.",
        )

    def configure(self, updated: set[str]) -> None:
        if "ledger_db" in updated:
            path = ctx.options.ledger_db
            try:
                store = LedgerStore(path)
            except (OSError, sqlite3.Error) as e:
                raise exceptions.OptionsError(f"ledger_db: cannot open {path!r}: {e}") from e
            old, self.store = self.store, store
            if old is not None:
                old.close()
            log.info("usage-ledger: writing to %s", path)

    def submit(self, record: CallStarted | CallFinished) -> None:
        if self.store is not None:
            self.store.submit(record)

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.id in self.calls:
            return
        found = recognise_request(flow.request)
        if found is None:
            return
        recognised, tracker_type = found
        call = Call.start(flow, recognised, tracker_type)
        if ctx.options.ledger_inject_usage and recognised.api == "openai-chat" and recognised.body:
            rewritten = include_usage_body(flow.request.get_content(strict=False) or b"", recognised.body)
            if rewritten is not None:
                flow.request.content = rewritten
                call.usage_injected = True
        self.calls[flow.id] = call
        self.submit(call.started_record(flow))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        call = self.calls.get(flow.id)
        if call is not None and flow.response is not None and call.begin_response(flow.response):
            flow.response.stream = call.on_chunk

    def response(self, flow: http.HTTPFlow) -> None:
        call = self.calls.pop(flow.id, None)
        if call is not None:
            self.submit(call.finish(flow))

    def error(self, flow: http.HTTPFlow) -> None:
        call = self.calls.pop(flow.id, None)
        if call is not None:
            message = flow.error.msg if flow.error else "connection failed"
            self.submit(call.finish(flow, failure_outcome(message), message))

    def done(self) -> None:
        for call in self.calls.values():
            self.submit(call.finish(call.flow, "client_aborted", "proxy stopped before the call ended"))
        self.calls.clear()
        if self.store is not None:
            self.store.close()
            self.store = None

