"""The `usage-ledger` console script as users run it: `uv run usage-ledger ...` in a subprocess,
every path under tmp_path. Covers errors (one line, exit 2, no traceback), env, run and tail."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from usage_ledger.cli.env import pem_blocks, system_ca_file
from usage_ledger.store import connect

from .ledgers import add, execute, open_ledger, ts
from .standin import StandIn

ROOT = Path(__file__).resolve().parents[1]
UV = os.environ.get("UV") or shutil.which("uv")
CHAT_CASE = "openai__openai-chat__stream__agno-include-usage"  # gpt-4o-mini-2024-07-18, 23 in / 8 out


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in ("USAGE_LEDGER_DB", "NO_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")}
    return {**env, "XDG_DATA_HOME": str(tmp_path / "xdg"), **extra}


def usage_ledger(tmp_path: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    assert UV, "uv not found"
    return subprocess.run([UV, "run", "--quiet", "usage-ledger", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=clean_env(tmp_path, **env))


def assert_one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, result
    assert result.stderr.startswith("usage-ledger: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert text in result.stderr and "Traceback" not in result.stderr and result.stdout == ""


def fake_confdir(tmp_path: Path) -> tuple[Path, str]:
    confdir = tmp_path / "conf"
    confdir.mkdir()
    body = base64.encodebytes(b"not really a certificate, but PEM-shaped " * 8).decode()
    pem = f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"
    (confdir / "mitmproxy-ca-cert.pem").write_text(pem)
    return confdir, pem.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# --- errors ------------------------------------------------------------------------------------


def test_missing_db_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "nope.db"
    assert_one_line_error(usage_ledger(tmp_path, "report", "--db", str(missing)), "no ledger at")
    assert not missing.exists()
    assert_one_line_error(usage_ledger(tmp_path, "tail", "--db", str(missing)), "no ledger at")


def test_bad_arguments_are_one_line_and_exit_2(tmp_path):
    db = tmp_path / "l.db"
    connect(db).close()
    assert_one_line_error(usage_ledger(tmp_path, "report", "--db", str(db), "--since", "last tuesday"), "bad date")
    assert_one_line_error(usage_ledger(tmp_path, "report", "--db", str(db), "--by", "colour"), "unknown --by")
    assert_one_line_error(usage_ledger(tmp_path, "report", "--db", str(db), "--format", "xml"), "invalid choice")
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello " * 1000)
    assert_one_line_error(usage_ledger(tmp_path, "report", "--db", str(not_a_db)), "cannot read")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert_one_line_error(usage_ledger(tmp_path, "report", "--db", str(other)), "not a usage ledger")
    assert_one_line_error(usage_ledger(tmp_path, "report", "--db", str(db), "--format", "html",
                                       "--output", str(tmp_path / "no" / "such" / "dir.html")), "No such file")


def test_report_happy_path_through_the_console_script(tmp_path):
    db = tmp_path / "l.db"
    con = connect(db)
    add(con, model="gpt-4o", input_tokens=1000, output_tokens=10, cost_usd=0.25)
    add(con, model="gpt-4o", input_tokens=500, output_tokens=5, cost_usd=0.5)
    con.close()
    result = usage_ledger(tmp_path, "report", "--db", str(db), "--by", "model", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{
        "model": "gpt-4o", "requests": 2, "input_tokens": 1500, "cached_input_tokens": None,
        "cache_write_tokens": None, "output_tokens": 15, "reasoning_tokens": None, "cost_usd": 0.75,
            "unpriced_calls": 0}]
    # Default ledger path: $XDG_DATA_HOME/usage-ledger/ledger.db
    (tmp_path / "xdg" / "usage-ledger").mkdir(parents=True)
    shutil.copy(db, tmp_path / "xdg" / "usage-ledger" / "ledger.db")
    result = usage_ledger(tmp_path, "report", "--since", "7d")
    assert result.returncode == 0 and "total" in result.stdout and "$0.75" in result.stdout


def test_reprice(tmp_path):
    db = tmp_path / "l.db"
    connect(db).close()
    if importlib.util.find_spec("usage_ledger.pricing") is None:
        assert_one_line_error(usage_ledger(tmp_path, "reprice", "--db", str(db)), "not available")
        return
    prices = tmp_path / "prices.toml"
    prices.write_text("{{{ this is not a price file ]]]")
    assert_one_line_error(usage_ledger(tmp_path, "reprice", "--db", str(db), "--prices", str(prices)), "price")
    result = usage_ledger(tmp_path, "reprice", "--db", str(db), "--since", "7d")
    assert result.returncode == 0 and result.stdout.endswith("\nrepriced 0 rows\n"), result.stderr
    assert_one_line_error(usage_ledger(tmp_path, "reprice", "--db", str(tmp_path / "missing.db")), "no ledger")


# --- env ---------------------------------------------------------------------------------------


def exports(stdout: str) -> dict[str, str]:
    return dict(line[len("export "):].split("=", 1) for line in stdout.splitlines() if line.startswith("export "))


def test_env_prints_exports_and_writes_a_combined_bundle(tmp_path):
    confdir, mitm_pem = fake_confdir(tmp_path)
    result = usage_ledger(tmp_path, "env", "--proxy", "http://127.0.0.1:9999", "--confdir", str(confdir))
    assert result.returncode == 0, result.stderr
    env = exports(result.stdout)
    bundle = tmp_path / "xdg" / "usage-ledger" / "ca-bundle.pem"
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        assert env[name] == "http://127.0.0.1:9999"
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        assert env[name] == str(bundle)
    assert env["NODE_EXTRA_CA_CERTS"] == str(confdir / "mitmproxy-ca-cert.pem")
    assert "NO_PROXY" not in env and "no_proxy" not in env and "localhost:11434" in result.stdout
    blocks = pem_blocks(bundle.read_text())
    system = pem_blocks(system_ca_file(exclude=bundle).read_text())
    assert mitm_pem in blocks and system[0] in blocks and len(blocks) == len(set(system)) + 1
    # Again, with SSL_CERT_FILE already pointing at the bundle: no duplicates creep in.
    again = usage_ledger(tmp_path, "env", "--confdir", str(confdir), SSL_CERT_FILE=str(bundle))
    assert again.returncode == 0 and len(pem_blocks(bundle.read_text())) == len(blocks)
    # The output is valid shell.
    shell = subprocess.run(["sh", "-c", result.stdout + '\necho "$SSL_CERT_FILE"'], capture_output=True, text=True)
    assert shell.stdout.strip() == str(bundle)


def test_env_before_mitmdump_ever_ran_creates_mitmproxys_ca(tmp_path):
    confdir = tmp_path / "empty"
    result = usage_ledger(tmp_path, "env", "--confdir", str(confdir))
    assert result.returncode == 0, result.stderr
    assert 'eval "$(uv run usage-ledger env)"' in result.stdout
    cert = (confdir / "mitmproxy-ca-cert.pem").read_text()
    # The key file mitmdump loads holds the same certificate, so the proxy signs with this CA.
    assert pem_blocks(cert) == pem_blocks((confdir / "mitmproxy-ca.pem").read_text())
    assert exports(result.stdout)["NODE_EXTRA_CA_CERTS"] == str(confdir / "mitmproxy-ca-cert.pem")
    assert pem_blocks(cert)[0] in pem_blocks((tmp_path / "xdg" / "usage-ledger" / "ca-bundle.pem").read_text())
    again = usage_ledger(tmp_path, "env", "--confdir", str(confdir))
    assert again.returncode == 0 and (confdir / "mitmproxy-ca-cert.pem").read_text() == cert


def test_env_warns_when_no_proxy_exempts_localhost(tmp_path):
    confdir, _ = fake_confdir(tmp_path)
    result = usage_ledger(tmp_path, "env", "--confdir", str(confdir), NO_PROXY="localhost,.corp")
    assert result.returncode == 0 and "# warning: your NO_PROXY=localhost,.corp" in result.stdout


# --- run ---------------------------------------------------------------------------------------


class Listener:
    """Something listening on a loopback port, standing in for a running proxy."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()


