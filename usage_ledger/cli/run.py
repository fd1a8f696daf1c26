"""`usage-ledger run -- CMD`: run a command through the proxy, starting mitmdump if none listens."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

from .. import report
from ..dialect import is_postgres
from ..reader import LedgerUnavailable, db_errors, describe, open_reader, query
from ..store import default_db_path
from . import budget
from .common import (CA_CERT_NAME, CliError, add_confdir_argument, add_db_argument, add_proxy_argument,
                     check_proxy_url)
from .env import proxy_env

ADDON = Path(__file__).resolve().parent.parent.parent / "addon.py"


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run a command through the proxy, starting one if needed",
                       description="Run CMD with the proxy settings of `env`; starts mitmdump with the "
                                   "addon for the command's lifetime if nothing listens at --proxy.")
    add_proxy_argument(p)
    add_db_argument(p)
    add_confdir_argument(p)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    p.set_defaults(func=run)


def listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def serving(host: str, port: int) -> bool:
    """Does the proxy answer HTTP? mitmdump accepts connections seconds before it serves them
    (on a busy machine). The probe asks it for a port nothing listens on: it answers at once
    (a 502 of its own), with no DNS lookup and no row."""
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            conn.settimeout(5)
            conn.sendall(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: close\r\n\r\n")
            return conn.recv(5) == b"HTTP/"
    except OSError:
        return False


def mitmdump_path() -> str:
    beside = Path(sys.executable).parent / "mitmdump"
    found = str(beside) if beside.is_file() else shutil.which("mitmdump")
    if not found:
        raise CliError("mitmdump not found (install mitmproxy in this environment)")
    return found


_START_TIMEOUT = 90  # s: mitmdump with the addon took 11-14 s to serve on a 2-core box at load 9


def start_proxy(host: str, port: int, db: str, confdir: str) -> subprocess.Popen:
    """mitmdump with the addon, in its own session so the terminal's Ctrl-C reaches only the
    command; returns once it answers HTTP and its CA file exists. db: the ledger_db
    value (a file, or a postgresql:// URL, whose log goes to the default ledger folder)."""
    folder = Path(default_db_path() if is_postgres(db) else db).expanduser().parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # the ledger's folder is private
    log_path = folder / "mitmdump.log"
    ca = Path(confdir).expanduser() / CA_CERT_NAME
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [mitmdump_path(), "-s", str(ADDON), "--listen-host", host, "-p", str(port),
             "--set", f"ledger_db={db}", "--set", f"confdir={Path(confdir).expanduser()}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise CliError(f"mitmdump exited with status {proc.returncode}: {tail[0]} (log: {log_path})")
            if ca.is_file() and serving(host, port):
                return proc
            time.sleep(0.1)
        raise CliError(f"mitmdump did not start serving on {host}:{port} within {_START_TIMEOUT}s (log: {log_path})")
    except BaseException:  # Ctrl-C or SIGTERM while waiting included: never leave it running
        stop_proxy(proc)
        raise


def stop_proxy(proc: subprocess.Popen) -> None:
    """SIGINT, and wait, so the addon drains its queue into the ledger."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def max_id(db: str) -> int:
    try:
        con = open_reader(db, missing_ok=True)
        if con is None:
            return 0
        with closing(con):
            return query(con, "SELECT coalesce(max(id), 0) FROM requests").fetchone()[0]
    except (LedgerUnavailable, *db_errors()):
        return 0


def run_summary(db: str, after_id: int) -> str:
    """What the calls recorded since `after_id` used and cost."""
    try:
        con = open_reader(db, missing_ok=True)
    except LedgerUnavailable as e:
        return f"usage-ledger: {e}; no summary"
    if con is None:
        return f"usage-ledger: no ledger at {describe(db)}; no calls recorded"
    with closing(con):
        calls, tokens_in, tokens_out, cost, unpriced = query(con,
            "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cost_usd), count(*) - count(cost_usd) "
            "FROM requests WHERE id > ?", [after_id]).fetchone()
        per_model = query(con,  # unpriced groups last on both backends (their NULLs sort apart)
            "SELECT provider, model, count(*), sum(cost_usd) FROM requests WHERE id > ? "
            "GROUP BY provider, model ORDER BY sum(cost_usd) IS NULL, sum(cost_usd) DESC, count(*) DESC",
            [after_id]).fetchall()
    if not calls:
        return f"usage-ledger: no LLM calls recorded in {describe(db)} during the run"
    spend = "cost unknown" if cost is None else report.fmt_cost(cost)
    if unpriced and cost is not None:
        spend += f" + {unpriced:,} unpriced"
    lines = [f"usage-ledger: {calls:,} call{'s' * (calls != 1)} during the run, "
             f"{report.fmt_tokens(tokens_in)} tokens in, {report.fmt_tokens(tokens_out)} out, {spend}"]
    for provider, model, n, usd in per_model:
        lines.append(f"  {provider or '?'}/{model or '?'}: {n:,} call{'s' * (n != 1)}, "
                     + ("cost unknown" if usd is None else report.fmt_cost(usd)))
    return "\n".join(lines)


def run_command(command: list[str], env: dict[str, str]) -> int:
    """The command's exit status. Ctrl-C is the command's to handle (the terminal sends it to the
    whole foreground group); SIGTERM and SIGHUP sent to us are passed on to it."""
    try:
        child = subprocess.Popen(command, env=env)
    except FileNotFoundError:
        print(f"usage-ledger: error: command not found: {command[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"usage-ledger: error: cannot execute {command[0]}", file=sys.stderr)
        return 126
    handlers = {signal.SIGINT: signal.SIG_IGN,
                signal.SIGTERM: lambda signum, _: child.send_signal(signum),
                signal.SIGHUP: lambda signum, _: child.send_signal(signum)}
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        status = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status if status >= 0 else 128 - status


def run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise CliError("run needs a command: usage-ledger run -- CMD ...")
    proxy = check_proxy_url(args.proxy)
    host, port = urlsplit(proxy).hostname, urlsplit(proxy).port
    db = args.db if is_postgres(args.db) else str(Path(args.db).expanduser())
    before = max_id(db)
    # Until the command runs, SIGTERM unwinds like Ctrl-C, so a proxy we started gets stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    proc = None
    if not listening(host, port):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise CliError(f"nothing listens at {proxy}, and usage-ledger starts proxies on loopback only")
        proc = start_proxy(host, port, db, args.confdir)
    try:
        status = run_command(command, {**os.environ, **proxy_env(proxy, args.confdir)})
    finally:
        if proc is not None:
            stop_proxy(proc)
    if proc is None:
        time.sleep(0.5)  # another proxy batches its writes; let the last ones land
    print(run_summary(db, before), file=sys.stderr)
    if os.environ.get(budget.ENV) and (is_postgres(db) or Path(db).is_file()):  # the proxy counts against it too
        try:
            found, file = budget.standings(os.environ[budget.ENV], db)
            print("\n".join(["usage-ledger: budgets", *budget.lines(found, file)]), file=sys.stderr)
        except CliError as e:
            print(f"usage-ledger: budgets: {e}", file=sys.stderr)
    return status
