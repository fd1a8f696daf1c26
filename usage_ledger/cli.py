"""`usage-ledger`: report, tail, env, run, reprice and status, on top of the ledger the addon writes.

Stdlib only. Reading commands open the ledger read-only and never create it. User mistakes end
with one line `usage-ledger: error: ...` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

from . import report
from .store import default_db_path

DEFAULT_PROXY = "http://127.0.0.1:8080"
DEFAULT_CONFDIR = "~/.mitmproxy"
CA_CERT_NAME = "mitmproxy-ca-cert.pem"
BUNDLE_NAME = "ca-bundle.pem"
ADDON = Path(__file__).resolve().parent.parent / "addon.py"
# System CA bundles by distribution, after OpenSSL's compiled-in default.
SYSTEM_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, Alpine, BSDs
)


class CliError(Exception):
    """Printed as `usage-ledger: error: <message>`; exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"usage-ledger: error: {message}\n")


# --- the ledger ----------------------------------------------------------------------------------


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


# --- report --------------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    group = report.parse_group_by(args.by)
    now = datetime.now(UTC)
    since = report.parse_time(args.since, now) if args.since else None
    until = report.parse_time(args.until, now, end=True) if args.until else None
    with closing(open_ledger(args.db)) as con:
        groups = report.summarise(con, group, since, until)
        if args.format == "json":
            text = report.to_json(groups, group)
        elif args.format == "csv":
            text = report.to_csv(groups, group)
        elif args.format == "table":
            text = report.to_table(groups, report.totals(con, since, until), group)
        else:
            text = report.to_html(groups, report.totals(con, since, until), group,
                                  report.daily_by_model(con, since, until),
                                  period=describe_period(since, until), source=str(Path(args.db).expanduser()),
                                  generated=now.astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    write_output(text, args.output)
    return 0


def describe_period(since: str | None, until: str | None) -> str:
    if since and until:
        return f"{since[:16].replace('T', ' ')} to {until[:16].replace('T', ' ')} UTC"
    if since:
        return f"since {since[:16].replace('T', ' ')} UTC"
    if until:
        return f"until {until[:16].replace('T', ' ')} UTC"
    return "all calls"


# --- tail ----------------------------------------------------------------------------------------

TAIL_COLUMNS = ("id, started_at, user_agent, provider, model, input_tokens, output_tokens, "
                "cost_usd, outcome, status_code")


def tail_line(row: tuple) -> str:
    _, started_at, user_agent, provider, model, tokens_in, tokens_out, cost, outcome, status = row
    try:
        when = datetime.fromisoformat(started_at).astimezone().strftime("%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        when = str(started_at)[:14]
    what = f"{provider or '?'}/{model or '?'}"
    result = f"{outcome} {status}" if outcome == "http_error" and status else str(outcome)
    return (f"{when}  {report.short_tool(user_agent):<20} {what:<36} "
            f"{report.fmt_tokens(tokens_in):>9} in {report.fmt_tokens(tokens_out):>8} out "
            f"{report.fmt_cost(cost):>10}  {result}")


def fetch_rows(con: sqlite3.Connection, where: str, params: list) -> list[tuple]:
    return con.execute(f"SELECT {TAIL_COLUMNS} FROM requests WHERE {where} ORDER BY id", params).fetchall()


def cmd_tail(args: argparse.Namespace) -> int:
    """Print each call once it has ended: new rows by id, pending ones when they complete."""
    con = open_ledger(args.db)
    last_id = con.execute("SELECT coalesce(max(id), 0) FROM requests").fetchone()[0]
    recent = fetch_rows(con, "id > ?", [last_id - args.lines]) if args.lines > 0 else []
    # Calls in flight now, except stale ones a stopped proxy left pending long ago.
    day_ago = report.iso_utc(datetime.now(UTC) - timedelta(days=1))
    pending = {r[0] for r in fetch_rows(con, "outcome = 'pending' AND started_at >= ?", [day_ago])}
    show = [r for r in recent if r[8] != "pending"]
    while True:
        for row in show:
            print(tail_line(row))
        sys.stdout.flush()
        time.sleep(args.interval)
        new = fetch_rows(con, "id > ?", [last_id])
        if new:
            last_id = new[-1][0]
        done = []
        if pending:
            ids = sorted(pending)
            done = fetch_rows(con, f"id IN ({','.join('?' * len(ids))}) AND outcome != 'pending'", ids)
        pending |= {r[0] for r in new if r[8] == "pending"}
        pending -= {r[0] for r in done}
        show = sorted(done + [r for r in new if r[8] != "pending"])


# --- env -----------------------------------------------------------------------------------------


def pem_blocks(text: str) -> list[str]:
    """The PEM certificates in a file's text, each with its BEGIN/END lines."""
    blocks, current = [], None
    for line in text.splitlines():
        line = line.strip()
        if line == "-----BEGIN CERTIFICATE-----":
            current = [line]
        elif current is not None:
            current.append(line)
            if line == "-----END CERTIFICATE-----":
                blocks.append("\n".join(current))
                current = None
    return blocks


def system_ca_file(exclude: Path) -> Path | None:
    """The system's CA bundle; certifi's if the system has none."""
    candidates = [ssl_default_cafile(), *SYSTEM_CA_FILES]
    try:
        import certifi  # optional

        candidates.append(certifi.where())
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and Path(candidate).resolve() != exclude.resolve():
            try:
                if pem_blocks(Path(candidate).read_text(errors="replace")):
                    return Path(candidate)
            except OSError:
                continue
    return None


def ssl_default_cafile() -> str | None:
    import ssl

    # OpenSSL's compiled-in default, not $SSL_CERT_FILE (which may already be our bundle).
    return ssl.get_default_verify_paths().openssl_cafile


def mitmproxy_ca(confdir: str) -> Path:
    ca = Path(confdir).expanduser() / CA_CERT_NAME
    if not ca.is_file():
        raise CliError(f"mitmproxy's CA certificate {ca} does not exist yet: run mitmdump once "
                       f"(e.g. `uv run mitmdump -s addon.py`) to create it")
    return ca


def write_bundle(ca: Path, bundle: Path) -> Path:
    """System CAs plus mitmproxy's, for tools whose CA setting replaces the defaults."""
    system = system_ca_file(exclude=bundle)
    ours = pem_blocks(ca.read_text(errors="replace"))
    if not ours:
        raise CliError(f"{ca} holds no PEM certificate")
    seen, blocks = set(), []
    for block in (pem_blocks(system.read_text(errors="replace")) if system else []) + ours:
        if block not in seen:
            seen.add(block)
            blocks.append(block)
    text = (f"# usage-ledger: {system or 'no system CA bundle found'} plus {ca}\n"
            + "\n".join(blocks) + "\n")
    bundle.parent.mkdir(parents=True, exist_ok=True)
    if not bundle.is_file() or bundle.read_text(errors="replace") != text:
        tmp = bundle.with_name(bundle.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(0o644)
        tmp.replace(bundle)
    return bundle


def proxy_env(proxy: str, confdir: str) -> dict[str, str]:
    """The environment variables that send tools through the proxy and make them trust it."""
    ca = mitmproxy_ca(confdir)
    bundle = write_bundle(ca, Path(default_db_path()).expanduser().parent / BUNDLE_NAME)
    env = {name: proxy for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")}
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"):
        env[name] = str(bundle)
    env["NODE_EXTRA_CA_CERTS"] = str(ca)
    env["NODE_USE_ENV_PROXY"] = "1"
    return env


def local_no_proxy() -> str | None:
    """The caller's NO_PROXY if it exempts local servers from the proxy."""
    for name in ("NO_PROXY", "no_proxy"):
        value = os.environ.get(name, "")
        entries = {e.strip().lower() for e in value.split(",")}
        if entries & {"localhost", "127.0.0.1", "::1", "[::1]", "*", ".localhost"}:
            return f"{name}={value}"
    return None


def cmd_env(args: argparse.Namespace) -> int:
    proxy = check_proxy_url(args.proxy)
    env = proxy_env(proxy, args.confdir)
    q = shlex.quote
    lines = [
        f"# usage-ledger: route this shell's tools through the proxy at {proxy}",
        '# use: eval "$(usage-ledger env)"',
        *(f"export {n}={q(env[n])}" for n in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")),
        "# NO_PROXY is deliberately not set: exempting localhost would hide local servers",
        "# (Ollama at localhost:11434, vLLM, ...) from the ledger.",
    ]
    if exempt := local_no_proxy():
        lines.append(f"# warning: your {exempt} exempts local servers; calls to them will not be recorded.")
    lines += [
        "# Trust mitmproxy's CA. These settings replace the default CA list, so they name a bundle",
        "# of the system CAs plus mitmproxy's (Python ssl/httpx/requests, curl, git, Go, uv):",
        *(f"export {n}={q(env[n])}" for n in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO")),
        "# Node.js adds this file to its own CAs; NODE_USE_ENV_PROXY makes Node 22.21+/24.5+ use HTTPS_PROXY.",
        f"export NODE_EXTRA_CA_CERTS={q(env['NODE_EXTRA_CA_CERTS'])}",
        "export NODE_USE_ENV_PROXY=1",
    ]
    print("\n".join(lines))
    return 0


# --- run -----------------------------------------------------------------------------------------


def check_proxy_url(proxy: str) -> str:
    parts = urlsplit(proxy)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise CliError(f"bad --proxy {proxy!r} (expected http://HOST:PORT)")
    return proxy


def listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def mitmdump_path() -> str:
    beside = Path(sys.executable).parent / "mitmdump"
    found = str(beside) if beside.is_file() else shutil.which("mitmdump")
    if not found:
        raise CliError("mitmdump not found (install mitmproxy in this environment)")
    return found


def start_proxy(host: str, port: int, db: Path, confdir: str) -> subprocess.Popen:
    """mitmdump with the addon, in its own session so the terminal's Ctrl-C reaches only the
    command; returns once it accepts connections and its CA file exists."""
    db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the ledger's folder is private
    log_path = db.parent / "mitmdump.log"
    ca = Path(confdir).expanduser() / CA_CERT_NAME
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [mitmdump_path(), "-s", str(ADDON), "--listen-host", host, "-p", str(port),
             "--set", f"ledger_db={db}", "--set", f"confdir={Path(confdir).expanduser()}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise CliError(f"mitmdump exited with status {proc.returncode}: {tail[0]} (log: {log_path})")
            if ca.is_file() and listening(host, port):
                return proc
            time.sleep(0.1)
        raise CliError(f"mitmdump did not start listening on {host}:{port} within 30s (log: {log_path})")
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


def max_id(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        with closing(open_ledger(str(db))) as con:
            return con.execute("SELECT coalesce(max(id), 0) FROM requests").fetchone()[0]
    except (CliError, sqlite3.Error):
        return 0


def run_summary(db: Path, after_id: int) -> str:
    """What the calls recorded since `after_id` used and cost."""
    if not db.is_file():
        return f"usage-ledger: no ledger at {db}; no calls recorded"
    with closing(open_ledger(str(db))) as con:
        calls, tokens_in, tokens_out, cost, unpriced = con.execute(
            "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cost_usd), count(*) - count(cost_usd) "
            "FROM requests WHERE id > ?", [after_id]).fetchone()
        per_model = con.execute(
            "SELECT provider, model, count(*), sum(cost_usd) FROM requests WHERE id > ? "
            "GROUP BY provider, model ORDER BY sum(cost_usd) DESC, count(*) DESC", [after_id]).fetchall()
    if not calls:
        return f"usage-ledger: no LLM calls recorded in {db} during the run"
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


def cmd_run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise CliError("run needs a command: usage-ledger run -- CMD ...")
    proxy = check_proxy_url(args.proxy)
    host, port = urlsplit(proxy).hostname, urlsplit(proxy).port
    db = Path(args.db).expanduser()
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
    return status


# --- reprice -------------------------------------------------------------------------------------


def cmd_reprice(args: argparse.Namespace) -> int:
    try:
        from .pricing import PriceFileError, Pricer, reprice_rows
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name != f"{__package__}.pricing":
            raise  # a bug inside pricing.py, not a missing module
        raise CliError(f"repricing is not available in this version ({e})") from None
    since = report.parse_time(args.since) if args.since else None
    db = Path(args.db).expanduser()
    open_ledger(str(db)).close()  # exists and is a ledger; never create one here
    try:
        pricer = Pricer(args.prices)
    except PriceFileError as e:
        raise CliError(f"bad price file: {e}") from None
    from .store import connect

    con = connect(db)
    try:
        with con:
            changed = reprice_rows(con, pricer, since)
    finally:
        con.close()
    print(f"repriced {changed} rows")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The writer's state (status.py): exit 1 when records were lost, wait, or cannot be written."""
    from .journal import Journal, journal_path
    from .status import describe_status

    db = str(Path(args.db).expanduser())
    lines, attention = describe_status(db, Journal(journal_path(db)).size())
    print("\n".join(lines))
    return 1 if attention else 0


# --- main ----------------------------------------------------------------------------------------


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


def build_parser() -> Parser:
    parser = Parser(prog="usage-ledger", description="Read and use the LLM usage ledger.")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    db_help = f"ledger file (default: {default_db_path()})"

    p = sub.add_parser("report", help="usage and cost per day, model, ...",
                       description="Requests, tokens and cost per group, with totals. Dates are UTC.")
    p.add_argument("--db", default=default_db_path(), help=db_help)
    p.add_argument("--by", default="day", metavar="|".join(report.GROUP_CHOICES),
                   help="group by this (default: day); the key's name in json/csv output is this value")
    p.add_argument("--since", help="YYYY-MM-DD, an ISO timestamp, or 7d / 2w / 12h ago")
    p.add_argument("--until", help="YYYY-MM-DD (that day included), an ISO timestamp (excluded), or 7d ...")
    p.add_argument("--format", choices=("table", "json", "csv", "html"), default="table")
    p.add_argument("--output", "-o", help="write here instead of stdout")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("tail", help="follow calls live", description="Print each call as it ends. Ctrl-C stops.")
    p.add_argument("--db", default=default_db_path(), help=db_help)
    p.add_argument("--interval", type=positive_float, default=1.0, help="poll every SECONDS (default 1)")
    p.add_argument("--lines", "-n", type=int, default=10, help="show the last N calls first (default 10)")
    p.set_defaults(func=cmd_tail)

    confdir_help = f"mitmproxy's confdir holding {CA_CERT_NAME} (default {DEFAULT_CONFDIR})"
    p = sub.add_parser("env", help="print shell exports that point tools at the proxy",
                       description='Print export lines; use: eval "$(usage-ledger env)"')
    p.add_argument("--proxy", default=DEFAULT_PROXY, help=f"proxy URL (default {DEFAULT_PROXY})")
    p.add_argument("--confdir", default=DEFAULT_CONFDIR, help=confdir_help)
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("run", help="run a command through the proxy, starting one if needed",
                       description="Run CMD with the proxy settings of `env`; starts mitmdump with the "
                                   "addon for the command's lifetime if nothing listens at --proxy.")
    p.add_argument("--proxy", default=DEFAULT_PROXY, help=f"proxy URL (default {DEFAULT_PROXY})")
    p.add_argument("--db", default=default_db_path(), help=db_help)
    p.add_argument("--confdir", default=DEFAULT_CONFDIR, help=confdir_help)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("reprice", help="recompute costs with current prices")
    p.add_argument("--db", default=default_db_path(), help=db_help)
    p.add_argument("--since", help="only calls since YYYY-MM-DD, an ISO timestamp, or 7d ...")
    p.add_argument("--prices", help="a price override file")
    p.set_defaults(func=cmd_reprice)

    p = sub.add_parser("status", help="is the proxy's writer keeping up? queue, journal, records lost",
                       description="The running proxy's writer: records waiting in memory and in the journal, "
                                   "records lost since it started, its last error. Exit status 1 when "
                                   "records were lost, are waiting, or cannot be written now.")
    p.add_argument("--db", default=default_db_path(), help=db_help)
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except (CliError, report.ReportError) as e:
        print(f"usage-ledger: error: {e}", file=sys.stderr)
        return 2
    except sqlite3.Error as e:
        print(f"usage-ledger: error: ledger: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if isinstance(e, BrokenPipeError):  # `usage-ledger tail | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        print(f"usage-ledger: error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0 if args.cmd == "tail" else 130


if __name__ == "__main__":
    sys.exit(main())
