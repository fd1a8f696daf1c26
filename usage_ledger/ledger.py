"""The mitmproxy addon: recognise LLM API calls, read their usage, hand rows to the ledger."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from functools import partial
from datetime import UTC, datetime

from mitmproxy import ctx, http

from .background import BackgroundResponses
from .budgets.addon import Budgets
from .call import Call
from .outcomes import failure_outcome
from .request_info import flow_tags, recognise_request
from .comments import CostComments
from .headers import header_map
from .heap import freeze_when_ready
from .inject import include_usage_body
from .listen import LocalOnly
from .otel import OtelExport
from .postgres import redacted, safe_message
from .pricing import Pricer, PriceFileError
from .proxy_errors import ProxyCrashWatch
from .records import CallEnded, CallFinished, CallStarted, HostRejectsStreamOptions, describe
from .retry import RETRY_OF, resend
from .stopping import Stopping
from .store import LedgerStore, default_db_path
from .web_columns import WebColumns
from .websocket import WebSocketCalls

log = logging.getLogger(__name__)

# Hosts that send usage in every stream unasked, so adding the field gains nothing. Hosts that
# reject it (Mistral's 422, old Azure api-versions' 400) are learned on their first refusal and
# remembered in the ledger, since whether they reject depends on the API version in use.
HOSTS_NOT_NEEDING_STREAM_OPTIONS = frozenset({"openrouter.ai"})


def addressed(host: str, request: http.Request) -> str:
    """`host:port` (`[v6]:port`) of the server a request went to: what the proxy learns a refusal of
    stream_options by."""
    return f"[{host}]:{request.port}" if ":" in host else f"{host}:{request.port}"


def seconds(text: str) -> float | None:
    """A duration option's value: seconds >= 0, or None when it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value < float("inf") else None


