"""`usage-ledger reprice`: recompute stored costs with current prices."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import report
from .common import CliError, add_db_argument, open_ledger


def add_parser(sub) -> None:
    p = sub.add_parser("reprice", help="recompute costs with current prices")
    add_db_argument(p)
    p.add_argument("--since", help="only calls since YYYY-MM-DD, an ISO timestamp, or 7d ...")
    p.add_argument("--prices", help="a price override file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ..pricing import PriceFileError, Pricer, reprice_rows
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name != "usage_ledger.pricing":
            raise  # a bug inside pricing, not a missing module
        raise CliError(f"repricing is not available in this version ({e})") from None
    since = report.parse_time(args.since) if args.since else None
    db = Path(args.db).expanduser()
    open_ledger(str(db)).close()  # exists and is a ledger; never create one here
    try:
        pricer = Pricer(args.prices)
    except PriceFileError as e:
        raise CliError(f"bad price file: {e}") from None
    from ..store import connect

    con = connect(db)
    try:
        with con:
            changed = reprice_rows(con, pricer, since)
    finally:
        con.close()
    print(f"repriced {changed} rows")
    return 0
