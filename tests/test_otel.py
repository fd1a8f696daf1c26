"""OpenTelemetry export: real mitmdump with the addon, the stand-in provider, and a real OTLP/HTTP
receiver decoding the exporter's protobufs. Each span must say what the call's ledger row says."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import httpx
import pytest

from usage_ledger.otel import wanted

from .otlp_receiver import OtlpReceiver
from .proxy import MITMDUMP, ROOT, Proxy

FAST = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # spans leave the batch processor within 0.1 s

# (case, path, body): chat streamed, Anthropic cache write and read, reasoning, a refused call.
CALLS = [
    ("openai__openai-chat__stream__agno-include-usage", "/v1/chat/completions",
     {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}),
    ("anthropic__anthropic-messages__stream__cache-write-1165", "/v1/messages",
     {"model": "claude-sonnet-4-5", "stream": True, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
    ("anthropic__anthropic-messages__nostream__cache-read-1163", "/v1/messages",
     {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
    ("openai__openai-chat__nostream__gpt5-nano-reasoning", "/v1/chat/completions",
     {"model": "gpt-5-nano", "messages": [{"role": "user", "content": "hi"}]}),
    ("openai__openai-chat__nostream__crewai-error-404-model", "/v1/chat/completions",
     {"model": "gpt-nonexistent", "messages": [{"role": "user", "content": "hi"}]}),
]


def call(proxy: Proxy, standin, case: str, path: str, body: dict, **headers) -> httpx.Response:
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as client:
        return client.post(f"{standin.url}{path}", json=body,
                           headers={"x-standin-case": case, "authorization": "Bearer sk-test-otel-0123456789",
                                    **headers})


def iso_ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1e6) * 1000


def expected_attributes(row: dict, port: int) -> dict:
    """What the GenAI conventions say a span for this row carries, written out by hand."""
    operation = "chat"
    attrs = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": f"127.0.0.1:{port}",  # not a known provider: the ledger's name
        "gen_ai.request.model": row["model_requested"],
        "gen_ai.response.model": row["model"],
        "server.address": "127.0.0.1",
        "server.port": port,
        "http.response.status_code": row["status_code"],
        "usage_ledger.flow_id": row["flow_id"],
        "usage_ledger.api": row["api"],
        "usage_ledger.outcome": row["outcome"],
        "usage_ledger.api_key_id": row["api_key_id"],
    }
    pairs = [("gen_ai.usage.input_tokens", "input_tokens"), ("gen_ai.usage.output_tokens", "output_tokens"),
             ("gen_ai.usage.cache_read.input_tokens", "cached_input_tokens"),
             ("gen_ai.usage.cache_creation.input_tokens", "cache_write_tokens"),
             ("gen_ai.usage.reasoning.output_tokens", "reasoning_tokens"),
             ("usage_ledger.cost_usd", "cost_usd"), ("usage_ledger.price_source", "price_source"),
             ("openai.response.service_tier", "service_tier")]
    attrs.update({name: row[column] for name, column in pairs if row[column] is not None})
    if row["stream"]:
        attrs["gen_ai.response.time_to_first_chunk"] = row["ttfb_ms"] / 1000
    if row["outcome"] != "ok":
        attrs["error.type"] = str(row["status_code"])
    for name, value in json.loads(row["tags"] or "{}").items():
        attrs[f"usage_ledger.tag.{name}"] = value
    return attrs


def test_each_call_is_one_genai_span_with_its_rows_numbers(tmp_path, standin):
    with OtlpReceiver() as receiver:
        with Proxy(tmp_path, f"ledger_otlp_endpoint={receiver.url}", env=FAST) as proxy:
            for case, path, body in CALLS:
                call(proxy, standin, case, path, body, **{"x-ledger-tag-project": "billing-bot"})
            rows = proxy.wait_rows(len(CALLS))
            spans = receiver.wait_spans(len(CALLS))
        # after the proxy stopped: everything flushed, and nothing sent twice
        spans, rows = receiver.spans(), proxy.rows()

        assert len(spans) == len(rows) == len(CALLS)
        by_flow = {s["attributes"]["usage_ledger.flow_id"]: s for s in spans}
        assert sorted(by_flow) == sorted(r["flow_id"] for r in rows)
        for row in rows:
            span = by_flow[row["flow_id"]]
            assert span["attributes"] == expected_attributes(row, standin.port), row["flow_id"]
            assert span["name"] == f"chat {row['model_requested']}"
            assert span["kind"] == 3  # SPAN_KIND_CLIENT
            assert span["scope"] == "usage_ledger" and span["resource"]["service.name"] == "usage-ledger"
            assert span["start_ns"] == iso_ns(row["started_at"])
            assert (span["end_ns"] - span["start_ns"]) / 1e6 == pytest.approx(row["duration_ms"], abs=1e-3)
            assert span["status_code"] == (2 if row["outcome"] != "ok" else 0)  # ERROR / UNSET

        # The numbers themselves, as the recorded responses say them.
        got = {s["attributes"]["gen_ai.request.model"] + (" stream" if "gen_ai.response.time_to_first_chunk"
                                                          in s["attributes"] else ""): s["attributes"]
               for s in spans}
        chat = got["gpt-4o-mini stream"]
        assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (23, 8)
        assert chat["usage_ledger.cost_usd"] == pytest.approx(23 * 0.15e-6 + 8 * 0.60e-6)
        write = got["claude-sonnet-4-5 stream"]
        assert write["gen_ai.usage.cache_creation.input_tokens"] == 1165
        read = got["claude-sonnet-4-5"]
        assert read["gen_ai.usage.cache_read.input_tokens"] == 1163
        assert read["gen_ai.usage.input_tokens"] >= 1163  # the whole, cached included
        assert got["gpt-5-nano"]["gen_ai.usage.reasoning.output_tokens"] > 0
        refused = next(s for s in spans if s["attributes"].get("error.type"))
        assert refused["attributes"]["error.type"] == "404" and refused["status_message"]
        assert {s["attributes"]["usage_ledger.tag.project"] for s in spans} == {"billing-bot"}

        tokens = receiver.histograms("gen_ai.client.token.usage")
        for token_type, column in (("input", "input_tokens"), ("output", "output_tokens")):
            points = [p for p in tokens if p["attributes"]["gen_ai.token.type"] == token_type]
            assert sum(p["sum"] for p in points) == sum(r[column] or 0 for r in rows)
            assert sum(p["count"] for p in points) == sum(r[column] is not None for r in rows)
        assert {p["unit"] for p in tokens} == {"{token}"} and tokens[0]["bounds"][:3] == [1, 4, 16]
        durations = receiver.histograms("gen_ai.client.operation.duration")
        assert sum(p["count"] for p in durations) == len(rows)
        assert sum(p["sum"] for p in durations) == pytest.approx(sum(r["duration_ms"] for r in rows) / 1000)
        assert {p["unit"] for p in durations} == {"s"}
        assert [p["attributes"]["error.type"] for p in durations if "error.type" in p["attributes"]] == ["404"]


def test_the_standard_env_endpoint_turns_export_on(tmp_path, standin):
    with OtlpReceiver() as receiver:
        env = {**FAST, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "team-proxy"}
        with Proxy(tmp_path, env=env) as proxy:
            call(proxy, standin, *CALLS[0])
            (row,) = proxy.wait_rows(1)
            (span,) = receiver.wait_spans(1)
        assert span["attributes"]["usage_ledger.flow_id"] == row["flow_id"]
        assert span["resource"]["service.name"] == "team-proxy"


def test_without_an_endpoint_the_sdk_is_not_even_imported():
    code = ("import sys, usage_ledger.ledger, usage_ledger.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_when_export_is_on():
    assert wanted("", {}) == (False, None)
    assert wanted("http://collector:4318", {}) == (True, "http://collector:4318")
    assert wanted("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == (True, None)
    assert wanted("", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}) == (True, None)
    assert wanted("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}) == (False, None)
    with pytest.raises(ValueError, match="http"):
        wanted("collector:4318", {})


def test_a_bad_endpoint_stops_startup_with_one_clear_line(tmp_path):
    done = subprocess.run([str(MITMDUMP), "-s", str(ROOT / "addon.py"), "--listen-host", "127.0.0.1",
                           "-p", "0", "--set", f"ledger_db={tmp_path / 'l.db'}",
                           "--set", "ledger_otlp_endpoint=collector:4318"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    errors = [line for line in done.stdout.splitlines() if "ledger_otlp_endpoint" in line]
    assert len(errors) == 1 and "collector:4318" in errors[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_names_the_conventions_know():
    from usage_ledger.semconv import base_attributes, call_span

    row = {"api": "gemini", "provider": "gemini", "host": "generativelanguage.googleapis.com",
           "model_requested": "gemini-2.5-flash", "model": None, "started_at": "2026-11-24T09:15:02.123Z",
           "duration_ms": 1500.0, "outcome": "upstream_failed", "error": "connection reset", "stream": 0}
    assert base_attributes(row) == {"gen_ai.operation.name": "generate_content", "gen_ai.provider.name": "gcp.gemini",
                                    "gen_ai.request.model": "gemini-2.5-flash",
                                    "server.address": "generativelanguage.googleapis.com"}
    span = call_span(row)
    assert (span.name, span.error, span.error_type) == ("generate_content gemini-2.5-flash", "connection reset",
                                                        "upstream_failed")
    assert span.end_ns - span.start_ns == 1_500_000_000
    v6 = base_attributes({"api": "openai-embeddings", "provider": "mistral", "host": "[::1]:8080"})
    assert v6 == {"gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "mistral_ai",
                  "server.address": "::1", "server.port": 8080}
