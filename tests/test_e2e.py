"""End to end: real mitmdump running addon.py, real SDK clients through it, a stand-in provider
on loopback, and the ledger read back from SQLite."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import stat
import threading
from pathlib import Path

import anthropic
import httpx
import httpx2
import openai
import pytest

from .load import Load, rows_by_call
from .proxy import Proxy, start_refused, wait_until
from .standin import StandIn

API_KEY = "sk-test-e2e-0123456789abcdefSECRET"
CHAT_CASE = "openai__openai-chat__stream__agno-include-usage"  # gpt-4o-mini-2024-07-18, 23 in / 8 out
REDIRECT = Path(__file__).resolve().parent / "redirect_addon.py"


@pytest.fixture
def proxy(tmp_path):
    with Proxy(tmp_path) as p:
        yield p


def openai_client(proxy: Proxy, standin: StandIn, case: str, fault: str = "", **headers) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{standin.url}/v1", api_key=API_KEY, max_retries=0,
        default_headers={"x-standin-case": case, "x-standin-fault": fault, **headers},
        http_client=httpx.Client(proxy=proxy.url, trust_env=False),
    )


def stream_chat(client: openai.OpenAI, **kwargs) -> list:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "What is 10 + 5?"}], stream=True, **kwargs
    )
    return list(stream)


def last_forwarded(standin: StandIn) -> dict:
    return json.loads(standin.requests[-1]["body"])


def test_sdk_that_did_not_ask_gets_no_usage_chunk_and_the_ledger_gets_the_usage(proxy, standin):
    chunks = stream_chat(openai_client(proxy, standin, CHAT_CASE, "honor-include-usage"))
    assert chunks and all(c.choices for c in chunks), "a chunk with empty choices reached the SDK"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "10 + 5 equals 15."
    assert last_forwarded(standin)["stream_options"] == {"include_usage": True}
    (row,) = proxy.wait_rows(1)
    assert (row["model"], row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (
        "gpt-4o-mini-2024-07-18", 23, 8, 31)
    assert row["usage_injected"] == 1 and row["outcome"] == "ok" and row["stream"] == 1
    assert row["user_agent"].startswith("OpenAI/Python")
    # gpt-4o-mini: $0.15 / $0.60 per million input / output tokens
    assert row["cost_usd"] == pytest.approx(23 * 0.15e-6 + 8 * 0.60e-6)
    assert row["price_source"].startswith("genai-prices ")
    assert row["service_tier"] == "default"
    assert row["machine"] == socket.gethostname()  # the ledger_machine default


def test_the_start_up_heap_is_frozen_once_and_calls_go_on(proxy, standin):
    """heap.py: once the prices are loaded, what start-up left is moved out of the collector's way."""
    frozen = wait_until(lambda: re.findall(r"(\d+) start-up objects moved out", proxy.log_path.read_text()),
                        60, "the start-up freeze")
    assert len(frozen) == 1 and int(frozen[0]) > 10_000  # mitmproxy's, ours and the price data
    chunks = stream_chat(openai_client(proxy, standin, CHAT_CASE, "honor-include-usage"))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "10 + 5 equals 15."
    (row,) = proxy.wait_rows(1)
    assert row["output_tokens"] == 8 and row["cost_usd"] == pytest.approx(23 * 0.15e-6 + 8 * 0.60e-6)


def test_sdk_that_asked_gets_the_usage_chunk(proxy, standin):
    chunks = stream_chat(openai_client(proxy, standin, CHAT_CASE, "honor-include-usage"),
                         stream_options={"include_usage": True})
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 31
    (row,) = proxy.wait_rows(1)
    assert row["usage_injected"] == 0 and row["input_tokens"] == 23


def test_explicit_false_is_forwarded_as_false(proxy, standin):
    chunks = stream_chat(openai_client(proxy, standin, CHAT_CASE, "honor-include-usage"),
                         stream_options={"include_usage": False})
    assert all(c.choices for c in chunks)
    assert last_forwarded(standin)["stream_options"] == {"include_usage": False}
    (row,) = proxy.wait_rows(1)
    assert row["usage_injected"] == 0 and row["input_tokens"] is None and row["outcome"] == "ok"


