"""The real coding agents, unmodified, through real mitmdump with addon.py via `usage-ledger run`,
against the TLS stand-in: each model call an agent makes is exactly one row, with its api, model,
tokens and outcome ok (tests/agents.py). Select them with `-m agents`."""

from __future__ import annotations

import base64
import datetime
import json
import time

import pytest

from . import synth_google as google
from .agents import binary, check_rows, ledger_rows, redirecting_proxy, run_agent
from .proxy import Proxy
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


# Claude Code's own switches for a cloud provider, with its auth skipped (as behind an LLM
# gateway): no AWS or Google credentials needed, the stand-in checks no signature.
CLOUD_CLAUDE = {
    "bedrock": {"CLAUDE_CODE_USE_BEDROCK": "1", "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1", "AWS_REGION": "us-east-1"},
    "vertex": {"CLAUDE_CODE_USE_VERTEX": "1", "CLAUDE_CODE_SKIP_VERTEX_AUTH": "1", "CLOUD_ML_REGION": "us-east5",
               "ANTHROPIC_VERTEX_PROJECT_ID": "standin-project"},
}


@pytest.mark.parametrize("cloud", ["bedrock", "vertex"])
def test_claude_code_on_a_cloud(tmp_path, agent_proxy, tls_standin, cloud):
    """Bedrock: /model/{id}/invoke-with-response-stream, AWS's binary event stream; Vertex AI:
    {region}-aiplatform.googleapis.com/...:streamRawPredict, Anthropic's SSE."""
    claude = binary("claude")
    before, requests_before = len(tls_standin.synth.calls), len(tls_standin.requests)
    run = run_agent(tmp_path, agent_proxy, [str(claude), "-p", "Say OK."], {**QUIET, **CLOUD_CLAUDE[cloud]})
    assert run.result.returncode == 0, run.output
    assert "OK." in run.result.stdout
    calls = new_calls(tls_standin, before)
    hosts = {"bedrock": "bedrock-runtime.us-east-1.amazonaws.com", "vertex": "us-east5-aiplatform.googleapis.com"}
    assert {c.host.split(":")[0] for c in calls} == {hosts[cloud]}, tls_standin.requests[requests_before:]
    assert all(c.stream for c in calls)
    rows = ledger_rows(agent_proxy)
    check_rows(rows, calls, cloud)
    assert all(r["cost_usd"] for r in rows)  # the model or inference-profile id has its price


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


def google_login(tmp_path) -> None:
    """~/.gemini as "Login with Google" leaves it: settings.json selecting the oauth-personal
    auth type, and oauth_creds.json with a refresh token and an access token that has expired
    (as it has an hour after the last run), so Gemini CLI refreshes it first."""
    gemini = tmp_path / "home" / ".gemini"
    settings = json.loads((gemini / "settings.json").read_text())
    settings["security"] = {"auth": {"selectedType": "oauth-personal"}}
    (gemini / "settings.json").write_text(json.dumps(settings))
    # google-auth-library's Credentials, expiry_date in ms
    (gemini / "oauth_creds.json").write_text(json.dumps({
        "access_token": "ya29.standin-expired", "refresh_token": "1//standin-refresh-token",
        "scope": "https://www.googleapis.com/auth/cloud-platform", "token_type": "Bearer",
        "expiry_date": int(time.time() - 3600) * 1000}))


def test_gemini_cli_signed_in_with_google(tmp_path, agent_proxy, tls_standin):
    """Gemini Code Assist: the token refresh, tokeninfo, userinfo, loadCodeAssist and onboardUser
    are no rows; each v1internal model call is one, provider gemini-code-assist."""
    gemini = binary("gemini")
    gemini_home(tmp_path)
    google_login(tmp_path)
    before, requests_before = len(tls_standin.synth.calls), len(tls_standin.requests)
    run = run_agent(tmp_path, agent_proxy, [str(gemini), "--skip-trust", "-p", "Say OK."], {})
    assert run.result.returncode == 0, run.output
    assert "OK." in run.result.stdout
    calls = new_calls(tls_standin, before)
    requests = tls_standin.requests[requests_before:]
    asked = [(r["headers"].get("host"), r["path"].split("?")[0]) for r in requests]
    for start_up in [("oauth2.googleapis.com", "/token"), ("oauth2.googleapis.com", "/tokeninfo"),
                     ("cloudcode-pa.googleapis.com", "/v1internal:loadCodeAssist"),
                     ("cloudcode-pa.googleapis.com", "/v1internal:onboardUser")]:
        assert start_up in asked, f"Gemini CLI did not call {start_up}: {asked}"
    assert {c.host for c in calls} == {"cloudcode-pa.googleapis.com"}
    assert len(calls) == 2  # the model router's classifier, then the answer
    model_calls = [r for r in requests if google.MODEL_CALL.match(r["path"].split("?")[0])]
    assert len(model_calls) == 2
    assert {r["headers"].get("authorization") for r in model_calls} == {"Bearer ya29.standin-refreshed"}
    check_rows(ledger_rows(agent_proxy), calls, "gemini-code-assist")


def codex_home(tmp_path) -> None:
    """Analytics, plugin sync and ChatGPT apps (connectors, an MCP server on chatgpt.com) off
    (config.toml)."""
    home = tmp_path / "home" / ".codex"
    home.mkdir(parents=True)
    (home / "config.toml").write_text("[analytics]\nenabled = false\n\n[features]\nplugins = false\napps = false\n")


