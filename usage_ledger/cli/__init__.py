"""`usage-ledger`: commands on top of the ledger the addon writes.

Stdlib only (env uses mitmproxy's CertStore to create its CA; a postgresql:// --db loads psycopg).
Reading commands open the ledger read-only and never create it (reader.py, a SQLite file or a
PostgreSQL database alike). User mistakes, and a ledger that cannot be reached, end with one line
`usage-ledger: error: ...` on stderr (never a password) and exit status 2.

One module per command. Adding a command is a one-module change: write `cli/<name>.py` with
`add_parser(sub)` (adds its subparser to `sub` and `set_defaults(func=run)`) and `run(args) -> int`
(the exit status; raise `common.CliError` for a user mistake), then add the module to COMMANDS
below. `common` holds what commands share: `CliError`, `open_ledger`, the --db/--proxy/--confdir
arguments.
"""

from __future__ import annotations

import os
import sys

from .. import report as report_lib
from ..reader import db_errors, one_line
from . import backup, budget, env, reprice, report, run, status, tail
from .common import CliError, Parser

COMMANDS = (report, tail, budget, env, run, reprice, status, backup)  # `usage-ledger --help` lists them in this order


def build_parser() -> Parser:
    parser = Parser(prog="usage-ledger", description="Read and use the LLM usage ledger.")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except (CliError, report_lib.ReportError) as e:
        print(f"usage-ledger: error: {e}", file=sys.stderr)
        return 2
    except db_errors() as e:  # the server went away mid-command, say; the message without a password
        message = one_line(e, getattr(args, "db", None) or "")
        if "no such column" in message or "does not exist" in message and "column" in message:
            message += (" (the ledger was written by an older version and is not migrated yet: the proxy "
                        "brings it up to date, keeping every row, the next time it starts with this ledger_db)")
        print(f"usage-ledger: error: ledger: {message}", file=sys.stderr)
        return 2
    except OSError as e:
        if isinstance(e, BrokenPipeError):  # `usage-ledger tail | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        print(f"usage-ledger: error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0 if args.cmd == "tail" else 130