def test_strict_server_call_succeeds_and_the_host_is_remembered(tmp_path, standin):
    with Proxy(tmp_path) as proxy:
        client = openai_client(proxy, standin, CHAT_CASE, "reject-stream-options")
        chunks = stream_chat(client)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "10 + 5 equals 15."
        assert "stream_options" not in last_forwarded(standin)
        stream_chat(client)
        assert "stream_options" not in last_forwarded(standin), "injected again after a refusal"
        rows = proxy.wait_rows(2)
    assert len(rows) == 2
    assert [r["outcome"] for r in rows] == ["ok", "ok"]
    assert [r["status_code"] for r in rows] == [200, 200]
    assert rows[0]["input_tokens"] == 23  # the recorded stream carries usage unasked
    # A restart keeps what was learned.
    with Proxy(tmp_path) as proxy:
        stream_chat(openai_client(proxy, standin, CHAT_CASE, "reject-stream-options"))
        assert "stream_options" not in last_forwarded(standin)
        assert len(proxy.wait_rows(3)) == 3


def test_a_refusal_is_learned_only_from_its_own_server_and_cause(tmp_path, standin):
    """A strict server on one port leaves the one beside it alone; a 422 that names stream_options
    only because it echoes the whole body (FastAPI's, for a missing `messages`) teaches nothing."""
    body = {"model": "gpt-4o-mini", "stream": True, "messages": []}
    with Proxy(tmp_path, scripts=(REDIRECT,), env={"STANDIN_PORT": str(standin.port)}) as proxy:
        with httpx2.Client(proxy=proxy.url, trust_env=False, timeout=30) as http:
            def post(port: int, fault: str, sent: dict) -> httpx2.Response:
                return http.post(f"http://localhost:{port}/v1/chat/completions", json=sent,
                                 headers={"x-standin-case": CHAT_CASE, "x-standin-fault": fault})
            assert post(8001, "reject-stream-options", body).status_code == 200  # sent again without it
            assert post(8002, "honor-include-usage", body).status_code == 200
            assert last_forwarded(standin)["stream_options"] == {"include_usage": True}
            no_messages = {"model": "gpt-4o-mini", "stream": True}
            assert post(8003, "validate-messages", no_messages).status_code == 422
            assert post(8003, "validate-messages,honor-include-usage", body).status_code == 200
            assert last_forwarded(standin)["stream_options"] == {"include_usage": True}
        rows = proxy.wait_rows(4)
    learned = sqlite3.connect(proxy.db).execute("SELECT host FROM hosts_without_stream_options").fetchall()
    assert learned == [("localhost:8001",)]
    assert [(r["host"], r["status_code"], r["usage_injected"], r["input_tokens"]) for r in rows] == [
        ("localhost:8001", 200, 0, 23), ("localhost:8002", 200, 1, 23),
        ("localhost:8003", 422, 1, None), ("localhost:8003", 200, 1, 23)]


