"""Real mitmdump with our addon.py, as a subprocess on a free loopback port."""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MITMDUMP = Path(sys.executable).parent / "mitmdump"
_LISTENING = re.compile(r"proxy listening at (?:\*|[0-9.]+):(\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "5")
        self.end_headers()
        self.wfile.write(b"ready")

    def log_message(self, *args) -> None:
        pass


@cache
def probe_url() -> str:
    """A plain HTTP server on loopback, for this test process's readiness round trips."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/usage-ledger-ready"


def wait_until(condition, timeout: float, what: str, interval: float = 0.05):
    """condition()'s first truthy value, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def start_refused(tmp: Path, *sets: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """mitmdump with addon.py and `--set`s that should stop it at startup: its exit status and
    output (text), once it has exited."""
    args = [str(MITMDUMP), "-s", str(ROOT / "addon.py"), "--listen-host", "127.0.0.1", "-p", "0",
            "--set", f"ledger_db={tmp / 'l.db'}"]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


class Proxy:
    def __init__(self, tmp: Path, *sets: str, env: dict | None = None, db: Path | None = None,
                 command: list[str] | None = None, scripts: tuple[Path, ...] = ()) -> None:
        """command: how mitmdump with the addon is started, before the port and options;
        scripts: further addon scripts to load after it."""
        self.tmp = tmp
        self.db = db or tmp / "ledger.db"
        self.log_path = next(p for n in itertools.count() if not (p := tmp / f"mitmdump-{n}.log").exists())
        command = command or [str(MITMDUMP), "-s", str(ROOT / "addon.py"), "--listen-host", "127.0.0.1"]
        # Port 0: mitmdump binds a free port itself and says which. A port picked here and
        # handed over could be taken meanwhile by another suite's proxy or stand-in, which
        # would then answer the readiness probe for a mitmdump that failed to listen.
        args = [*command, "-p", "0", "--set", f"confdir={tmp / 'conf'}"]
        if db is not False:
            args += ["--set", f"ledger_db={self.db}"]
        for s in sets:
            args += ["--set", s]
        for script in scripts:
            args += ["-s", str(script)]
        self.log = self.log_path.open("w")
        # unbuffered: the log is read while mitmdump runs (its port, lines tests wait for)
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.port = self.wait_listening()
        self.wait_serving()

    def wait_listening(self, timeout: float = 90) -> int:
        """The port mitmdump says it listens on ("HTTP(S) proxy listening at 127.0.0.1:PORT.",
        or *:PORT on every interface)."""
        def said() -> int | None:
            if found := _LISTENING.search(self.log_path.read_text(errors="replace")):
                return int(found[1])
            if self.proc.poll() is not None:
                raise RuntimeError(f"mitmdump exited: {self.log_path.read_text()[-2000:]}")
            return None

        try:
            return wait_until(said, timeout, "mitmdump to listen")
        except AssertionError:
            self.stop()
            raise RuntimeError(f"mitmdump did not listen within {timeout} s: {self.log_path.read_text()[-2000:]}")

    def wait_serving(self, timeout: float = 90) -> None:
        """Return once a request through the proxy gets its answer: mitmdump accepts connections
        well before it serves them, so an accepted connect says nothing. Any HTTP answer counts
        (a redirecting script may send the probe to another upstream)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(proxy=self.url, trust_env=False, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mitmdump exited: {self.log_path.read_text()[-2000:]}")
                try:
                    # named as a case, for a redirecting script that sends it to the stand-in
                    client.get(probe_url(), headers={"x-standin-case": "readiness-probe"})
                    return
                except httpx.HTTPError:
                    time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"mitmdump did not serve within {timeout} s: {self.log_path.read_text()[-2000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def rows(self) -> list[dict]:
        con = sqlite3.connect(self.db)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute("select * from requests order by id")]
        finally:
            con.close()

    def wait_rows(self, n: int, timeout: float = 60.0) -> list[dict]:
        """The ledger's rows once n of them are no longer pending."""
        def finished() -> list[dict] | None:
            try:
                rows = self.rows()
            except sqlite3.Error:
                return None
            return rows if sum(r["outcome"] != "pending" for r in rows) >= n else None

        try:
            return wait_until(finished, timeout, f"{n} finished rows", interval=0.1)
        except AssertionError:
            raise AssertionError(f"expected {n} finished rows, got {self.rows()}") from None
