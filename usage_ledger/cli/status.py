"""`usage-ledger status`: is the proxy's writer keeping up? (queue, journal, records lost)."""

from __future__ import annotations

import argparse

from .common import add_db_argument


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="is the proxy's writer keeping up? queue, journal, records lost",
                       description="The running proxy's writer (on this machine, for a postgresql:// ledger): "
                                   "records waiting in memory and in the journal, records lost since it started, its last error. Exit status 1 when "
                                   "records were lost, are waiting, or cannot be written now.")
    add_db_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The writer's state (status.py): exit 1 when records were lost, wait, or cannot be written."""
    from ..backend import local_files
    from ..journal import Journal, journal_path
    from ..status import describe_status

    local, name = local_files(args.db)
    lines, attention = describe_status(local, Journal(journal_path(local)).size(), name=name)
    print("\n".join(lines))
    return 1 if attention else 0
