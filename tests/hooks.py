"""Driving the addon's hooks as mitmproxy would, without a proxy: for replay tests."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Awaitable, Callable, Sequence

from mitmproxy import http
from mitmproxy.test import taddons

from usage_ledger.ledger import UsageLedger

PIECE_SIZES = (1, 2, 3, 7, 64, 1500)


def forwarded(out: bytes | list[bytes]) -> bytes:
    """What a stream callable's return sends on: bytes, or pieces of them (mitmproxy takes both)."""
    return out if isinstance(out, bytes) else b"".join(out)


def pass_on(response: http.Response, rng: random.Random, sizes: Sequence[int] = PIECE_SIZES) -> bytes:
    """What the client receives: a streamed body through the response's stream hook in pieces
    of random sizes, then its end; a buffered body as it is."""
    if not callable(response.stream):
        return response.raw_content or b""
    body, sent, i = response.raw_content or b"", bytearray(), 0
    while i < len(body):
        n = rng.choice(sizes)
        sent += forwarded(response.stream(body[i:i + n]))
        i += n
    sent += forwarded(response.stream(b""))
    return bytes(sent)


def with_ledger(db, steps: Callable[[UsageLedger], Awaitable[None]]) -> sqlite3.Connection:
    """Run `steps(ledger)` inside a configured addon, shut it down, and open the ledger."""
    ledger = UsageLedger()

    async def run():
        with taddons.context(ledger) as tctx:
            tctx.configure(ledger, ledger_db=str(db))
            await steps(ledger)
            ledger.done()

    asyncio.run(run())
    return sqlite3.connect(db)


def rows(con: sqlite3.Connection) -> list[dict]:
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("select * from requests order by id")]
    finally:
        con.close()