def fake_jwt(claims: dict) -> str:
    """An unsigned JWT with these claims: Codex only decodes the ChatGPT tokens it holds."""
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def chatgpt_login(tmp_path) -> None:
    """$CODEX_HOME/auth.json as `codex login` leaves it for a ChatGPT Plus account, its tokens
    fresh (an hour left, refreshed just now) so Codex refreshes nothing."""
    now = int(time.time())
    auth = {"chatgpt_plan_type": "plus", "chatgpt_user_id": "user-standin", "chatgpt_account_id": "acct-standin"}
    id_token = fake_jwt({"email": "standin@example.com", "exp": now + 3600, "iat": now,
                         "https://api.openai.com/auth": auth})
    access = fake_jwt({"exp": now + 3600, "iat": now, "https://api.openai.com/auth": auth})
    tokens = {"id_token": id_token, "access_token": access, "refresh_token": "rt-standin", "account_id": "acct-standin"}
    (tmp_path / "home" / ".codex" / "auth.json").write_text(json.dumps({
        "auth_mode": "chatgpt", "OPENAI_API_KEY": None, "tokens": tokens,
        "last_refresh": datetime.datetime.now(datetime.UTC).isoformat()}))


# Where each sign-in mode sends its model calls.
CODEX_ENDPOINTS = {"api-key": ("api.openai.com", "/v1/responses"),
                   "chatgpt": ("chatgpt.com", "/backend-api/codex/responses")}


def run_codex(tmp_path, proxy: Proxy, standin: StandIn, sign_in: str) -> tuple[list, list[dict]]:
    """`codex exec "Say OK."` signed in with an API key or with ChatGPT; the model calls it
    made and every request the stand-in got meanwhile."""
    codex = binary("codex")
    codex_home(tmp_path)
    env = {"OPENAI_API_KEY": "sk-proj-standin-fake-key-0123456789"}
    if sign_in == "chatgpt":
        chatgpt_login(tmp_path)
        env = {}
    before, requests_before = len(standin.synth.calls), len(standin.requests)
    run = run_agent(tmp_path, proxy, [str(codex), "exec", "--skip-git-repo-check", "Say OK."], env)
    assert run.result.returncode == 0, run.output
    assert "OK." in run.result.stdout
    calls = new_calls(standin, before)
    assert {c.host for c in calls} == {CODEX_ENDPOINTS[sign_in][0]}
    return calls, standin.requests[requests_before:]


@pytest.mark.parametrize("sign_in", ["api-key", "chatgpt"])
def test_codex_exec_over_websocket(tmp_path, agent_proxy, tls_standin, sign_in):
    """Codex's default transport: one Responses WebSocket, a warm-up then the answer. Signed in
    with ChatGPT, after chatgpt.com's start-up calls (models, wham/accounts/check)."""
    calls, requests = run_codex(tmp_path, agent_proxy, tls_standin, sign_in)
    assert [c.output_tokens == 0 for c in calls] == [True, False]  # the warm-up, then the answer
    upgrades = [r for r in requests if r["headers"].get("upgrade", "").lower() == "websocket"]
    assert [r["path"] for r in upgrades] == [CODEX_ENDPOINTS[sign_in][1]], "Codex did not use its WebSocket"
    if sign_in == "chatgpt":
        assert upgrades[0]["headers"].get("chatgpt-account-id") == "acct-standin"
    check_rows(ledger_rows(agent_proxy), calls, "openai")


@pytest.fixture
def no_websocket(tls_standin):
    tls_standin.refuse_websocket = True
    yield
    tls_standin.refuse_websocket = False


@pytest.mark.parametrize("sign_in", ["api-key", "chatgpt"])
def test_codex_exec_over_https_when_websocket_refused(tmp_path, agent_proxy, tls_standin, no_websocket, sign_in):
    """The WebSocket upgrade answered 426 Upgrade Required: Codex falls back to
    POST .../responses (SSE) for the rest of the session, one row per call, ok."""
    calls, requests = run_codex(tmp_path, agent_proxy, tls_standin, sign_in)
    posts = [r for r in requests if r["method"] == "POST" and r["path"] == CODEX_ENDPOINTS[sign_in][1]]
    assert len(posts) == len(calls) >= 1
    assert all(c.stream for c in calls)
    # signed in with ChatGPT, Codex compresses its request bodies (zstd); with a key it does not
    assert {r["headers"].get("content-encoding") for r in posts} == {"zstd" if sign_in == "chatgpt" else None}
    check_rows(ledger_rows(agent_proxy), calls, "openai")


# aider's documented switches: no git, no update or model-metadata fetches, no analytics, no repo
# map (which would call the model for nothing), plain output.
AIDER_QUIET = ["--no-git", "--no-check-update", "--no-show-model-warnings", "--analytics-disable",
               "--map-tokens", "0", "--no-pretty", "--no-fancy-input", "--yes-always"]


@pytest.mark.parametrize(("model", "key", "provider"), [
    ("gpt-4o-mini", "OPENAI_API_KEY", "openai"),                          # litellm: chat completions, streamed
    ("anthropic/claude-sonnet-4-5-20250929", "ANTHROPIC_API_KEY", "anthropic"),  # litellm: Messages, streamed
])
def test_aider(tmp_path, agent_proxy, tls_standin, model, key, provider):
    aider = binary("aider")
    before = len(tls_standin.synth.calls)
    run = run_agent(tmp_path, agent_proxy, [str(aider), *AIDER_QUIET, "--model", model, "--message", "Say OK."],
                    {key: "standin-fake-key-0123456789", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    assert run.result.returncode == 0, run.output
    assert "OK." in run.result.stdout
    calls = new_calls(tls_standin, before)
    assert len(calls) == 1 and calls[0].stream  # one streamed call; for OpenAI, usage asked for by litellm or us
    check_rows(ledger_rows(agent_proxy), calls, provider)