def test_run_uses_a_listening_proxy_and_passes_the_exit_status_through(tmp_path):
    confdir, _ = fake_confdir(tmp_path)
    listener = Listener()
    proxy = f"http://127.0.0.1:{listener.port}"
    script = "import os, sys; print(os.environ['HTTPS_PROXY'], os.environ['SSL_CERT_FILE']); sys.exit(7)"
    result = usage_ledger(tmp_path, "run", "--proxy", proxy, "--db", str(tmp_path / "l.db"),
                          "--confdir", str(confdir), "--", sys.executable, "-c", script)
    listener.sock.close()
    assert result.returncode == 7, result.stderr
    assert result.stdout.split() == [proxy, str(tmp_path / "xdg" / "usage-ledger" / "ca-bundle.pem")]
    assert "usage-ledger: no ledger at" in result.stderr  # the summary; no proxy of ours wrote one
    assert not (tmp_path / "l.db").exists()


def test_run_reports_a_missing_command(tmp_path):
    confdir, _ = fake_confdir(tmp_path)
    listener = Listener()
    result = usage_ledger(tmp_path, "run", "--proxy", f"http://127.0.0.1:{listener.port}",
                          "--confdir", str(confdir), "--db", str(tmp_path / "l.db"), "--", "no-such-command-xyz")
    listener.sock.close()
    assert result.returncode == 127 and "command not found: no-such-command-xyz" in result.stderr
    assert_one_line_error(usage_ledger(tmp_path, "run", "--confdir", str(confdir)), "needs a command")


