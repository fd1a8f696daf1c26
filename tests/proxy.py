"""Real mitmdump with our addon.py, as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MITMDUMP = Path(sys.executable).parent / "mitmdump"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    def __init__(self, tmp: Path, *sets: str, env: dict | None = None, db: Path | None = None,
                 command: list[str] | None = None, scripts: tuple[Path, ...] = ()) -> None:
        """command: how mitmdump with the addon is started, before the port and options;
        scripts: further addon scripts to load after it."""
        self.tmp = tmp
        self.db = db or tmp / "ledger.db"
        self.port = free_port()
        self.log_path = tmp / f"mitmdump-{self.port}.log"
        command = command or [str(MITMDUMP), "-s", str(ROOT / "addon.py"), "--listen-host", "127.0.0.1"]
        args = [*command, "-p", str(self.port), "--set", f"confdir={tmp / 'conf'}"]
        if db is not False:
            args += ["--set", f"ledger_db={self.db}"]
        for s in sets:
            args += ["--set", s]
        for script in scripts:
            args += ["-s", str(script)]
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mitmdump exited: {self.log_path.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("mitmdump did not start")

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

    def wait_rows(self, n: int, timeout: float = 15.0) -> list[dict]:
        """The ledger's rows once n of them are no longer pending."""
        deadline = time.time() + timeout
        rows: list[dict] = []
        while time.time() < deadline:
            try:
                rows = self.rows()
            except sqlite3.Error:
                rows = []
            if sum(r["outcome"] != "pending" for r in rows) >= n:
                return rows
            time.sleep(0.1)
        raise AssertionError(f"expected {n} finished rows, got {rows}")
