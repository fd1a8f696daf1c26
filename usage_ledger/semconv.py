"""A finished ledger row in OpenTelemetry's GenAI semantic conventions: pure, no OTel import.

Names follow the GenAI client span and metric conventions (semantic-conventions v1.37+,
`gen_ai.provider.name` era; https://opentelemetry.io/docs/specs/semconv/gen-ai/). What the
conventions have no name for is under `usage_ledger.*`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The ledger's `api` -> gen_ai.operation.name. The conventions name no operation for images or
# audio; `generate_content` is their name for (multimodal) content generation.
OPERATIONS = {
    "openai-chat": "chat",
    "openai-responses": "chat",
    "openai-realtime": "chat",
    "anthropic-messages": "chat",
    "ollama": "chat",
    "openai-completions": "text_completion",
    "openai-embeddings": "embeddings",
    "gemini": "generate_content",
}
DEFAULT_OPERATION = "generate_content"

# The ledger's `provider` -> the conventions' well-known gen_ai.provider.name values; any other
# provider keeps the ledger's own name.
PROVIDERS = {
    "azure-openai": "azure.ai.openai",
    "azure-ai": "azure.ai.inference",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}

# Explicit bucket boundaries the conventions give for the two client metrics.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

# Row column -> span attribute, for the token counts (only those the call reported).
USAGE_ATTRIBUTES = {
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cached_input_tokens": "gen_ai.usage.cache_read.input_tokens",
    "cache_write_tokens": "gen_ai.usage.cache_creation.input_tokens",
    "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens",
}
# Row column -> span attribute, for what the conventions have no name for.
LEDGER_ATTRIBUTES = {
    "cost_usd": "usage_ledger.cost_usd",
    "price_source": "usage_ledger.price_source",
    "outcome": "usage_ledger.outcome",
    "flow_id": "usage_ledger.flow_id",
    "api": "usage_ledger.api",
    "api_key_id": "usage_ledger.api_key_id",
    "service_tier": "openai.response.service_tier",
}


@dataclass(frozen=True, slots=True)
class CallSpan:
    """One call as an OTel span: times in ns since the epoch; `error` set when the call failed."""

    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: str | None
    error_type: str | None


def _server(host: str | None) -> dict[str, Any]:
    """server.address and server.port from the `host` column (a Host header: name[:port])."""
    if not host:
        return {}
    if host.startswith("["):  # [IPv6]:port
        name, _, rest = host[1:].partition("]")
        port = rest[1:]
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    else:
        name, port = host, ""
    attrs: dict[str, Any] = {"server.address": name}
    if port.isdigit():
        attrs["server.port"] = int(port)
    return attrs


def base_attributes(row: dict[str, Any]) -> dict[str, Any]:
    """What identifies the call, shared by its span and its metric points."""
    provider = row.get("provider") or "unknown"
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATIONS.get(row.get("api") or "", DEFAULT_OPERATION),
        "gen_ai.provider.name": PROVIDERS.get(provider, provider),
    }
    if row.get("model_requested"):
        attrs["gen_ai.request.model"] = row["model_requested"]
    if row.get("model"):
        attrs["gen_ai.response.model"] = row["model"]
    attrs.update(_server(row.get("host")))
    return attrs


def error_type(row: dict[str, Any]) -> str | None:
    """`error.type` of a failed call: the HTTP status for an HTTP error, else the outcome."""
    outcome = row.get("outcome")
    if outcome in (None, "ok", "pending"):
        return None
    if outcome == "http_error" and row.get("status_code"):
        return str(row["status_code"])
    return outcome


def _epoch_ns(iso: str) -> int:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1_000_000) * 1000


def call_span(row: dict[str, Any]) -> CallSpan:
    """A finished row (dict of `requests` columns) as a span.

    Starts at `started_at` and lasts `duration_ms`; time to first chunk (seconds) for streams only.
    Raises ValueError for a row without a parseable `started_at`.
    """
    attrs = base_attributes(row)
    for column, name in USAGE_ATTRIBUTES.items():
        if row.get(column) is not None:
            attrs[name] = int(row[column])
    for column, name in LEDGER_ATTRIBUTES.items():
        if row.get(column) is not None:
            attrs[name] = row[column]
    if row.get("status_code") is not None:
        attrs["http.response.status_code"] = int(row["status_code"])
    if row.get("stream") and row.get("ttfb_ms") is not None:
        attrs["gen_ai.response.time_to_first_chunk"] = row["ttfb_ms"] / 1000
    if row.get("tags"):
        try:
            tags = json.loads(row["tags"])
        except ValueError:
            tags = {}
        for name, value in (tags.items() if isinstance(tags, dict) else ()):
            attrs[f"usage_ledger.tag.{name}"] = str(value)
    failed = error_type(row)
    if failed:
        attrs["error.type"] = failed
    start = _epoch_ns(row["started_at"])
    end = start + int((row.get("duration_ms") or 0) * 1_000_000)
    operation = attrs["gen_ai.operation.name"]
    model = row.get("model_requested")
    return CallSpan(f"{operation} {model}" if model else operation, start, end, attrs,
                    (row.get("error") or failed) if failed else None, failed)


def token_points(row: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """`gen_ai.client.token.usage` values ({token}) with their attributes: input, then output."""
    points = []
    for column, token_type in (("input_tokens", "input"), ("output_tokens", "output")):
        if row.get(column) is not None:
            points.append((int(row[column]), {**base_attributes(row), "gen_ai.token.type": token_type}))
    return points


def duration_point(row: dict[str, Any]) -> tuple[float, dict[str, Any]] | None:
    """`gen_ai.client.operation.duration` (seconds) with its attributes, if the row has a duration."""
    if row.get("duration_ms") is None:
        return None
    attrs = base_attributes(row)
    failed = error_type(row)
    if failed:
        attrs["error.type"] = failed
    return row["duration_ms"] / 1000, attrs