CLIENT = textwrap.dedent("""
    import json, sys, urllib.request
    body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                       "messages": [{"role": "user", "content": "What is 10 + 5?"}]}).encode()
    request = urllib.request.Request(sys.argv[1] + "/v1/chat/completions", data=body, headers={
        "content-type": "application/json", "authorization": "Bearer sk-test",
        "x-standin-case": sys.argv[2]})
    with urllib.request.urlopen(request, timeout=30) as response:
        print(len(response.read()), "bytes")
    sys.exit(3)
""")


def test_run_starts_mitmdump_records_the_calls_and_stops_it(tmp_path):
    port = free_port()
    db = tmp_path / "l.db"
    with StandIn() as standin:
        result = usage_ledger(tmp_path, "run", "--proxy", f"http://127.0.0.1:{port}", "--db", str(db),
                              "--confdir", str(tmp_path / "conf"), "--",
                              sys.executable, "-c", CLIENT, standin.url, CHAT_CASE)
    assert result.returncode == 3, result.stderr
    assert "bytes" in result.stdout
    assert not is_listening(port), "mitmdump still running"
    assert (tmp_path / "conf" / "mitmproxy-ca-cert.pem").exists()
    rows = sqlite3.connect(db).execute("SELECT model, input_tokens, output_tokens, outcome FROM requests").fetchall()
    assert rows == [("gpt-4o-mini-2024-07-18", 23, 8, "ok")]
    assert "usage-ledger: 1 call during the run, 23 tokens in, 8 out" in result.stderr
    assert "gpt-4o-mini-2024-07-18: 1 call" in result.stderr


# --- tail --------------------------------------------------------------------------------------


