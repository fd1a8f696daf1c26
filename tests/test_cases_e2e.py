"""End to end: this project's own corpus (tests/cases/) through real mitmdump with addon.py,
each request sent by a real HTTP client to the host its case names (redirected to the stand-in
provider), and each row read back from SQLite; plus faults only a real proxy shows."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
from mitmproxy.net.encoding import decode, encode

from .cases import load_own_cases, row_differences
from .proxy import Proxy

REDIRECT = Path(__file__).resolve().parent / "redirect_addon.py"
CHAT_CASE = "openai__openai-chat__stream__agno-include-usage"  # gpt-4o-mini-2024-07-18, 23 in / 8 out


@pytest.fixture
def proxy(tmp_path, standin):
    with Proxy(tmp_path, env={"STANDIN_PORT": str(standin.port)}, scripts=(REDIRECT,)) as p:
        yield p


def test_every_own_case_gives_its_row_and_the_client_its_bytes(proxy, standin):
    cases = load_own_cases()
    received = {}
    for case in cases:
        url = case.url._replace(scheme="http").geturl()  # the stand-in speaks plain HTTP
        headers = {**(case.request.get("headers") or {}), "x-standin-case": case.name,
                   "X-Ledger-Tag-Case": case.name}
        # One client per case: the redirect makes every upstream connection a new one, and a
        # connection per call keeps the stand-in's count of open ones small.
        with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as client:
            r = client.request(case.request["method"], url, headers=headers, content=case.request_wire_body)
        received[case.name] = (r.status_code, r.content)
    billable = [c for c in cases if c.gets_row]
    rows = proxy.wait_rows(len(billable))
    assert sorted(json.loads(r["tags"])["case"] for r in rows) == sorted(c.name for c in billable)
    wrong = {}
    for row in rows:
        case = next(c for c in cases if c.name == json.loads(row["tags"])["case"])
        status, body = received[case.name]
        problems = row_differences(case, row)
        if body != case.response_body:
            problems["client bytes"] = (len(body), len(case.response_body))
        if row["host"] != case.url.netloc or status != case.response["status"]:
            problems["host/status"] = (row["host"], status)
        if problems:
            wrong[case.name] = problems
    assert wrong == {}
    assert not any(k.startswith("x-ledger-tag") for r in standin.requests for k in r["headers"])
    # A compressed request body the proxy had no reason to change reaches the server as sent.
    upstream = {r["headers"]["x-standin-case"]: r for r in standin.requests}
    for case in cases:
        if "content-encoding" in {k.lower() for k in case.request.get("headers") or {}}:
            assert upstream[case.name]["body"] == case.request_wire_body, case.name


def test_tags_never_go_upstream_even_on_requests_that_are_not_calls(proxy, standin):
    with httpx.Client(proxy=proxy.url, trust_env=False) as client:
        client.get("http://api.openai.com/v1/models", headers={"X-Ledger-Tag-Project": "p", "x-standin-case": "none"})
    assert standin.requests[-1]["path"] == "/v1/models"
    assert not any(k.startswith("x-ledger-tag") for k in standin.requests[-1]["headers"])


def test_a_retried_stream_is_recorded_as_a_stream(proxy, standin):
    client = openai.OpenAI(base_url="http://api.mistral.ai/v1", api_key="sk-test", max_retries=0,
                           default_headers={"x-standin-case": CHAT_CASE, "x-standin-fault": "reject-stream-options"},
                           http_client=httpx.Client(proxy=proxy.url, trust_env=False))
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "10 + 5 equals 15."
    (row,) = proxy.wait_rows(1)
    assert (row["provider"], row["stream"], row["usage_injected"], row["outcome"]) == ("mistral", 1, 0, "ok")
    assert (row["input_tokens"], row["output_tokens"]) == (23, 8)


# one-write: the proxy reads the body and the trailers that break it while its response-headers
# hook runs (so it often happened under load): the body still passes on after the failure, and
# its usage is on the row.
@pytest.mark.parametrize("fault", ["trailers", "trailers,one-write"])
def test_chunked_trailers_mitmproxy_cannot_pass_on_are_a_proxy_error(proxy, standin, fault):
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as client:
        with pytest.raises(httpx.HTTPError):
            with client.stream("POST", "http://api.openai.com/v1/chat/completions",
                               headers={"x-standin-case": CHAT_CASE, "x-standin-fault": fault},
                               json={"model": "gpt-4o-mini", "stream": True, "messages": []}) as r:
                for _ in r.iter_bytes():
                    pass
    (row,) = proxy.wait_rows(1)
    assert row["outcome"] == "proxy_error"
    assert row["error"] == "mitmproxy: NotImplementedError: HTTP trailers are not implemented yet."
    assert (row["input_tokens"], row["output_tokens"]) == (23, 8)  # the usage had passed by


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_a_compressed_request_the_proxy_rewrites_goes_upstream_encoded_as_it_says(proxy, standin, encoding):
    sent = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "What is 10 + 5?"}]}
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as client:
        r = client.post("http://api.openai.com/v1/chat/completions", content=encode(json.dumps(sent).encode(), encoding),
                        headers={"content-type": "application/json", "content-encoding": encoding,
                                 "x-standin-case": CHAT_CASE})
    assert r.status_code == 200
    (row,) = proxy.wait_rows(1)
    assert (row["usage_injected"], row["model_requested"], row["input_tokens"], row["output_tokens"]) == (1, "gpt-4o-mini", 23, 8)
    upstream = standin.requests[-1]
    assert upstream["headers"]["content-encoding"] == encoding
    assert json.loads(decode(upstream["body"], encoding)) == {**sent, "stream_options": {"include_usage": True}}
