"""Budgets: spend limits enforced before a call goes upstream (`ledger_budgets`, a TOML file).

`Budgets` is a sub-addon of the ledger: it owns the option, the file (reloaded when it changes,
by a watcher thread) and the spend (`SpendTracker`). Its `BudgetGate` is a sub-addon of its own
only while a budget file is in use, so without one no hook of this package runs for any call.

The gate's `request` hook runs after the ledger's (mitmproxy calls a parent's hooks before its
sub-addons'), so the call is recognised and its row started; a refused call's row is then
completed as `blocked`, and the client gets a 429 in its API's own shape (refusal.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime

from mitmproxy import ctx, http

from ..attribution import fingerprint
from ..pricing import Pricer
from ..reader import LedgerUnavailable, db_errors, one_line, open_reader
from ..records import CallFinished, describe
from ..usage import Usage
from .config import BudgetFile, BudgetFileError, CallFacts, load_budget_file
from .estimate import estimate_tokens
from .refusal import message, refusal_body, refusal_headers, retry_after, warn_header
from .spend import SpendTracker, Standing, call_tokens, money, period_rows
from .websocket_gate import check_websocket_message

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""How often the watcher looks at the budget file's modification time and size."""
_HEADER = "usage_ledger_budget_header"
_RATE_TOKENS = 1000  # priced per 1000 tokens: below every long-context tier's threshold


def read_spend(db: str, tracker: SpendTracker, file: BudgetFile) -> None:
    """Count the file's budgets anew from the ledger at `db`, a file or a postgresql:// URL
    (read-only; no rows while there is no ledger yet). Raises LedgerUnavailable (one line, no
    password: its server cannot be reached, say) or a driver error (reader.db_errors)."""
    now = datetime.now(UTC)
    rows = []
    con = open_reader(db, missing_ok=True)
    if con is not None:
        with closing(con):
            rows = period_rows(con, tracker.since(file, now))
    tracker.reload(file, rows, now)


def _reason(error: BaseException) -> str:
    """What the log says of a failed count: never the ledger URL's password."""
    return one_line(error, ctx.options.ledger_db)


def _announce(s: Standing, label: str) -> None:
    b = s.budget
    spent = f"${money(s.spent_usd, b.limit_usd)} spent"
    limit = f"${money(b.limit_usd, b.limit_usd)}"
    if label == "the limit":
        then = "calls in its scope are refused until it resets" if b.action == "block" else "calls go on (action warn)"
        log.warning("usage-ledger: budget '%s' reached its %s limit (%s): %s; %s", b.name, limit, b.period, spent, then)
    else:
        log.warning("usage-ledger: budget '%s' passed %s of its %s limit (%s): %s", b.name, label, limit, b.period, spent)