class UsageLedger(Stopping):
    def __init__(self) -> None:
        self.store: LedgerStore | None = None
        self.pricer = Pricer()
        self.calls: dict[str, Call] = {}
        self.no_inject_hosts: set[str] = set(HOSTS_NOT_NEEDING_STREAM_OPTIONS)
        self.rows_written: list = []  # called by the store's writer thread with written rows
        self.budgets = Budgets(self)
        self.websockets = WebSocketCalls(self.submit, lambda row_id: self.budgets.priced_then(row_id, None),
                                         ended=self.notice_all_ended)
        # mitmproxy runs sub-addons' hooks too, after ours
        self.addons = [LocalOnly(), OtelExport(self.rows_written), self.websockets, self.budgets,
                       WebColumns()]
        self.crash_watch = ProxyCrashWatch(self.proxy_crashed)
        self.background = BackgroundResponses()
        self.comments = CostComments()
        self.shutdown_grace = 5.0
        self.freezing: asyncio.Future | None = None  # held: the loop keeps only a weak reference to a task
        self.all_ended: asyncio.Event | None = None
        """Set while mitmproxy stops, once no call is in flight (or a second signal says: now)."""

    def running(self) -> None:
        self.crash_watch.install()
        master = getattr(ctx, "master", None)
        # a proxy starting, not a test harness's master: the freeze is for the whole process
        if self.store is not None and not type(master).__module__.startswith("mitmproxy.test"):
            self.freezing = asyncio.ensure_future(freeze_when_ready(self.store.warmed))

    def proxy_crashed(self, client: tuple[str, int], message: str) -> None:
        """mitmproxy failed inside itself on this client's connection: its calls in flight end
        as `proxy_error` with mitmproxy's own message (the client did not go away). Bytes that
        arrived with the failure can still be on their way through the stream (mitmproxy holds
        them while a hook runs), so a stream whose end has not been read yet is completed when
        it is, or when the client leaves, or at shutdown: the usage that passed is kept."""
        for call in [c for c in self.calls.values() if tuple(c.flow.client_conn.peername or ()) == client]:
            call.crash = message
            call.on_stream_end = partial(self.end_crashed, call)
            if call.scanner is None or call.tracker.ended:
                call.on_stream_end()

    def end_crashed(self, call: Call) -> None:
        call.on_stream_end = None
        if self.calls.pop(call.flow.id, None) is not None:
            self.complete(call.flow, call)

    def load(self, loader) -> None:
        loader.add_option(
            "ledger_db", str, default_db_path(),
            "The usage ledger: a SQLite file (created with its folder, mode 0600), or a PostgreSQL "
            "database's postgresql://user@host/db URL (password from PGPASSWORD or ~/.pgpass; never logged).",
        )
        loader.add_option(
            "ledger_machine", str, socket.gethostname(),
            "This proxy's name in the `machine` column, telling apart the rows of proxies that share a ledger.",
        )
        loader.add_option(
            "ledger_inject_usage", bool, True,
            "Add stream_options.include_usage to streamed chat-completion requests that do not set it.",
        )
        loader.add_option(
            "ledger_hide_injected_usage", bool, True,
            "Remove from the client's view the usage-only chunk that the injection caused.",
        )
        loader.add_option(
            "ledger_prices", str, "",
            "JSON file of price overrides in LiteLLM's per-token format, keyed by model; wins over bundled prices.",
        )
        loader.add_option(
            "ledger_shutdown_grace", str, "5",
            "Seconds a stopping proxy waits for calls in flight to end; calls still open then are "
            "recorded as proxy_stopped. A second Ctrl-C or SIGTERM ends the wait.",
        )

    def configure(self, updated: set[str]) -> None:
        # A bad setting is logged as one error line, not raised: raised from a script it would
        # come with a traceback. At startup mitmproxy exits on it; later the old setting stays.
        if "ledger_prices" in updated:
            try:
                self.pricer = Pricer(ctx.options.ledger_prices or None)
            except PriceFileError as e:
                log.error("usage-ledger: ledger_prices: %s", e)
            else:
                if self.store is not None:  # calls ending from now on get the new prices
                    self.store.use_pricer(self.pricer)
        if "ledger_shutdown_grace" in updated:
            grace = seconds(ctx.options.ledger_shutdown_grace)
            if grace is None:
                log.error("usage-ledger: ledger_shutdown_grace: not a number of seconds >= 0: %r",
                          ctx.options.ledger_shutdown_grace)
            else:
                self.shutdown_grace = grace
        if "ledger_db" in updated:
            target = ctx.options.ledger_db
            try:
                store = LedgerStore(target, pricer=self.pricer, rows_written=self.rows_written)
            except (OSError, ValueError, sqlite3.Error) as e:
                log.error("usage-ledger: ledger_db: cannot open %s: %s", redacted(target), safe_message(str(e), target))
                return
            old, self.store = self.store, store
            if old is not None:
                self.move_open_calls(old, store)
                old.close()
            self.no_inject_hosts |= store.hosts_without_stream_options
            log.info("usage-ledger: writing to %s", store.name)

    def submit(self, record: CallStarted | CallEnded | CallFinished | HostRejectsStreamOptions) -> None:
        if self.store is not None:
            self.store.submit(record)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow_tags(flow)  # before a streamed request body sends the headers on

    def request(self, flow: http.HTTPFlow) -> None:
        tags = flow_tags(flow)
        if flow.response is not None or flow.id in self.calls or RETRY_OF in flow.metadata:
            return
        if self.background.start_poll(flow):
            return
        headers = header_map(flow.request.headers)
        found = recognise_request(flow.request, headers)
        if found is None:
            return
        recognised, tracker_type = found
        call = Call.start(flow, recognised, tracker_type, headers, tags)
        body = recognised.body
        if (ctx.options.ledger_inject_usage and recognised.api == "openai-chat" and body
                and body.get("stream") is True and not self.refuses_stream_options(call.host, flow.request)):
            rewritten = include_usage_body(flow.request.get_content(strict=False) or b"", body)
            if rewritten is not None:  # so the client did not ask for usage itself
                call.inject_usage(flow.request, rewritten, hide=ctx.options.ledger_hide_injected_usage)
        self.calls[flow.id] = call
        self.submit(call.started_record(flow, ctx.options.ledger_machine or None))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self.background.responseheaders(flow)
        call = self.calls.get(flow.id)
        if call is not None and flow.response is not None and call.begin_response(flow.response):
            flow.response.stream = call.on_chunk

    async def response(self, flow: http.HTTPFlow) -> None:
        finished = self.background.finished(flow)
        if finished is not None:  # a poll showed a background response's end: its call's row
            tracker = finished.tracker
            outcome = "stream_error" if tracker.error else "ok"
            self.complete(finished.flow, finished, outcome, tracker.error)
        call = self.calls.get(flow.id)
        if call is None or flow.response is None:
            return
        if call.rejected_stream_options(flow.response):
            try:
                await self.retry_without_stream_options(flow, call)
            except Exception:  # the client gets the refusal as the server sent it
                log.exception("usage-ledger: could not resend flow %s without stream_options", flow.id)
        if self.calls.pop(flow.id, None) is not None:
            self.complete(flow, call)

    def refuses_stream_options(self, host: str, request: http.Request) -> bool:
        """Has this server refused the field before? Learned per host and port (servers on one
        machine differ); a bare host (HOSTS_NOT_NEEDING_STREAM_OPTIONS, a row learned before
        the port was kept, or one a user wrote) stands for all its ports."""
        hosts = self.no_inject_hosts
        return host in hosts or addressed(host, request) in hosts

    async def retry_without_stream_options(self, flow: http.HTTPFlow, call: Call) -> None:
        host = addressed(call.host, flow.request)
        if host not in self.no_inject_hosts:
            self.no_inject_hosts.add(host)
            log.warning("usage-ledger: %s rejects stream_options; no longer adding it there", host)
            learned = datetime.now(UTC).isoformat(timespec="seconds")
            self.submit(HostRejectsStreamOptions(host, learned, f"HTTP {flow.response.status_code}"))
        retried = await resend(flow, call.original_body or b"")
        if retried.response is not None:
            flow.response = retried.response
            call.take_retried_response(retried.response)

    def error(self, flow: http.HTTPFlow) -> None:
        self.background.failed(flow)
        call = self.calls.pop(flow.id, None)
        if call is not None:
            message = flow.error.msg if flow.error else "connection failed"
            self.complete(flow, call, failure_outcome(message), message)

    def complete(self, flow: http.HTTPFlow, call: Call, outcome: str | None = None, error: str | None = None) -> None:
        if call.crash is not None:  # however it ends after that, mitmproxy's failure is the cause
            outcome, error = "proxy_error", call.crash
        # Shown in mitmweb and the console's flow list: the tokens now, the cost once the
        # writer thread has priced the call (pricing is kept off the event loop).
        then = self.budgets.priced_then(call.row_id, self.comments.then(flow))
        try:
            ended = call.finish(flow, outcome, error, then)
        except Exception as e:  # our bug: the call still gets its row, without usage
            log.exception("usage-ledger: could not read the outcome of flow %s", flow.id)
            record = call.unread(flow, outcome, f"usage-ledger internal error: {type(e).__name__}")
            self.submit(record)
            self.budgets.finished(record)
            flow.comment = describe(record)
        else:
            flow.comment = describe(ended.row, priced=False)
            self.submit(ended)
        self.background.remember(call)
        self.notice_all_ended()
