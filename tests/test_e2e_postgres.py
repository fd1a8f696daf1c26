"""Real mitmdump writing a real PostgreSQL ledger under load (tests/load.py): two proxies on
one database, each call once with its proxy's `machine`; and the server killed mid-load
(`pg_ctl stop -m immediate`) and started again: the proxies keep serving, the writer keeps
the records (memory, then the journal) and writes them all once the server is back.

The outage is held until the events it is about have happened (calls served meanwhile, the
writer retrying with records in its journal) and for at least 10 s, the issue's measure
(about 15 s in all on a 2-core box)."""

from __future__ import annotations

import time
from pathlib import Path

from usage_ledger.backend import local_files
from usage_ledger.journal import journal_path
from usage_ledger.postgres import redacted
from usage_ledger.status import read_status, status_path

from .load import CHAT_TOKENS, Load, rows_by_call
from .proxy import Proxy, wait_until
from .targets import ledger_rows, query

SECRET = "pw-never-logged"


def assert_every_call_once(url: str, whole: dict[str, list[int]]) -> list[dict]:
    """Each call whose client got its whole answer has exactly one finished row, written by the
    proxy (`machine`) it went through; nothing pending, no other rows."""
    rows = ledger_rows(url)
    calls = [c for c in whole.values() for c in c]
    assert len(rows) == len(calls) == len(set(calls))
    assert len({r["flow_id"] for r in rows}) == len(rows)
    by_call = rows_by_call(rows)
    assert set(by_call) == set(calls)
    for machine, numbers in whole.items():
        for n in numbers:
            row = by_call[n]
            assert (row["machine"], row["outcome"], row["input_tokens"], row["output_tokens"]) == (
                machine, "ok", *CHAT_TOKENS)
            assert row["cost_usd"] is not None and row["started_at"] and row["api"] == "openai-chat"
    return rows


def test_two_proxies_write_one_database_under_load(pg_server, standin, tmp_path):
    url = pg_server.new_database().replace("ledger@", f"ledger:{SECRET}@")
    proxies: dict[str, Proxy] = {}
    try:
        for machine in ("alpha", "beta"):  # two machines: each its own folder for its local files
            folder = tmp_path / machine
            folder.mkdir()
            proxies[machine] = Proxy(folder, f"ledger_machine={machine}", db=url,
                                     env={"XDG_DATA_HOME": str(folder / "data")})
        loads = {m: Load(p, standin.url, clients=2, first_client=2 * i) for i, (m, p) in enumerate(proxies.items())}
        for load in loads.values():
            load.wait_whole(150)
        for load in loads.values():
            load.stop()
    finally:
        for proxy in proxies.values():
            proxy.stop()  # drains its writer
    assert_every_call_once(url, {m: load.whole for m, load in loads.items()})
    assert dict(query(url, "select machine, count(*) from requests group by machine")) == {
        m: len(load.whole) for m, load in loads.items()}
    for machine, proxy in proxies.items():
        log = proxy.log_path.read_text()
        assert f"writing to {redacted(url)}" in log and SECRET not in log
        status = read_status(status_path(str(tmp_path / machine / "data" / "usage-ledger" /
                                              Path(local_files(url)[0]).name)))
        assert (status["state"], status["dropped"], status["written"]) == ("stopped", 0, 2 * len(loads[machine].whole))


OUTAGE_S = 10.0


def test_postgres_killed_mid_load_loses_no_row(pg_server, standin, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the proxy's too (its environment)
    url = pg_server.new_database()
    local = local_files(url)[0]
    with Proxy(tmp_path, "ledger_machine=m1", db=url) as proxy, Load(proxy, standin.url, clients=3) as load:
        load.wait_whole(30)
        pg_server.stop("immediate")
        try:
            away_at, served_before = time.monotonic(), len(load.whole)

            def kept_meanwhile() -> dict | None:
                status = read_status(status_path(local))
                if (time.monotonic() - away_at >= OUTAGE_S and len(load.whole) >= served_before + 50
                        and status and status["state"] == "retrying" and status["journal_records"] > 0):
                    return status
                return None

            status = wait_until(kept_meanwhile, 120, "calls served and kept while the server is away")
            assert status["dropped"] == 0 and Path(journal_path(local)).stat().st_size > 0
        finally:
            pg_server.start()
        load.wait_whole(len(load.whole) + 30, what="calls after the server is back")
    # the load ended, then the proxy (drained): every call is in the database once
    assert_every_call_once(url, {"m1": load.whole})
    status = read_status(status_path(local))
    assert (status["state"], status["dropped"], status["queue"], status["journal_bytes"]) == ("stopped", 0, 0, 0)
    assert not Path(journal_path(local)).exists()