class Budgets:
    def __init__(self, ledger) -> None:
        """ledger: the UsageLedger whose calls are checked (its `calls`, `submit`, `pricer`)."""
        self.ledger = ledger
        self.tracker = SpendTracker(_announce)
        self.gate = BudgetGate(self)
        self.addons: list = []
        self.path: str | None = None
        self.stamp: tuple | None = None
        self.stop = threading.Event()
        self.watcher: threading.Thread | None = None
        self.started = False

    def load(self, loader) -> None:
        loader.add_option(
            "ledger_budgets", str, os.environ.get("USAGE_LEDGER_BUDGETS", ""),
            "TOML file of spend budgets (block or warn per day, week, month or total); reloaded when it changes.",
        )

    def configure(self, updated: set[str]) -> None:
        if "ledger_budgets" not in updated:
            return
        path = ctx.options.ledger_budgets
        if not path:
            self.path, self.addons = None, []
            return
        path = os.path.abspath(os.path.expanduser(path))
        try:
            stamp = _stamp(path)
            file = load_budget_file(path)
            if not self.started:  # startup, before any traffic: count now
                read_spend(ctx.options.ledger_db, self.tracker, file)
        except (BudgetFileError, OSError, LedgerUnavailable, *db_errors()) as e:
            # At startup mitmproxy exits on it: a budget whose spend cannot be counted (the
            # PostgreSQL ledger's server is down, say) cannot be enforced.
            log.error("usage-ledger: ledger_budgets: %s", _reason(e))
            return
        # Changed while running: the watcher counts it on its next look, off the event loop.
        self.path, self.stamp = path, stamp if not self.started else None
        self.addons = [self.gate]
        log.info("usage-ledger: %d budget(s) from %s", len(file.budget), path)
        self._watch()

    def running(self) -> None:
        self.started = True

    def _watch(self) -> None:
        if self.watcher is None or not self.watcher.is_alive():
            self.stop.clear()
            self.watcher = threading.Thread(target=self._run, name="usage-ledger-budgets", daemon=True)
            self.watcher.start()

    def _run(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            path = self.path
            if path is None:
                continue
            try:
                stamp = _stamp(path)
            except OSError:
                continue  # replaced by an editor, or removed: the budgets stay as they were
            if stamp == self.stamp:
                continue
            self.stamp = stamp
            try:
                file = load_budget_file(path)
                read_spend(ctx.options.ledger_db, self.tracker, file)
            except (BudgetFileError, LedgerUnavailable, *db_errors()) as e:
                log.error("usage-ledger: ledger_budgets: %s (the budgets stay as they were)", _reason(e))
                continue
            except Exception:
                log.exception("usage-ledger: could not reload %s", path)
                continue
            log.info("usage-ledger: budgets reloaded from %s (%d budget(s))", path, len(file.budget))

    def finished(self, record: CallFinished) -> None:
        """A call ended with this row, its cost known: its estimate gives way. Any thread."""
        if self.tracker.in_flight:
            self.tracker.finished(record.flow_id, record.model, record.cost_usd,
                                  call_tokens(record.input_tokens, record.output_tokens, record.total_tokens))

    def priced_then(self, flow_id: str, then: Callable[[CallFinished], None] | None):
        """The writer thread's callback for a call's priced row (records.CallEnded.then), with
        this call's spend counted first if a budget admitted it; `then` itself otherwise."""
        if flow_id not in self.tracker.in_flight:
            return then

        def count_then(record: CallFinished) -> None:
            try:
                self.finished(record)
            except Exception:  # the row is written all the same
                log.exception("usage-ledger: could not count flow %s against its budgets", record.flow_id)
            if then is not None:
                then(record)

        return count_then

    def done(self) -> None:
        self.stop.set()
        if self.watcher is not None:
            self.watcher.join(5)


def _stamp(path: str) -> tuple:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


class BudgetGate:
    """The hooks that check each recognised call against the budgets."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.rates: dict[tuple, tuple[float, float] | None] = {}
        self.rates_pricer: Pricer | None = None

    async def request(self, flow: http.HTTPFlow) -> None:
        ledger = self.budgets.ledger
        call = ledger.calls.get(flow.id)
        if call is None or flow.response is not None or call.row_id in self.budgets.tracker.in_flight:
            return
        raw = flow.request.raw_content or b""
        facts, estimate = await self.assess(call.provider, call.recognised.api, call.recognised.model_requested,
                                            call.recognised.body, len(raw), flow.request.headers.get("user-agent"),
                                            call.secret, call.tags)
        now = datetime.now(UTC)
        started = datetime.fromtimestamp(flow.request.timestamp_start, UTC)
        refused, warned = self.budgets.tracker.admit(call.row_id, facts, started, estimate, now)
        if refused is not None:
            self.refuse(flow, call, refused, now)
        elif warned:
            flow.metadata[_HEADER] = warn_header(warned)

    async def assess(self, provider: str, api: str, model: str | None, body: dict | None, size: int,
                     user_agent: str | None, secret: str | None, tags: str | None) -> tuple[CallFacts, float]:
        """(the call's scope facts, its estimated cost in USD) from its request: `body` parsed,
        `size` its bytes, `tags` the row's JSON text. The price lookup runs off the event loop,
        once per (provider, api, model) and price file."""
        pricer = self.budgets.ledger.pricer
        if pricer is not self.rates_pricer:  # new price overrides: rates anew
            self.rates, self.rates_pricer = {}, pricer
        key = (provider, api, model)
        if key not in self.rates:
            self.rates[key] = await asyncio.to_thread(_rates, pricer, *key)
        rates = self.rates[key]
        tokens_in, tokens_out = estimate_tokens(api, body, size)
        if rates is not None:
            estimate = tokens_in * rates[0] + tokens_out * rates[1]
        else:
            estimate = (tokens_in + tokens_out) * self.budgets.tracker.file.unpriced_usd_per_mtok / 1e6
        try:
            parsed = json.loads(tags) if tags else {}
        except ValueError:
            parsed = {}
        facts = CallFacts(provider=provider, models=(model,) if model else (), user_agent=user_agent,
                          api_key_id=fingerprint(secret), tags=parsed)
        return facts, estimate

    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        """A `response.create` over WebSocket (Codex) is checked like an HTTP call (websocket_gate.py)."""
        await check_websocket_message(self, flow)

    def refuse(self, flow: http.HTTPFlow, call, standing: Standing, now: datetime) -> None:
        """Answer the client ourselves; the call's row ends `blocked`, with no tokens."""
        ledger = self.budgets.ledger
        text = message(standing, self.budgets.tracker.zone)
        ledger.calls.pop(flow.id, None)
        call.usage_injected = False  # nothing was sent anywhere
        record = call.unread(flow, "blocked", text)
        ledger.submit(record)
        flow.comment = describe(record)
        flow.response = http.Response.make(429, refusal_body(call.recognised.api, text),
                                           refusal_headers(retry_after(standing, now)))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        header = flow.metadata.get(_HEADER)
        if header and flow.response is not None:
            flow.response.headers["x-usage-ledger-budget"] = header


def _rates(pricer: Pricer, provider: str, api: str, model: str | None) -> tuple[float, float] | None:
    """USD per input token and per output token for the model; None if it has no price."""
    if not model:
        return None
    when = datetime.now(UTC)
    try:
        per_in = pricer.price(provider=provider, api=api, model=model, when=when,
                              usage=Usage(input_tokens=_RATE_TOKENS, output_tokens=0)).cost_usd
        per_out = pricer.price(provider=provider, api=api, model=model, when=when,
                               usage=Usage(input_tokens=0, output_tokens=_RATE_TOKENS)).cost_usd
    except Exception:  # an estimate we cannot make is an unpriced one
        return None
    if per_in is None or per_out is None:
        return None
    return per_in / _RATE_TOKENS, per_out / _RATE_TOKENS
