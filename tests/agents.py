"""Running the real coding agents (Claude Code, Codex CLI, Gemini CLI, llm, aider) through real mitmdump
with addon.py, as a user would with `usage-ledger run -- AGENT ...`: a fresh HOME, a fake key,
the proxy and its CA from `usage-ledger run`'s own environment. Every upstream connection goes
to the TLS stand-in (tests/standin.py), which synthesizes the provider's replies (tests/synth.py).

The agents are installed by `.ci/agents.sh` under $XDG_CACHE_HOME/usage-ledger-ci/agents;
a test whose agent is not there is skipped, saying how to install it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .proxy import ROOT, Proxy
from .synth import Call

AGENTS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "usage-ledger-ci" / "agents"
USAGE_LEDGER = Path(sys.executable).parent / "usage-ledger"
PYTHON_AGENTS = ("llm", "aider")  # each in a venv of its own, from PyPI; the rest are npm packages
RUN_TIMEOUT = 120  # seconds; a run takes a few on an idle machine


def binary(name: str) -> Path:
    """The installed agent's executable, or a skip saying how to install it."""
    path = AGENTS / (f"{name}/bin/{name}" if name in PYTHON_AGENTS else f"node_modules/.bin/{name}")
    if not os.access(path, os.X_OK):
        pytest.skip(f"{name} is not installed in {AGENTS}: run `bash .ci/agents.sh` "
                    "(needs registry.npmjs.org and PyPI)")
    return path


def redirecting_proxy(tmp: Path, standin_port: int) -> Proxy:
    """mitmdump with addon.py whose upstream connections all go to the stand-in, which has a
    self-signed certificate (so ssl_insecure)."""
    return Proxy(tmp, "ssl_insecure=true", env={"STANDIN_PORT": str(standin_port)},
                 scripts=(ROOT / "tests" / "redirect_addon.py",))


@dataclass
class Run:
    result: subprocess.CompletedProcess
    home: Path

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr


def run_agent(tmp: Path, proxy: Proxy, argv: list[str], env: dict[str, str], stdin: str = "") -> Run:
    """`usage-ledger run -- argv` in a fresh HOME (and working directory) with only `env` added
    to a minimal environment; bounded by RUN_TIMEOUT."""
    home = tmp / "home"
    work = tmp / "work"
    for d in (home, work):
        d.mkdir(exist_ok=True)
    base = {"PATH": f"{Path(argv[0]).parent}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home), "LANG": "C.UTF-8", "TERM": "dumb", "CI": "1", "NO_COLOR": "1"}
    command = [str(USAGE_LEDGER), "run", "--proxy", proxy.url, "--confdir", str(proxy.tmp / "conf"),
               "--db", str(proxy.db), "--", *argv]
    try:
        result = subprocess.run(command, cwd=work, env={**base, **env}, input=stdin, capture_output=True,
                                text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{argv[0]} did not finish in {RUN_TIMEOUT} s: {e.stdout!r} {e.stderr!r}") from e
    return Run(result, home)


def ledger_rows(proxy: Proxy) -> list[dict]:
    """Every row, after the proxy has stopped (SIGINT drains its writes)."""
    proxy.stop()
    return proxy.rows()


def check_rows(rows: list[dict], calls: list[Call], provider: str) -> None:
    """Exactly one row per model call, each with that call's api, model, tokens and outcome ok."""
    assert calls, "the agent made no model call"

    def key(row_or_call: dict) -> tuple:
        return tuple(row_or_call[k] for k in ("host", "api", "model", "input_tokens", "cached_input_tokens",
                                              "output_tokens", "outcome", "provider"))

    want = sorted(key({**vars(c), "host": c.host.split(":")[0], "outcome": "ok", "provider": provider})
                  for c in calls)
    got = sorted(key(r) for r in rows)
    assert got == want, f"rows {got} != calls {want}"
