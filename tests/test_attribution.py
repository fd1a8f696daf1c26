"""Tags, credential fingerprints and redaction: no secret reaches the ledger."""

from __future__ import annotations

import json

from mitmproxy.http import Headers

from usage_ledger.attribution import credential, fingerprint, scrub, take_tags
from usage_ledger.redact import redact_path


def test_tag_headers_become_tags_and_are_removed():
    headers = Headers([(b"X-Ledger-Tag-Project", b"billing-bot"), (b"x-ledger-tag-TEAM", b" infra "),
                       (b"Content-Type", b"application/json")])
    assert json.loads(take_tags(headers)) == {"project": "billing-bot", "team": "infra"}
    assert list(headers.keys()) == ["Content-Type"]
    assert take_tags(Headers([(b"Accept", b"*/*")])) is None


def test_credential_is_found_wherever_providers_put_it():
    assert credential(Headers(authorization="Bearer sk-abc"), "") == "sk-abc"
    assert credential(Headers([(b"x-api-key", b"sk-ant-1")]), "") == "sk-ant-1"
    assert credential(Headers([(b"api-key", b"azure-1")]), "") == "azure-1"
    assert credential(Headers([(b"x-goog-api-key", b"AIza-1")]), "") == "AIza-1"
    assert credential(Headers(), "alt=sse&key=AIza-2") == "AIza-2"
    assert credential(Headers(), "alt=sse") is None


def test_fingerprint_is_short_stable_and_one_way():
    a, b = fingerprint("sk-abc"), fingerprint("sk-abd")
    assert a == fingerprint("sk-abc") and a != b and len(a) == 12
    assert "sk-abc" not in a and fingerprint(None) is None


def test_scrub_removes_an_echoed_key():
    assert scrub("Incorrect API key provided: sk-abcdefgh123.", "sk-abcdefgh123") == "Incorrect API key provided: REDACTED."


def test_secret_query_values_are_redacted_in_path():
    assert redact_path("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=AIzaSECRET") == (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=REDACTED")
    assert redact_path("/openai/deployments/d/chat/completions?api-version=2024-02-01") == (
        "/openai/deployments/d/chat/completions?api-version=2024-02-01")
    assert "SECRET" not in redact_path("/x?access_token=SECRET&api_key=SECRET&sig=SECRET")
