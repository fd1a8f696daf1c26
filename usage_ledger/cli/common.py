"""What every command shares: the error type, the parser class, opening the ledger read-only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ..dialect import is_postgres
from ..reader import LedgerUnavailable, connect_postgres, open_reader
from ..store import default_db_path

DEFAULT_PROXY = "http://127.0.0.1:8080"
DEFAULT_CONFDIR = "~/.mitmproxy"
CA_CERT_NAME = "mitmproxy-ca-cert.pem"


class CliError(Exception):
    """Printed as `usage-ledger: error: <message>`; exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"usage-ledger: error: {message}\n")


def add_db_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=default_db_path(),
                   help=f"ledger file, or a postgresql://user@host/db URL (default: {default_db_path()})")


def add_confdir_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--confdir", default=DEFAULT_CONFDIR,
                   help=f"mitmproxy's confdir holding {CA_CERT_NAME} (default {DEFAULT_CONFDIR})")


def add_proxy_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--proxy", default=DEFAULT_PROXY, help=f"proxy URL (default {DEFAULT_PROXY})")


def open_ledger(target: str):
    """The ledger (a file or a postgresql:// URL), read-only (reader.open_reader); CliError
    with a one-line reason (never a password) when it is missing, unreachable or not a ledger."""
    try:
        return open_reader(target)
    except LedgerUnavailable as e:
        raise CliError(str(e)) from None


def open_writer(target: str):
    """The ledger opened for writing (`reprice`): the SQLite file as the proxy opens it, or a
    psycopg connection in autocommit mode (apply_plan writes in one transaction). Check it with
    `open_ledger` first: this would create a missing SQLite file."""
    if is_postgres(target):
        try:
            return connect_postgres(target, read_only=False)
        except LedgerUnavailable as e:
            raise CliError(str(e)) from None
    from ..store import connect

    return connect(Path(target).expanduser())


def write_output(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    Path(output).expanduser().write_text(text, encoding="utf-8")
    print(f"usage-ledger: wrote {output}", file=sys.stderr)


def check_proxy_url(proxy: str) -> str:
    parts = urlsplit(proxy)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise CliError(f"bad --proxy {proxy!r} (expected http://HOST:PORT)")
    return proxy


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value
