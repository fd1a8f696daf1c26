"""What every command shares: the error type, the parser class, opening the ledger read-only."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

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
    p.add_argument("--db", default=default_db_path(), help=f"ledger file (default: {default_db_path()})")


def add_confdir_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--confdir", default=DEFAULT_CONFDIR,
                   help=f"mitmproxy's confdir holding {CA_CERT_NAME} (default {DEFAULT_CONFDIR})")


def add_proxy_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--proxy", default=DEFAULT_PROXY, help=f"proxy URL (default {DEFAULT_PROXY})")


def open_ledger(path: str) -> sqlite3.Connection:
    """The ledger, read-only; a clear error if it is missing, unreadable or not a ledger."""
    file = Path(path).expanduser()
    if not file.exists():
        raise CliError(f"no ledger at {file} (the proxy creates it on its first call; or pass --db)")
    if not file.is_file():
        raise CliError(f"{file} is not a file")
    try:
        con = sqlite3.connect(f"file:{quote(str(file.resolve()))}?mode=ro", uri=True, timeout=10.0)
        con.execute("SELECT id FROM requests LIMIT 0")
    except sqlite3.Error as e:
        reason = "not a usage ledger" if "no such" in str(e) else str(e)
        raise CliError(f"cannot read {file}: {reason}") from None
    return con


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