def test_anthropic_sdk_messages_stream(proxy, standin):
    client = anthropic.Anthropic(
        base_url=standin.url, api_key=API_KEY, max_retries=0,
        default_headers={"x-standin-case": "anthropic__anthropic-messages__stream__llm-anthropic-basic"},
        http_client=httpx2.Client(proxy=proxy.url, trust_env=False),
    )
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100,
                                messages=[{"role": "user", "content": "Two names for a pet pelican"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens == 10
    (row,) = proxy.wait_rows(1)
    assert (row["provider"], row["api"], row["model"]) == (f"127.0.0.1:{standin.port}", "anthropic-messages",
                                                           "claude-sonnet-4-5-20250929")
    assert (row["input_tokens"], row["output_tokens"], row["outcome"]) == (17, 10, "ok")


def test_openai_sdk_responses_stream(proxy, standin):
    client = openai_client(proxy, standin, "openai__openai-responses__stream__llm-basic")
    events = list(client.responses.create(model="gpt-5.5", input="Reply with exactly: pong", stream=True))
    assert events[-1].type == "response.completed"
    (row,) = proxy.wait_rows(1)
    assert (row["api"], row["model"], row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (
        "openai-responses", "gpt-5.5-2026-04-23", 11, 5, 16)


def test_tags_and_key_fingerprint_and_no_key_in_the_ledger(proxy, standin):
    stream_chat(openai_client(proxy, standin, CHAT_CASE, **{"X-Ledger-Tag-Project": "billing-bot"}))
    assert not any(k.startswith("x-ledger-tag") for k in standin.requests[-1]["headers"])
    other = openai.OpenAI(base_url=f"{standin.url}/v1", api_key="sk-another-key-987654321",
                          max_retries=0, default_headers={"x-standin-case": CHAT_CASE},
                          default_query={"key": API_KEY + "-in-query"},
                          http_client=httpx.Client(proxy=proxy.url, trust_env=False))
    stream_chat(other)
    rows = proxy.wait_rows(2)
    assert json.loads(rows[0]["tags"]) == {"project": "billing-bot"}
    assert rows[1]["tags"] is None
    assert rows[1]["path"] == "/v1/chat/completions?key=REDACTED"
    ids = [r["api_key_id"] for r in rows]
    assert all(ids) and ids[0] != ids[1] and all(len(i) == 12 for i in ids)
    proxy.stop()
    blob = b"".join(p.read_bytes() for p in proxy.db.parent.glob(proxy.db.name + "*"))
    for secret in (API_KEY, "sk-another-key-987654321", API_KEY + "-in-query"):
        assert secret.encode() not in blob


def test_request_headers_that_are_not_utf8_get_their_row(proxy, standin):
    """mitmproxy keeps undecodable header bytes as surrogates; the key's fingerprint, the user
    agent and tags must still make a row, and the server gets the bytes the client sent."""
    headers = {"x-standin-case": CHAT_CASE, "authorization": b"Bearer sk-\xff\xfe-key",
               "user-agent": b"agent/\xe9\xff", "x-ledger-tag-project": b"caf\xe9"}
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=20) as http:
        r = http.post(f"{standin.url}/v1/chat/completions", headers=headers,
                      json={"model": "gpt-4o-mini", "stream": True, "messages": []})
    assert r.status_code == 200 and r.content.endswith(b"data: [DONE]\n\n")
    assert standin.requests[-1]["headers"]["authorization"] == "Bearer sk-\xff\xfe-key"  # latin-1 read
    (row,) = proxy.wait_rows(1)
    assert (row["outcome"], row["input_tokens"], row["output_tokens"]) == ("ok", 23, 8)
    assert len(row["api_key_id"]) == 12 and row["user_agent"].startswith("agent/")
    assert json.loads(row["tags"])["project"].startswith("caf")
    assert "Addon error" not in proxy.log_path.read_text()


def test_upstream_reset_mid_stream_keeps_the_usage_seen(proxy, standin):
    headers = {"x-standin-case": "anthropic__anthropic-messages__stream__llm-anthropic-web-search",
               "x-standin-fault": "reset-mid-stream"}
    with pytest.raises(httpx.HTTPError):
        with httpx.Client(proxy=proxy.url, trust_env=False) as http:
            with http.stream("POST", f"{standin.url}/v1/messages", headers=headers,
                             json={"model": "claude-opus-4-1", "max_tokens": 10, "stream": True,
                                   "messages": []}) as r:
                for _ in r.iter_bytes():
                    pass
    (row,) = proxy.wait_rows(1)
    assert row["outcome"] == "upstream_failed" and row["error"]
    assert row["input_tokens"] == 2039  # from message_start; the final message_delta never came
    assert row["model"] == "claude-opus-4-1-20250805"


def test_client_disconnect_mid_stream(proxy, standin):
    headers = {"x-standin-case": "openai__openai-chat__stream__gpt35-async-no-usage", "x-standin-fault": "slow"}
    with httpx.Client(proxy=proxy.url, trust_env=False) as http:
        with http.stream("POST", f"{standin.url}/v1/chat/completions", headers=headers,
                         json={"model": "gpt-3.5-turbo", "stream": True, "messages": []}) as r:
            next(r.iter_raw())
    (row,) = proxy.wait_rows(1)
    assert row["outcome"] == "client_aborted" and row["status_code"] == 200
    assert row["model"] == "gpt-3.5-turbo-0125"


def test_gzip_encoded_event_stream(proxy, standin):
    case = "anthropic__anthropic-messages__stream__llm-anthropic-tools-gzip-sse"
    with httpx.Client(proxy=proxy.url, trust_env=False) as http:
        r = http.post(f"{standin.url}/v1/messages", headers={"x-standin-case": case, "x-standin-fault": "gzip"},
                      json={"model": "claude-haiku-4-5", "stream": True, "messages": []})
    assert r.headers["content-encoding"] == "gzip" and b"message_stop" in r.content
    (row,) = proxy.wait_rows(1)
    assert (row["input_tokens"], row["output_tokens"], row["model"]) == (678, 82, "claude-haiku-4-5-20251001")


def load_with_sigterm(tmp_path, standin, calls: int = 8, *sets: str) -> tuple[dict, dict]:
    """`calls` streamed calls through real mitmdump, half of them slow; SIGTERM once every call's
    row is written and the first one has reached its client whole. Returns what each client got
    ("whole", or the error) and each call's row, by call number."""
    proxy = Proxy(tmp_path, *sets)
    got: dict[int, str] = {}

    def call(i: int) -> None:
        headers = {"x-standin-case": CHAT_CASE, "x-standin-fault": "slow" if i % 2 else "",
                   "X-Ledger-Tag-Call": str(i)}
        try:
            with httpx.Client(proxy=proxy.url, trust_env=False, timeout=60) as http:
                r = http.post(f"{standin.url}/v1/chat/completions", headers=headers,
                              json={"model": "gpt-4o-mini", "stream": True, "messages": []})
            got[i] = "whole" if r.status_code == 200 and r.content.endswith(b"data: [DONE]\n\n") else r.text
        except httpx.HTTPError as e:
            got[i] = f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=call, args=(i,)) for i in range(calls)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(proxy.rows()) == calls and got, 60, "every call started and one ended")
    finally:
        assert proxy.stop(signal.SIGTERM) is not None
        for t in threads:
            t.join(60)
    rows = {int(json.loads(r["tags"])["call"]): r for r in proxy.rows()}
    assert sorted(rows) == list(range(calls))
    return got, rows


