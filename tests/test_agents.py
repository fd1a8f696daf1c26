"""The real coding agents, unmodified, through real mitmdump with addon.py via `usage-ledger run`,
against the TLS stand-in: each model call an agent makes is exactly one row, with its api, model,
tokens and outcome ok (tests/agents.py). Select them with `-m agents`."""

from __future__ import annotations

import json

import pytest

from .agents import binary, check_rows, ledger_rows, redirecting_proxy, run_agent
from .standin import StandIn

pytestmark = pytest.mark.agents

# Telemetry, error reports and update checks off, by each agent's documented switches.
QUIET = {"DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1", "DISABLE_AUTOUPDATER": "1",
         "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}


@pytest.fixture(scope="module")
def tls_standin():
    with StandIn(tls=True, agents=True) as s:
        yield s


@pytest.fixture
def agent_proxy(tmp_path, tls_standin):
    with redirecting_proxy(tmp_path, tls_standin.port) as p:
        yield p


def new_calls(standin: StandIn, before: int) -> list:
    return standin.synth.calls[before:]


def test_claude_code_print_mode(tmp_path, agent_proxy, tls_standin):
    claude = binary("claude")
    before = len(tls_standin.synth.calls)
    run = run_agent(tmp_path, agent_proxy, [str(claude), "-p", "Say OK."],
                    {**QUIET, "ANTHROPIC_API_KEY": "sk-ant-api03-standin-fake-key"})
    assert run.result.returncode == 0, run.output
    assert "OK." in run.result.stdout
    calls = new_calls(tls_standin, before)
    check_rows(ledger_rows(agent_proxy), calls, "anthropic")


@pytest.mark.parametrize(("model", "key", "provider"), [
    ("gpt-4o-mini", "OPENAI_API_KEY", "openai"),                  # llm itself: chat completions, streamed
    ("claude-sonnet-4.5", "ANTHROPIC_API_KEY", "anthropic"),      # llm-anthropic: Messages, streamed
    ("gemini-2.5-flash", "LLM_GEMINI_KEY", "gemini"),             # llm-gemini: a streamed JSON array
])
def test_llm(tmp_path, agent_proxy, tls_standin, model, key, provider):
    llm = binary("llm")
    before = len(tls_standin.synth.calls)
    run = run_agent(tmp_path, agent_proxy, [str(llm), "-m", model, "Say OK."], {key: "standin-fake-key-0123456789"})
    assert run.result.returncode == 0, run.output
    assert run.result.stdout.strip() == "OK."
    check_rows(ledger_rows(agent_proxy), new_calls(tls_standin, before), provider)


def gemini_home(tmp_path) -> None:
    """Usage statistics off, Gemini CLI's documented opt-out (settings.json)."""
    settings = tmp_path / "home" / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"privacy": {"usageStatisticsEnabled": False}}))


@pytest.mark.parametrize(("env", "provider"), [
    ({"GEMINI_API_KEY": "standin-fake-key-0123456789"}, "gemini"),  # AI Studio
    ({"GOOGLE_API_KEY": "standin-fake-key-0123456789", "GOOGLE_GENAI_USE_VERTEXAI": "true"}, "vertex"),
], ids=["api-key", "vertex"])
def test_gemini_cli(tmp_path, agent_proxy, tls_standin, env, provider):
    gemini = binary("gemini")
    gemini_home(tmp_path)
    before = len(tls_standin.synth.calls)
    run = run_agent(tmp_path, agent_proxy, [str(gemini), "--skip-trust", "-p", "Say OK."], env)
    assert run.result.returncode == 0, run.output
    assert "OK." in run.result.stdout
    calls = new_calls(tls_standin, before)
    assert len(calls) == 2  # the model router's classifier, then the answer
    check_rows(ledger_rows(agent_proxy), calls, provider)




def codex_home(tmp_path) -> None:
    """Analytics and plugin sync off (config.toml)."""
    home = tmp_path / "home" / ".codex"
    home.mkdir(parents=True)
    (home / "config.toml").write_text("[analytics]\nenabled = false\n\n[features]\nplugins = false\n")


def test_codex_exec_api_key_over_websocket(tmp_path, agent_proxy, tls_standin):
    """Codex's default transport: one Responses WebSocket, a warm-up then the answer."""
    codex = binary("codex")
    codex_home(tmp_path)
    before = len(tls_standin.synth.calls)
    ws_before = len(tls_standin.ws_messages)
    run = run_agent(tmp_path, agent_proxy, [str(codex), "exec", "--skip-git-repo-check", "Say OK."],
                    {"OPENAI_API_KEY": "sk-proj-standin-fake-key-0123456789"})
    assert run.result.returncode == 0, run.output
    assert "OK." in run.result.stdout
    calls = new_calls(tls_standin, before)
    assert {c.host for c in calls} == {"api.openai.com"}
    assert [c.output_tokens == 0 for c in calls] == [True, False]  # the warm-up, then the answer
    assert len(tls_standin.ws_messages) > ws_before, "Codex did not use its WebSocket"
    check_rows(ledger_rows(agent_proxy), calls, "openai")