def wait_for(path: Path, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text()
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in:\n{path.read_text()}")


def test_tail_prints_calls_as_they_end_and_exits_0_on_ctrl_c(tmp_path, ledger_target):
    db = ledger_target
    con = open_ledger(db)
    add(con, started_at=ts(datetime.now(UTC) - timedelta(minutes=5)), provider="openai", model="old-model",
        user_agent="curl/8.5.0", input_tokens=1, output_tokens=2)
    out = tmp_path / "tail.out"
    with out.open("w") as stdout:
        proc = subprocess.Popen([sys.executable, "-m", "usage_ledger.cli", "tail", "--db", db, "--interval", "0.1"],
                                cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(out, "openai/old-model")
        add(con, flow_id="slow", provider="anthropic", model="claude-sonnet-4-5", outcome="pending",
            user_agent="Anthropic/Python 0.40.0")
        add(con, provider="openai", model="gpt-4o", user_agent="OpenAI/Python 1.51.0",
            input_tokens=1234, output_tokens=56, cost_usd=0.0123)
        content = wait_for(out, "openai/gpt-4o ")
        assert "claude" not in content  # pending: printed once it ends
        line = content.splitlines()[-1]
        assert "openai-python/1.51" in line and "1,234 in" in line and "56 out" in line
        assert "$0.0123" in line and line.endswith("ok")
        execute(con, "UPDATE requests SET outcome = 'http_error', status_code = 529 WHERE flow_id = 'slow'")
        content = wait_for(out, "anthropic/claude-sonnet-4-5")
        assert content.splitlines()[-1].endswith("http_error 529")
        assert content.count("gpt-4o ") == 1 and content.count("old-model") == 1
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        con.close()
    assert proc.returncode == 0 and "Traceback" not in stderr


def test_tail_columns_have_a_fixed_width_and_cut_with_an_ellipsis():
    from usage_ledger.cli.tail import tail_line

    short = tail_line((1, "2026-11-01T10:00:00.000Z", "curl/8.5.0", "openai", "gpt-4o", 10, 5, 0.01, "ok", 200))
    long = tail_line((2, "2026-11-01T10:00:00.000Z", "SomeVeryLongAgentName/1.2.3 (linux)", "openrouter",
                      "anthropic/claude-sonnet-4-5-20250929-with-a-long-suffix", 10, 5, 0.01, "ok", 200))
    assert len(short) == len(long) and short.index(" in ") == long.index(" in ")
    assert "openrouter/anthropic/claude-sonnet-\u2026 " in long and "someverylongagentna\u2026 " in long


def test_backup_while_the_proxy_writes_has_every_row_committed_before(tmp_path):
    import threading

    db = tmp_path / "ledger.db"
    con = connect(db)
    con.execute("INSERT INTO requests (started_at, model) VALUES ('2026-11-01T00:00:00.000Z', 'first')")
    con.commit()
    stop, committed = threading.Event(), []

    def writer():  # another connection in WAL mode, committing row after row, like the proxy
        w = connect(db)
        while not stop.is_set():
            w.execute("INSERT INTO requests (started_at, model) VALUES ('2026-11-01T00:00:00.000Z', 'w')")
            w.commit()
            committed.append(w.execute("SELECT max(id) FROM requests").fetchone()[0])
        w.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(committed) < 50:  # bounded by the writer's own progress, not by a sleep
            assert thread.is_alive()
        before = committed[-1]
        result = usage_ledger(tmp_path, "backup", "--db", str(db), str(tmp_path / "copy.db"))
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0 and "backed up" in result.stdout, result.stderr
    assert not (tmp_path / "copy.db-wal").exists()
    copy = sqlite3.connect(tmp_path / "copy.db")
    ids = [r[0] for r in copy.execute("SELECT id FROM requests ORDER BY id")]
    assert ids[: before] == list(range(1, before + 1))  # every row committed before, none missing
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again = usage_ledger(tmp_path, "backup", "--db", str(db), str(tmp_path / "copy.db"))
    assert again.returncode == 2 and "exists" in again.stderr


def test_a_ledger_from_an_older_version_says_what_to_do(tmp_path, capsys, monkeypatch):
    """A backup taken before `machine` existed: not `no such column: machine` alone, but why and
    what brings it up to date."""
    from usage_ledger import migrations
    from usage_ledger.cli import main

    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
    migrations.migrate(con)
    con.commit()
    con.close()
    monkeypatch.undo()
    assert main(["report", "--db", str(db), "--by", "machine"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such column" in err and "older version" in err and "next time it starts" in err