# #11's measure is 10 runs: 3 in every run of the suite, the other 7 with `-m slow` (.ci/run).
@pytest.mark.parametrize("run", [pytest.param(n, marks=[pytest.mark.slow] if n >= 3 else []) for n in range(10)])
def test_sigterm_during_traffic_completes_every_finished_row(tmp_path, standin, run):
    got, rows = load_with_sigterm(tmp_path, standin, 12)
    assert "whole" in got.values()
    for i, row in rows.items():
        if got[i] == "whole":  # every call its client received in full: ok, with its usage
            assert (row["outcome"], row["input_tokens"], row["output_tokens"]) == ("ok", 23, 8), (i, got[i], row)
        else:  # the rest: cut off by the stop, and said so
            assert row["outcome"] == "proxy_stopped", (i, got[i], row)


def test_calls_still_open_when_the_grace_period_ends_are_proxy_stopped(tmp_path, standin):
    proxy = Proxy(tmp_path, "ledger_shutdown_grace=0.2")
    headers = {"x-standin-case": "anthropic__anthropic-messages__stream__llm-anthropic-web-search",
               "x-standin-fault": "slow"}
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=60) as http:
        with pytest.raises(httpx.HTTPError):
            with http.stream("POST", f"{standin.url}/v1/messages", headers=headers,
                             json={"model": "claude-opus-4-1", "max_tokens": 10, "stream": True,
                                   "messages": []}) as r:
                for i, _ in enumerate(r.iter_raw()):
                    if i == 2:  # well into the stream, and message_start read
                        proxy.stop(signal.SIGTERM)
    (row,) = proxy.rows()
    assert row["outcome"] == "proxy_stopped" and "grace" in row["error"]
    assert row["input_tokens"] == 2039 and row["model"] == "claude-opus-4-1-20250805"


def test_default_ledger_path_is_created_private(tmp_path, standin):
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "USAGE_LEDGER_DB": ""}
    with Proxy(tmp_path, env=env, db=False) as proxy:
        proxy.db = tmp_path / "data" / "usage-ledger" / "ledger.db"
        stream_chat(openai_client(proxy, standin, CHAT_CASE))
        (row,) = proxy.wait_rows(1)
    assert row["input_tokens"] == 23
    assert stat.S_IMODE(os.stat(proxy.db).st_mode) == 0o600


def test_a_bad_price_file_stops_startup_with_one_clear_line(tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text('{"gpt-4o-mini": {"input_cost_per_token": -1}}')
    done = start_refused(tmp_path, f"ledger_prices={prices}")
    assert done.returncode != 0
    errors = [line for line in done.stdout.splitlines() if "ledger_prices" in line]
    assert len(errors) == 1 and str(prices) in errors[0] and "input_cost_per_token" in errors[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_sigkill_mid_load_keeps_every_row_written_before_it(tmp_path, standin):
    """Rows reach the ledger within a bounded time of their call's end, and stay there when the
    proxy is killed outright: SIGKILL mid-load loses only what was still in flight."""
    proxy = Proxy(tmp_path)
    load = Load(proxy, standin.url, clients=4, per_client=200)
    try:
        seen = load.wait_whole(20)

        def recorded() -> bool:
            ok = {i for i, r in rows_by_call(proxy.rows()).items() if r["outcome"] == "ok"}
            return set(seen) <= ok

        wait_until(recorded, 30, "the rows of the calls that ended")  # written while the load goes on
        proxy.proc.kill()
        proxy.stop()
    finally:
        load.stop()
    rows = rows_by_call(proxy.rows())
    for i in seen:
        assert (rows[i]["outcome"], rows[i]["input_tokens"], rows[i]["output_tokens"]) == ("ok", 23, 8)
    assert all(r["outcome"] in ("ok", "pending") for r in rows.values())
